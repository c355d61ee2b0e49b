"""`report.html`: a self-contained, escaped page whose every clip plays in a real browser, RTL text shown
right to left, and rows that sort by WER change and filter by flag."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

from conftest import AUDIO_STATES_JS, open_page

from higgs_tune.evaluation.html_report import copy_references, write_html_report
from higgs_tune.evaluation.plots import write_plots
from higgs_tune.evaluation.report import Report, compare, summarize
from higgs_tune.evaluation.report_markdown import render_markdown
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


def _handmade_eval(make_wav, tmp_path: Path) -> tuple[Path, Report]:
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
    report = Report(
        model="tiny <model>",
        adapter="run&1",
        asr_model="asr",
        speaker_model="spk",
        language="ar",
        summary={name: summarize(rows) for name, rows in systems.items()},
        samples=systems,
        comparison=compare(tuned, base),
    )
    write_json(out / "report.json", report.to_dict())
    write_text_atomic(out / "report.md", render_markdown(report))
    write_plots(report, out)
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
    report = Report(
        model="<script>alert(2)</script>",
        adapter="runs/a|b`c`\n\n<img src=y onerror=alert(3)>",
        asr_model="<b>asr</b>",
        speaker_model="spk",
        language="ar",
        summary={name: summarize(rows) for name, rows in systems.items()},
        samples=systems,
        comparison=compare(tuned, base),
    )
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
    assert all(len(cells) == 11 for cells in samples)  # id, text, 4 per system, how it compared


def _unexplained_na(text: str) -> list[str]:
    """Each "n/a" in `text` that is not followed by its reason ("n/a: no audio")."""
    return [text[max(0, m.start() - 60) : m.end() + 20] for m in re.finditer(r"n/a(?!: \w)", text)]


def test_both_reports_say_why_each_na_and_why_each_sample_counts(make_wav, tmp_path):
    """On a hand-made eval: the fine-tuned clone without audio has similarity "n/a: no audio" in both
    pages, and every sample counted better or worse shows why, in the summary and in its own row."""
    out, report = _handmade_eval(make_wav, tmp_path)
    assert report.comparison.reasons == {
        "s1": "WER 60.0% -> 10.0%",
        HOSTILE_ID: "no speech (silent) where the baseline spoke",
    }
    page = (out / "report.html").read_text(encoding="utf-8")
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for text in (page, markdown):
        assert not _unexplained_na(text), _unexplained_na(text)
        assert "n/a: no audio" in text
    assert "Better with fine-tuning (1): s1 (WER 60.0% -&gt; 10.0%)." in page
    assert f"Worse with fine-tuning (1): {html.escape(HOSTILE_ID)} (no speech (silent) where the " in page
    whys = re.findall(r'<div class="why">(.*?)</div>', page)
    assert whys == ["better: WER 60.0% -&gt; 10.0%", "worse: no speech (silent) where the baseline spoke"]
    assert "| better: WER 60.0% -&gt; 10.0% |" in markdown


def test_eval_reports_say_why_each_na_and_why_each_sample_counts(eval_dir):
    """On what `eval` wrote: every counted sample has its reason in report.json and in both pages, and no
    figure in either page is a bare "n/a"."""
    import json

    report = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    comparison = report["comparison"]
    counted = comparison["better"] + comparison["worse"]
    assert set(comparison["reasons"]) == set(counted)
    page = html.unescape((eval_dir / "report.html").read_text(encoding="utf-8"))
    markdown = (eval_dir / "report.md").read_text(encoding="utf-8")
    for text in (page, markdown):
        assert not _unexplained_na(text), _unexplained_na(text)
        for sample_id in counted:
            assert comparison["reasons"][sample_id] in text
    for rows in report["samples"].values():
        for row in rows:
            assert (row["similarity"] is None) == bool(row["similarity_missing"]), row


CONTROLS = "\x00" * 210 + "a\x01\x07\x08\x0b\x0c\x1b[31m\x7f\x85\x9b\u202eevil\u2066\r\rb\tc\nd"
# Bytes no page may hold: C0 controls but tab and line feed, and DEL. (C1 and bidi controls are checked
# on the decoded text.)
CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
HIDDEN = re.compile("[\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def test_control_characters_in_a_transcript_or_text_never_reach_the_pages(make_wav, tmp_path):
    """A transcript that decoded to 210 NULs, escapes and a bidi override, and ids and texts with them:
    report.md and report.html hold no control byte (grep reads them as text), each shows visible signs."""
    out, report = _handmade_eval(make_wav, tmp_path)
    for rows in report.samples.values():
        for row in rows:
            row["transcript"] = CONTROLS
            row["text"] = "text " + CONTROLS
            row["spoken_text"] = "said " + CONTROLS
    report.samples["base"][2]["id"] = report.samples["finetuned"][2]["id"] = "s3" + CONTROLS
    report.model = "model" + CONTROLS
    write_text_atomic(out / "report.md", render_markdown(report))
    write_html_report(report, out)
    for name in ("report.md", "report.html"):
        data = (out / name).read_bytes()
        assert not CONTROL_BYTES.findall(data), (name, CONTROL_BYTES.findall(data)[:5])
        text = data.decode("utf-8")
        assert not HIDDEN.findall(text), (name, HIDDEN.findall(text)[:5])
        assert "\u2400\u00d7210a\u2401\u2407" in text and "\ufffdevil" in text, name


def test_players_know_their_duration_before_any_is_played(eval_dir, browser, tmp_path):
    """Both pages' players show each clip's length (not 0:00), nothing played or loaded by hand: the first
    as the page opens, the others once the page is scrolled to its end."""
    from higgs_tune.evaluation.listening import write_listening_test

    ab_page = write_listening_test(eval_dir, tmp_path / "ab")
    for path in (eval_dir / "report.html", ab_page):
        page, errors = open_page(browser, path)
        players = "[...document.querySelectorAll('audio')]"
        page.wait_for_function(f"{players}[0].readyState >= 1", timeout=10_000)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function(f"{players}.every((a) => a.readyState >= 1)", timeout=10_000)
        durations = page.evaluate(f"{players}.map((a) => a.duration)")
        assert durations and all(d > 0 for d in durations), (path.name, durations)
        assert not errors, errors


def test_a_long_report_reads_only_the_clips_near_the_view(make_wav, tmp_path, browser):
    """With many samples, opening the page reads the headers of the players near the view only (reading
    all of them holds the page's load for seconds); a player scrolled to gets its duration."""
    out, report = _handmade_eval(make_wav, tmp_path)
    for name, rows in report.samples.items():
        report.samples[name] = [{**rows[i % 3], "id": f"s{i}"} for i in range(60)]
    write_html_report(report, out)
    page, errors = open_page(browser, out / "report.html")
    players = "document.querySelectorAll('#samples audio')"
    page.wait_for_function(f"{players}[0].readyState >= 1", timeout=10_000)
    assert page.evaluate(f"{players}[0].duration") > 0
    assert page.evaluate(f"[...{players}].at(-1).readyState") == 0
    page.evaluate(f"[...{players}].at(-1).scrollIntoView()")
    page.wait_for_function(f"[...{players}].at(-1).readyState >= 1", timeout=10_000)
    assert page.evaluate(f"[...{players}].at(-1).duration") > 0
    assert not errors, errors
