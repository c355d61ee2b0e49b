"""Shared fixtures: one tiny model folder and one prepared dataset per session, and small clips on the fly.

Nothing binary is checked in: the tiny model, its codec and the synthetic voices are built offline in a
few seconds and loaded through the same `from_pretrained` path as the real checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from higgs_tune.models import load_model, load_processor
from higgs_tune.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Higgs Audio v2 folder (seed 0) that loads like the real checkpoint; treat it as read-only."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "higgs-tiny", seed=0)


@pytest.fixture(scope="session")
def processor(tiny_model_dir: Path):
    return load_processor(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    return load_model(tiny_model_dir).eval()


@pytest.fixture(scope="session")
def tiny_model_with_text_head(tiny_model_dir: Path):
    return load_model(tiny_model_dir, use_text_head=True).eval()


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic cloning dataset the demo uses (4 voices x 6 utterances), in every manifest format."""
    from higgs_tune.sample_data import write_sample_data

    return write_sample_data(tmp_path_factory.mktemp("sample-data") / "data")


@pytest.fixture(scope="session")
def prepared_dir(
    tmp_path_factory: pytest.TempPathFactory, sample_data_dir, processor, tiny_model_dir
) -> Path:
    """The sample data prepared (encoded once) with the tiny codec."""
    from higgs_tune.prepare import prepare_dataset
    from higgs_tune.sources import read_manifest

    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare_dataset(
        read_manifest(sample_data_dir["manifest_jsonl"]), processor, out, model_id=str(tiny_model_dir)
    )
    return out


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


def train_config(tiny_model_dir: Path, prepared_dir: Path, out: Path, *overrides: str):
    """A short, deterministic training config on the tiny model; `overrides` are `key=value` on top."""
    from higgs_tune.config import TrainConfig, load_config

    base = [
        f"model={tiny_model_dir}",
        f"data={prepared_dir}",
        f"output_dir={out}",
        "warmup_steps=0",
        "logging_steps=1",
        "per_device_train_batch_size=2",
        "lora.dropout=0",
    ]
    return load_config(TrainConfig, None, [*base, *overrides])
