"""The evaluation report: what `evaluate` fills and what `report.json`, `report.md`, `report.html` and the
plots all render, with the figures and words the pages share.

Two systems can be in a report, each under its role's key (one constant each, the keys `report.json` and
the clone folders have always used):
- `TUNED` ("finetuned"): the base model with the adapter being evaluated (`--adapter`).
- `BASELINE` ("base"): what the tuned system is compared with, or the one system without `--adapter`. It is
  the bare base model, or with `--baseline-adapter` the base model plus that *baseline adapter*. Its key
  stays "base" either way, so every reader of a report (`listen`, the pages, the model card) works
  unchanged; the pages call it "base model" or "baseline" (`system_titles`).

A clip's row (`Row`) stays the dict `clone_manifest` writes and `score_clips` adds to: its keys belong to
those stages, and `report.json` keeps each one as it came.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from higgs_tune.evaluation.clip_scores import NO_AUDIO
from higgs_tune.inference.speech_checks import CUT, SILENT, TOO_LONG, TOO_SHORT

TUNED = "finetuned"
BASELINE = "base"
SYSTEMS = (BASELINE, TUNED)  # the order the pages show them in
REFERENCES = "references"  # copies of the reference clips, inside the report folder (`html_report`)

# Differences smaller than these are noise, not a sample getting better or worse.
WER_MARGIN = 0.05
SIMILARITY_MARGIN = 0.02
# A clip flagged with one of these did not say the text and stop: it stopped at once or too early (no
# speech to score, so its WER "gain" over a babbling base is no gain), ran on past the text, or never
# stopped. Ending by EOS only counts for a clip that has none of them.
LENGTH_FAILURES = frozenset({SILENT, TOO_SHORT, TOO_LONG, CUT})
NO_SPEECH = frozenset({SILENT, TOO_SHORT})

Row = dict[str, Any]


@dataclass(kw_only=True)
class Summary:
    """Corpus-level figures of one system. Its similarity is the mean over the clips that have one
    (`similarity_samples` of them); with none, `similarity_missing` says why. A report written before
    those two were recorded has None in both."""

    samples: int
    wer: float
    cer: float
    similarity: float | None
    similarity_samples: int | None = None
    similarity_missing: str | None = None
    stopped_by_eos: float
    right_length: float
    flags: dict[str, int]
    clean: int

    @classmethod
    def from_dict(cls, data: dict) -> Summary:
        """A summary as `report.json` holds it."""
        return cls(**data)


@dataclass(kw_only=True)
class Comparison:
    """The samples that got better or worse with the tuned system, by id, and why each was counted (by id;
    empty in a report written before the reasons were recorded)."""

    better: list[str]
    worse: list[str]
    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> Comparison:
        """A comparison as `report.json` holds it."""
        return cls(**data)


@dataclass(kw_only=True)
class BenchmarkResult:
    """A published benchmark's figures (`eval --benchmark`): which one and on what data, each system's
    figures by the protocol's own normalisation and averaging (`figures[system]`: "wer", "similarity",
    "scored" of `utterances`), which scorer produced each figure and whether it is comparable with the
    published ones (`scorers`: figure, model, comparable, why), and the published figures (`published`:
    system, wer, similarity, source)."""

    name: str
    title: str
    data: str
    wer_name: str
    wer_averaging: str
    utterances: int
    figures: dict[str, dict[str, Any]]
    scorers: list[dict[str, Any]]
    published: list[dict[str, Any]]

    @classmethod
    def from_dict(cls, data: dict) -> BenchmarkResult:
        """A benchmark result as `report.json` holds it."""
        return cls(**data)


@dataclass(kw_only=True)
class Report:
    """One eval: what was measured with what, each system's rows and figures, and the comparison of the two
    (None with one system). Systems are keyed by role (`TUNED`, `BASELINE`), in the order they ran.
    `to_dict` is `report.json`; `from_dict` reads one back, also one written before a field was added."""

    manifest: str | None = None
    model: str
    adapter: str | None = None
    baseline_adapter: str | None = None
    asr_model: str
    speaker_model: str
    language: str | None = None
    prompts: dict[str, dict[str, Any]] = field(default_factory=dict)  # the prompt settings, as their fields
    summary: dict[str, Summary]
    stop_health: dict[str, dict[str, float] | None] = field(default_factory=dict)
    samples: dict[str, list[Row]]
    skipped: list[dict] = field(default_factory=list)
    comparison: Comparison | None = None
    benchmark: BenchmarkResult | None = None  # only with `eval --benchmark`

    @property
    def systems(self) -> list[str]:
        """The roles this report has, in the pages' order (`SYSTEMS`)."""
        return [n for n in SYSTEMS if n in self.samples]

    @property
    def titles(self) -> dict[str, str]:
        """What the pages call each system (`system_titles`)."""
        return system_titles(self.baseline_adapter is not None)

    def to_dict(self) -> dict:
        """The report as `report.json` holds it: these keys, in this order (`comparison` only with two
        systems)."""
        data = {k: getattr(self, k) for k in ("manifest", "model", "adapter", "baseline_adapter")}
        data |= {"asr_model": self.asr_model, "speaker_model": self.speaker_model, "language": self.language}
        data |= {
            "prompts": self.prompts,
            "summary": {name: asdict(s) for name, s in self.summary.items()},
            "stop_health": self.stop_health,
            "samples": self.samples,
            "skipped": self.skipped,
        }
        if self.comparison is not None:
            data["comparison"] = asdict(self.comparison)
        if self.benchmark is not None:
            data["benchmark"] = asdict(self.benchmark)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """A report as `report.json` holds it."""
        comparison, benchmark = data.get("comparison"), data.get("benchmark")
        return cls(
            **{k: v for k, v in data.items() if k not in ("summary", "comparison", "benchmark")},
            summary={name: Summary.from_dict(s) for name, s in data["summary"].items()},
            comparison=None if comparison is None else Comparison.from_dict(comparison),
            benchmark=None if benchmark is None else BenchmarkResult.from_dict(benchmark),
        )


def summarize(rows: list[Row]) -> Summary:
    """Corpus-level figures of one system from its scored rows."""
    sims = [r["similarity"] for r in rows if r["similarity"] is not None]
    flags: dict[str, int] = {}
    for r in rows:
        for f in r["flags"]:
            flags[f] = flags.get(f, 0) + 1
    return Summary(
        samples=len(rows),
        wer=sum(r["word_errors"] for r in rows) / max(1, sum(r["ref_words"] for r in rows)),
        cer=sum(r["char_errors"] for r in rows) / max(1, sum(r["ref_chars"] for r in rows)),
        similarity=float(np.mean(sims)) if sims else None,
        similarity_samples=len(sims),
        similarity_missing=None if sims else _no_similarity(rows),
        stopped_by_eos=sum(r["stopped_by_eos"] for r in rows) / max(1, len(rows)),
        right_length=sum(not LENGTH_FAILURES & set(r["flags"]) for r in rows) / max(1, len(rows)),
        flags=flags,
        clean=sum(not r["flags"] for r in rows),
    )


def _no_similarity(rows: list[Row]) -> str:
    """Why no clip of a system has a similarity: how many clips had which reason."""
    if not rows:
        return "no samples"
    missing = Counter(similarity_missing(r) for r in rows)
    return "no clip could be embedded (" + ", ".join(f"{n}: {why}" for why, n in missing.items()) + ")"


def compare(tuned: list[Row], baseline: list[Row]) -> Comparison:
    """Samples that got better or worse with the tuned system: a clip with speech beats one without (silent
    or too short); otherwise by WER and by speaker similarity, each beyond its noise margin.

    Beside the ids, why each was counted (by id: "no speech (too_short) where the baseline spoke",
    "WER 40.0% -> 10.0%"), so a sample counted worse at an unchanged WER says what it lost.
    """
    better, worse, reasons = [], [], {}
    for t, b in zip(tuned, baseline, strict=True):
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
            moved.append(f"WER {fmt(b['wer'], True)} -> {fmt(t['wer'], True)}")
        sims = (t["similarity"], b["similarity"])
        if None not in sims and abs(sims[0] - sims[1]) > SIMILARITY_MARGIN:
            score += 1 if sims[0] > sims[1] else -1
            moved.append(f"similarity {fmt(sims[1])} -> {fmt(sims[0])}")
        if score:  # two votes that cancel count neither way; otherwise every move listed voted alike
            (better if score > 0 else worse).append(t["id"])
            reasons[t["id"]] = ", ".join(moved)
    return Comparison(better=better, worse=worse, reasons=reasons)


def _no_speech(row: Row) -> str:
    """The flags that say a clip has no speech to score."""
    return " ".join(f for f in row["flags"] if f in NO_SPEECH)


def compared(report: Report, sample_id: str) -> str | None:
    """How sample `sample_id` was counted, with why ("worse: no speech (too_short) where the baseline
    spoke"), or None when it was counted neither way or there is no comparison. A report written before
    the reasons were recorded gives the verdict alone."""
    comparison = report.comparison
    if comparison is None:
        return None
    for word, ids in (("better", comparison.better), ("worse", comparison.worse)):
        if sample_id in ids:
            why = comparison.reasons.get(sample_id)
            return f"{word}: {why}" if why else word
    return None


def counted(comparison: Comparison, word: str) -> str:
    """The ids counted `word` ("better" or "worse"), each with its reason, for the reports' summary."""
    ids = comparison.better if word == "better" else comparison.worse
    shown = [f"{i} ({comparison.reasons[i]})" if i in comparison.reasons else str(i) for i in ids]
    return "; ".join(shown) or "none"


def system_titles(against_adapter: bool = False) -> dict[str, str]:
    """What the pages call each system: the base model and the fine-tune, or, against a baseline adapter,
    the baseline and the tuned adapter (both named in the pages' heading, `evaluated`)."""
    if against_adapter:
        return {BASELINE: "baseline", TUNED: "tuned"}
    return {BASELINE: "base model", TUNED: "fine-tuned"}


def evaluated(report: Report) -> list[tuple[str, str]]:
    """The model and adapter(s) evaluated, as (label, path) for the pages' heading."""
    if report.baseline_adapter:
        return [
            ("Model", report.model),
            ("tuned: adapter", str(report.adapter)),
            ("baseline: adapter", report.baseline_adapter),
        ]
    return [("Model", report.model)] + ([("adapter", report.adapter)] if report.adapter else [])


def subject(report: Report) -> str:
    """What the verdict and the per-sample comparison judge."""
    return "the tuned adapter" if report.baseline_adapter else "fine-tuning"


def fmt(value: float | None, percent: bool = False, missing: str | None = None) -> str:
    """A figure as the pages show it; None is "n/a", with why it is missing where that is known."""
    if value is None:
        return f"n/a: {missing}" if missing else "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def similarity_missing(row: Row) -> str:
    """Why a clip has no speaker similarity: what `score_clips` recorded, or for a report written before it
    recorded that, what the clip's row says (no audio, else the one other cause)."""
    if row.get("similarity_missing"):
        return row["similarity_missing"]
    return NO_AUDIO if not row.get("wav") else "clip shorter than the speaker model's minimum"


def similarity_figure(row: Row) -> str:
    """One clip's similarity as the pages show it, "n/a" with why where it has none."""
    return fmt(row["similarity"], missing=similarity_missing(row) if row["similarity"] is None else None)


def summary_similarity(summary: Summary) -> str:
    """One system's mean similarity, saying over how many clips where some had none, and why it is n/a
    where none had one (summaries written before either was recorded show the bare figure)."""
    shown = fmt(summary.similarity, missing=summary.similarity_missing)
    embedded = summary.similarity_samples
    if summary.similarity is not None and embedded is not None and embedded < summary.samples:
        shown += f" (mean of {embedded} of {summary.samples} clips; the others have none)"
    return shown


def verdict(report: Report) -> str:
    """One line a newcomer reads first: did fine-tuning (or the tuned adapter, against a baseline adapter)
    help, on words, voice and stopping. Markdown: its verdict word is bold.

    Each measure votes only when it moved by more than its noise margin, and the per-sample comparison
    votes too, so a run whose samples mostly got worse needs a clear win on the other measures to read
    "helped".
    """
    t, b = report.summary[TUNED], report.summary[BASELINE]
    parts = [
        f"WER {fmt(b.wer, True)} -> {fmt(t.wer, True)}",
        f"speaker similarity {summary_similarity(b)} -> {summary_similarity(t)}",
        f"right length and ended by EOS {fmt(b.right_length, True)} -> {fmt(t.right_length, True)}",
        f"clips with no flag {b.clean} -> {t.clean} of {t.samples}",
    ]
    # (before, after, margin), higher is better. A side whose clips are too short (or silent) to embed
    # has no similarity: that counts against it.
    sims = [-1.0 if x.similarity is None else x.similarity for x in (b, t)]
    votes = [
        (-b.wer, -t.wer, WER_MARGIN),
        (sims[0], sims[1], SIMILARITY_MARGIN),
        (b.right_length, t.right_length, 0.0),
        (b.clean, t.clean, 0),
    ]
    comparison = report.comparison
    if comparison is not None:
        parts.append(f"samples better {len(comparison.better)}, worse {len(comparison.worse)}")
        votes.append((len(comparison.worse), len(comparison.better), 0))
    gains = sum(after > before + margin for before, after, margin in votes)
    losses = sum(after < before - margin for before, after, margin in votes)
    word = "helped" if gains > losses else "hurt" if losses > gains else "made no clear difference"
    return f"**{subject(report).capitalize()} {word}**: " + "; ".join(parts) + "."


def prompted_texts(report: Report, index: int) -> list[tuple[str, str]]:
    """The systems that were given sample `index`'s text otherwise than it is written (their prompt's text
    normalisation changed it), each with the text it was given: what a reader must see to judge a clone.
    Rows written before `spoken_text` was recorded show nothing."""
    given = []
    for name in report.systems:
        row = report.samples[name][index]
        spoken = row.get("spoken_text")
        if spoken is not None and spoken != row.get("text"):
            given.append((name, spoken))
    return given


def summary_table(report: Report) -> list[list[str]]:
    """The summary table's rows, a label then one cell per system: shared by `report.md` and `report.html`."""
    summaries = [report.summary[n] for n in report.systems]
    rows = [
        [label] + [fmt(getattr(s, key), True) for s in summaries]
        for key, label in (("wer", "WER (lower is better)"), ("cer", "CER (lower is better)"))
    ]
    rows.append(["speaker similarity (higher is better)"] + [summary_similarity(s) for s in summaries])
    rows += [
        [label] + [fmt(getattr(s, key), True) for s in summaries]
        for key, label in (
            ("stopped_by_eos", "ended by EOS"),
            ("right_length", "right length and ended by EOS"),
        )
    ]
    rows.append(["clips with no flag"] + [str(s.clean) for s in summaries])
    for flag in sorted({f for s in summaries for f in s.flags}):
        rows.append([f"flag: {flag}"] + [str(s.flags.get(flag, 0)) for s in summaries])
    return rows


def benchmark_table(report: Report) -> tuple[str, list[str], list[list[str]], list[str]]:
    """The benchmark section both pages show: its heading, the table's header and rows (ours per system,
    then the published figures beside them, each with its source), and one note per figure saying which
    scorer produced it and whether it is comparable with the published ones."""
    b = report.benchmark
    assert b is not None
    heading = f"Benchmark: {b.title} ({b.name}), {b.data}"
    header = [
        "system",
        f"{b.wer_name} % ({b.wer_averaging})",
        "SIM x100 (mean)",
        "utterances scored",
        "source",
    ]
    rows = [
        [
            f"ours: {report.titles[n]}",
            _hundredths(b.figures[n]["wer"]),
            _hundredths(b.figures[n]["similarity"]),
            f"{b.figures[n]['scored']} of {b.utterances}",
            "this eval",
        ]
        for n in report.systems
    ]
    for p in b.published:
        rows.append(
            [f"published: {p['system']}", f"{p['wer']:.2f}", f"{p['similarity']:.2f}", "", p["source"]]
        )
    notes = [
        f"{s['figure']}: {s['model']}; "
        + ("comparable with the published figures" if s["comparable"] else f"NOT comparable: {s['why']}")
        for s in b.scorers
    ]
    if not b.published:
        notes.append("no published figures for this benchmark in the package's table (benchmark_protocols)")
    return heading, header, rows, notes


def _hundredths(value: float | None) -> str:
    """A rate as the published tables print it: times 100, two decimals."""
    return "n/a" if value is None else f"{100 * value:.2f}"
