"""The `higgs-tune` Typer app. The options several commands share are defined once in `cli.options`; how
the help is laid out, in `cli.help`."""

from __future__ import annotations

import typer

from higgs_tune.cli.help import MAX_WIDTH, HelpGroup

app = typer.Typer(
    cls=HelpGroup,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    # Plain help, rewrapped to the terminal (why not typer's rich panels: `cli.help`).
    rich_markup_mode=None,
    context_settings={"max_content_width": MAX_WIDTH},
    help="Fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.",
)
