"""Reading a prepared dataset: what training (and inference checks) use, nothing of the encoder.

The layout is described in `higgs_tune.prepared.prepare`, which writes it. Codes are memory-mapped from the
shards, so opening even a dataset of millions of clips reads only its index and line files.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
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


class SampleTable(Sequence[dict]):
    """A prepared dataset's samples.jsonl, column by column: ids, and for every other field an index into
    its distinct values (`int32`). At a million pairs over a few thousand clips a list of per-sample dicts
    took about 1 GB; here each distinct text, clip hash, speaker and scene is held once.

    `table[i]` is the sample's line as a dict, as it was read; `ids` and `column(name)` serve the code
    that looks at every sample (the batch planner) without making a dict per sample.
    """

    FIELDS = ("speaker", "ref_text", "text", "scene", "ref_clip", "target_clip")
    CHUNK = 20_000

    def __init__(self, path: Path) -> None:
        self.ids: list[str] = []
        self.values: dict[str, list] = {name: [] for name in self.FIELDS}
        numbers: dict[str, dict] = {name: {} for name in self.FIELDS}
        rows: dict[str, list[int]] = {name: [] for name in self.FIELDS}
        with open(path, encoding="utf-8") as f:
            while lines := [line for line in itertools.islice(f, self.CHUNK) if line.strip()]:
                for record in json.loads("[" + ",".join(lines) + "]"):  # one parse per chunk: far faster
                    self.ids.append(record["id"])
                    for name in self.FIELDS:
                        value, number = record.get(name), numbers[name]
                        if value not in number:
                            number[value] = len(number)
                            self.values[name].append(value)
                        rows[name].append(number[value])
        self.rows = {name: np.asarray(rows[name], dtype=np.int32) for name in self.FIELDS}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:  # type: ignore[override]
        return {"id": self.ids[i], **{name: self.values[name][self.rows[name][i]] for name in self.FIELDS}}

    def column(self, name: str, indices: Sequence[int] | None = None) -> list:
        """Field `name` of the samples at `indices` (all by default), in order."""
        rows = self.rows[name] if indices is None else self.rows[name][np.asarray(indices, dtype=np.int64)]
        values = self.values[name]
        return [values[j] for j in rows.tolist()]


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
        self.records = SampleTable(self.root / "samples.jsonl")

    def __len__(self) -> int:
        return len(self.records)

    def clip_frames(self, clip: str) -> int:
        """Length in frames of a clip, without reading its codes."""
        return self._clips[clip][2]

    def frames(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Frames of both clips (reference and target) of the samples at `indices` (all by default),
        without reading codes or making a dict per sample."""
        table = self.records
        rows = slice(None) if indices is None else np.asarray(indices, dtype=np.int64)
        total = np.zeros(len(table) if indices is None else len(indices), dtype=np.int64)
        for name in ("ref_clip", "target_clip"):
            per_clip = np.array([self.clip_frames(c) for c in table.values[name]], dtype=np.int64)
            total += per_clip[table.rows[name][rows]]
        return total

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
