"""`higgs-tune eval`: clone a held-out set and measure it: words (WER/CER from an ASR model), voice (speaker
similarity of output and reference), and whether each clip stops cleanly (speech checks).

With `--baseline` the base model clones the same set with the same sampling, side by side, and the report
says per sample what got better or worse, so one glance at `report.md` tells whether fine-tuning helped.
With `--baseline-adapter RUN` the baseline is the base model with that adapter instead (an SFT run against
the DPO run started from it, say): the same comparison between two fine-tunes. The systems and their keys
are `report.TUNED` and `report.BASELINE`.
Each system also gets the teacher-forced stop health the trainer logs (`teacher_forced`), and the report
records the prompt settings each was cloned with. The measuring models are loaded first (`measuring`), so
one that cannot be loaded ends the run before any cloning.

This module runs the systems and fills the typed report (`report.Report`); `report_markdown`, `plots` and
`html_report` render it.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from higgs_tune.card import record_evaluation
from higgs_tune.checkpoint import resolve_checkpoint
from higgs_tune.command_settings import CommandSettings
from higgs_tune.config import PromptSettings
from higgs_tune.data.audio import load_audio
from higgs_tune.data.manifests import read_manifest
from higgs_tune.errors import UserError
from higgs_tune.evaluation.clip_scores import score_clips
from higgs_tune.evaluation.html_report import copy_references, write_html_report
from higgs_tune.evaluation.plots import write_plots
from higgs_tune.evaluation.report import (
    BASELINE,
    REFERENCES,
    TUNED,
    BenchmarkResult,
    Report,
    Row,
    compare,
    summarize,
)
from higgs_tune.evaluation.report_markdown import render_markdown
from higgs_tune.evaluation.teacher_forced import teacher_forced_stop_health
from higgs_tune.files import (
    OutputInUseError,
    check_output_folder,
    remove_outputs,
    write_json,
    write_text_atomic,
)
from higgs_tune.inference.clone import clone_manifest, screen_references
from higgs_tune.inference.generate import load_for_cloning
from higgs_tune.inference.settings import LengthLimit, SamplingSettings
from higgs_tune.scoring.asr import DEFAULT_ASR_MODEL
from higgs_tune.scoring.measuring import load_measuring_models
from higgs_tune.scoring.speaker import DEFAULT_SPEAKER_MODEL

log = logging.getLogger(__name__)

BENCHMARK_AUDIO = "benchmark-audio"  # a benchmark's dataset rows as clips (`benchmark_run`)

# What `eval` writes into its --out; `--overwrite` deletes these first and nothing else.
EVAL_OUTPUTS = (
    TUNED,
    BASELINE,
    REFERENCES,
    "report.json",
    "report.md",
    "report.html",
    "wer.png",
    "similarity.png",
    BENCHMARK_AUDIO,
)


class EvalSettings(CommandSettings):
    """What measures the clones (the ASR and speaker models, the language for text normalisation), where,
    in batches of how many, and how the systems sample and how long their clips may be."""

    asr_model: str = DEFAULT_ASR_MODEL
    speaker_model: str = DEFAULT_SPEAKER_MODEL
    language: str | None = None
    device: str = "cpu"
    batch_size: int = Field(default=8, ge=1)
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    limit: LengthLimit = Field(default_factory=LengthLimit)


@dataclass(frozen=True)
class SystemRun:
    """One system's clones, the prompt settings it was prompted with, and its teacher-forced stop health
    (None without target audio)."""

    rows: list[Row]
    prompt: PromptSettings
    stop_health: dict[str, float] | None


def _run_system(model_id: str, adapter: Path | None, samples: list, out: Path, s: EvalSettings) -> SystemRun:
    """Clone the set with one system and measure its stop health; frees the model afterwards.

    The base model (no adapter) is always prompted with the base defaults, as it was trained; a fine-tune
    with the prompt settings saved in its checkpoint (`generate.load_for_cloning`).
    """
    model, processor, prompt = load_for_cloning(model_id, adapter)
    model.to(s.device)
    rows = clone_manifest(model, processor, samples, out, prompt, s.sampling, s.limit, s.batch_size)
    health = teacher_forced_stop_health(model, processor, samples, prompt, s.batch_size)
    del model
    gc.collect()
    return SystemRun(rows, prompt, health)


def run_systems(
    model_id: str,
    adapter: Path | None,
    baseline: bool,
    baseline_adapter: Path | None,
    samples: list,
    out: Path,
    settings: EvalSettings,
) -> dict[str, SystemRun]:
    """Clone `samples` with the tuned system (with `adapter`) and/or the baseline, each into its folder."""
    runs: dict[str, SystemRun] = {}
    if adapter is not None:
        runs[TUNED] = _run_system(model_id, adapter, samples, out / TUNED, settings)
    if adapter is None or baseline or baseline_adapter is not None:
        runs[BASELINE] = _run_system(model_id, baseline_adapter, samples, out / BASELINE, settings)
    return runs


def score_systems(
    systems: dict[str, list[Row]], samples: list, out: Path, s: EvalSettings, measuring: tuple
) -> None:
    """Add WER, CER and speaker similarity to every row (`clip_scores.score_clips`), with the measuring
    models loaded up front."""
    by_id = {x.id: x for x in samples}
    speaker = measuring.speaker
    refs = {x.ref_audio: load_audio(x.ref_audio) for x in samples}
    ref_embeddings = dict(zip(refs, speaker.embed(list(refs.values())), strict=True))
    for name, rows in systems.items():
        audios = [load_audio(out / name / r["wav"]) if r["wav"] else np.zeros(0, np.float32) for r in rows]
        clips = [by_id[row["id"]] for row in rows]
        texts, references = [x.text for x in clips], [ref_embeddings[x.ref_audio] for x in clips]
        scores = score_clips(audios, texts, references, measuring, s.language)
        for row, score in zip(rows, scores, strict=True):
            row.update(score)


def check_systems(adapter: Path | None, baseline: bool, baseline_adapter: Path | None) -> None:
    """A baseline adapter is compared with a tuned one, and is itself the baseline: refuse what would
    leave the comparison ambiguous or empty, before anything is loaded."""
    if baseline_adapter is None:
        return
    if baseline:
        raise UserError(
            "--baseline compares with the base model, --baseline-adapter with the base model plus an "
            "adapter: pass one of them"
        )
    if adapter is None:
        raise UserError("--baseline-adapter needs --adapter: the tuned adapter to compare with it")
    if Path(adapter).resolve() == Path(baseline_adapter).resolve():
        raise UserError(
            f"--adapter and --baseline-adapter are the same checkpoint ({adapter}): nothing to compare"
        )


def evaluate(
    manifest: Path,
    model_id: str,
    adapter: Path | None,
    out: Path,
    baseline: bool,
    settings: EvalSettings,
    baseline_adapter: Path | None = None,
    overwrite: bool = False,
) -> Report:
    """Clone and measure; writes `report.json`, `report.md`, `report.html` and PNG plots into `out`.
    Returns the report.

    `out` must be new or empty; with `overwrite`, an earlier eval's outputs in it are deleted first
    (`check_eval_folder`).

    The baseline system (`BASELINE`) is the base model with `baseline`, or the base model with
    `baseline_adapter` (a checkpoint folder; it implies the comparison, and `baseline` must then be False).
    """
    check_systems(adapter, baseline, baseline_adapter)
    out = Path(out)
    check_eval_folder(out, overwrite)
    # References too short or too long are skipped for every system alike, and listed in the report.
    samples, skipped = screen_references(read_manifest(manifest, require_target=False))
    # Before any cloning: a measuring model that cannot be loaded ends the run now, not after it.
    s = settings
    measuring = load_measuring_models(s.asr_model, s.speaker_model, s.language, s.device, s.batch_size)
    runs = run_systems(model_id, adapter, baseline, baseline_adapter, samples, out, settings)
    systems = {name: run.rows for name, run in runs.items()}
    score_systems(systems, samples, out, settings, measuring)
    copy_references(systems, out)  # report.json names each reference's copy inside `out`
    report = make_report(str(manifest), model_id, adapter, baseline_adapter, settings, runs, skipped)
    write_report(report, out)
    if adapter is not None:  # the measured checkpoint's model card carries its latest figures
        record_evaluation(resolve_checkpoint(adapter), card_figures(report))
    return report


def make_report(
    manifest: str | None,
    model_id: str,
    adapter: Path | None,
    baseline_adapter: Path | None,
    settings: EvalSettings,
    runs: dict,
    skipped: list,
    benchmark: BenchmarkResult | None = None,
) -> Report:
    """The report of the systems run and scored: the one place a `Report` is put together, for a held-out
    manifest and a benchmark alike (a benchmark's report compares with published figures, not the systems)."""
    systems = {name: run.rows for name, run in runs.items()}
    compared = benchmark is None and len(systems) == 2
    return Report(
        manifest=manifest,
        model=model_id,
        adapter=str(adapter) if adapter else None,
        baseline_adapter=str(baseline_adapter) if baseline_adapter else None,
        asr_model=settings.asr_model,
        speaker_model=settings.speaker_model,
        language=settings.language,
        prompts={name: asdict(run.prompt) for name, run in runs.items()},
        summary={name: summarize(rows) for name, rows in systems.items()},
        stop_health={name: run.stop_health for name, run in runs.items()},
        samples=systems,
        skipped=skipped,
        comparison=compare(systems[TUNED], systems[BASELINE]) if compared else None,
        benchmark=benchmark,
    )


def write_report(report: Report, out: Path) -> None:
    """Render `report` into `out`, whose clones it describes: `report.json`, the plots, `report.md` and
    `report.html`."""
    write_json(out / "report.json", report.to_dict())
    write_plots(report, out)
    write_text_atomic(out / "report.md", render_markdown(report))
    write_html_report(report, out)
    log.info("evaluation report: %s (to listen: %s)", out / "report.md", out / "report.html")


def check_eval_folder(out: Path, overwrite: bool) -> None:
    """Take `out` for an eval, before any model loads: new or empty, or with `overwrite` a folder whose
    earlier eval outputs (`EVAL_OUTPUTS`) are deleted while anything else in it stays. Without it, a
    second eval into the same folder would mix two runs' clones under one report."""
    if overwrite and out.is_dir():
        removed = remove_outputs(out, EVAL_OUTPUTS)
        if removed:
            log.warning("--overwrite: deleted %d outputs of an earlier eval in %s", len(removed), out)
        return
    try:
        check_output_folder(out, "--out")
    except OutputInUseError as e:
        raise OutputInUseError(f"{e}, or add --overwrite to replace an earlier eval's outputs there") from e


def card_figures(report: Report) -> dict:
    """The report as the tuned checkpoint's model card takes it (`report.json`'s contents): a card calls its
    other system "base", so against a baseline adapter it gets the tuned figures alone rather than the
    baseline adapter's under that name."""
    data = report.to_dict()
    if not report.baseline_adapter:
        return data
    rest = {k: v for k, v in data.items() if k not in ("summary", "comparison")}
    return {**rest, "summary": {TUNED: data["summary"][TUNED]}}
