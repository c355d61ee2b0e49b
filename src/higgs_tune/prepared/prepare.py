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

1. Assign (`prepared.assignment`): hash every file; sort the distinct hashes; rank r of W takes clips r,
   r+W, ... and cuts them into shards of `shard_size` clips. Every process computes the same assignment on
   its own.
2. Encode (`prepared.encode`): worker processes load and resample (`prepared.clip_loading`) while the main
   process encodes one clip at a time and writes each shard atomically (`prepared.shards`). Shards an
   interrupted run finished are kept; a partial one is redone.
3. Finish: ranks other than 0 leave a completion marker (`prepared.ranks`); rank 0 waits for them, then
   writes samples.jsonl, skipped.jsonl and last index.json (`prepared.finish`), whose presence marks the
   dataset finished. Training reads the result with `prepared.dataset.PreparedData`.

The result does not depend on the number of processes or interruptions: samples.jsonl, skipped.jsonl and
the codes of every clip are the same; only shard names and boundaries differ, and those are fixed by the
number of processes and the shard size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from higgs_tune.data.manifests import read_manifest, scan_manifest
from higgs_tune.data.problems import Problem, raise_for_errors
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.data.text_normalisation import normalise_sample
from higgs_tune.prepared.assignment import assign_clips
from higgs_tune.prepared.bad_samples import Skipped, raise_for_bad
from higgs_tune.prepared.encode import encode_shards
from higgs_tune.prepared.finish import finish_dataset, finished_index, source_digest
from higgs_tune.prepared.lock import folder_lock
from higgs_tune.prepared.ranks import (
    report_done,
    report_failure,
    run_digest,
    wait_for_index,
    wait_for_ranks,
)
from higgs_tune.prepared.run import PrepareRun
from higgs_tune.prepared.settings import PrepareSettings
from higgs_tune.ranks import process_rank

log = logging.getLogger(__name__)


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
    if manifest.is_absolute():  # skipped.jsonl goes with the dataset: no folders of its maker in it
        skipped = [replace(k, problem=k.problem.replace(str(manifest), manifest.name, 1)) for k in skipped]
    return scan.samples, skipped


def default_workers() -> int:
    """Decoding processes per rank: up to 4, sharing the machine's cores between the ranks on it."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(4, (os.cpu_count() or 1) // local_world))


def prepare_dataset(
    samples: Sequence[Sample],
    processor,
    out: Path,
    model_id: str,
    settings: PrepareSettings | None = None,
    *,
    skipped: Sequence[Skipped] = (),
    source_dir: Path | None = None,
) -> dict:
    """Encode every distinct clip of `samples` once and write a prepared dataset to `out`, as `settings`
    (default `PrepareSettings()`) ask, clip paths relative to `source_dir` (the manifest's folder) or not at
    all, never absolute (`PrepareRun.recorded`).

    Resumes an interrupted run; does nothing for a finished one. Under torchrun or accelerate launch each
    process encodes its share of the clips (RANK, WORLD_SIZE from the environment). A bad clip raises a
    `SampleError` naming the first sample that uses it, unless `settings.skip_bad`, which leaves out every
    sample using it and lists them, with `skipped` (entries already dropped from the manifest), in
    skipped.jsonl. Bad means what `higgs-tune validate` calls an error: unreadable, a clip outside the
    settings' [`min_seconds`, `max_seconds`] (the same defaults), or a reference that is the target itself.
    The texts are stored normalised by `settings.text_normalisation` (`data.text_normalisation`), and the
    index records it, so that training prompts with it and clones normalise their texts the same way.
    Returns the index (also written to `out/index.json`), in every process.

    Several processes must see `out` on one file system: they coordinate through files in it alone; another
    run writing `out` meanwhile is refused (`prepared.lock`). Loading workers (`workers` > 0, default up
    to 4) are spawned, so a calling script needs the usual `if __name__ == "__main__":` guard.
    """
    s = settings or PrepareSettings()
    out, (rank, world) = Path(out), process_rank()
    samples = [normalise_sample(x, s.text_normalisation) for x in samples]
    source = source_digest(samples, skipped, model_id, s.bounds, s.text_normalisation)
    index = _already_prepared(out, source)
    if index is not None:
        return index
    with folder_lock(out, rank):  # another prepare writing `out` is refused here, naming it
        (out / "clips").mkdir(parents=True, exist_ok=True)
        assignment = assign_clips(samples, progress=rank == 0)
        index = finished_index(out, source)  # another rank may have finished while this one was hashing
        if index is not None:
            return index
        run = PrepareRun(
            out=out,
            samples=list(samples),
            skipped=list(skipped),
            assignment=assignment,
            processor=processor,
            model_id=model_id,
            source=source,
            skip_bad=s.skip_bad,
            workers=default_workers() if s.workers is None else s.workers,
            rank=rank,
            world=world,
            shard_size=s.shard_size,
            bounds=s.bounds,
            digest=run_digest(source, assignment, s.skip_bad, world, s.shard_size),
            source_dir=source_dir,
            text_normalisation=s.text_normalisation,
        )
        return _encode_and_finish(run)


def _already_prepared(out: Path, source: str) -> dict | None:
    """The index of a finished dataset of these samples in `out`, said in the log; None when there is none."""
    index = finished_index(out, source)
    if index is not None:
        log.info(
            "%s: already prepared (%d samples, %d skipped); nothing to do",
            out,
            index["num_samples"],
            index["num_skipped"],
        )
    return index


def _encode_and_finish(run: PrepareRun) -> dict:
    """This rank's shards, then rank 0 finishes the dataset while the others wait for its index. A bad
    sample stops every rank: the one that finds it tells the others through a marker."""
    try:
        if not run.skip_bad:
            raise_for_bad(run.samples, run.assignment, {})
        encode_shards(run)
        if run.rank != 0:
            report_done(run)
            return wait_for_index(run)
        wait_for_ranks(run)
        return finish_dataset(run)
    except SampleError as e:
        if run.world > 1:
            report_failure(run, e)
        raise
