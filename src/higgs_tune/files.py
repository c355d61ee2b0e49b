"""The one atomic write: a file is replaced whole or not at all, so a crash never leaves half of one.

Prepared shards, manifests, caches and indexes all go through `write_atomic`: the bytes go to a temporary
file in the same folder, are flushed to disk (fsync), and the temporary file is renamed over the target,
which POSIX makes atomic. A reader, or a resumed run, sees the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file beside `path`, flushed to disk, then renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """UTF-8 text, written atomically."""
    data = text.encode("utf-8")
    write_atomic(path, lambda f: f.write(data))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """JSON Lines, UTF-8 with non-ASCII text (Arabic) left readable, written atomically."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_json(path: Path, obj: dict) -> None:
    """Indented JSON, UTF-8 with non-ASCII text left readable, written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every non-blank line of a JSON Lines file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def content_hash(path: Path) -> str:
    """SHA-1 of a file's bytes: the identity of a clip, whatever its name or how many samples use it."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
