"""Shared helpers: small real-looking clips written on the fly (nothing binary is checked in)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def tone(seconds: float, sr: int = 24_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise and a syllable-like envelope, at a sane level (about -20 dBFS)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 110 + 40 * (seed % 7)
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2) + 0.01 * rng.standard_normal(t.size)
    x = 0.3 * x / np.abs(x).max()
    return np.stack([x] * channels, axis=1) if channels > 1 else x


WavFactory = Callable[..., Path]


@pytest.fixture
def make_wav(tmp_path: Path) -> WavFactory:
    """make_wav("clips/a.wav", seconds=1.0, sr=24000, channels=1, subtype="PCM_16", data=None) -> path."""

    def make(
        name: str,
        seconds: float = 1.0,
        sr: int = 24_000,
        channels: int = 1,
        subtype: str = "PCM_16",
        data: np.ndarray | None = None,
        seed: int = 0,
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = tone(seconds, sr, channels, seed) if data is None else data
        sf.write(str(path), audio, sr, subtype=subtype)
        return path

    return make


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path
