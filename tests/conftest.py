"""Shared fixtures: one tiny model folder per test session, built offline in a couple of seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from higgs_tune.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Higgs Audio v2 folder (seed 0) that loads like the real checkpoint; treat it as read-only."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "higgs-tiny", seed=0)
