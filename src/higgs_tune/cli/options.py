"""The command-line options several commands take, each defined once (flag, help text and default).

A command imports the option types it takes from here; an option only one command has stays in that
command's module. The sampling defaults are `SamplingSettings`'s and `LengthLimit`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from higgs_tune.inference.settings import LengthLimit, LongTextSettings, SamplingSettings

ModelOpt = Annotated[str, typer.Option("--model", help="Model folder or hub id (e.g. bosonai/...).")]
# Sampling options, the same for `clone`, `prefs` and `eval`; their defaults are `SamplingSettings`'s.
SAMPLING = SamplingSettings()
LENGTH_LIMIT = LengthLimit()
GreedyOpt = Annotated[bool, typer.Option("--greedy", help="Greedy generation (deterministic).")]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling mass.")]
TopKOpt = Annotated[int, typer.Option(help="Top-k sampling (0: off).")]
RasWindowOpt = Annotated[int, typer.Option(help="Repetition-aware sampling window (0: off).")]
SeedOpt = Annotated[int, typer.Option(help="Sampling seed (the same for every system and sample batch).")]
LengthLimitOpt = Annotated[
    float, typer.Option(help="Cut generation after this much audio (such a clip is flagged 'cut').")
]
CharsPerSecondOpt = Annotated[
    float, typer.Option(help="With a manifest: each clip's limit from its text at this slow speaking rate.")
]
# How a long text is spoken in chunks (`clone`, and a server): the defaults are `LongTextSettings`'s.
LONG_TEXT = LongTextSettings()
MaxCharsPerChunkOpt = Annotated[
    int,
    typer.Option(
        help="Speak a longer text in chunks of at most this many characters, cut at sentence ends (0: off)."
    ),
]
ContextChunksOpt = Annotated[
    int, typer.Option(help="Earlier chunks of a long text kept in each chunk's prompt.")
]
RunDeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="Device for generation and measuring models (default: cuda if any)."),
]
CheckpointOpt = Annotated[
    Literal["best", "last"],
    typer.Option(
        help="With a run folder as --adapter: its best checkpoint (the last if none was tracked), or last."
    ),
]


def language_option(value: str | None) -> str | None:
    """`--language` of every command, as its code (`data.languages.parse_language`: ar, AR, ar-SA and
    arabic alike); an unknown language is one line, exit 2."""
    from higgs_tune.data.languages import parse_language

    return parse_language(value)


TextsLanguageOpt = Annotated[
    str | None,
    typer.Option(help="Language of the texts (ar, arabic, ar-SA, ...).", callback=language_option),
]


def checkpoint_of(adapter: Path | None, which: Literal["best", "last"]) -> Path | None:
    """The checkpoint folder that `--adapter` and `--checkpoint` name (a checkpoint folder as is)."""
    from higgs_tune.checkpoint import resolve_checkpoint

    return None if adapter is None else resolve_checkpoint(adapter, which)


def sampling_values(
    greedy: bool, temperature: float, top_p: float, top_k: int, ras_window: int, seed: int
) -> dict:
    """The sampling options of the command line as `SamplingSettings`'s fields (a --ras-window of 0: off),
    for a command's settings to check together with its other options."""
    return {
        "greedy": greedy,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "ras_window": ras_window or None,
        "seed": seed,
    }


def sampling_config(
    greedy: bool, temperature: float, top_p: float, top_k: int, ras_window: int, seed: int
) -> SamplingSettings:
    """The sampling settings of the command line."""
    return SamplingSettings(**sampling_values(greedy, temperature, top_p, top_k, ras_window, seed))


def run_device(device: str | None) -> str:
    """The device a command clones and measures on: the one asked for, else the GPU when there is one."""
    from higgs_tune.model.device import default_device

    return default_device(device)
