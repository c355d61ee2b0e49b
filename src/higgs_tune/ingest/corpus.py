"""The corpus folder `ingest` writes, and how a run resumes in it.

    CORPUS/clips/NAME.flac       24 kHz mono clips (16-bit FLAC)
    CORPUS/utterances.jsonl      one kept clip per line: id, audio, text, speaker, duration, source,
                                 start, end (seconds in the recording), and asr_confidence where the
                                 ASR wrote the text; what `higgs-tune pairs` reads
    CORPUS/rejected.jsonl        one rejected clip per line: source, speaker, start, end, duration, code
                                 (a `data.problems` code), message
    CORPUS/ingest.json           the source and the settings that decide the content
    CORPUS/parts/part-NNNNNN.jsonl  completion records, one per chunk of recordings (with its digest)

Recordings are taken in chunks (`IngestSettings.chunk_size`), in the source's fixed order. A chunk's
clips are written first (each atomically), then its completion record (atomically); `utterances.jsonl`
and `rejected.jsonl` are only ever assembled whole from the records, in chunk order. So a killed run
leaves no half-written clip or line, a re-run skips every chunk that has a record and redoes the others
(rewriting the same clip names), and the result does not depend on how often the run was stopped or how
many workers it had.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from higgs_tune.data.audio import TARGET_SR
from higgs_tune.data.samples import SampleError
from higgs_tune.files import read_jsonl, write_atomic, write_json, write_jsonl

CLIPS = "clips"
UTTERANCES = "utterances.jsonl"
REJECTED = "rejected.jsonl"
SETTINGS = "ingest.json"
PARTS = "parts"


def clip_name(speaker: str, key: str, index: int) -> str:
    """A clip's file name: readable (speaker), unique and stable (a hash of the recording's key)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", speaker).strip("_")[:40] or "speaker"
    return f"{slug}-{hashlib.sha1(key.encode()).hexdigest()[:12]}-{index:03d}.flac"


def write_clip(out: Path, name: str, audio: np.ndarray) -> str:
    """Write a 24 kHz mono clip atomically; its path relative to the corpus (as `utterances.jsonl` has it)."""
    relative = f"{CLIPS}/{name}"
    write_atomic(out / relative, lambda f: sf.write(f, audio, TARGET_SR, format="FLAC", subtype="PCM_16"))
    return relative


def read_clip(out: Path, relative: str) -> np.ndarray:
    audio, _ = sf.read(str(out / relative), dtype="float32")
    return audio


def start_run(out: Path, source: str, recorded: dict) -> None:
    """Record the run's source and settings, or check that a corpus being resumed was made with the same
    ones: two runs' clips must never mix in one folder."""
    path = out / SETTINGS
    wanted = {"source": source, "settings": recorded}
    if path.is_file():
        have = json.loads(path.read_text(encoding="utf-8"))
        if have != json.loads(json.dumps(wanted)):
            differ = _differences(have, json.loads(json.dumps(wanted)))
            raise SampleError(
                str(out),
                f"holds a corpus made with other settings ({', '.join(differ)}); "
                "give a new --out, or delete the folder to start over",
            )
        return
    write_json(path, wanted)


def _differences(have: dict, want: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(have) | set(want))
    found = []
    for key in keys:
        a, b = have.get(key), want.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: {a!r} then {b!r}")
    return found


def part_path(out: Path, chunk: int) -> Path:
    return out / PARTS / f"part-{chunk:06d}.jsonl"


def chunk_digest(keys: Iterable[str]) -> str:
    """Identity of a chunk's recordings: a record only counts for the same recordings (files added to a
    source folder shift the chunks; those chunks are then redone)."""
    return hashlib.sha1("\n".join(keys).encode()).hexdigest()


def chunk_done(out: Path, chunk: int, digest: str) -> bool:
    path = part_path(out, chunk)
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as f:
        return json.loads(f.readline() or "{}").get("chunk") == digest


def write_part(out: Path, chunk: int, digest: str, kept: list[dict], rejected: list[dict]) -> None:
    """A chunk's completion record, written after all of its clips: its digest, then its rows."""
    rows = [{"kept": True, **row} for row in kept] + [{"kept": False, **row} for row in rejected]
    write_jsonl(part_path(out, chunk), [{"chunk": digest}, *rows])


def read_part(out: Path, chunk: int) -> tuple[list[dict], list[dict]]:
    """(kept, rejected) rows of a finished chunk."""
    kept, rejected = [], []
    for row in read_jsonl(part_path(out, chunk))[1:]:
        (kept if row.pop("kept") else rejected).append(row)
    return kept, rejected


def assemble(out: Path, chunks: Iterable[int]) -> tuple[list[dict], list[dict]]:
    """Write `utterances.jsonl` and `rejected.jsonl` whole from the chunks' records; return their rows."""
    kept: list[dict] = []
    rejected: list[dict] = []
    for chunk in chunks:
        k, r = read_part(out, chunk)
        kept += k
        rejected += r
    write_jsonl(out / UTTERANCES, kept)
    write_jsonl(out / REJECTED, rejected)
    return kept, rejected
