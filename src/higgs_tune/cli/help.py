"""How `higgs-tune ... --help` is laid out: plain text that reads the same at 80 columns and at 120.

typer's default rich panels (`rich_markup_mode="rich"`) read badly here: they keep every line break of a
docstring, so a 110-column docstring line folded at 80 columns leaves a short ragged line after it; their
fixed columns cut long option names (`--allow-missing-tar...`); and they show a `<bool>` type after flags
that take no value (`--full <bool>`, even `--help <bool>`). The app therefore uses click's plain help
(`rich_markup_mode=None`, which rewraps each paragraph to the terminal), with three changes made here:

- lines wrap at spaces only, never at a hyphen, so an option named in a help text (`--text-normalisation`)
  or a default (`no-overwrite`) is never split over two lines;
- the command list shows each command's whole first sentence, wrapped, instead of cutting it with `...`;
- the text is at most `MAX_WIDTH` columns wide, so a wide terminal gets long lines but not endless ones.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from typer.core import TyperCommand, TyperGroup

# The widest help there is, whatever the terminal (click wraps at the terminal's width, 2 columns less).
MAX_WIDTH = 100
# Stands for a hyphen while click wraps a text: a non-breaking hyphen is one column wide like "-", and no
# line ends at it; `getvalue` turns it back into "-".
_NO_BREAK = "\u2011"


class HelpFormatter(typer.Context.formatter_class):  # type: ignore[misc,name-defined]
    """click's help formatter, wrapping at spaces only (see the module docstring)."""

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", _NO_BREAK))

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = [(first, second.replace("-", _NO_BREAK)) for first, second in rows]
        super().write_dl(rows, col_max=col_max, col_spacing=col_spacing)

    def getvalue(self) -> str:
        return super().getvalue().replace(_NO_BREAK, "-")


class HelpContext(typer.Context):
    """The context of every `higgs-tune` command: its help comes from `HelpFormatter`."""

    formatter_class = HelpFormatter


class HelpCommand(TyperCommand):
    """A `higgs-tune` command; its help is laid out by `HelpFormatter`."""

    context_class = HelpContext


class HelpGroup(TyperGroup):
    """The `higgs-tune` app: its help lists each command with its first sentence, whole."""

    context_class = HelpContext

    def format_commands(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        commands = ((name, self.get_command(ctx, name)) for name in self.list_commands(ctx))
        rows = [
            (name, cmd.get_short_help_str(sys.maxsize)) for name, cmd in commands if cmd and not cmd.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def use_help_layout(app: typer.Typer) -> None:
    """Give every command registered on `app` so far the help layout of this module (typer's own command
    class is the default; a command that asked for another class keeps it)."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = HelpCommand
