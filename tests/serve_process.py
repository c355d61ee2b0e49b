"""`higgs-tune serve` started as a real process on a free loopback port, for the serve tests (the
launcher is `higgs_tune.serving.process`, which `bench/serve.py` uses too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import tone

from higgs_tune.serving.process import served

KEY = "test-key"
REF_TEXT = "hello there friend"


def write_voice(folder: Path, name: str = "alice", seconds: float = 1.5, seed: int = 1) -> Path:
    """A voice as `--voices` reads it: NAME.wav and NAME.txt."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(folder / f"{name}.wav"), tone(seconds, seed=seed), 24_000)
    (folder / f"{name}.txt").write_text(REF_TEXT, encoding="utf-8")
    return folder / f"{name}.wav"


@contextmanager
def serve(model: Path, log: Path, *options: str) -> Iterator[str]:
    """The server's base URL while it runs (it is waited on /health, and stopped afterwards)."""
    with served(model, log, *options) as (url, _process):
        yield url
