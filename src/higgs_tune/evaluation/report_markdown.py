"""`report.md`: the evaluation report as Markdown, rendered from the typed report (`report.Report`).

Sample ids, paths and model names are the user's: every one goes through `markdown_text`, so a Markdown
viewer shows them as text (no live tag, link, code span or extra table cell).
"""

from __future__ import annotations

import html

from higgs_tune.evaluation.page_text import visible_text
from higgs_tune.evaluation.report import (
    Report,
    benchmark_table,
    compared,
    counted,
    evaluated,
    fmt,
    prompted_texts,
    similarity_figure,
    subject,
    summary_table,
    verdict,
)

# Backslash-escaped in report.md: each would otherwise start a code span, end a table cell or open a link.
_MARKDOWN_ESCAPES = str.maketrans({c: "\\" + c for c in "\\`|[]"})


def render_markdown(report: Report) -> str:
    """The human report: verdict, summary table, per-sample table (side by side with the baseline)."""
    names, titles = report.systems, report.titles
    lines = ["# Evaluation report", ""]
    if len(names) == 2:
        lines += [verdict(report), ""]
    md = markdown_text
    lines += [
        "; ".join(f"{label} {md(path)}" for label, path in evaluated(report)),
        f"ASR {md(report.asr_model)}, speaker model {md(report.speaker_model)}, "
        f"language {md(report.language or 'any')}; {report.summary[names[0]].samples} samples.",
        "",
        markdown_row(["metric"] + [titles[n] for n in names]),
        "|---|" + "---|" * len(names),
    ]
    lines += [markdown_row(cells) for cells in summary_table(report)]
    if report.comparison is not None:
        c = report.comparison
        lines += [
            "",
            f"Better with {subject(report)} ({len(c.better)}): {md(counted(c, 'better'))}.",
            "",
            f"Worse with {subject(report)} ({len(c.worse)}): {md(counted(c, 'worse'))}.",
        ]
    lines += _benchmark_section(report)
    lines += _stop_health_table(report)
    lines += ["", "![WER](wer.png) ![similarity](similarity.png)", "", "## Per sample", ""]
    lines += _per_sample_table(report)
    return "\n".join(lines) + "\n"


def _benchmark_section(report: Report) -> list[str]:
    """With `--benchmark`: the protocol's figures beside the published ones, and what each is worth."""
    if report.benchmark is None:
        return []
    heading, header, rows, notes = benchmark_table(report)
    lines = [
        "",
        f"## {markdown_text(heading)}",
        "",
        markdown_row(header),
        "|---|" + "---|" * (len(header) - 1),
    ]
    lines += [markdown_row(cells) for cells in rows]
    return lines + [""] + [f"- {markdown_text(note)}" for note in notes]


def _per_sample_table(report: Report) -> list[str]:
    """One row per sample: its id and text (with the text each system was given where its normalisation
    changed it), each system's figures side by side, and how it was counted."""
    names, titles, systems = report.systems, report.titles, report.samples
    header = ["id", "text"] + [
        f"{t} {what}" for t in (titles[n] for n in names) for what in ("WER", "sim", "s", "flags")
    ]
    with_comparison = report.comparison is not None
    if with_comparison:
        header.append("compared")
    lines = [markdown_row(header), "|---|---|" + "---|---|---|---|" * len(names) + "---|" * with_comparison]
    for i, row in enumerate(systems[names[0]]):
        prompted = "".join(f" ({titles[n]} was given: {t})" for n, t in prompted_texts(report, i))
        cells = [row["id"], row.get("text", "") + prompted]
        for n in names:
            r = systems[n][i]
            cells += [
                fmt(r["wer"], True),
                similarity_figure(r),
                f"{r['seconds']:.2f}",
                " ".join(r["flags"]) or "-",
            ]
        if with_comparison:
            cells.append(compared(report, row["id"]) or "-")
        lines.append(markdown_row(cells))
    return lines


def markdown_text(value: object) -> str:
    """`value` as inert text in `report.md`, the one escape of everything a user named (ids, paths).

    A Markdown viewer renders raw HTML, so `<`, `>` and `&` become entities (no live tag); `\\`, a
    backtick, `|`, `[` and `]` are backslash-escaped (no code span, table cell or link of its own); and a
    line break becomes a space, so a table row stays one row with its cells. Control characters are shown as
    signs first (`page_text.visible_text`).
    """
    text = html.escape(" ".join(visible_text(value).splitlines()), quote=False)
    return text.translate(_MARKDOWN_ESCAPES)


def markdown_row(cells: list[object]) -> str:
    """One row of a Markdown table, each cell through `markdown_text`."""
    return "| " + " | ".join(markdown_text(c) for c in cells) + " |"


def _stop_health_table(report: Report) -> list[str]:
    """Teacher-forced stop health on the targets, per system (nothing when no sample has a target)."""
    health, titles = report.stop_health or {}, report.titles
    names = [n for n in report.systems if health.get(n)]
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
        lines.append(markdown_row([label] + [fmt(health[n][key]) for n in names]))
    per_codebook = [
        " ".join(f"{v:.2f}" for k, v in health[n].items() if k.startswith("eos_prob_codebook_"))
        for n in names
    ]
    lines.append(markdown_row(["p(EOS) per codebook", *per_codebook]))
    return lines
