"""`eval --benchmark`: clone a published benchmark's test set as `eval` clones a held-out set
(`evaluate.run_systems`, the same scorers), then score it by the protocol's own rules
(`benchmark_protocols`) beside the published figures, and with `--export-clips` write the clones in the
layout the official scorers read.

Each row keeps `eval`'s own figures (our normalisation, `score_clips`) and gains the protocol's:
`protocol_wer` (and for Habibi its word edits and reference words, the corpus WER's terms). SIM is the
mean over the clones of the cosine similarity to the reference (Habibi) or prompt (Seed-TTS-Eval) clip,
which is the row's `similarity`. A clone without audio counts as an empty transcript (every word missed)
and has no similarity; the official Seed-TTS script would leave it out, so its WER here is no lower.
"""

from __future__ import annotations

import logging
from pathlib import Path

from higgs_tune.errors import UserError
from higgs_tune.evaluation.benchmark_data import clip_name, read_benchmark
from higgs_tune.evaluation.benchmark_protocols import (
    HABIBI,
    PUBLISHED,
    PUBLISHED_SPEAKER,
    Benchmark,
    habibi_corpus_wer,
    habibi_word_errors,
    seedtts_mean_wer,
    seedtts_wer,
)
from higgs_tune.evaluation.evaluate import (
    BENCHMARK_AUDIO,
    EvalSettings,
    check_eval_folder,
    check_systems,
    make_report,
    run_systems,
    score_systems,
    write_report,
)
from higgs_tune.evaluation.html_report import copy_references
from higgs_tune.evaluation.report import BenchmarkResult, Report, Row
from higgs_tune.files import check_output_folder
from higgs_tune.inference.clone import screen_references
from higgs_tune.scoring.measuring import load_measuring_models

log = logging.getLogger(__name__)


def evaluate_benchmark(
    benchmark: Benchmark,
    data: str,
    model_id: str,
    adapter: Path | None,
    out: Path,
    baseline: bool,
    settings: EvalSettings,
    baseline_adapter: Path | None = None,
    overwrite: bool = False,
    export: Path | None = None,
) -> Report:
    """Clone and score `benchmark`'s test set from `data`; writes the report into `out` as `eval` does,
    and the clones into `export/<system>/` in the official layout. Returns the report."""
    check_systems(adapter, baseline, baseline_adapter)
    out = Path(out)
    check_eval_folder(out, overwrite)
    if export is not None:
        check_output_folder(Path(export), "--export-clips")
    samples = read_benchmark(benchmark, data, out / BENCHMARK_AUDIO)
    if export is not None:
        wrong = [x.id for x in samples if not clip_name(benchmark, x.id).lower().endswith(".wav")]
        if wrong:
            raise UserError(f"--export-clips: {wrong[0]!r} is not a .wav name; the clones are WAV files")
    kept, skipped = screen_references(samples)  # listed and counted; the figure then says "n of N"
    s = settings
    measuring = load_measuring_models(s.asr_model, s.speaker_model, s.language, s.device, s.batch_size)
    runs = run_systems(model_id, adapter, baseline, baseline_adapter, kept, out, s)
    systems = {name: run.rows for name, run in runs.items()}
    score_systems(systems, kept, out, s, measuring)
    for rows in systems.values():
        add_protocol_scores(benchmark, rows)
    copy_references(systems, out)
    result = benchmark_result(benchmark, data, len(samples), systems, s, skipped)
    report = make_report(None, model_id, adapter, baseline_adapter, s, runs, skipped, benchmark=result)
    write_report(report, out)
    if export is not None:
        export_clips(benchmark, systems, out, Path(export))
    return report


def add_protocol_scores(benchmark: Benchmark, rows: list[Row]) -> None:
    """The protocol's per-row WER (and Habibi's corpus terms) on each scored row."""
    for row in rows:
        if benchmark.protocol == HABIBI:
            counts = habibi_word_errors(row["text"], row["transcript"])
            row["protocol_word_errors"] = counts.errors
            row["protocol_ref_words"] = counts.reference_length
            row["protocol_wer"] = counts.errors / counts.reference_length if counts.reference_length else None
        else:
            row["protocol_wer"] = seedtts_wer(row["text"], row["transcript"], benchmark.subset)


def protocol_wer(benchmark: Benchmark, rows: list[Row]) -> float | None:
    """One system's WER by the protocol's averaging: corpus-level for Habibi, the mean of utterances' for
    Seed-TTS-Eval."""
    if not rows:
        return None
    if benchmark.protocol == HABIBI:
        from higgs_tune.scoring.text_metrics import ErrorCounts

        counts = [ErrorCounts(0, 0, r["protocol_word_errors"], r["protocol_ref_words"]) for r in rows]
        return habibi_corpus_wer(counts)
    return seedtts_mean_wer([r["protocol_wer"] for r in rows])


def benchmark_result(
    benchmark: Benchmark,
    data: str,
    utterances: int,
    systems: dict[str, list[Row]],
    settings: EvalSettings,
    skipped: list[dict],
) -> BenchmarkResult:
    """Each system's protocol figures, which scorer made each and whether it is comparable."""
    figures = {}
    for name, rows in systems.items():
        sims = [r["similarity"] for r in rows if r["similarity"] is not None]
        figures[name] = {
            "wer": protocol_wer(benchmark, rows),
            "similarity": sum(sims) / len(sims) if sims else None,
            "scored": len(rows),
        }
    partial = f"{len(skipped)} of {utterances} utterances were not cloned (see skipped)" if skipped else None
    asr_ok = settings.asr_model == benchmark.protocol_asr
    asr_why = partial or f"the published figures were measured with {benchmark.published_asr}"
    return BenchmarkResult(
        name=benchmark.name,
        title=benchmark.title,
        data=data,
        wer_name=benchmark.wer_name,
        wer_averaging="corpus-level" if benchmark.protocol == HABIBI else "mean of utterances",
        utterances=utterances,
        figures=figures,
        scorers=[
            {"figure": benchmark.wer_name, "model": settings.asr_model, "comparable": asr_ok and not partial}
            | {"why": None if asr_ok and not partial else asr_why},
            {
                "figure": "SIM",
                "model": settings.speaker_model,
                "comparable": False,
                "why": partial
                or f"the published figures were measured with {PUBLISHED_SPEAKER}, which "
                "transformers cannot load: score the exported clips with the official script",
            },
        ],
        published=PUBLISHED.get(benchmark.protocol, []),
    )


def export_clips(benchmark: Benchmark, systems: dict[str, list[Row]], out: Path, export: Path) -> None:
    """Each system's clones in `export/<system>/`, named as the official scorers read them (`clip_name`).
    A clone without audio is not written (the official Seed-TTS script skips a missing file); how many is
    logged."""
    import shutil

    for name, rows in systems.items():
        folder = export / name
        missing = 0
        for row in rows:
            if not row["wav"]:
                missing += 1
                continue
            target = folder / clip_name(benchmark, row["id"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / name / row["wav"], target)
        if missing:
            log.warning("--export-clips: %d %s clones have no audio and were not written", missing, name)
        log.info("exported %d %s clones to %s", len(rows) - missing, name, folder)
