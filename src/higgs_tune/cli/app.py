"""The `higgs-tune` Typer app. The options several commands share are defined once in `cli.options`."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.",
)
