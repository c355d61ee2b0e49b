"""Prepared datasets: every distinct clip of a manifest encoded once, so training never touches audio.

Layout of a prepared dataset folder:

    index.json              format, model, codebooks, frame rate, shard list, counts
    samples.jsonl           one line per sample: texts, speaker, scene and the content hashes of its clips
    clips/shard-NNNNN.npy   uint16 codes [K, total frames] of the clips in the shard, end to end
    clips/shard-NNNNN.jsonl one line per clip: content hash, offset, frames, source path

Clips are keyed by a hash of the file's bytes, so a reference that serves many targets is encoded once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from higgs_tune.codes import encode_file
from higgs_tune.samples import Sample

log = logging.getLogger(__name__)

FORMAT = "higgs-tune-prepared"
VERSION = 1


def content_hash(path: Path) -> str:
    """SHA-1 of a file's bytes: the identity of a clip, whatever its name or how many samples use it."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def prepare_dataset(samples: list[Sample], processor, out: Path, model_id: str) -> dict:
    """Encode every distinct clip of `samples` once and write a prepared dataset to `out`.

    Returns the index (also written to `out/index.json`).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "clips").mkdir(exist_ok=True)
    hashes: dict[Path, str] = {}
    for s in samples:
        for p in (s.ref_audio, s.audio):
            if p is not None and p not in hashes:
                hashes[p] = content_hash(p)
    first_path: dict[str, Path] = {}
    for p, h in hashes.items():
        first_path.setdefault(h, p)

    codes, clip_lines, offset = [], [], 0
    for h, p in tqdm(first_path.items(), desc="encode", unit="clip"):
        c = encode_file(processor, p)
        codes.append(c.astype(np.uint16))
        clip_lines.append({"clip": h, "offset": offset, "frames": int(c.shape[1]), "path": str(p)})
        offset += c.shape[1]
    shard = "clips/shard-00000"
    np.save(out / f"{shard}.npy", np.concatenate(codes, axis=1))
    _write_jsonl(out / f"{shard}.jsonl", clip_lines)
    _write_jsonl(
        out / "samples.jsonl", [sample_record(s, hashes[s.ref_audio], hashes[s.audio]) for s in samples]
    )
    index = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_id,
        "num_codebooks": int(codes[0].shape[0]),
        "num_samples": len(samples),
        "num_clips": len(first_path),
        "num_clip_uses": sum(2 for _ in samples),
        "shards": [shard],
    }
    (out / "index.json").write_text(json.dumps(index, indent=2))
    log.info("prepared %d samples, %d distinct clips into %s", len(samples), len(first_path), out)
    return index


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


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
            for line in _read_jsonl(self.root / f"{shard}.jsonl"):
                self._clips[line["clip"]] = (i, line["offset"], line["frames"])
        self.records = _read_jsonl(self.root / "samples.jsonl")

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


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
