"""`higgs-tune eval`: clone a held-out set and measure it: words (WER/CER from an ASR model), voice (speaker
similarity of output and reference), and whether each clip stops cleanly (speech checks).

With `--baseline` the base model clones the same set with the same sampling, side by side, and the report
says per sample what got better or worse, so one glance at `report.md` tells whether fine-tuning helped.
With `--baseline-adapter RUN` the baseline is the base model with that adapter instead (an SFT run against
the DPO run started from it, say): the same comparison between two fine-tunes. The baseline keeps its
system key `base` (its clones lie in `base/`) so every reader of a report (`listen`, the HTML page) works
unchanged; the reports call the two systems "baseline" and "tuned" and name both adapters.
Each system also gets the teacher-forced stop health the trainer logs (`teacher_forced`), and the report
records the prompt settings each was cloned with. The measuring models are loaded first (`measuring`), so
one that cannot be loaded ends the run before any cloning.
"""

from __future__ import annotations

import gc
import html
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from higgs_tune.checkpoint import resolve_checkpoint
from higgs_tune.config import PromptConfig
from higgs_tune.data.audio import load_audio
from higgs_tune.data.manifests import read_manifest
from higgs_tune.errors import UserError
from higgs_tune.evaluation.asr import DEFAULT_ASR_MODEL
from higgs_tune.evaluation.clip_scores import NO_AUDIO, score_clips
from higgs_tune.evaluation.measuring import load_measuring_models
from higgs_tune.evaluation.page_text import visible_text
from higgs_tune.evaluation.speaker import DEFAULT_SPEAKER_MODEL
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
from higgs_tune.inference.settings import LengthLimit, SamplingConfig
from higgs_tune.inference.speech_checks import CUT, SILENT, TOO_LONG, TOO_SHORT
from higgs_tune.training.card import record_evaluation

log = logging.getLogger(__name__)

REFERENCES = "references"  # copies of the reference clips, inside the report folder (`html_report`)
# What `eval` writes into its --out; `--overwrite` deletes these first and nothing else.
EVAL_OUTPUTS = (
    "finetuned",
    "base",
    REFERENCES,
    "report.json",
    "report.md",
    "report.html",
    "wer.png",
    "similarity.png",
)

# Differences smaller than these are noise, not a sample getting better or worse.
WER_MARGIN = 0.05
SIMILARITY_MARGIN = 0.02
# A clip flagged with one of these did not say the text and stop: it stopped at once or too early (no
# speech to score, so its WER "gain" over a babbling base is no gain), ran on past the text, or never
# stopped. Ending by EOS only counts for a clip that has none of them.
LENGTH_FAILURES = frozenset({SILENT, TOO_SHORT, TOO_LONG, CUT})
NO_SPEECH = frozenset({SILENT, TOO_SHORT})
# Backslash-escaped in report.md: each would otherwise start a code span, end a table cell or open a link.
_MARKDOWN_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`|[]"})


@dataclass(frozen=True)
class EvalSettings:
    """What measures the clones: the ASR and speaker models, the language for text normalisation."""

    asr_model: str = DEFAULT_ASR_MODEL
    speaker_model: str = DEFAULT_SPEAKER_MODEL
    language: str | None = None
    device: str = "cpu"
    batch_size: int = 8
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    limit: LengthLimit = field(default_factory=LengthLimit)


@dataclass(frozen=True)
class SystemRun:
    """One system's clones, the prompt settings it was prompted with, and its teacher-forced stop health
    (None without target audio)."""

    rows: list[dict]
    prompt: PromptConfig
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


def _score(
    systems: dict[str, list[dict]], samples: list, out: Path, s: EvalSettings, measuring: tuple
) -> None:
    """Add WER, CER and speaker similarity to every row (`clip_scores.score_clips`), with the measuring
    models loaded up front."""
    by_id = {x.id: x for x in samples}
    speaker = measuring[1]
    refs = {x.ref_audio: load_audio(x.ref_audio) for x in samples}
    ref_embeddings = dict(zip(refs, speaker.embed(list(refs.values())), strict=True))
    for name, rows in systems.items():
        audios = [load_audio(out / name / r["wav"]) if r["wav"] else np.zeros(0, np.float32) for r in rows]
        clips = [by_id[row["id"]] for row in rows]
        texts, references = [x.text for x in clips], [ref_embeddings[x.ref_audio] for x in clips]
        scores = score_clips(audios, texts, references, measuring, s.language)
        for row, score in zip(rows, scores, strict=True):
            row.update(score)


def _aggregate(rows: list[dict]) -> dict:
    """Corpus-level figures of one system. Its similarity is the mean over the clips that have one
    (`similarity_samples` of them); with none, `similarity_missing` says why."""
    sims = [r["similarity"] for r in rows if r["similarity"] is not None]
    flags: dict[str, int] = {}
    for r in rows:
        for f in r["flags"]:
            flags[f] = flags.get(f, 0) + 1
    return {
        "samples": len(rows),
        "wer": sum(r["word_errors"] for r in rows) / max(1, sum(r["ref_words"] for r in rows)),
        "cer": sum(r["char_errors"] for r in rows) / max(1, sum(r["ref_chars"] for r in rows)),
        "similarity": float(np.mean(sims)) if sims else None,
        "similarity_samples": len(sims),
        "similarity_missing": None if sims else _no_similarity(rows),
        "stopped_by_eos": sum(r["stopped_by_eos"] for r in rows) / max(1, len(rows)),
        "right_length": sum(not LENGTH_FAILURES & set(r["flags"]) for r in rows) / max(1, len(rows)),
        "flags": flags,
        "clean": sum(not r["flags"] for r in rows),
    }


def _no_similarity(rows: list[dict]) -> str:
    """Why no clip of a system has a similarity: how many clips had which reason."""
    if not rows:
        return "no samples"
    missing = Counter(similarity_missing(r) for r in rows)
    return "no clip could be embedded (" + ", ".join(f"{n}: {why}" for why, n in missing.items()) + ")"


def _compare(tuned: list[dict], base: list[dict]) -> dict:
    """Samples that got better or worse with fine-tuning: a clip with speech beats one without (silent or
    too short); otherwise by WER and by speaker similarity, each beyond its noise margin.

    Returns the ids of each (`better`, `worse`) and, beside them, why each was counted (`reasons`, by id:
    "no speech (too_short) where the baseline spoke", "WER 40.0% -> 10.0%"), so a sample counted worse at
    an unchanged WER says what it lost.
    """
    better, worse, reasons = [], [], {}
    for t, b in zip(tuned, base, strict=True):
        spoke_t, spoke_b = not NO_SPEECH & set(t["flags"]), not NO_SPEECH & set(b["flags"])
        if spoke_t != spoke_b:  # saying (almost) nothing is worse than anything said
            (better if spoke_t else worse).append(t["id"])
            reasons[t["id"]] = (
                f"spoke where the baseline did not ({_no_speech(b)})"
                if spoke_t
                else f"no speech ({_no_speech(t)}) where the baseline spoke"
            )
            continue
        score, moved = 0, []
        if abs(t["wer"] - b["wer"]) > WER_MARGIN:
            score += 1 if t["wer"] < b["wer"] else -1
            moved.append(f"WER {_fmt(b['wer'], True)} -> {_fmt(t['wer'], True)}")
        sims = (t["similarity"], b["similarity"])
        if None not in sims and abs(sims[0] - sims[1]) > SIMILARITY_MARGIN:
            score += 1 if sims[0] > sims[1] else -1
            moved.append(f"similarity {_fmt(sims[1])} -> {_fmt(sims[0])}")
        if score:  # two votes that cancel count neither way; otherwise every move listed voted alike
            (better if score > 0 else worse).append(t["id"])
            reasons[t["id"]] = ", ".join(moved)
    return {"better": better, "worse": worse, "reasons": reasons}


def _no_speech(row: dict) -> str:
    """The flags that say a clip has no speech to score."""
    return " ".join(f for f in row["flags"] if f in NO_SPEECH)


def compared(report: dict, sample_id: str) -> str | None:
    """How sample `sample_id` was counted, with why ("worse: no speech (too_short) where the baseline
    spoke"), or None when it was counted neither way or there is no comparison. A report written before
    the reasons were recorded gives the verdict alone."""
    comparison = report.get("comparison")
    if comparison is None:
        return None
    for word in ("better", "worse"):
        if sample_id in comparison[word]:
            why = comparison.get("reasons", {}).get(sample_id)
            return f"{word}: {why}" if why else word
    return None


def counted(report: dict, word: str) -> str:
    """The ids counted `word` ("better" or "worse"), each with its reason, for the reports' summary."""
    comparison = report["comparison"]
    reasons = comparison.get("reasons", {})
    shown = [f"{i} ({reasons[i]})" if i in reasons else str(i) for i in comparison[word]]
    return "; ".join(shown) or "none"


def _check_systems(adapter: Path | None, baseline: bool, baseline_adapter: Path | None) -> None:
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
) -> dict:
    """Clone and measure; writes `report.json`, `report.md` and PNG plots into `out`. Returns the report.

    `out` must be new or empty; with `overwrite`, an earlier eval's outputs in it are deleted first
    (`check_eval_folder`).

    The baseline system (key `base`) is the base model with `baseline`, or the base model with
    `baseline_adapter` (a checkpoint folder; it implies the comparison, and `baseline` must then be False).
    """
    _check_systems(adapter, baseline, baseline_adapter)
    out = Path(out)
    check_eval_folder(out, overwrite)
    # References too short or too long are skipped for every system alike, and listed in the report.
    samples, skipped = screen_references(read_manifest(manifest, require_target=False))
    # Before any cloning: a measuring model that cannot be loaded ends the run now, not after it.
    s = settings
    measuring = load_measuring_models(s.asr_model, s.speaker_model, s.language, s.device, s.batch_size)
    runs: dict[str, SystemRun] = {}
    if adapter is not None:
        runs["finetuned"] = _run_system(model_id, adapter, samples, out / "finetuned", settings)
    if adapter is None or baseline or baseline_adapter is not None:
        runs["base"] = _run_system(model_id, baseline_adapter, samples, out / "base", settings)
    systems = {name: run.rows for name, run in runs.items()}
    _score(systems, samples, out, settings, measuring)
    # Imported here: html_report imports this module.
    from higgs_tune.evaluation.html_report import copy_references, write_html_report

    copy_references(systems, out)  # report.json names each reference's copy inside `out`
    report = {
        "manifest": str(manifest),
        "model": model_id,
        "adapter": str(adapter) if adapter else None,
        "baseline_adapter": str(baseline_adapter) if baseline_adapter else None,
        "asr_model": settings.asr_model,
        "speaker_model": settings.speaker_model,
        "language": settings.language,
        "prompts": {name: asdict(run.prompt) for name, run in runs.items()},
        "summary": {name: _aggregate(rows) for name, rows in systems.items()},
        "stop_health": {name: run.stop_health for name, run in runs.items()},
        "samples": systems,
        "skipped": skipped,
    }
    if "finetuned" in systems and "base" in systems:
        report["comparison"] = _compare(systems["finetuned"], systems["base"])
    write_json(out / "report.json", report)
    _plots(report, out)
    write_text_atomic(out / "report.md", render_markdown(report))
    write_html_report(report, out)
    if adapter is not None:  # the measured checkpoint's model card carries its latest figures
        record_evaluation(resolve_checkpoint(adapter), _card_figures(report))
    log.info("evaluation report: %s (to listen: %s)", out / "report.md", out / "report.html")
    return report


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


def _card_figures(report: dict) -> dict:
    """The report as the tuned checkpoint's model card takes it: a card calls its other system "base", so
    against a baseline adapter it gets the tuned figures alone rather than the adapter's under that name."""
    if not report["baseline_adapter"]:
        return report
    rest = {k: v for k, v in report.items() if k not in ("summary", "comparison")}
    return {**rest, "summary": {"finetuned": report["summary"]["finetuned"]}}


def system_titles(report: dict) -> dict[str, str]:
    """What the reports call each system: the base model and the fine-tune, or, against a baseline adapter,
    the baseline and the tuned adapter (both named in the reports' heading, `evaluated`)."""
    if report.get("baseline_adapter"):
        return {"base": "baseline", "finetuned": "tuned"}
    return {"base": "base model", "finetuned": "fine-tuned"}


def evaluated(report: dict) -> list[tuple[str, str]]:
    """The model and adapter(s) evaluated, as (label, path) for the reports' heading."""
    if report.get("baseline_adapter"):
        return [
            ("Model", report["model"]),
            ("tuned: adapter", report["adapter"]),
            ("baseline: adapter", report["baseline_adapter"]),
        ]
    return [("Model", report["model"])] + ([("adapter", report["adapter"])] if report["adapter"] else [])


def subject(report: dict) -> str:
    """What the verdict and the per-sample comparison judge."""
    return "the tuned adapter" if report.get("baseline_adapter") else "fine-tuning"


def _fmt(value: float | None, percent: bool = False, missing: str | None = None) -> str:
    """A figure as the reports show it; None is "n/a", with why it is missing where that is known."""
    if value is None:
        return f"n/a: {missing}" if missing else "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def similarity_missing(row: dict) -> str:
    """Why a clip has no speaker similarity: what `score_clips` recorded, or for a report written before it
    recorded that, what the clip's row says (no audio, else the one other cause)."""
    if row.get("similarity_missing"):
        return row["similarity_missing"]
    return NO_AUDIO if not row.get("wav") else "clip shorter than the speaker model's minimum"


def similarity_figure(row: dict) -> str:
    """One clip's similarity as the reports show it, "n/a" with why where it has none."""
    return _fmt(row["similarity"], missing=similarity_missing(row) if row["similarity"] is None else None)


def _summary_similarity(summary: dict) -> str:
    """One system's mean similarity, saying over how many clips where some had none, and why it is n/a
    where none had one (summaries written before either was recorded show the bare figure)."""
    shown = _fmt(summary["similarity"], missing=summary.get("similarity_missing"))
    embedded = summary.get("similarity_samples")
    if summary["similarity"] is not None and embedded is not None and embedded < summary["samples"]:
        shown += f" (mean of {embedded} of {summary['samples']} clips; the others have none)"
    return shown


def _verdict(report: dict) -> str:
    """One line a newcomer reads first: did fine-tuning (or the tuned adapter, against a baseline adapter)
    help, on words, voice and stopping.

    Each measure votes only when it moved by more than its noise margin, and the per-sample comparison
    votes too, so a run whose samples mostly got worse needs a clear win on the other measures to read
    "helped".
    """
    summary, comparison = report["summary"], report.get("comparison")
    t, b = summary["finetuned"], summary["base"]
    parts = [
        f"WER {_fmt(b['wer'], True)} -> {_fmt(t['wer'], True)}",
        f"speaker similarity {_summary_similarity(b)} -> {_summary_similarity(t)}",
        f"right length and ended by EOS {_fmt(b['right_length'], True)} -> {_fmt(t['right_length'], True)}",
        f"clips with no flag {b['clean']} -> {t['clean']} of {t['samples']}",
    ]
    # (before, after, margin), higher is better. A side whose clips are too short (or silent) to embed
    # has no similarity: that counts against it.
    sims = [-1.0 if x["similarity"] is None else x["similarity"] for x in (b, t)]
    votes = [
        (-b["wer"], -t["wer"], WER_MARGIN),
        (sims[0], sims[1], SIMILARITY_MARGIN),
        (b["right_length"], t["right_length"], 0.0),
        (b["clean"], t["clean"], 0),
    ]
    if comparison is not None:
        parts.append(f"samples better {len(comparison['better'])}, worse {len(comparison['worse'])}")
        votes.append((len(comparison["worse"]), len(comparison["better"]), 0))
    gains = sum(after > before + margin for before, after, margin in votes)
    losses = sum(after < before - margin for before, after, margin in votes)
    word = "helped" if gains > losses else "hurt" if losses > gains else "made no clear difference"
    return f"**{subject(report).capitalize()} {word}**: " + "; ".join(parts) + "."


def render_markdown(report: dict) -> str:
    """The human report: verdict, summary table, per-sample table (side by side with the baseline).

    Sample ids, paths and model names are the user's: every one goes through `markdown_text`.
    """
    summary, systems = report["summary"], report["samples"]
    names = [n for n in ("base", "finetuned") if n in summary]
    titles = system_titles(report)
    lines = ["# Evaluation report", ""]
    if len(names) == 2:
        lines += [_verdict(report), ""]
    md = markdown_text
    lines += [
        "; ".join(f"{label} {md(path)}" for label, path in evaluated(report)),
        f"ASR {md(report['asr_model'])}, speaker model {md(report['speaker_model'])}, "
        f"language {md(report['language'] or 'any')}; {summary[names[0]]['samples']} samples.",
        "",
        markdown_row(["metric"] + [titles[n] for n in names]),
        "|---|" + "---|" * len(names),
    ]
    lines += [markdown_row(cells) for cells in summary_table(summary, names)]
    if "comparison" in report:
        c = report["comparison"]
        lines += [
            "",
            f"Better with {subject(report)} ({len(c['better'])}): {md(counted(report, 'better'))}.",
            "",
            f"Worse with {subject(report)} ({len(c['worse'])}): {md(counted(report, 'worse'))}.",
        ]
    lines += _stop_health_table(report.get("stop_health") or {}, names, titles)
    lines += ["", "![WER](wer.png) ![similarity](similarity.png)", "", "## Per sample", ""]
    header = ["id", "text"] + [
        f"{t} {what}" for t in (titles[n] for n in names) for what in ("WER", "sim", "s", "flags")
    ]
    with_comparison = "comparison" in report
    if with_comparison:
        header.append("compared")
    lines += [markdown_row(header), "|---|---|" + "---|---|---|---|" * len(names) + "---|" * with_comparison]
    for i, row in enumerate(systems[names[0]]):
        prompted = "".join(f" ({titles[n]} was given: {t})" for n, t in prompted_texts(systems, names, i))
        cells = [row["id"], row.get("text", "") + prompted]
        for n in names:
            r = systems[n][i]
            cells += [
                _fmt(r["wer"], True),
                similarity_figure(r),
                f"{r['seconds']:.2f}",
                " ".join(r["flags"]) or "-",
            ]
        if with_comparison:
            cells.append(compared(report, row["id"]) or "-")
        lines.append(markdown_row(cells))
    return "\n".join(lines) + "\n"


def markdown_text(value: object) -> str:
    """`value` as inert text in `report.md`, the one escape of everything a user named (ids, paths).

    A Markdown viewer renders raw HTML, so `<`, `>` and `&` become entities (no live tag); `\\`, a
    backtick, `|`, `[` and `]` are backslash-escaped (no code span, table cell or link of its own); and a
    line break becomes a space, so a table row stays one row with its cells. Control characters are shown as
    signs first (`page_text.visible_text`).
    """
    text = html.escape(" ".join(visible_text(value).splitlines()), quote=False)
    return text.translate(_MARKDOWN_ESCAPES)


def prompted_texts(systems: dict[str, list[dict]], names: list[str], index: int) -> list[tuple[str, str]]:
    """The systems that were given sample `index`'s text otherwise than it is written (their prompt's text
    normalisation changed it), each with the text it was given: what a reader must see to judge a clone.
    Rows written before `spoken_text` was recorded show nothing."""
    given = []
    for name in names:
        row = systems[name][index]
        spoken = row.get("spoken_text")
        if spoken is not None and spoken != row.get("text"):
            given.append((name, spoken))
    return given


def markdown_row(cells: list[object]) -> str:
    """One row of a Markdown table, each cell through `markdown_text`."""
    return "| " + " | ".join(markdown_text(c) for c in cells) + " |"


def summary_table(summary: dict, names: list[str]) -> list[list[str]]:
    """The summary table's rows, a label then one cell per system: shared by `report.md` and `report.html`."""
    rows = [
        [label] + [_fmt(summary[n][key], True) for n in names]
        for key, label in (("wer", "WER (lower is better)"), ("cer", "CER (lower is better)"))
    ]
    rows.append(["speaker similarity (higher is better)"] + [_summary_similarity(summary[n]) for n in names])
    rows += [
        [label] + [_fmt(summary[n][key], True) for n in names]
        for key, label in (
            ("stopped_by_eos", "ended by EOS"),
            ("right_length", "right length and ended by EOS"),
        )
    ]
    rows.append(["clips with no flag"] + [str(summary[n]["clean"]) for n in names])
    for flag in sorted({f for n in names for f in summary[n]["flags"]}):
        rows.append([f"flag: {flag}"] + [str(summary[n]["flags"].get(flag, 0)) for n in names])
    return rows


def _stop_health_table(health: dict, names: list[str], titles: dict[str, str]) -> list[str]:
    """Teacher-forced stop health on the targets, per system (nothing when no sample has a target)."""
    names = [n for n in names if health.get(n)]
    if not names:
        return []
    lines = [
        "",
        "Stop health, teacher-forced on the target audio (as the trainer logs it):",
        "",
        markdown_row(["measure"] + [titles[n] for n in names]),
        "|---|" + "---|" * len(names),
    ]
    for key, label in (
        ("accuracy", "code accuracy"),
        ("eos_prob", "p(EOS) at the labelled frame (mean)"),
        ("early_stop_risk", "early-stop risk (lower is better)"),
    ):
        lines.append(markdown_row([label] + [_fmt(health[n][key]) for n in names]))
    per_codebook = [
        " ".join(f"{v:.2f}" for k, v in health[n].items() if k.startswith("eos_prob_codebook_"))
        for n in names
    ]
    lines.append(markdown_row(["p(EOS) per codebook", *per_codebook]))
    return lines


def _plots(report: dict, out: Path) -> None:
    """Histograms of per-sample WER and speaker similarity, one colour per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = system_titles(report)
    for key, title in (("wer", "WER per sample"), ("similarity", "Speaker similarity per sample")):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        plotted = False
        for name, rows in report["samples"].items():
            values = [r[key] for r in rows if r[key] is not None]
            if values:
                ax.hist(values, bins=20, alpha=0.6, label=titles[name])
                plotted = True
        ax.set_title(title)
        ax.set_xlabel(key)
        ax.set_ylabel("samples")
        if plotted:
            ax.legend()
        else:  # e.g. no clip long enough to embed: say so rather than leave an empty frame
            ax.text(0.5, 0.5, "no sample has a value", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        fig.savefig(out / f"{key}.png", dpi=100)
        plt.close(fig)
