"""One process's encoding: its share of the clips, shard by shard, each shard written whole.

Worker processes load and resample the clips (`prepared.clip_loading`) while this process runs the codec on
one clip at a time. Shards an interrupted run finished with the same model and duration bounds are kept; a
partial one is redone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import torch

from higgs_tune.data.problems import duration_problem
from higgs_tune.files import write_json
from higgs_tune.logs import Progress
from higgs_tune.model.codes import encode_waveform
from higgs_tune.prepared.bad_samples import raise_for_bad, shard_failures
from higgs_tune.prepared.clip_loading import LoadedClip, load_clips
from higgs_tune.prepared.run import PrepareRun
from higgs_tune.prepared.shards import ShardClip, read_shard_lines, write_shard

log = logging.getLogger(__name__)


class _Progress:
    """A tqdm bar in clips/s with audio hours per second as postfix, plus a summary line at the end."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = Progress(total=total, desc="encode", unit="clip", enabled=enabled)
        self.clips = 0
        self.seconds = 0.0
        self.started = time.monotonic()

    def _elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def add(self, seconds: float) -> None:
        """One clip done: encoded (`seconds` of audio) or skipped (0)."""
        self.clips += 1
        self.seconds += seconds
        self.bar.set_postfix_str(f"{self.seconds / 3600 / self._elapsed():.4f} audio-h/s")
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


def encode_shards(run: PrepareRun) -> None:
    """Encode this rank's clips shard by shard, keeping the shards an earlier attempt completed."""
    shards = run.assignment.shards(run.rank, run.world, run.shard_size)
    same_model = _same_model_as_before(run)
    todo = [(name, clips) for name, clips in shards if not (same_model and _kept(run, name, clips))]
    count = sum(len(clips) for _, clips in todo)
    log.info(
        "rank %d of %d: %d distinct clips in %d shards; %d shards kept from an earlier run, "
        "%d clips to encode",
        run.rank,
        run.world,
        sum(len(clips) for _, clips in shards),
        len(shards),
        len(shards) - len(todo),
        count,
    )
    if not todo:
        return
    sampling_rate = run.processor.feature_extractor.sampling_rate
    jobs = ((clip, run.assignment.first_path[clip]) for _, clips in todo for clip in clips)
    progress = _Progress(count, enabled=run.rank == 0)
    with (
        closing(load_clips(jobs, sampling_rate, run.workers, bounds=run.bounds)) as loaded,
        _codec_threads(run),
    ):
        for name, clips in todo:
            results = [_encode(run, next(loaded), progress) for _ in clips]
            write_shard(run.out, name, results, run.codec.num_quantizers)
    progress.close()


@contextmanager
def _codec_threads(run: PrepareRun) -> Iterator[None]:
    """On a CPU the codec shares the cores with the loading workers. Left at torch's default of a thread per
    core it oversubscribes them, and torch's spinning threads then make encoding many times slower."""
    if run.processor.audio_tokenizer.device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    cores = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, min(before, cores - run.workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _model_record(out: Path, rank: int, world: int) -> Path:
    """Which model (and duration bounds) the shards of this rank were encoded with, so a resumed run never
    keeps codes of another model or clips refused under other bounds (the shard files only know clips)."""
    return out / "clips" / ("model.json" if world == 1 else f"model-r{rank:02d}.json")


def _same_model_as_before(run: PrepareRun) -> bool:
    """Whether shards this rank left earlier were encoded by this model under these duration bounds; records
    both for next time."""
    record = _model_record(run.out, run.rank, run.world)
    now = {"model": run.model_id, "min_seconds": run.bounds[0], "max_seconds": run.bounds[1]}
    same = record.exists() and json.loads(record.read_text(encoding="utf-8")) == now
    write_json(record, now)
    return same


def _kept(run: PrepareRun, name: str, clips: list[str]) -> bool:
    """Whether an earlier attempt completed this very shard (the same clips)."""
    lines = read_shard_lines(run.out, name)
    if lines is None or [line["clip"] for line in lines] != clips:
        return False
    if not run.skip_bad:
        raise_for_bad(run.samples, run.assignment, shard_failures(lines))
    return True


def _duration_problem(run: PrepareRun, num_samples: int) -> tuple[str, str] | None:
    """(code, message) for a clip too short to encode or outside the duration bounds, else None."""
    rate, hop = run.codec.sample_rate, run.codec.hop_length
    seconds = num_samples / rate
    if num_samples < hop:
        frame_ms = 1000 * hop / rate
        return "too_short", f"{1000 * seconds:.0f} ms is shorter than one codec frame ({frame_ms:.0f} ms)"
    return duration_problem(seconds, *run.bounds)


def _encode(run: PrepareRun, loaded: LoadedClip, progress: _Progress) -> ShardClip:
    """Codes of one loaded clip, or its problem (raised at once without --skip-bad)."""
    problem = None if loaded.audio is None else _duration_problem(run, loaded.audio.size)
    if problem is not None:
        loaded = LoadedClip(loaded.clip, loaded.path, None, *problem)
    if loaded.audio is None:
        if not run.skip_bad:
            raise_for_bad(run.samples, run.assignment, {loaded.clip: (loaded.problem_code, loaded.problem)})
        progress.add(0.0)
        return ShardClip(
            loaded.clip, run.recorded(loaded.path), problem_code=loaded.problem_code, problem=loaded.problem
        )
    codes = encode_waveform(run.processor, loaded.audio)
    progress.add(loaded.audio.size / run.codec.sample_rate)
    return ShardClip(loaded.clip, run.recorded(loaded.path), codes)
