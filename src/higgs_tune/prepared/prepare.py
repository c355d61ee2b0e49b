"""Prepared datasets: every distinct clip of a manifest encoded once, so training never touches audio.

Layout of a prepared dataset folder:

    index.json              format, model, codebooks, frame rate, counts, shard list
    samples.jsonl           one line per sample: texts, speaker, scene and the content hashes of its clips
    skipped.jsonl           one line per sample left out by --skip-bad: id, problem code, what is wrong
    clips/shard-NNNNN.npy   uint16 codes [K, total frames] of the clips in the shard, end to end
    clips/shard-NNNNN.jsonl one line per clip: content hash, offset, frames, source path (a clip that could
                            not be used has a problem code and message instead of offset and frames)

With several processes, rank RR writes `clips/shard-rRR-NNNNN.*` instead. Clips are keyed by a hash of the
file's bytes, so a reference that serves many targets is encoded once.

A run (`prepare_dataset`) goes:

1. Plan (`prepared.plan`): hash every file; sort the distinct hashes; rank r of W takes clips r, r+W, ...
   and cuts them into shards of `shard_size` clips. Every process computes the same plan on its own.
2. Encode: worker processes decode and resample (`prepared.decoding`) while the main process encodes one
   clip at a time and writes each shard atomically (`prepared.shards`). Shards an interrupted run finished
   are kept; a partial one is redone.
3. Finish: ranks other than 0 leave a completion marker (`clips/done-rRR.json`); rank 0 waits for them, then
   writes samples.jsonl, skipped.jsonl and last index.json, whose presence marks the dataset finished.

The result does not depend on the number of processes or interruptions: samples.jsonl, skipped.jsonl and
the codes of every clip are the same; only shard names and boundaries differ, and those are fixed by the
number of processes and the shard size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from higgs_tune.data.manifests import read_manifest, scan_manifest
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS, Problem, duration_problem, raise_for_errors
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.files import read_jsonl, write_json, write_jsonl
from higgs_tune.model.codes import encode_waveform
from higgs_tune.prepared.decoding import Decoded, decode_clips
from higgs_tune.prepared.plan import Plan, make_plan
from higgs_tune.prepared.shards import ShardClip, read_shard_lines, write_shard

log = logging.getLogger(__name__)

FORMAT = "higgs-tune-prepared"
VERSION = 2
DEFAULT_SHARD_SIZE = 2000
_POLL_SECONDS = 0.5
_WAIT_LOG_SECONDS = 60.0


@dataclass(frozen=True)
class Skipped:
    """A sample left out of the dataset (only with --skip-bad), and why; one line of skipped.jsonl."""

    id: str
    code: str
    problem: str


def read_samples(manifest: Path, skip_bad: bool = False) -> tuple[list[Sample], list[Skipped]]:
    """The manifest's samples, and with `skip_bad` its malformed entries as skipped samples.

    Without `skip_bad` the first bad entry raises a `SampleError` naming it. A manifest that cannot be read
    at all raises either way: there is no sample to skip.
    """
    if not skip_bad:
        return read_manifest(manifest), []
    scan = scan_manifest(manifest)
    raise_for_errors(p for p in scan.problems if p.sample_id is None)
    by_entry: dict[str, list[Problem]] = {}
    for p in scan.problems:
        if p.is_error:
            by_entry.setdefault(p.where, []).append(p)
        else:
            log.warning("%s", p.describe())
    skipped = [
        Skipped(
            problems[0].sample_id, problems[0].code, f"{where}: " + "; ".join(p.message for p in problems)
        )
        for where, problems in by_entry.items()
    ]
    return scan.samples, skipped


def process_rank() -> tuple[int, int]:
    """(rank, world size) as torchrun and accelerate launch set them; (0, 1) for a plain process."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of a group")
    return rank, world


def default_workers() -> int:
    """Decoding processes per rank: up to 4, sharing the machine's cores between the ranks on it."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(4, (os.cpu_count() or 1) // local_world))


def codec_device(device: str | None = None) -> str:
    """Where this process's codec runs: the GPU when there is one, and under torchrun the rank's own GPU
    (`cuda:LOCAL_RANK`), so that the processes of one machine do not all encode on the first."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


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


def prepare_dataset(
    samples: Sequence[Sample],
    processor,
    out: Path,
    model_id: str,
    *,
    workers: int | None = None,
    skip_bad: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    skipped: Sequence[Skipped] = (),
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
) -> dict:
    """Encode every distinct clip of `samples` once and write a prepared dataset to `out`.

    Resumes an interrupted run; does nothing for a finished one. Under torchrun or accelerate launch each
    process encodes its share of the clips (RANK, WORLD_SIZE from the environment). A bad clip raises a
    `SampleError` naming the first sample that uses it, unless `skip_bad`, which leaves out every sample
    using it and lists them, with `skipped` (entries already dropped from the manifest), in skipped.jsonl.
    Bad means what `higgs-tune validate` calls an error: unreadable, a clip outside [`min_seconds`,
    `max_seconds`] (the same defaults), or a reference that is the target itself (the same bytes).
    Returns the index (also written to `out/index.json`), in every process.

    Several processes must see `out` on one file system: they coordinate through files in it alone. Decoding
    workers (`workers` > 0, default up to 4) are spawned, so a calling script needs the usual
    `if __name__ == "__main__":` guard, as for any multiprocessing code.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    if not 0 <= min_seconds < max_seconds:
        raise ValueError(f"need 0 <= min_seconds < max_seconds, got {min_seconds} and {max_seconds}")
    out = Path(out)
    rank, world = process_rank()
    bounds = (min_seconds, max_seconds)
    source = _source_digest(samples, skipped, model_id, bounds)
    index = finished_index(out, source)
    if index is not None:
        log.info(
            "%s: already prepared (%d samples, %d skipped); nothing to do",
            out,
            index["num_samples"],
            index["num_skipped"],
        )
        return index
    (out / "clips").mkdir(parents=True, exist_ok=True)
    plan = make_plan(samples, progress=rank == 0)
    index = finished_index(out, source)  # another rank may have finished while this one was hashing
    if index is not None:
        return index
    job = _Job(
        out=out,
        samples=list(samples),
        skipped=list(skipped),
        plan=plan,
        processor=processor,
        model_id=model_id,
        source=source,
        skip_bad=skip_bad,
        workers=default_workers() if workers is None else workers,
        rank=rank,
        world=world,
        shard_size=shard_size,
        bounds=bounds,
        digest=_run_digest(source, plan, skip_bad, world, shard_size),
    )
    try:
        if not skip_bad:
            _raise_for_bad(job.samples, plan, {})
        job.encode_shards()
        if rank != 0:
            write_json(_marker(out, "done", rank), {"digest": job.digest})
            return job.wait_for_index()
        job.wait_for_ranks()
        return job.finish()
    except SampleError as e:
        if world > 1:
            marker = {"digest": job.digest, "where": e.where, "problem": e.problem}
            write_json(_marker(out, "failed", rank), marker)
        raise


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
            f"already holds a prepared dataset of other samples, another model ({index.get('model')}) or "
            "other duration bounds; use another --out or delete that folder",
        )
    return index if (out / "samples.jsonl").exists() else None


def _source_digest(
    samples: Sequence[Sample], skipped: Sequence[Skipped], model_id: str, bounds: tuple[float, float]
) -> str:
    """What a finished dataset was made from: every sample's fields, the model and the duration bounds,
    not the file bytes (hashing every file again just to learn that there is nothing to do would defeat
    the point)."""
    digest = hashlib.sha1(json.dumps([model_id, *bounds]).encode())
    for s in samples:
        fields = [s.id, str(s.ref_audio), s.ref_text, s.text, str(s.audio), s.speaker, s.scene]
        digest.update(json.dumps(fields, ensure_ascii=False).encode())
    for k in skipped:
        digest.update(json.dumps(asdict(k), ensure_ascii=False).encode())
    return digest.hexdigest()


def _run_digest(source: str, plan: Plan, skip_bad: bool, world: int, shard_size: int) -> str:
    """Identity of one run's plan, so that markers left by an earlier run of other data or settings are
    never taken for this run's."""
    digest = hashlib.sha1(json.dumps([source, skip_bad, world, shard_size]).encode())
    for clip in plan.clips:
        digest.update(clip.encode())
    for path in sorted(map(str, plan.unreadable)):
        digest.update(path.encode())
    return digest.hexdigest()


def _marker(out: Path, kind: str, rank: int) -> Path:
    return out / "clips" / f"{kind}-r{rank:02d}.json"


def _model_record(out: Path, rank: int, world: int) -> Path:
    """Which model (and duration bounds) the shards of this rank were encoded with, so a resumed run never
    keeps codes of another model or clips refused under other bounds (the shard files only know clips)."""
    return out / "clips" / ("model.json" if world == 1 else f"model-r{rank:02d}.json")


def _clip_problems(s: Sample, plan: Plan, failed: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """(code, message) for each clip of a sample that cannot be used, naming the sample's own file."""
    ref, target = plan.clip_of.get(s.ref_audio), plan.clip_of.get(s.audio)
    if ref is not None and ref == target:
        message = f"reference and target are the same clip ({s.audio}); a clone of itself teaches nothing"
        return [("same_ref_and_target", message)]
    problems = []
    for role, path in (("reference audio", s.ref_audio), ("target audio", s.audio)):
        if path in plan.unreadable:
            error = plan.unreadable[path]
            problems.append((error.code, f"{role} {path}: {error.problem}"))
        elif plan.clip_of[path] in failed:
            code, problem = failed[plan.clip_of[path]]
            problems.append((code, f"{role} {path}: {problem}"))
    return problems


def _raise_for_bad(samples: Iterable[Sample], plan: Plan, failed: dict[str, tuple[str, str]]) -> None:
    """Stop on the first sample (in manifest order) with an unusable clip, naming it and the problem."""
    for s in samples:
        problems = _clip_problems(s, plan, failed)
        if problems:
            raise SampleError(f"sample {s.id!r}", "; ".join(message for _, message in problems))


def _failures(lines: list[dict]) -> dict[str, tuple[str, str]]:
    return {line["clip"]: (line["code"], line["problem"]) for line in lines if "problem" in line}


class _Progress:
    """A tqdm bar in clips/s with audio hours per second as postfix, plus a summary line at the end."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc="encode", unit="clip", disable=not enabled)
        self.clips = 0
        self.seconds = 0.0
        self.started = time.monotonic()

    def _elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def add(self, seconds: float) -> None:
        """One clip done: encoded (`seconds` of audio) or skipped (0)."""
        self.clips += 1
        self.seconds += seconds
        self.bar.set_postfix_str(f"{self.seconds / 3600 / self._elapsed():.4f} audio-h/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
        elapsed = self._elapsed()
        log.info(
            "encoded %d clips (%.2f h of audio) in %.1f s: %.1f clips/s, %.4f audio-h/s",
            self.clips,
            self.seconds / 3600,
            elapsed,
            self.clips / elapsed,
            self.seconds / 3600 / elapsed,
        )


@dataclass
class _Job:
    """One process's part of one prepare run."""

    out: Path
    samples: list[Sample]
    skipped: list[Skipped]
    plan: Plan
    processor: Any
    model_id: str
    source: str
    skip_bad: bool
    workers: int
    rank: int
    world: int
    shard_size: int
    bounds: tuple[float, float]  # (min_seconds, max_seconds) of an accepted clip
    digest: str

    @property
    def codec(self):
        """The codec's config: codebooks, frame rate, hop length."""
        return self.processor.audio_tokenizer.config

    def encode_shards(self) -> None:
        """Encode this rank's clips shard by shard, keeping the shards an earlier attempt completed."""
        shards = self.plan.shards(self.rank, self.world, self.shard_size)
        same_model = self._same_model_as_before()
        todo = [(name, clips) for name, clips in shards if not (same_model and self._kept(name, clips))]
        count = sum(len(clips) for _, clips in todo)
        log.info(
            "rank %d of %d: %d distinct clips in %d shards; %d shards kept from an earlier run, "
            "%d clips to encode",
            self.rank,
            self.world,
            sum(len(clips) for _, clips in shards),
            len(shards),
            len(shards) - len(todo),
            count,
        )
        if not todo:
            return
        sampling_rate = self.processor.feature_extractor.sampling_rate
        jobs = ((clip, self.plan.first_path[clip]) for _, clips in todo for clip in clips)
        progress = _Progress(count, enabled=self.rank == 0)
        with closing(decode_clips(jobs, sampling_rate, self.workers)) as decoded, self._codec_threads():
            for name, clips in todo:
                results = [self._encode(next(decoded), progress) for _ in clips]
                write_shard(self.out, name, results, self.codec.num_quantizers)
        progress.close()

    @contextmanager
    def _codec_threads(self) -> Iterator[None]:
        """On a CPU the codec shares the cores with the decoding workers. Left at torch's default of a thread
        per core it oversubscribes them, and torch's spinning threads then make encoding many times slower."""
        if self.processor.audio_tokenizer.device.type != "cpu":
            yield
            return
        before = torch.get_num_threads()
        cores = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, min(before, cores - self.workers)))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _same_model_as_before(self) -> bool:
        """Whether shards this rank left earlier were encoded by this model under these duration bounds;
        records both for next time."""
        record = _model_record(self.out, self.rank, self.world)
        now = {"model": self.model_id, "min_seconds": self.bounds[0], "max_seconds": self.bounds[1]}
        same = record.exists() and json.loads(record.read_text(encoding="utf-8")) == now
        write_json(record, now)
        return same

    def _kept(self, name: str, clips: list[str]) -> bool:
        """Whether an earlier attempt completed this very shard (the same clips)."""
        lines = read_shard_lines(self.out, name)
        if lines is None or [line["clip"] for line in lines] != clips:
            return False
        if not self.skip_bad:
            _raise_for_bad(self.samples, self.plan, _failures(lines))
        return True

    def _duration_problem(self, num_samples: int) -> tuple[str, str] | None:
        """(code, message) for a clip too short to encode or outside the duration bounds, else None."""
        rate, hop = self.codec.sample_rate, self.codec.hop_length
        seconds = num_samples / rate
        if num_samples < hop:
            frame_ms = 1000 * hop / rate
            return "too_short", f"{1000 * seconds:.0f} ms is shorter than one codec frame ({frame_ms:.0f} ms)"
        return duration_problem(seconds, *self.bounds)

    def _encode(self, decoded: Decoded, progress: _Progress) -> ShardClip:
        """Codes of one decoded clip, or its problem (raised at once without --skip-bad)."""
        rate = self.codec.sample_rate
        problem = None if decoded.audio is None else self._duration_problem(decoded.audio.size)
        if problem is not None:
            decoded = Decoded(decoded.clip, decoded.path, None, *problem)
        if decoded.audio is None:
            if not self.skip_bad:
                _raise_for_bad(self.samples, self.plan, {decoded.clip: (decoded.code, decoded.problem)})
            progress.add(0.0)
            return ShardClip(decoded.clip, decoded.path, code=decoded.code, problem=decoded.problem)
        codes = encode_waveform(self.processor, decoded.audio)
        progress.add(decoded.audio.size / rate)
        return ShardClip(decoded.clip, decoded.path, codes)

    def wait_for_ranks(self) -> None:
        """Rank 0: until every other rank has left its completion marker for this run."""
        others = range(1, self.world)
        self._wait(
            lambda: all(_marker_digest(self.out, "done", r) == self.digest for r in others),
            others,
            "the other ranks to finish encoding",
        )

    def wait_for_index(self) -> dict:
        """Ranks other than 0: until rank 0 has written the index, so that every process returns the same
        finished dataset (and a script may go on to train on it)."""
        self._wait(
            lambda: finished_index(self.out, self.source) is not None, [0], "rank 0 to write the index"
        )
        return finished_index(self.out, self.source)

    def _wait(self, ready: Callable[[], bool], ranks: Iterable[int], what: str) -> None:
        """Poll the folder; a rank that failed on a bad sample leaves a marker, and its error is raised here
        too. (A process that crashes otherwise leaves none: torchrun then stops the whole group.)"""
        next_log = time.monotonic() + _WAIT_LOG_SECONDS
        while not ready():
            for r in ranks:
                path = _marker(self.out, "failed", r)
                if _marker_digest(self.out, "failed", r) == self.digest:
                    failure = json.loads(path.read_text(encoding="utf-8"))
                    raise SampleError(failure["where"], failure["problem"])
            if time.monotonic() > next_log:
                log.info("still waiting for %s", what)
                next_log += _WAIT_LOG_SECONDS
            time.sleep(_POLL_SECONDS)

    def finish(self) -> dict:
        """Rank 0: samples.jsonl and skipped.jsonl from every rank's shards, then the index."""
        shards = [
            name for r in range(self.world) for name, _ in self.plan.shards(r, self.world, self.shard_size)
        ]
        frames: dict[str, int] = {}
        failed: dict[str, tuple[str, str]] = {}
        for name in shards:
            lines = read_shard_lines(self.out, name)
            if lines is None:
                raise RuntimeError(f"{self.out / name}.jsonl is missing although its rank reported it done")
            failed.update(_failures(lines))
            frames.update((line["clip"], line["frames"]) for line in lines if "frames" in line)
        missing = set(self.plan.clips) - frames.keys() - failed.keys()
        if missing:
            raise RuntimeError(f"{len(missing)} planned clips are in no shard of {self.out}")
        records, skipped = [], list(self.skipped)
        for s in self.samples:
            problems = _clip_problems(s, self.plan, failed)
            if problems:
                skipped.append(Skipped(s.id, problems[0][0], "; ".join(message for _, message in problems)))
            else:
                records.append(sample_record(s, self.plan.clip_of[s.ref_audio], self.plan.clip_of[s.audio]))
        write_jsonl(self.out / "skipped.jsonl", [asdict(k) for k in skipped])
        if not records:
            raise SampleError(
                str(self.out), f"no usable sample: all {len(skipped)} were skipped (see skipped.jsonl)"
            )
        write_jsonl(self.out / "samples.jsonl", records)
        index = self._index(records, skipped, shards, frames)
        self._remove_leftovers(shards)
        write_json(self.out / "index.json", index)
        self._report(index, skipped)
        return index

    def _index(
        self, records: list[dict], skipped: list[Skipped], shards: list[str], frames: dict[str, int]
    ) -> dict:
        used = {r[key] for r in records for key in ("ref_clip", "target_clip")}
        uses = 2 * len(records)
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model_id,
            "num_codebooks": self.codec.num_quantizers,
            "frame_rate": self.codec.frame_rate,
            "num_samples": len(records),
            "num_clips": len(used),
            "num_clip_uses": uses,
            "dedupe_ratio": round(uses / len(used), 3),
            "num_skipped": len(skipped),
            "audio_hours": round(sum(frames[c] for c in used) / self.codec.frame_rate / 3600, 4),
            "num_processes": self.world,
            "shard_size": self.shard_size,
            "source": self.source,
            "shards": shards,
        }

    def _remove_leftovers(self, shards: list[str]) -> None:
        """Shards of earlier attempts this run does not use (another shard size or number of processes),
        temporary files of killed writes, markers and model records: a finished folder holds the dataset."""
        keep = {Path(name).name + suffix for name in shards for suffix in (".npy", ".jsonl")}
        for path in (self.out / "clips").iterdir():
            if path.name not in keep and path.name.startswith(("shard-", "done-", "failed-", "model")):
                path.unlink()

    def _report(self, index: dict, skipped: list[Skipped]) -> None:
        log.info(
            "prepared %d samples into %s: %d distinct clips used %d times (dedupe %.2fx), %.3f h of audio; "
            "%d samples skipped",
            index["num_samples"],
            self.out,
            index["num_clips"],
            index["num_clip_uses"],
            index["dedupe_ratio"],
            index["audio_hours"],
            index["num_skipped"],
        )
        if skipped:
            log.warning(
                "skipped %d bad samples, listed in %s; first:", len(skipped), self.out / "skipped.jsonl"
            )
            for k in skipped[:5]:
                log.warning("  %s: %s", k.id, k.problem)


def _marker_digest(out: Path, kind: str, rank: int) -> str | None:
    path = _marker(out, kind, rank)
    try:
        return json.loads(path.read_text(encoding="utf-8"))["digest"]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class PreparedSample:
    """One sample of a prepared dataset, its clips as codes [K, T]."""

    id: str
    ref_text: str
    text: str
    ref_codes: np.ndarray
    target_codes: np.ndarray
    speaker: str | None = None
    scene: str | None = None


class PreparedData:
    """Random access to a prepared dataset; codes are memory-mapped, nothing is decoded."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.exists():
            raise FileNotFoundError(
                f"{self.root}: not a prepared dataset (no index.json); run `higgs-tune prepare` first"
            )
        self.index = json.loads(index_path.read_text())
        if self.index.get("format") != FORMAT:
            raise ValueError(f"{index_path}: not a higgs-tune prepared dataset index")
        self._shards: list[np.ndarray] = []
        self._clips: dict[str, tuple[int, int, int]] = {}
        for i, shard in enumerate(self.index["shards"]):
            self._shards.append(np.load(self.root / f"{shard}.npy", mmap_mode="r"))
            for line in read_jsonl(self.root / f"{shard}.jsonl"):
                if "frames" in line:  # lines of unusable clips (--skip-bad) have a problem instead
                    self._clips[line["clip"]] = (i, line["offset"], line["frames"])
        self.records = read_jsonl(self.root / "samples.jsonl")

    def __len__(self) -> int:
        return len(self.records)

    def clip_frames(self, clip: str) -> int:
        """Length in frames of a clip, without reading its codes."""
        return self._clips[clip][2]

    def codes(self, clip: str) -> np.ndarray:
        """Codes [K, T] (int64) of a clip by content hash."""
        shard, offset, frames = self._clips[clip]
        return np.asarray(self._shards[shard][:, offset : offset + frames], dtype=np.int64)

    def __getitem__(self, i: int) -> PreparedSample:
        r = self.records[i]
        return PreparedSample(
            id=r["id"],
            ref_text=r["ref_text"],
            text=r["text"],
            ref_codes=self.codes(r["ref_clip"]),
            target_codes=self.codes(r["target_clip"]),
            speaker=r.get("speaker"),
            scene=r.get("scene"),
        )
