"""`higgs-tune serve` started as a real process on a free loopback port, for the serve tests."""

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
from conftest import tone

KEY = "test-key"
REF_TEXT = "hello there friend"


def write_voice(folder: Path, name: str = "alice", seconds: float = 1.5, seed: int = 1) -> Path:
    """A voice as `--voices` reads it: NAME.wav and NAME.txt."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(folder / f"{name}.wav"), tone(seconds, seed=seed), 24_000)
    (folder / f"{name}.txt").write_text(REF_TEXT, encoding="utf-8")
    return folder / f"{name}.wav"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(model: Path, log: Path, *options: str) -> Iterator[str]:
    """The server's base URL while it runs (it is waited on /health, and killed afterwards)."""
    port = free_port()
    command = [sys.executable, "-m", "higgs_tune", "serve", "--model", str(model), "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--device", "cpu", *options], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /health within 180 s"
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
