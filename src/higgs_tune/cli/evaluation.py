"""The `eval` command: clone a held-out set and measure it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import (
    SAMPLING,
    CheckpointOpt,
    GreedyOpt,
    ModelOpt,
    RasWindowOpt,
    RunDeviceOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    app,
    checkpoint_of,
    language_option,
    run_device,
    sampling_config,
)

log = logging.getLogger("higgs_tune")


@app.command("eval")
def evaluate_command(
    manifest: Annotated[Path, typer.Option(help="Held-out manifest (target audio optional).")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for clones, report.json, report.md and plots.")],
    adapter: Annotated[Path | None, typer.Option(help="Run or checkpoint folder to evaluate.")] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also clone with the base model.")] = False,
    baseline_adapter: Annotated[
        Path | None,
        typer.Option(
            help="Compare with the base model plus this run or checkpoint (e.g. the SFT run a DPO run "
            "started from) instead of the bare base model; implies the comparison, not with --baseline."
        ),
    ] = None,
    asr_model: Annotated[
        str, typer.Option(help="Whisper model id or folder for WER/CER (default: see below).")
    ] = "",
    speaker_model: Annotated[
        str, typer.Option(help="WavLM x-vector model id or folder (default: see below).")
    ] = "",
    language: Annotated[
        str | None,
        typer.Option(help="Language of the texts (ar, arabic, ar-SA, ...).", callback=language_option),
    ] = None,
    device: RunDeviceOpt = None,
    batch_size: Annotated[int, typer.Option(help="Samples per generation / ASR batch.")] = 8,
    greedy: GreedyOpt = SAMPLING.greedy,
    temperature: TemperatureOpt = SAMPLING.temperature,
    top_p: TopPOpt = SAMPLING.top_p,
    top_k: TopKOpt = SAMPLING.top_k,
    ras_window: RasWindowOpt = SAMPLING.ras_window,
    seed: SeedOpt = SAMPLING.seed,
    checkpoint: CheckpointOpt = "best",
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Delete an earlier eval's outputs in --out first (nothing else there)."
        ),
    ] = False,
) -> None:
    """Clone a held-out set and report WER/CER, speaker similarity, speech checks and stop health.

    The ASR and speaker models default to those the --model folder carries in eval-models/ (the tiny
    model does; a warning says so), else the released ones; they are loaded before any cloning.
    --checkpoint picks the checkpoint of --adapter and of --baseline-adapter alike.
    """
    from higgs_tune.evaluation.evaluate import EvalSettings, evaluate, system_titles
    from higgs_tune.scoring.measuring import MeasuringModelError, measuring_models

    asr_model, speaker_model = measuring_models(model, asr_model, speaker_model)
    settings = EvalSettings(
        asr_model=asr_model,
        speaker_model=speaker_model,
        language=language,
        device=run_device(device),
        batch_size=batch_size,
        sampling=sampling_config(greedy, temperature, top_p, top_k, ras_window, seed),
    )
    try:
        report = evaluate(
            manifest,
            model,
            checkpoint_of(adapter, checkpoint),
            out,
            baseline,
            settings,
            baseline_adapter=checkpoint_of(baseline_adapter, checkpoint),
            overwrite=overwrite,
        )
    except MeasuringModelError as e:
        log.error("%s", e)
        raise typer.Exit(2) from None
    titles = system_titles(report)
    for name, summary in report["summary"].items():
        typer.echo(
            f"{titles[name]}: WER {summary['wer']:.3f}, CER {summary['cer']:.3f}, similarity "
            f"{summary['similarity'] if summary['similarity'] is None else round(summary['similarity'], 3)}, "
            f"ended by EOS {summary['stopped_by_eos']:.0%}, right length {summary['right_length']:.0%}"
        )
    typer.echo(f"report: {out / 'report.md'}")
