"""Checkpoints: written atomically, found again for `--resume`, and loaded for cloning.

A checkpoint folder `RUN/checkpoint-<step>/` holds

    adapter/ or model/     the LoRA adapter (peft) or the full weights (HF layout), for cloning and merging
    state/                 accelerate's training state: optimizer, scheduler, RNG of every process
    trainer_state.json     step, mode, base model, prompt settings, config
    train_config.yaml      the exact run configuration

It is written to `RUN/.tmp-checkpoint-<step>/` and renamed into place when complete, so a process killed
mid-save leaves only a temporary folder that `--resume` ignores.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted saves excluded)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _CHECKPOINT.match(p.name)
        if m and (p / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder given either itself or a run folder (then its newest checkpoint)."""
    path = Path(path)
    if (path / TRAINER_STATE).is_file():
        return path
    last = last_checkpoint(path)
    if last is None:
        raise FileNotFoundError(f"{path}: neither a checkpoint nor a run folder with a complete checkpoint")
    return last


def read_trainer_state(checkpoint: Path) -> dict:
    """The trainer state (step, mode, base model, prompt settings, config) of a checkpoint."""
    return json.loads((Path(checkpoint) / TRAINER_STATE).read_text())


def temporary_dir(run_dir: Path, step: int) -> Path:
    """Where a checkpoint is written before it is complete."""
    return Path(run_dir) / f".tmp-checkpoint-{step}"


def finalize(run_dir: Path, step: int, trainer_state: dict, keep: int | None) -> Path:
    """Write the trainer state last, rename the temporary folder into place and prune old checkpoints."""
    tmp = temporary_dir(run_dir, step)
    (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2, ensure_ascii=False))
    final = Path(run_dir) / f"checkpoint-{step}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if keep is not None:
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    log.info("saved %s", final)
    return final


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete folders left by saves that were interrupted (they are never resumed from)."""
    for p in Path(run_dir).glob(".tmp-checkpoint-*"):
        log.warning("removing incomplete checkpoint %s left by an interrupted save", p)
        shutil.rmtree(p, ignore_errors=True)
