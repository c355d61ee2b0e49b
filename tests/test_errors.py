"""Expected errors end as one line and exit status 2; a full disk is named, and nothing half-written stays.

The full-disk tests mount a real small tmpfs (they need root, as CI has; elsewhere they skip and say why).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from higgs_tune.errors import DiskFullError
from higgs_tune.files import write_atomic, write_text_atomic
from higgs_tune.model.reference import ModelNotFoundError, check_model_reference


def higgs_tune(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "higgs_tune", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem (tmpfs), unmounted afterwards."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_full_disk_keeps_the_old_file_and_leaves_no_partial_one(small_disk: Path) -> None:
    target = small_disk / "index.json"
    write_text_atomic(target, "old")
    with pytest.raises(DiskFullError, match=f"no space left on device writing {target}"):
        write_atomic(target, lambda f: f.write(b"x" * 200_000))
    assert target.read_text() == "old"
    assert sorted(p.name for p in small_disk.iterdir()) == ["index.json"]


def test_full_disk_in_torch_save_is_named(small_disk: Path) -> None:
    import torch

    target = small_disk / "state.pt"
    with pytest.raises(DiskFullError, match="state.pt"):
        write_atomic(target, lambda f: torch.save({"w": torch.zeros(100_000)}, f))
    assert list(small_disk.iterdir()) == []


def test_full_disk_in_a_command_is_one_line(small_disk: Path, sample_data_dir, tiny_model_dir) -> None:
    """`prepare` onto a full disk stops with one line naming the disk; given space, a rerun completes."""
    out = small_disk / "prepared"
    subprocess.run(["mount", "-o", "remount,size=12k", str(small_disk)], check=True)
    proc = higgs_tune(
        "prepare", sample_data_dir["manifest_jsonl"], "--model", tiny_model_dir, "--out", out, "--workers", 0
    )
    assert_one_line_error(proc, "no space left on device writing")
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    proc = higgs_tune(
        "prepare", sample_data_dir["manifest_jsonl"], "--model", tiny_model_dir, "--out", out, "--workers", 0
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    "typo", ["no-such-model", "runs/no-such-model", "./tiny-modle", "/abs/no-such-model"]
)
def test_mistyped_model_is_refused_before_any_hub_call(typo: str, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match=typo.lstrip("./")):
        check_model_reference(typo)


def test_mistyped_model_in_a_command_is_one_line(tmp_path: Path) -> None:
    proc = higgs_tune(
        "encode", tmp_path / "a.wav", "--model", "runs/tiny", "--out", tmp_path, env={"HF_HUB_OFFLINE": "1"}
    )
    assert_one_line_error(proc, "runs/tiny", "no local folder")


def test_non_finite_config_value_is_one_line(tmp_path: Path) -> None:
    proc = higgs_tune(
        "train", "--model", tmp_path, "--data", tmp_path, "--out", tmp_path / "run", "learning_rate=.inf"
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "learning_rate must be a finite number, got inf" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_choice_for_an_option_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    proc = higgs_tune("clone", "--model", tmp_path, "--out", tmp_path / "x.wav", "--checkpoint", "bogus")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "'bogus' is not one of 'best', 'last'" in proc.stderr
