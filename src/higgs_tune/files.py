"""The one atomic write: a file is replaced whole or not at all, so a crash never leaves half of one.

Prepared shards, manifests, caches and indexes all go through `write_atomic`: the bytes go to a temporary
file in the same folder, are flushed to disk (fsync), and the temporary file is renamed over the target,
which POSIX makes atomic. A reader, or a resumed run, sees the old file or the new one.

A full disk is the one write failure users meet in practice, and each writer words it its own way
(`OSError: [Errno 28]`, safetensors' "os error 28", torch's "inline_container.cc ... unexpected pos",
numpy's "6272 requested and 4032 written").
`full_disk_named` turns all of them into one `DiskFullError` that names the file or folder being written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from higgs_tune.errors import DiskFullError, UserError

# Below this much free space, a short write that names no cause (below) is taken for a full disk.
NEARLY_FULL_BYTES = 1 << 20
# How writers that lose the errno word a short write: torch.save, numpy ("6272 requested and 4032 written").
SHORT_WRITE_WORDS = ("inline_container", "file write failed", "requested and")


class OutputInUseError(UserError):
    """An output path that holds what this command did not write: refused, never overwritten or deleted."""


def check_output_folder(folder: Path, option: str = "--out", inputs: Iterable[Path] = ()) -> None:
    """Refuse an output folder that is a file, holds anything, or is one of the command's `inputs`
    folders, before any work starts.

    Whatever is in a folder that exists was put there by the user or by an earlier run, and a command that
    writes a folder of outputs (a merged model, a listening test) would overwrite or delete some of it, so
    only a missing or empty folder is taken. A new folder inside an input (a run's `merged/`) is fine:
    nothing there is replaced. The message lists a few of the folder's entries and names the fix.
    """
    folder = Path(folder)
    for given in inputs:
        if Path(given).is_dir() and folder.exists() and os.path.samefile(folder, given):
            raise OutputInUseError(
                f"{option} {folder} is {given}, which this command reads: nothing is written there; "
                "give a new or empty folder"
            )
    if folder.exists() and not folder.is_dir():
        raise OutputInUseError(f"{option} {folder} is a file; give a new or empty folder")
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise OutputInUseError(
            f"{option} {folder} is not empty ({shown}): nothing in it is overwritten or deleted; "
            "give a new or empty folder"
        )


def check_output_file(
    path: Path, option: str = "--out", overwrite: bool = False, inputs: Iterable[Path] = ()
) -> None:
    """Refuse an output file path that is a folder, one of the command's `inputs`, or (unless `overwrite`)
    a file that exists, before any work starts, so a long run never ends in a refused or destructive write.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputInUseError(f"{option} {path} is a folder; give a file name")
    for given in inputs:
        if path.exists() and Path(given).exists() and os.path.samefile(path, given):
            raise OutputInUseError(f"{option} {path} is one of this command's inputs; give another file name")
    if path.exists() and not overwrite:
        raise OutputInUseError(
            f"{option} {path} exists: give another file name, or add --overwrite to replace it"
        )


def remove_outputs(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Delete what a command wrote into `folder`: the entries matching its own `patterns` (glob patterns of
    names), nothing else, so `--overwrite` never takes a file of the user's with it. Returns them sorted."""
    folder = Path(folder)
    removed = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file beside `path`, flushed to disk, then renamed over `path`.

    The temporary name is unique per call, so two processes writing one folder never share one, and it is
    removed when the write fails, so a full disk leaves no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with full_disk_named(path), open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_disk_full(error: BaseException, folder: Path) -> bool:
    """Whether `error`, raised while writing into `folder`, means that its device has no space left."""
    if isinstance(error, DiskFullError):
        return True
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    text = str(error)
    if "No space left on device" in text or "os error 28" in text:
        return True
    if any(words in text for words in SHORT_WRITE_WORDS):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(_existing(folder)).free < NEARLY_FULL_BYTES
    return False


@contextlib.contextmanager
def full_disk_named(path: Path) -> Iterator[None]:
    """Re-raise a full-disk failure of any writer inside the block as `DiskFullError` naming `path`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if is_disk_full(e, Path(path)):
            raise DiskFullError(path) from e
        raise


def _existing(path: Path) -> Path:
    """The nearest existing folder at or above `path`, whose device is the one written to."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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
