"""Commands of the built-in default: `tiny-model`, `sample-data` and the `demo`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app

log = logging.getLogger("higgs_tune")


@app.command("tiny-model")
def tiny_model(
    out: Annotated[Path, typer.Argument(help="Folder to write the tiny model into.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Write a tiny random Higgs Audio v2 model folder, with tiny ASR and speaker models, for tests.

    The folder holds the model, codec, tokenizer and processor in the standard layout, plus a tiny
    Whisper and a tiny WavLM x-vector model in eval-models/ so evaluation runs for real.
    """
    from higgs_tune.tiny.eval_models import build_tiny_eval_models
    from higgs_tune.tiny.model import build_tiny_model

    build_tiny_model(out, seed=seed)
    asr, speaker = build_tiny_eval_models(out, seed=seed)
    log.info("tiny model written to %s (evaluation models: %s, %s)", out, asr, speaker)


@app.command("sample-data")
def synthetic_dataset(
    out: Annotated[Path, typer.Argument(help="Folder for the synthetic dataset.")],
    seed: Annotated[int, typer.Option(help="Seed of the synthetic voices.")] = 0,
) -> None:
    """Write a small cloning dataset of synthetic voices with a manifest in each supported format."""
    from higgs_tune.tiny.dataset import write_synthetic_dataset

    for name, path in write_synthetic_dataset(out, seed=seed).items():
        typer.echo(f"{name}: {path}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path(
        "higgs_tune_demo"
    ),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 150,
    speakers: Annotated[int, typer.Option(help="Synthetic voices in the dataset.")] = 8,
    utterances: Annotated[int, typer.Option(help="Utterances per voice.")] = 20,
) -> None:
    """Run the whole loop on the built-in default: tiny model, synthetic voices, train, clone, evaluate."""
    from higgs_tune.tiny.demo import run_demo

    run_demo(out, steps=steps, speakers=speakers, utterances=utterances)
