"""Reading a prepared dataset: what training (and inference checks) use, nothing of the encoder.

The layout is described in `higgs_tune.prepared.prepare`, which writes it. Codes are memory-mapped from the
shards, so opening even a dataset of millions of clips reads only its index and line files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from higgs_tune.files import read_jsonl

FORMAT = "higgs-tune-prepared"
VERSION = 2


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


def read_index(root: Path) -> dict:
    """A prepared dataset's index (what it was prepared with, its shards), alone: cheap at any size."""
    root = Path(root)
    index_path = root / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(
            f"{root}: not a prepared dataset (no index.json); run `higgs-tune prepare` first"
        )
    index = json.loads(index_path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{index_path}: not a higgs-tune prepared dataset index")
    return index


class PreparedData:
    """Random access to a prepared dataset; codes are memory-mapped, no audio is read."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.index = read_index(self.root)
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
