"""`higgs-tune --help` and every `higgs-tune COMMAND --help` read cleanly at 80 and at 120 columns.

Each help is rendered in this process, with the terminal width set by `COLUMNS` as a terminal sets it.
"""

from __future__ import annotations

import re

import pytest
import typer

from higgs_tune.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def render_help(run_cli, monkeypatch, width: int, *command: str) -> str:
    """The help of `higgs-tune COMMAND` on a terminal `width` columns wide."""
    monkeypatch.setenv("COLUMNS", str(width))
    code, out, err = run_cli(*command, "--help")
    assert code == 0, err
    return out


def description(text: str) -> list[list[str]]:
    """The paragraphs (lists of lines, right-stripped) of the text between the usage line and the first
    section (Arguments, Options, Commands)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    paragraphs: list[list[str]] = [[]]
    for line in lines[start:]:
        if line.strip().rstrip(":") in ("Arguments", "Options", "Commands") or line.lstrip().startswith("╭"):
            break
        if not line.strip():  # rich pads a blank line with spaces
            paragraphs.append([])
        else:
            paragraphs[-1].append(line.rstrip())
    return [p for p in paragraphs if p]


def problems(text: str, width: int, command: tuple[str, ...]) -> list[str]:
    """What reads badly in one help text: a line wider than the terminal, an option whose name is cut, a
    type shown after a flag, a sentence cut short, or a paragraph broken before the line was full."""
    name = " ".join(command) or "higgs-tune"
    found = [
        f"{name}: line of {len(line)} > {width}: {line!r}" for line in text.splitlines() if len(line) > width
    ]
    click_command = typer.main.get_command(app)
    if command:
        click_command = click_command.commands[command[0]]  # type: ignore[attr-defined]
    for param in click_command.params:
        for option in [*param.opts, *param.secondary_opts]:
            if option.startswith("-") and not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                found.append(f"{name}: option {option} is not shown whole")
    if "<bool>" in text:
        found.append(f"{name}: a flag is shown as taking a value (<bool>)")
    for line in text.splitlines():  # the usage line's "ARGS..." means "any number of"
        if line.rstrip().endswith(("...", "…")) and "Usage:" not in line:
            found.append(f"{name}: cut text: {line.strip()!r}")
    for paragraph in description(text):
        for line, after in zip(paragraph, paragraph[1:], strict=False):
            if len(line.strip()) < width // 2:
                found.append(f"{name}: ragged paragraph: {line.strip()!r} then {after.strip()!r}")
    return found


@pytest.mark.parametrize("width", [80, 120])
def test_every_help_shows_whole_option_names_no_types_on_flags_and_paragraphs_wrapped(
    run_cli, monkeypatch, width
):
    """The issue's cases: `--allow-missing-tar...` (a cut name), `--full <bool>` and `--help <bool>` (a
    value for a flag), and `train`'s "--overwrite (delete its" breaking a sentence at a docstring's line
    end; and every line fits the terminal."""
    found = []
    for command in [(), *((name,) for name in COMMANDS)]:
        found += problems(render_help(run_cli, monkeypatch, width, *command), width, command)
    assert found == [], "\n".join(found)
