"""Which clips a prepared dataset needs, and which process encodes which clip into which shard.

The assignment is a pure function of the samples and the bytes of their files. Every process of a
multi-process run therefore computes the same assignment without talking to the others (no process group
needed), and a resumed run finds the shards of the interrupted one exactly where its own assignment puts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from higgs_tune.data.audio import AudioError, check_file
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.files import content_hash
from higgs_tune.logs import Progress
from higgs_tune.prepared.shards import shard_name

# Hashing is disk-bound and hashlib releases the GIL, so threads overlap the reads.
HASH_THREADS = 8
# Files handed to the threads at a time: millions of pending futures would cost more memory than the hashes.
HASH_BATCH = 1024


def _hash_or_problem(path: Path) -> str | AudioError:
    try:
        check_file(path)
        return content_hash(path)
    except AudioError as e:
        return e
    except OSError as e:
        return AudioError(path, "audio_unreadable", f"cannot be read ({e.strerror or e})")


@dataclass(frozen=True)
class Assignment:
    """The distinct clips of a set of samples and where each sample's clips are."""

    clip_of: dict[Path, str]  # every readable path -> content hash
    unreadable: dict[Path, AudioError]  # paths that could not even be read
    first_path: dict[str, Path]  # content hash -> the first path (in sample order) with those bytes
    clips: list[str]  # the distinct content hashes, sorted: the order clips are split and stored in

    def shards(self, rank: int, world: int, shard_size: int) -> list[tuple[str, list[str]]]:
        """(shard name, clips) of one process: rank r takes every world-th clip from the r-th on (which
        spreads long and short clips evenly), cut into shards of `shard_size` clips. Shard boundaries depend
        only on the assignment, never on how often the run was interrupted."""
        mine = self.clips[rank::world]
        starts = range(0, len(mine), shard_size)
        return [
            (shard_name(i, rank, world), mine[start : start + shard_size]) for i, start in enumerate(starts)
        ]


def assign_clips(samples: Sequence[Sample], progress: bool = True) -> Assignment:
    """Hash every distinct path once; the same bytes under two names are one clip. The shards of each process
    then follow from `Assignment.shards`."""
    for s in samples:
        if s.audio is None:
            raise SampleError(f"sample {s.id!r}", "has no target audio; a training set needs one per sample")
    paths = list(dict.fromkeys(p for s in samples for p in (s.ref_audio, s.audio)))
    results: list[str | AudioError] = []
    with (
        ThreadPoolExecutor(HASH_THREADS) as pool,
        Progress(total=len(paths), desc="hash", unit="file", enabled=progress) as bar,
    ):
        for start in range(0, len(paths), HASH_BATCH):
            batch = paths[start : start + HASH_BATCH]
            results.extend(pool.map(_hash_or_problem, batch))
            bar.update(len(batch))
    clip_of = {p: r for p, r in zip(paths, results, strict=True) if isinstance(r, str)}
    unreadable = {p: r for p, r in zip(paths, results, strict=True) if isinstance(r, AudioError)}
    first_path: dict[str, Path] = {}
    for p, h in clip_of.items():
        first_path.setdefault(h, p)
    return Assignment(clip_of, unreadable, first_path, sorted(first_path))
