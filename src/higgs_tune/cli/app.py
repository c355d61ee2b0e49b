"""The `higgs-tune` Typer app and the options several commands share (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from higgs_tune.inference.settings import LengthLimit, SamplingConfig

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.",
)

ModelOpt = Annotated[str, typer.Option("--model", help="Model folder or hub id (e.g. bosonai/...).")]
# Sampling options, the same for `clone` and `eval`; their defaults are `SamplingConfig`'s.
SAMPLING = SamplingConfig()
LENGTH_LIMIT = LengthLimit()
GreedyOpt = Annotated[bool, typer.Option("--greedy", help="Greedy generation (deterministic).")]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling mass.")]
TopKOpt = Annotated[int, typer.Option(help="Top-k sampling (0: off).")]
RasWindowOpt = Annotated[int, typer.Option(help="Repetition-aware sampling window (0: off).")]
LengthLimitOpt = Annotated[
    float, typer.Option(help="Cut generation after this much audio (such a clip is flagged 'cut').")
]
CharsPerSecondOpt = Annotated[
    float, typer.Option(help="With a manifest: each clip's limit from its text at this slow speaking rate.")
]
RunDeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="Device for generation and measuring models (default: cuda if any)."),
]
SeedOpt = Annotated[int, typer.Option(help="Sampling seed (the same for every system and sample batch).")]
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


def checkpoint_of(adapter: Path | None, which: Literal["best", "last"]) -> Path | None:
    """The checkpoint folder that `--adapter` and `--checkpoint` name (a checkpoint folder as is)."""
    from higgs_tune.checkpoint import resolve_checkpoint

    return None if adapter is None else resolve_checkpoint(adapter, which)


def sampling_config(
    greedy: bool, temperature: float, top_p: float, top_k: int, ras_window: int, seed: int
) -> SamplingConfig:
    """The sampling settings of the command line."""
    return SamplingConfig(
        greedy=greedy,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        ras_window=ras_window or None,
        seed=seed,
    )


def run_device(device: str | None) -> str:
    """The device a command clones and measures on: the one asked for, else the GPU when there is one."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
