"""The `higgs-tune` Typer app. The options several commands share are defined once in `cli.options`."""

from __future__ import annotations

import typer

# Re-exported for cli/evaluation.py and cli/training.py until they import `cli.options` themselves.
from higgs_tune.cli.options import (  # noqa: F401
    SAMPLING,
    CheckpointOpt,
    GreedyOpt,
    ModelOpt,
    RasWindowOpt,
    RunDeviceOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    checkpoint_of,
    language_option,
    run_device,
    sampling_config,
)

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.",
)
