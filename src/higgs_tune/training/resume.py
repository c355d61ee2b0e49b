"""`--resume`: the new config checked against the run's, and the logs cut back to the checkpoint.

A resumed run gives the uninterrupted run's losses only when everything that decides them is unchanged:
seed, data, model, batch settings, LoRA shape, optimizer and schedule settings. Those changes are refused
unless `--force`; the settings listed in `HARMLESS` (how long the run is, how often it logs, evaluates and
saves, where it writes) change nothing already trained, and a change to them is logged as a warning.

Steps logged after the checkpoint by the interrupted run are trained again, so `metrics.jsonl` keeps only
the complete records up to the checkpoint's step (which also drops a line cut short by a full disk), and
TensorBoard is told to purge its events past it (`SummaryWriter(purge_step=...)`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from higgs_tune import checkpoint
from higgs_tune.config import TrainSettings
from higgs_tune.config_files import config_to_dict
from higgs_tune.errors import UserError
from higgs_tune.files import write_text_atomic
from higgs_tune.training.best import BestCheckpoint

log = logging.getLogger(__name__)

# Settings a resumed run may change without changing what it trains: the run's length (the schedule is
# recomputed for it), how often it logs, evaluates, saves and keeps checkpoints, what counts as its best
# checkpoint and when it stops early, and how many workers load data. (`output_dir` is not compared: a
# run folder may be moved or copied.)
HARMLESS = frozenset(
    {
        "max_steps",
        "num_train_epochs",
        "report_to",
        "logging_steps",
        "eval_steps",
        "save_steps",
        "save_total_limit",
        "metric_for_best_model",
        "greater_is_better",
        "early_stopping_patience",
        "early_stopping_threshold",
        "dataloader_num_workers",
    }
)


class ResumeConfigError(UserError):
    """`--resume` with settings that would make the resumed run differ from the interrupted one."""


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys (`lora.rank`)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(stored: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every setting whose value differs between the run's stored config and the new one: key -> (old, new).

    A key only one side has (a setting added to higgs-tune since) counts as changed.
    """
    old, now = _flat(stored), _flat(new)
    missing = object()
    changes = {}
    for key in sorted(old.keys() | now.keys()):
        before, after = old.get(key, missing), now.get(key, missing)
        if before != after:
            changes[key] = (
                "(not set)" if before is missing else before,
                "(not set)" if after is missing else after,
            )
    return changes


def check_resume_config(stored: dict[str, Any], cfg: TrainSettings, force: bool) -> None:
    """Compare the checkpoint's config with the new one: refuse changes that break exactness (unless
    `force`, then warn) and warn about harmless ones, naming each setting with its old and new value."""
    changes = config_changes(stored, config_to_dict(cfg))
    changes.pop("output_dir", None)
    if not changes:
        return
    described = {key: f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items()}
    breaking = [described[key] for key in changes if key not in HARMLESS]
    harmless = [described[key] for key in changes if key in HARMLESS]
    if harmless:
        log.warning("--resume with changed settings (the trained steps stay valid): %s", "; ".join(harmless))
    if breaking and not force:
        raise ResumeConfigError(
            "--resume with settings that change what the run trains, so it would no longer match the "
            f"interrupted run: {'; '.join(breaking)}. Restore them, start a new run with another --out, "
            "or add --force to continue anyway"
        )
    if breaking:
        log.warning("--resume --force: continuing with changed settings: %s", "; ".join(breaking))


def trim_metrics(run_dir: Path, step: int) -> None:
    """Keep only the complete records of `metrics.jsonl` up to `step` (the checkpoint resumed from).

    A record is complete when its line ends with a newline and holds a JSON object with a step; a line
    cut short (by a kill or a full disk) is dropped with the records past the checkpoint.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if _record_step(line) is not None and _record_step(line) <= step]
    if len(kept) < len(lines):
        write_text_atomic(path, "".join(kept))
        log.info(
            "--resume: kept %d records of metrics.jsonl up to step %d, dropped %d (logged after the "
            "checkpoint, or incomplete)",
            len(kept),
            step,
            len(lines) - len(kept),
        )


def _record_step(line: str) -> int | None:
    """The step of a complete `metrics.jsonl` line, or None when the line is cut short or not a record."""
    if not line.endswith("\n"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None


def resume_point(run_dir: Path, cfg: TrainSettings, force: bool) -> Path | None:
    """The checkpoint `--resume` continues from (the newest complete one), its config checked against
    `cfg` first; None when the run saved none yet (it then starts from step 0)."""
    last = checkpoint.last_checkpoint(run_dir)
    if last is None:
        log.warning("--resume: no complete checkpoint in %s, starting from step 0", run_dir)
        return None
    check_resume_config(checkpoint.read_trainer_state(last)["config"], cfg, force)
    return last


def restore(acc: Accelerator, last: Path, scheduler, best: BestCheckpoint) -> int:
    """Load the training state of checkpoint `last` into this process; returns its step.

    The state holds the trainable weights only (`checkpoint.keep_trainable_weights`): the frozen base
    weights were just loaded from the model itself. Accelerate loads the weights from safetensors and the
    optimizer with `weights_only=True`; the schedule and random generators come from JSON.
    """
    acc.load_state(str(last / "state"), strict=False)
    checkpoint.read_plain_state(last / "state", scheduler, acc)
    state = checkpoint.read_trainer_state(last)
    best.restore(state)
    log.info("resumed from %s at step %d", last, state["step"])
    return state["step"]
