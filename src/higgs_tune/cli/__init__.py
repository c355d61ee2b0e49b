"""The `higgs-tune` command line: one command per pipeline stage, each a thin call into its module.

Every command takes `--model PATH_OR_HUB_ID` and works the same on the built-in tiny model folder and on
`bosonai/...` hub ids. Errors about user input are printed as one clear message (no traceback) and exit
with status 2; `validate` exits 1 when it finds errors in the data.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from higgs_tune.cli.app import app
from higgs_tune.cli.help import use_help_layout
from higgs_tune.errors import DiskFullError, UserError
from higgs_tune.files import is_disk_full
from higgs_tune.logs import setup_logging

log = logging.getLogger("higgs_tune")

# Importing a command module registers its commands on `app`, in pipeline order (the order of `--help`).
COMMAND_MODULES = (
    "tiny",
    "ingest",
    "data",
    "prepared",
    "training",
    "inference",
    "evaluation",
    "listening",
    "preferences",
    "push",
    "serving",
)
for _name in COMMAND_MODULES:
    importlib.import_module(f"higgs_tune.cli.{_name}")
use_help_layout(app)


def main() -> None:
    """Entry point: logging set-up, then the command; a problem the user can fix becomes one clear line.

    `UserError` (bad samples and config, a model name that leads nowhere, a full disk, ...) and a missing
    file print one line and exit 2; a full disk that a writer reported in its own words is recognised too.
    Anything else is a bug and keeps its traceback.
    """
    setup_logging()
    try:
        # Without standalone mode click returns the exit code of `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
    except (UserError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    except Exception as e:  # usage errors (click's, or typer's copy of click) carry their exit code
        if _is_usage_error(e):
            e.show()
            sys.exit(e.exit_code)
        if is_disk_full(e, Path.cwd()):
            log.error("%s", DiskFullError(getattr(e, "filename", None) or "the output folder"))
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(error: Exception) -> bool:
    """A bad option or argument: click's `ClickException`, or that of the click copy typer ships."""
    import click

    if isinstance(error, click.ClickException):
        return True
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # a typer that uses click itself
        return False
    return isinstance(error, ClickException)
