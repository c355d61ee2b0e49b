"""The `eval` command: clone a held-out set and measure it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import (
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
    checkpoint_of,
    language_option,
    run_device,
    sampling_config,
)

if TYPE_CHECKING:
    from higgs_tune.evaluation.benchmark_protocols import Benchmark
    from higgs_tune.evaluation.evaluate import EvalSettings
    from higgs_tune.evaluation.report import Report

log = logging.getLogger("higgs_tune")

# The options of `eval` that `cli.app` does not share with other commands.
ManifestOpt = Annotated[Path | None, typer.Option(help="Held-out manifest (target audio optional).")]
BenchmarkOpt = Annotated[
    str | None,
    typer.Option(
        help="A published benchmark instead of --manifest: habibi:MSA|SAU|UAE|ALG|IRQ|EGY|MAR or "
        "seedtts:en|zh (docs/benchmarks.md)."
    ),
]
BenchmarkDataOpt = Annotated[
    str | None,
    typer.Option(
        help="The benchmark's test set: Habibi a hub id or a save_to_disk folder; Seed-TTS-Eval a folder "
        "with meta.lst."
    ),
]
ExportClipsOpt = Annotated[
    Path | None,
    typer.Option(help="With --benchmark: new folder for the clones in the official scripts' layout."),
]
OutOpt = Annotated[Path, typer.Option(help="Folder for clones, report.json, report.md and plots.")]
AdapterOpt = Annotated[Path | None, typer.Option(help="Run or checkpoint folder to evaluate.")]
BaselineOpt = Annotated[bool, typer.Option("--baseline", help="Also clone with the base model.")]
BaselineAdapterOpt = Annotated[
    Path | None,
    typer.Option(
        help="Compare with the base model plus this run or checkpoint (e.g. the SFT run a DPO run "
        "started from) instead of the bare base model; implies the comparison, not with --baseline."
    ),
]
AsrModelOpt = Annotated[
    str, typer.Option(help="Whisper model id or folder for WER/CER (default: see below).")
]
SpeakerModelOpt = Annotated[str, typer.Option(help="WavLM x-vector model id or folder (default: see below).")]
LanguageOpt = Annotated[
    str | None, typer.Option(help="Language of the texts (ar, arabic, ar-SA, ...).", callback=language_option)
]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Samples per generation / ASR batch.")]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Delete an earlier eval's outputs in --out first (nothing else there)."),
]


@app.command("eval")
def evaluate_command(
    model: ModelOpt,
    out: OutOpt,
    manifest: ManifestOpt = None,
    benchmark: BenchmarkOpt = None,
    benchmark_data: BenchmarkDataOpt = None,
    export_clips: ExportClipsOpt = None,
    adapter: AdapterOpt = None,
    baseline: BaselineOpt = False,
    baseline_adapter: BaselineAdapterOpt = None,
    asr_model: AsrModelOpt = "",
    speaker_model: SpeakerModelOpt = "",
    language: LanguageOpt = None,
    device: RunDeviceOpt = None,
    batch_size: BatchSizeOpt = 8,
    greedy: GreedyOpt = SAMPLING.greedy,
    temperature: TemperatureOpt = SAMPLING.temperature,
    top_p: TopPOpt = SAMPLING.top_p,
    top_k: TopKOpt = SAMPLING.top_k,
    ras_window: RasWindowOpt = SAMPLING.ras_window,
    seed: SeedOpt = SAMPLING.seed,
    checkpoint: CheckpointOpt = "best",
    overwrite: OverwriteOpt = False,
) -> None:
    """Clone a held-out set and report WER/CER, speaker similarity, speech checks and stop health.

    The ASR and speaker models default to those the --model folder carries in eval-models/ (the tiny
    model does; a warning says so), else the released ones; they are loaded before any cloning.
    --checkpoint picks the checkpoint of --adapter and of --baseline-adapter alike.
    """
    from higgs_tune.scoring.measuring import MeasuringModelError

    bench = _check_inputs(manifest, benchmark, benchmark_data, export_clips)
    sampling = sampling_config(greedy, temperature, top_p, top_k, ras_window, seed)
    settings = _settings(
        model, bench, asr_model, speaker_model, language, run_device(device), batch_size, sampling
    )
    adapter, baseline_adapter = (
        checkpoint_of(adapter, checkpoint),
        checkpoint_of(baseline_adapter, checkpoint),
    )
    try:
        report = _evaluate(
            bench,
            manifest,
            benchmark_data,
            export_clips,
            model,
            adapter,
            out,
            baseline,
            settings,
            baseline_adapter,
            overwrite,
        )
    except MeasuringModelError as e:
        log.error("%s", e)
        raise typer.Exit(2) from None
    _print_summary(report)
    typer.echo(f"report: {out / 'report.md'}")


def _settings(
    model: str, bench: Benchmark | None, asr_model: str, speaker_model: str, language: str | None, *rest
) -> EvalSettings:
    """eval's settings: a benchmark measures with its protocol's ASR where transformers loads it and in
    its language, unless told otherwise; `rest` is the device, batch size and sampling."""
    from higgs_tune.evaluation.evaluate import EvalSettings
    from higgs_tune.scoring.measuring import measuring_models

    if bench is not None:
        asr_model = asr_model or bench.protocol_asr or ""
        language = language or bench.language
    asr_model, speaker_model = measuring_models(model, asr_model, speaker_model)
    device, batch_size, sampling = rest
    return EvalSettings(
        asr_model=asr_model,
        speaker_model=speaker_model,
        language=language,
        device=device,
        batch_size=batch_size,
        sampling=sampling,
    )


def _evaluate(
    bench: Benchmark | None, manifest: Path | None, data: str | None, export: Path | None, *systems
) -> Report:
    """Run the held-out eval on --manifest, or the benchmark; `systems` are `evaluate`'s other arguments."""
    if bench is None:
        from higgs_tune.evaluation.evaluate import evaluate

        return evaluate(manifest, *systems)
    from higgs_tune.evaluation.benchmark_run import evaluate_benchmark

    return evaluate_benchmark(bench, str(data), *systems, export=export)


def _check_inputs(
    manifest: Path | None, benchmark: str | None, data: str | None, export: Path | None
) -> Benchmark | None:
    """One test set: --manifest, or --benchmark with --benchmark-data (and maybe --export-clips)."""
    from higgs_tune.errors import UserError
    from higgs_tune.evaluation.benchmark_protocols import parse_benchmark

    if benchmark is None:
        if manifest is None:
            raise UserError(
                "eval needs a test set: --manifest FILE, or --benchmark NAME --benchmark-data PATH"
            )
        if data is not None or export is not None:
            raise UserError("--benchmark-data and --export-clips go with --benchmark; leave them out")
        return None
    if manifest is not None:
        raise UserError("--manifest and --benchmark are two test sets: pass one of them")
    if data is None:
        raise UserError(f"--benchmark {benchmark} needs --benchmark-data: its hub id or local folder")
    return parse_benchmark(benchmark)


def _print_summary(report: Report) -> None:
    """Each system's headline figures, one line each, named as the report names it."""
    for name, summary in report.summary.items():
        similarity = None if summary.similarity is None else round(summary.similarity, 3)
        typer.echo(
            f"{report.titles[name]}: WER {summary.wer:.3f}, CER {summary.cer:.3f}, similarity {similarity}, "
            f"ended by EOS {summary.stopped_by_eos:.0%}, right length {summary.right_length:.0%}"
        )
    if report.benchmark is not None:
        b = report.benchmark
        for name, figures in b.figures.items():
            sim = "n/a" if figures["similarity"] is None else f"{100 * figures['similarity']:.2f}"
            typer.echo(
                f"{b.title} ({b.wer_averaging}), {report.titles[name]}: {b.wer_name} "
                f"{100 * figures['wer']:.2f}%, SIM {sim}, {figures['scored']} of {b.utterances} utterances"
            )
