"""The `train` command (single process, torchrun or accelerate launch alike)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app

log = logging.getLogger("higgs_tune")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    model: Annotated[str | None, typer.Option("--model", help="Model folder or hub id.")] = None,
    data: Annotated[Path | None, typer.Option(help="Prepared dataset folder.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (checkpoints, logs).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Full fine-tuning instead of LoRA.")] = False,
    objective: Annotated[
        str | None,
        typer.Option(help="sft (imitate --data, the default) or dpo (prefer --prefs' chosen clips)."),
    ] = None,
    prefs: Annotated[
        Path | None, typer.Option(help="Preference folder from `higgs-tune prefs` (dpo).")
    ] = None,
    init_adapter: Annotated[
        Path | None, typer.Option(help="Start LoRA from this run's adapter (the SFT run before DPO).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Delete the checkpoints and logs of an earlier run in --out first."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --resume: accept settings that change what the run trains."),
    ] = False,
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value config overrides.")] = None,
) -> None:
    """Fine-tune on a prepared dataset (LoRA by default), or on preference pairs with --objective dpo.

    A non-empty --out is refused unless --resume (continue the run in it) or --overwrite (delete its
    checkpoints and logs first; other files stay).
    """
    from higgs_tune.config import TrainSettings
    from higgs_tune.config_files import load_config
    from higgs_tune.inference.previews import TrainingPreviews
    from higgs_tune.training.run import train as run_training

    named = (
        ("model", model),
        ("data", data),
        ("output_dir", out),
        ("objective", objective),
        ("prefs", prefs),
        ("init_adapter", init_adapter),
    )
    # Typed values, given as they are: as `key=value` text, YAML would read `--out null` as None.
    options: dict[str, object] = {key: str(value) for key, value in named if value is not None}
    if full:
        options["full"] = True
    cfg = load_config(TrainSettings, config, overrides or [], options)
    final = run_training(cfg, resume=resume, overwrite=overwrite, force=force, previews=TrainingPreviews)
    log.info("training done; last checkpoint: %s", final)
