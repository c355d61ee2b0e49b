"""`higgs-tune serve` started as a child process on a free loopback port and waited on `/health`: how the
serve tests and `bench/serve.py` run a real server (its own process, so its memory and its failures are
its own)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(
    model: Path, log: Path, *options: str, wait_s: float = 180
) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL, process) of a server on `model` (CPU) while it runs; its output goes to `log`. It is
    stopped as Ctrl-C stops it (killed if it does not stop in 20 s). Raises `RuntimeError` with the end of
    its log when it exits or does not answer `/health` within `wait_s` seconds."""
    port = free_port()
    command = [sys.executable, "-m", "higgs_tune", "serve", "--model", str(model), "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--device", "cpu", *options], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log, wait_s)
        yield url, process
    finally:
        process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer /health within {wait_s:g} s")
        time.sleep(0.3)
