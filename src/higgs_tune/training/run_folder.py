"""The run folder (`--out`): refused when it already holds something and the run neither resumes nor
overwrites, and cleared of the trainer's own outputs (never anything else) with `--overwrite`.

A new run into a folder that holds an earlier run's checkpoints would otherwise mix the two: pruning
(`save_total_limit`) sorts checkpoints by step, `--adapter RUN` takes the run's recorded best, and
`metrics.jsonl` would hold both runs' steps. Every process checks before anything is written (so all
of them agree), and only then does the main process clear the folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from accelerate import Accelerator

from higgs_tune import checkpoint
from higgs_tune.errors import UserError
from higgs_tune.files import remove_outputs

log = logging.getLogger(__name__)

# What the trainer writes into a run folder (glob patterns); `--overwrite` deletes these and nothing else.
TRAINER_OUTPUTS = (
    "checkpoint-*",
    ".tmp-checkpoint-*",
    "metrics.jsonl",
    "tensorboard",
    "train_config.yaml",
    "data_plan.json",
    "example_lengths.json",
    "wandb",  # wandb's run files, when WANDB_DIR does not send them elsewhere (`training.trackers`)
)


class RunFolderError(UserError):
    """`--out` cannot be used as asked: a file, or a folder already in use; the message names the choices."""


def check_run_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a run folder that is a file, `--resume` with `--overwrite`, and a folder that already holds
    something when the run neither resumes nor overwrites."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir} is a file; give a folder for the run's checkpoints and logs")
    if resume and overwrite:
        raise RunFolderError(
            "--resume continues the run in --out and --overwrite deletes it: give one of them"
        )
    if resume or overwrite or not run_dir.is_dir():
        return
    entries = sorted(p.name for p in run_dir.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        raise RunFolderError(
            f"--out {run_dir} is not empty ({shown}): add --resume to continue the run in it, choose "
            "another --out, or add --overwrite to delete its checkpoints and logs first"
        )


def clear_run_folder(run_dir: Path) -> None:
    """Delete what an earlier run wrote into `run_dir` (`TRAINER_OUTPUTS`); other files stay."""
    removed = remove_outputs(run_dir, TRAINER_OUTPUTS)
    if removed:
        log.warning(
            "--overwrite: deleted %d checkpoints and logs of an earlier run in %s", len(removed), run_dir
        )


def prepare_run_folder(acc: Accelerator, run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Check the run folder on every process, then (main process) clear it for `--overwrite` or remove
    the temporary folders of interrupted saves for `--resume`, before anything of this run is written."""
    check_run_folder(run_dir, resume, overwrite)
    acc.wait_for_everyone()  # no process may see the folder after the main one changed it
    if acc.is_main_process and overwrite:
        clear_run_folder(run_dir)
    if acc.is_main_process and resume:
        checkpoint.remove_stale_temporaries(run_dir)
    acc.wait_for_everyone()
