"""Shard files of a prepared dataset: the codes of many clips end to end, and one line per clip saying where.

Millions of clips cannot be one file per clip (file systems and `ls` give up) nor one file in all (nothing
would be saved until the end). A shard is written whole or not at all: each file goes to a temporary name and
is renamed into place, the .npy before the .jsonl, so the .jsonl existing means the shard is complete. That
is what lets an interrupted `prepare` keep the shards it finished and redo only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from higgs_tune.files import read_jsonl, write_atomic, write_jsonl


def shard_name(number: int, rank: int = 0, world: int = 1) -> str:
    """`clips/shard-NNNNN` for a single process; `clips/shard-rRR-NNNNN` for rank RR of several, so that
    processes never write the same file."""
    if world == 1:
        return f"clips/shard-{number:05d}"
    return f"clips/shard-r{rank:02d}-{number:05d}"


@dataclass(frozen=True)
class ShardClip:
    """One clip's result: its codes [K, T], or, for a clip that could not be used, the problem's code and
    message (kept in the shard so that a resumed run knows about it without loading the clip again; on disk
    they are the line's `code` and `problem`)."""

    clip: str
    path: (
        str | None
    )  # relative to the manifest's folder; None: the content hash alone (`PrepareRun.recorded`)
    codes: np.ndarray | None = None
    problem_code: str | None = None
    problem: str | None = None


def write_shard(root: Path, name: str, clips: list[ShardClip], num_codebooks: int) -> None:
    """Write `root/name.npy` (uint16 codes of the usable clips, end to end) and `root/name.jsonl`."""
    lines, arrays, offset = [], [], 0
    for c in clips:
        source = {} if c.path is None else {"path": c.path}
        if c.codes is None:
            lines.append({"clip": c.clip, **source, "code": c.problem_code, "problem": c.problem})
            continue
        frames = int(c.codes.shape[1])
        lines.append({"clip": c.clip, "offset": offset, "frames": frames, **source})
        arrays.append(c.codes.astype(np.uint16))
        offset += frames
    codes = np.concatenate(arrays, axis=1) if arrays else np.zeros((num_codebooks, 0), dtype=np.uint16)
    write_atomic(root / f"{name}.npy", lambda f: np.save(f, codes))
    write_jsonl(root / f"{name}.jsonl", lines)


def read_shard_lines(root: Path, name: str) -> list[dict] | None:
    """The clip lines of a complete shard, or None when the shard was never finished."""
    path = root / f"{name}.jsonl"
    if not path.exists() or not (root / f"{name}.npy").exists():
        return None
    return read_jsonl(path)
