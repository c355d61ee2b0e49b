"""The `higgs-tune` command line: one command per pipeline stage, each a thin call into its module.

Every command takes `--model PATH_OR_HUB_ID` and works the same on the built-in tiny model folder and on
`bosonai/...` hub ids. Errors about user input are printed as one clear message (no traceback) and exit
with status 2; `validate` exits 1 when it finds errors in the data.
"""

from __future__ import annotations

import importlib
import logging
import sys

from higgs_tune.cli.app import app
from higgs_tune.logs import setup_logging

log = logging.getLogger("higgs_tune")

# Importing a command module registers its commands on `app`, in pipeline order (the order of `--help`).
COMMAND_MODULES = ("tiny", "ingest", "data", "prepared", "training", "inference", "evaluation")
for _name in COMMAND_MODULES:
    importlib.import_module(f"higgs_tune.cli.{_name}")


def main() -> None:
    """Entry point: logging set-up, then the command; user-input errors become one clear line."""
    from higgs_tune.data.samples import SampleError
    from higgs_tune.typed_config import ConfigError

    setup_logging()
    try:
        # Without standalone mode click returns the exit code of `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
    except (ConfigError, SampleError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    except Exception as e:  # click's usage errors carry their own exit code and message
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
