"""One writer per prepared-dataset folder: a second `prepare` on the same `--out` is refused at once.

Two runs writing one folder would mix their shards and trip over each other's files. Each process of a run
holds an exclusive `flock` on `OUT/.prepare-rRR.lock` (RR its rank) while it writes, so two runs always
meet on rank 0's lock, while the ranks of one run never block each other. The kernel drops a `flock` when
its process ends, however it ends: a lock left by a killed run is stale, never held, and the next run takes
it over. The file names its holder (pid, host, start time) for the message a refused run gives. On a file
system without locks (rare; NFS has them) the run goes on unguarded, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from higgs_tune.data.samples import SampleError

log = logging.getLogger(__name__)


def lock_path(out: Path, rank: int) -> Path:
    return Path(out) / f".prepare-r{rank:02d}.lock"


@contextlib.contextmanager
def folder_lock(out: Path, rank: int = 0) -> Iterator[None]:
    """Hold this rank's lock on `out` for the block; raises `SampleError` (one line naming the holder) when
    another process holds it. The lock file is removed on release, while still locked (see `_acquire`)."""
    path = lock_path(out, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)


def _acquire(path: Path) -> int | None:
    """A descriptor of `path` holding its exclusive lock (None where the file system has no locks).

    A releasing holder removes the file before unlocking it, so a process that opened the old file may
    lock a file nobody else can find any more: the lock only counts when the locked file is still the one
    at `path`, else the process starts again on the new file.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd) or "its pid not recorded yet"
            os.close(fd)
            raise SampleError(
                str(path.parent),
                f"another process ({holder}) is writing this folder; wait for it to finish, or use another "
                "--out",
            ) from None
        except OSError as e:
            os.close(fd)
            log.warning("%s: cannot lock (%s); a second prepare on this folder would not be noticed", path, e)
            return None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            _take_over(fd, path)
            return fd
        os.close(fd)


def _take_over(fd: int, path: Path) -> None:
    """Say so when the lock was left by a run that was killed, then record this process as the holder."""
    stale = _holder(fd)
    if stale:
        log.info("%s: taking over the lock of a stopped run (%s)", path.parent, stale)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)


def _holder(fd: int) -> str | None:
    """Who holds (or held) the lock, as its file says; None when it says nothing (yet)."""
    raw = os.pread(fd, 4096, 0)
    try:
        info = json.loads(raw)
        return f"pid {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return None
