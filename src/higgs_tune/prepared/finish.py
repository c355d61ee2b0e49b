"""Finishing a prepared dataset: samples.jsonl and skipped.jsonl from every rank's shards, then index.json.

The index is written last: its presence (with samples.jsonl) marks the dataset finished, and its `source`
digest says what the dataset was made from, so a finished folder is never taken for other samples.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from higgs_tune.card import samples_summary
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.files import write_json, write_jsonl
from higgs_tune.prepared.bad_samples import Skipped, clip_problems, shard_failures
from higgs_tune.prepared.dataset import FORMAT, VERSION
from higgs_tune.prepared.run import PrepareRun
from higgs_tune.prepared.shards import read_shard_lines

log = logging.getLogger(__name__)


def source_digest(
    samples: Sequence[Sample],
    skipped: Sequence[Skipped],
    model_id: str,
    bounds: tuple[float, float],
    text_normalisation: str = "none",
) -> str:
    """What a finished dataset was made from: every sample's fields, the model, the duration bounds and
    the text normalisation, not the file bytes (hashing every file again just to learn that there is
    nothing to do would defeat the point). No normalisation adds nothing, so datasets prepared before the
    setting existed keep their digest."""
    header = [model_id, *bounds] + ([text_normalisation] if text_normalisation != "none" else [])
    digest = hashlib.sha1(json.dumps(header).encode())
    for s in samples:
        fields = [s.id, str(s.ref_audio), s.ref_text, s.text, str(s.audio), s.speaker, s.scene]
        digest.update(json.dumps(fields, ensure_ascii=False).encode())
    for k in skipped:
        digest.update(json.dumps(asdict(k), ensure_ascii=False).encode())
    return digest.hexdigest()


def finished_index(out: Path, source: str) -> dict | None:
    """The index of a finished dataset of these very samples and model; None when there is none yet.

    Refuses a folder that holds a finished dataset of anything else, rather than mixing the two.
    """
    index_path = out / "index.json"
    if not index_path.exists():
        return None
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if index.get("source") != source:
        raise SampleError(
            str(out),
            f"already holds a prepared dataset of other samples, another model ({index.get('model')}), "
            "other duration bounds or another text normalisation; use another --out or delete that folder",
        )
    return index if (out / "samples.jsonl").exists() else None


def sample_record(sample: Sample, ref_clip: str, target_clip: str) -> dict:
    """The samples.jsonl line of one sample."""
    return {
        "id": sample.id,
        "speaker": sample.speaker,
        "ref_text": sample.ref_text,
        "text": sample.text,
        "scene": sample.scene,
        "ref_clip": ref_clip,
        "target_clip": target_clip,
    }


def finish_dataset(run: PrepareRun) -> dict:
    """Rank 0: samples.jsonl and skipped.jsonl from every rank's shards, then the index, which it returns."""
    shards = [
        name for r in range(run.world) for name, _ in run.assignment.shards(r, run.world, run.shard_size)
    ]
    frames: dict[str, int] = {}
    failed: dict[str, tuple[str, str]] = {}
    for name in shards:
        lines = read_shard_lines(run.out, name)
        if lines is None:
            raise RuntimeError(f"{run.out / name}.jsonl is missing although its rank reported it done")
        failed.update(shard_failures(lines))
        frames.update((line["clip"], line["frames"]) for line in lines if "frames" in line)
    missing = set(run.assignment.clips) - frames.keys() - failed.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} assigned clips are in no shard of {run.out}")
    records, skipped = [], list(run.skipped)
    for s in run.samples:
        problems = clip_problems(s, run.assignment, failed, run.shown)
        if problems:
            skipped.append(Skipped(s.id, problems[0][0], "; ".join(message for _, message in problems)))
        else:
            clip_of = run.assignment.clip_of
            records.append(sample_record(s, clip_of[s.ref_audio], clip_of[s.audio]))
    write_jsonl(run.out / "skipped.jsonl", [asdict(k) for k in skipped])
    if not records:
        raise SampleError(
            str(run.out), f"no usable sample: all {len(skipped)} were skipped (see skipped.jsonl)"
        )
    write_jsonl(run.out / "samples.jsonl", records)
    index = _index(run, records, skipped, shards, frames)
    _remove_leftovers(run.out, shards)
    write_json(run.out / "index.json", index)
    _report(run.out, index, skipped)
    return index


def _index(
    run: PrepareRun, records: list[dict], skipped: list[Skipped], shards: list[str], frames: dict[str, int]
) -> dict:
    used = {r[key] for r in records for key in ("ref_clip", "target_clip")}
    uses = 2 * len(records)
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": run.model_id,
        "codec": run.codec_digest,
        "num_codebooks": run.codec.num_quantizers,
        "frame_rate": run.codec.frame_rate,
        "num_samples": len(records),
        "num_clips": len(used),
        "num_clip_uses": uses,
        "dedupe_ratio": round(uses / len(used), 3),
        "num_skipped": len(skipped),
        "audio_hours": round(sum(frames[c] for c in used) / run.codec.frame_rate / 3600, 4),
        **samples_summary(records),  # what a model card says, so that it never reads samples.jsonl again
        "num_processes": run.world,
        "shard_size": run.shard_size,
        "text_normalisation": run.text_normalisation,
        "source": run.source,
        "shards": shards,
    }


def _remove_leftovers(out: Path, shards: list[str]) -> None:
    """Shards of earlier attempts this run does not use (another shard size or number of processes),
    temporary files of killed writes, markers and model records: a finished folder holds the dataset."""
    keep = {Path(name).name + suffix for name in shards for suffix in (".npy", ".jsonl")}
    for path in (out / "clips").iterdir():
        temporary = path.name.startswith(".") and path.name.endswith(".tmp")
        if temporary or (
            path.name not in keep and path.name.startswith(("shard-", "done-", "failed-", "model"))
        ):
            path.unlink()


def _report(out: Path, index: dict, skipped: list[Skipped]) -> None:
    log.info(
        "prepared %d samples into %s: %d distinct clips used %d times (dedupe %.2fx), %.3f h of audio; "
        "%d samples skipped",
        index["num_samples"],
        out,
        index["num_clips"],
        index["num_clip_uses"],
        index["dedupe_ratio"],
        index["audio_hours"],
        index["num_skipped"],
    )
    if skipped:
        log.warning("skipped %d bad samples, listed in %s; first:", len(skipped), out / "skipped.jsonl")
        for k in skipped[:5]:
            log.warning("  %s: %s", k.id, k.problem)
