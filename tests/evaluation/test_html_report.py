"""`report.html`: a self-contained, escaped page whose every clip plays in a real browser, RTL text shown
right to left, and rows that sort by WER change and filter by flag."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

from conftest import AUDIO_STATES_JS, open_page

from higgs_tune.evaluation.evaluate import _aggregate, _compare, _plots, render_markdown
from higgs_tune.evaluation.html_report import copy_references, write_html_report
from higgs_tune.files import write_json, write_text_atomic

HOSTILE_ID = 'x"><script>alert(1)</script>'


def _row(sample_id: str, text: str, ref: Path, wav: str | None, wer: float, flags: list[str]) -> dict:
    words = len(text.split())
    return {
        "id": sample_id,
        "wav": wav,
        "text": text,
        "ref_audio": str(ref),
        "seconds": 1.0 if wav else 0.0,
        "stopped_by_eos": "cut" not in flags,
        "flags": flags,
        "transcript": "<i>heard</i>",
        "wer": wer,
        "cer": wer,
        "word_errors": round(wer * words),
        "ref_words": words,
        "char_errors": 0,
        "ref_chars": len(text),
        "similarity": 0.5 if wav else None,
    }


def _handmade_eval(make_wav, tmp_path: Path) -> tuple[Path, dict]:
    """An eval folder as `eval` leaves it (clones in base/ and finetuned/, the reference elsewhere), written
    by hand with hostile text, a fine-tuned clone without audio, and WER changes -0.5, +0.3 and 0."""
    ref = make_wav("data/ref clip.wav", seed=1)
    out = tmp_path / "eval"
    samples = [("s1", "Tom & Jerry <b>"), (HOSTILE_ID, "صباح الخير"), ("s3", "plain")]
    base, tuned = [], []
    for i, (sample_id, text) in enumerate(samples):
        make_wav(f"eval/base/{i}.wav", seed=2 + i)
        if i != 1:
            make_wav(f"eval/finetuned/{i}.wav", seed=5 + i)
        base.append(_row(sample_id, text, ref, f"{i}.wav", 0.6, [] if i else ["trailing_silence"]))
        tuned_wav, flags = (None, ["silent", "cut"]) if i == 1 else (f"{i}.wav", [])
        tuned.append(_row(sample_id, text, ref, tuned_wav, [0.1, 0.9, 0.6][i], flags))
    systems = {"base": base, "finetuned": tuned}
    copy_references(systems, out)
    report = {
        "model": "tiny <model>",
        "adapter": "run&1",
        "asr_model": "asr",
        "speaker_model": "spk",
        "language": "ar",
        "summary": {name: _aggregate(rows) for name, rows in systems.items()},
        "samples": systems,
        "comparison": _compare(tuned, base),
    }
    write_json(out / "report.json", report)
    write_text_atomic(out / "report.md", render_markdown(report))
    _plots(report, out)
    write_html_report(report, out)
    return out, report


def test_report_html_escapes_user_text_and_loads_nothing_from_outside(make_wav, tmp_path):
    out, _ = _handmade_eval(make_wav, tmp_path)
    ref = tmp_path / "data" / "ref clip.wav"
    before = ref.read_bytes()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and html.escape(HOSTILE_ID) in page
    assert "Tom &amp; Jerry &lt;b&gt;" in page and "<i>heard</i>" not in page
    assert "tiny &lt;model&gt;" in page and "Fine-tuning" in page
    links = [unquote(html.unescape(v)) for v in re.findall(r'(?:src|href)="([^"]*)"', page)]
    assert links and "data:," in links  # the empty icon: no favicon request
    for link in (x for x in links if x != "data:,"):
        assert "://" not in link and not link.startswith(("/", "..")), link
        assert (out / link).is_file(), link
    copies = list((out / "references").iterdir())
    assert len(copies) == 1 and copies[0].read_bytes() == before == ref.read_bytes()
    assert page.count('<img class="spec"') == 3 + 5  # three references, five clones with audio


def test_report_rows_sort_by_wer_change_filter_by_flag_and_show_arabic_rtl(make_wav, tmp_path, browser):
    out, _ = _handmade_eval(make_wav, tmp_path)
    page, errors = open_page(browser, out / "report.html")
    visible = "() => [...document.querySelectorAll('#samples tbody tr')].filter((r) => !r.hidden)" + (
        ".map((r) => r.querySelector('.id').textContent)"
    )
    assert page.evaluate(visible) == ["s1", HOSTILE_ID, "s3"]
    direction = "(e) => getComputedStyle(e).direction"
    assert [page.locator(".text").nth(i).evaluate(direction) for i in range(3)] == ["ltr", "rtl", "ltr"]
    page.click("button[data-sort='1']")  # most improved first
    assert page.evaluate(visible) == ["s1", "s3", HOSTILE_ID]
    page.click("button[data-sort='-1']")
    assert page.evaluate(visible) == [HOSTILE_ID, "s3", "s1"]
    page.select_option("#flag", "silent")
    assert page.evaluate(visible) == [HOSTILE_ID]
    page.select_option("#flag", "any")
    assert page.evaluate(visible) == [HOSTILE_ID, "s1"]
    page.select_option("#flag", "none")
    assert page.evaluate(visible) == ["s3"]
    assert page.inner_text("#shown") == "1 of 3 samples"
    page.click("button[data-sort='0']")
    page.select_option("#flag", "all")
    assert page.evaluate(visible) == ["s1", HOSTILE_ID, "s3"]
    assert not errors


def test_report_of_eval_plays_every_clip_in_a_browser(eval_dir, browser):
    """On what `eval` wrote: every player's clip exists and loads, every spectrogram shows, the Arabic
    text runs right to left, and the page logs no error."""
    import json

    report = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    page, errors = open_page(browser, eval_dir / "report.html")
    states = page.evaluate(AUDIO_STATES_JS)
    clones = sum(bool(r["wav"]) for rows in report["samples"].values() for r in rows)
    assert clones > 0 and len(states) == len(report["samples"]["base"]) + clones
    for state in states:
        assert state["how"] == "loaded" and state["error"] is None and state["duration"] > 0, state
        assert state["ready"] >= 1 and (eval_dir / unquote(state["src"])).is_file(), state
    shown = page.evaluate("[...document.images].map((i) => i.complete && i.naturalWidth > 0)")
    assert len(shown) == len(states) + 2 and all(shown)  # a spectrogram per clip, and the two plots
    for row in report["samples"]["base"]:
        arabic = bool(re.search("[\u0600-\u06ff]", row["text"]))
        text = page.locator("#samples tbody tr", has_text=row["id"]).locator(".text")
        assert text.evaluate("(e) => getComputedStyle(e).direction") == ("rtl" if arabic else "ltr")
    assert any(re.search("[\u0600-\u06ff]", r["text"]) for r in report["samples"]["base"])
    assert not errors, errors


HOSTILE_IDS = [
    HOSTILE_ID,
    "<img src=x onerror=alert(1)>",
    "a|b",
    "two\nlines\r\n| x | y |",
    "back\\|slash",
    "[click](javascript:alert(1))",
    "`code` & &lt;",
]


def test_report_md_shows_hostile_ids_and_paths_as_text_in_whole_table_rows(tmp_path):
    """report.md, rendered as a Markdown viewer that lets HTML through renders it: no live tag or link, and
    every table row has as many cells as its header, the id cell showing the id (line breaks as spaces)."""
    from markdown_it import MarkdownIt  # with rich, so with typer

    ref = tmp_path / "ref.wav"
    base = [_row(i, "text", ref, f"{n}.wav", 0.5, ["cut"]) for n, i in enumerate(HOSTILE_IDS)]
    tuned = [_row(i, "text", ref, f"{n}.wav", 0.1, []) for n, i in enumerate(HOSTILE_IDS)]
    systems = {"base": base, "finetuned": tuned}
    report = {
        "model": "<script>alert(2)</script>",
        "adapter": "runs/a|b`c`\n\n<img src=y onerror=alert(3)>",
        "asr_model": "<b>asr</b>",
        "speaker_model": "spk",
        "language": "ar",
        "summary": {name: _aggregate(rows) for name, rows in systems.items()},
        "samples": systems,
        "comparison": _compare(tuned, base),
    }
    markdown = render_markdown(report)
    assert "<script" not in markdown and "<img" not in markdown and "<b>" not in markdown
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    assert not re.search(r"<(script|b|a)\b", rendered), rendered
    assert [re.search(r'src="([^"]*)"', tag)[1] for tag in re.findall(r"<img\b[^>]*>", rendered)] == [
        "wer.png",
        "similarity.png",
    ]  # the plots, and no image of the user's
    tables = re.findall(r"<table>(.*?)</table>", rendered, re.S)
    assert len(tables) == 2  # the summary and the samples
    for table in tables:
        rows = [
            re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
        ]
        assert len({len(cells) for cells in rows}) == 1, rows
    samples = [
        re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", tables[1], re.S)[1:]
    ]
    assert [html.unescape(cells[0]) for cells in samples] == [" ".join(i.splitlines()) for i in HOSTILE_IDS]
    assert all(len(cells) == 10 for cells in samples)  # id, text, then 4 per system
