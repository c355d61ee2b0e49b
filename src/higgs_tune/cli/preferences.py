"""The `prefs` command: preference pairs from a model's own sampled clones, for `train objective=dpo`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import (
    LENGTH_LIMIT,
    SAMPLING,
    CharsPerSecondOpt,
    CheckpointOpt,
    LengthLimitOpt,
    ModelOpt,
    RasWindowOpt,
    RunDeviceOpt,
    SeedOpt,
    TemperatureOpt,
    TextsLanguageOpt,
    TopKOpt,
    TopPOpt,
    checkpoint_of,
    run_device,
    sampling_values,
)

log = logging.getLogger("higgs_tune")


@app.command("prefs")
def preferences_command(
    model: ModelOpt,
    manifest: Annotated[Path, typer.Option(help="Prompts: a manifest (target audio optional).")],
    out: Annotated[Path, typer.Option(help="Preference folder to write (a rerun continues it).")],
    adapter: Annotated[Path | None, typer.Option(help="Run or checkpoint folder to sample from.")] = None,
    candidates: Annotated[int, typer.Option(help="Sampled clones per prompt.")] = 4,
    strategy: Annotated[
        Literal["best_vs_worst", "margin"],
        typer.Option(help="One pair per prompt, or every pair whose rewards differ by --margin."),
    ] = "best_vs_worst",
    margin: Annotated[float, typer.Option(help="Least reward difference that makes a pair.")] = 0.05,
    cer_weight: Annotated[float, typer.Option(help="Reward weight of the CER (subtracted).")] = 1.0,
    similarity_weight: Annotated[float, typer.Option(help="Reward weight of speaker similarity.")] = 0.5,
    flag_weight: Annotated[float, typer.Option(help="Reward lost per speech-check flag.")] = 0.25,
    asr_model: Annotated[str, typer.Option(help="Whisper model for CER (default: as in eval).")] = "",
    speaker_model: Annotated[str, typer.Option(help="Speaker model (default: as in eval).")] = "",
    language: TextsLanguageOpt = None,
    device: RunDeviceOpt = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per generation batch.")] = 8,
    max_seconds: LengthLimitOpt = LENGTH_LIMIT.max_seconds,
    chars_per_second: CharsPerSecondOpt = LENGTH_LIMIT.chars_per_second,
    temperature: TemperatureOpt = SAMPLING.temperature,
    top_p: TopPOpt = SAMPLING.top_p,
    top_k: TopKOpt = SAMPLING.top_k,
    ras_window: RasWindowOpt = SAMPLING.ras_window,
    seed: SeedOpt = SAMPLING.seed,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Clone each prompt N times with sampling, score every clip like eval, and keep chosen/rejected pairs.

    A silent or cut candidate is always the worst; prompts whose candidates are all alike are skipped and
    counted. Then: `higgs-tune train objective=dpo prefs=OUT ...`.
    """
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.preferences.run import PrefsSettings, make_preferences
    from higgs_tune.scoring.measuring import measuring_models

    asr_model, speaker_model = measuring_models(model, asr_model, speaker_model)
    settings = PrefsSettings(
        candidates=candidates,
        sampling=sampling_values(False, temperature, top_p, top_k, ras_window, seed),
        limit={"chars_per_second": chars_per_second, "max_seconds": max_seconds},
        weights={"cer": cer_weight, "similarity": similarity_weight, "flag": flag_weight},
        strategy=strategy,
        margin=margin,
        asr_model=asr_model,
        speaker_model=speaker_model,
        language=language,
        device=run_device(device),
        batch_size=batch_size,
    )
    samples = read_manifest(manifest, require_target=False)
    summary = make_preferences(model, checkpoint_of(adapter, checkpoint), samples, out, settings)
    typer.echo(f"{summary['pairs']} pairs from {summary['prompts']} prompts: {out / 'prefs.jsonl'}")
