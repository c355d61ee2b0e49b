"""`report.html`: the evaluation report to listen to, beside `report.md`, in one self-contained folder.

People judge a clone with their ears first, so each sample gets the reference clip, the base clone and the
fine-tuned clone as players side by side, with the figures `report.md` has and a small spectrogram of
each clip (a silent tail or a clip cut mid-word shows at a glance). Everything the page loads lies in the
eval folder under relative paths (reference clips are copied in; the user's files are only read), and
nothing comes from the internet, so the folder can be zipped and sent. User text is always escaped.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from pathlib import Path
from string import Template
from urllib.parse import quote

import numpy as np

from higgs_tune.data.audio import TARGET_SR, load_audio
from higgs_tune.evaluation.page_text import html_text
from higgs_tune.evaluation.report import (
    BASELINE,
    REFERENCES,
    TUNED,
    Report,
    Row,
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
from higgs_tune.files import content_hash, write_atomic, write_text_atomic

log = logging.getLogger(__name__)

SPECTROGRAMS = "spectrograms"
# Shared with the listening page (`listening`): plain, readable, and no web font.
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:90em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top}
th{background:#f3f3f3;text-align:left}.num{text-align:right;white-space:nowrap}
.text{font-size:1.1em;max-width:22em}.id{color:#666;font-size:.85em}
.prompted{color:#444;font-size:.9em;max-width:22em;overflow-wrap:anywhere}
audio{width:15em;display:block}img.spec{display:block;width:15em;height:4em;margin-top:.2em}
.flag{display:inline-block;background:#fde2e1;color:#8a1c14;border-radius:.3em;padding:0 .3em;margin:.1em}
.measures{font-size:.9em;margin:.2em 0}td,.text{overflow-wrap:anywhere}
.transcript{color:#555;font-size:.85em;max-width:15em;max-height:4.5em;overflow:auto}
.why{font-size:.85em;color:#444;max-width:14em}
.controls{margin:.5em 0}img.plot{width:28em}.verdict{font-size:1.15em}.missing{color:#8a1c14}
"""

# Shared with the listening page: each player reads its clip's header (so it shows the clip's length, not
# 0:00) as it comes within a screen of the view. `preload="metadata"` on every player would read all of them
# as the page opens: with 900 players, 16 s before the page has loaded.
DURATIONS_JS = """
const nearView = new IntersectionObserver((entries) => entries.forEach((e) => {
  if (e.isIntersecting) { e.target.preload = "metadata"; nearView.unobserve(e.target); }
}), {rootMargin: "100% 0px"});
document.querySelectorAll("audio").forEach((a) => nearView.observe(a));
"""

_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<link rel="icon" href="data:,"><style>$style</style></head>
<body>
<h1>Evaluation report</h1>
$verdict
<p>$meta</p>
<table class="summary"><thead><tr><th>metric</th>$system_headers</tr></thead><tbody>
$summary_rows
</tbody></table>
$comparison
$benchmark
<p><img class="plot" src="wer.png" alt="WER per sample"> <img class="plot" src="similarity.png"
alt="speaker similarity per sample"><br>All figures: <a href="report.json">report.json</a>,
<a href="report.md">report.md</a>.</p>
<h2>Per sample</h2>
<div class="controls">Sort by $sort_label:
<button type="button" data-sort="1">best first</button>
<button type="button" data-sort="-1">worst first</button>
<button type="button" data-sort="0">manifest order</button>
&nbsp; Show: <select id="flag">$flag_options</select> <span id="shown"></span></div>
<table id="samples"><thead><tr><th>sample</th><th>reference</th>$clip_headers<th>$sort_label</th></tr></thead>
<tbody>
$sample_rows
</tbody></table>
<script>
const body = document.querySelector("#samples tbody");
const key = (r) => { const v = parseFloat(r.dataset.sortKey); return isNaN(v) ? Infinity : v; };
function sortRows(dir) {
  const rows = [...body.rows];
  rows.sort((a, b) => dir === 0 ? a.dataset.index - b.dataset.index : dir * (key(a) - key(b)) || 0);
  rows.forEach((r) => body.appendChild(r));
}
function filterRows(flag) {
  let shown = 0;
  for (const r of body.rows) {
    const flags = r.dataset.flags.split(" ").filter(Boolean);
    r.hidden = !(flag === "all" || (flag === "any" ? flags.length > 0 : flag === "none" ?
      flags.length === 0 : flags.includes(flag)));
    shown += !r.hidden;
  }
  document.getElementById("shown").textContent = shown + " of " + body.rows.length + " samples";
}
document.querySelectorAll("button[data-sort]").forEach((b) =>
  b.addEventListener("click", () => sortRows(Number(b.dataset.sort))));
document.getElementById("flag").addEventListener("change", (e) => filterRows(e.target.value));
filterRows("all");
$durations_js</script>
</body></html>
""")


def write_html_report(report: Report, out: Path) -> Path:
    """Write `out/report.html` (with its spectrograms) for the report `eval` just wrote into `out`, whose
    clones lie in `out/<system>/` and reference copies where `copy_references` recorded them. Returns the
    page's path."""
    out = Path(out)
    names, titles, systems = report.systems, report.titles, report.samples
    both = len(names) == 2
    sort_label = f"WER change ({titles[TUNED]} - {titles[BASELINE]})" if both else "WER"
    rows = [_sample_row(i, report, out) for i in range(len(systems[names[0]]))]
    page = _PAGE.substitute(
        style=STYLE,
        verdict=_verdict_html(verdict(report)) if both else "",
        meta=_meta(report, report.summary[names[0]].samples),
        system_headers="".join(f"<th>{html_text(titles[n])}</th>" for n in names),
        summary_rows="\n".join(
            "<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in cells) + "</tr>"
            for cells in summary_table(report)
        ),
        comparison=_comparison(report),
        benchmark=_benchmark(report),
        sort_label=html_text(sort_label),
        flag_options=_flag_options(names, systems),
        clip_headers="".join(f"<th>{html_text(titles[n])}</th>" for n in names),
        sample_rows="\n".join(rows),
        durations_js=DURATIONS_JS,
    )
    path = out / "report.html"
    write_text_atomic(path, page)
    log.info("listening report: %s", path)
    return path


def _verdict_html(line: str) -> str:
    """The markdown verdict line as HTML: escaped, its **bold** part bold."""
    bold = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html_text(line))
    return f'<p class="verdict">{bold}</p>'


def _meta(report: Report, samples: int) -> str:
    """What was evaluated with what, escaped."""
    e = html_text
    systems = "; ".join(f"{e(label)} <code>{e(path)}</code>" for label, path in evaluated(report))
    return (
        f"{systems}; ASR <code>{e(report.asr_model)}</code>, "
        f"speaker model <code>{e(report.speaker_model)}</code>, "
        f"language {e(report.language or 'any')}; {samples} samples."
    )


def _benchmark(report: Report) -> str:
    """With `--benchmark`: its name and subset, our figures beside the published ones, what each is worth."""
    if report.benchmark is None:
        return ""
    e = html_text
    heading, header, rows, notes = benchmark_table(report)
    head = "".join(f"<th>{e(c)}</th>" for c in header)
    body = "\n".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>" for cells in rows)
    items = "".join(f"<li>{e(n)}</li>" for n in notes)
    return (
        f'<h2 id="benchmark">{e(heading)}</h2>\n<table class="summary"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table>\n<ul>{items}</ul>"
    )


def _comparison(report: Report) -> str:
    """The samples counted better and worse, each with why."""
    comparison = report.comparison
    if comparison is None:
        return ""
    parts = [
        f"{word.capitalize()} with {html_text(subject(report))} ({len(ids)}): "
        f"{html_text(counted(comparison, word))}."
        for word, ids in (("better", comparison.better), ("worse", comparison.worse))
    ]
    return "<p>" + "<br>".join(parts) + "</p>"


def _flag_options(names: list[str], systems: dict[str, list[Row]]) -> str:
    """The filter's choices: all, any flag, none, and each flag some clip has."""
    flags = sorted({f for n in names for r in systems[n] for f in r["flags"]})
    options = [("all", "all samples"), ("any", "any flag"), ("none", "no flag")]
    options += [(f, f"flag: {f}") for f in flags]
    return "".join(f'<option value="{html_text(v)}">{html_text(t)}</option>' for v, t in options)


def _sample_row(index: int, report: Report, out: Path) -> str:
    """One sample: its text (and the text each system was given, where its prompt's normalisation changed
    it), the reference, each system's clone with its figures, and the sort key with, where the sample was
    counted better or worse, why (`report.compared`)."""
    names, titles = report.systems, report.titles
    rows = [report.samples[n][index] for n in names]
    first = rows[0]
    ref = first["reference"]
    prompted = "".join(
        f'<div class="prompted">{html_text(titles[n])} was given: '
        f'<span dir="auto">{html_text(text)}</span></div>'
        for n, text in prompted_texts(report, index)
    )
    cells = [
        f'<td><div class="text" dir="auto">{html_text(first["text"])}</div>{prompted}'
        f'<div class="id">{html_text(first["id"])}</div></td>',
        f"<td>{_clip_html(out, ref, missing='reference clip not found')}</td>",
    ]
    for name, row in zip(names, rows, strict=True):
        rel = f"{name}/{row['wav']}" if row["wav"] else None
        cells.append(f"<td>{_clip_html(out, rel)}{_measures(row)}</td>")
    if len(rows) == 2:
        key = rows[1]["wer"] - rows[0]["wer"]
        shown = f"{100 * key:+.1f} pts"
    else:
        key = rows[0]["wer"]
        shown = fmt(key, True)
    why = compared(report, first["id"])
    why_html = f'<div class="why">{html_text(why)}</div>' if why else ""
    cells.append(f'<td><div class="num">{shown}</div>{why_html}</td>')
    flags = " ".join(sorted({f for r in rows for f in r["flags"]}))
    return (
        f'<tr data-index="{index}" data-sort-key="{key:.6f}" data-flags="{html_text(flags)}">'
        + "".join(cells)
        + "</tr>"
    )


def _measures(row: Row) -> str:
    """One clone's figures: WER, similarity, duration, flags and what the ASR heard."""
    flags = "".join(f'<span class="flag">{html_text(f)}</span>' for f in row["flags"]) or "no flag"
    return (
        f'<div class="measures">WER {fmt(row["wer"], True)} &middot; '
        f"similarity {html_text(similarity_figure(row))}"
        f' &middot; {row["seconds"]:.2f} s</div><div class="flags">{flags}</div>'
        f'<div class="transcript" dir="auto" title="what the ASR model heard">'
        f"{html_text(row.get('transcript') or '')}</div>"
    )


def audio_html(rel: str | None, missing: str = "no audio (the model stopped at once)") -> str:
    """An audio player for the clip at the relative path `rel`, or why there is none. It loads nothing until
    the page's `DURATIONS_JS` brings it near the view."""
    if rel is None:
        return f'<p class="missing">{html_text(missing)}</p>'
    return f'<audio controls preload="none" src="{html_text(quote(rel))}"></audio>'


def _clip_html(root: Path, rel: str | None, missing: str = "no audio (the model stopped at once)") -> str:
    """`audio_html` with a small spectrogram of the clip, written under `root/spectrograms/`."""
    if rel is None:
        return audio_html(rel, missing)
    image = f"{SPECTROGRAMS}/{Path(rel).with_suffix('.png').as_posix()}"
    write_atomic(root / image, lambda f: f.write(spectrogram_png(load_audio(root / rel))))
    return audio_html(rel) + f'<img class="spec" src="{html_text(quote(image))}" alt="spectrogram">'


def copy_references(systems: dict[str, list[Row]], out: Path) -> None:
    """Copy each sample's reference clip into `out/references/` (`copy_clip`) and record the copy in its
    rows as `reference`, relative to `out` (None when the clip is gone).

    `report.json` then names a clip inside the eval folder for every player: the pages link it, and
    `listen` plays it without reading any path outside the folder (`listening._clips`).
    """
    copies: dict[str, str | None] = {}
    for rows in systems.values():
        for row in rows:
            src = row["ref_audio"]
            if src not in copies:
                copies[src] = copy_clip(Path(src), out / REFERENCES, f"sample {row['id']!r}")
            row["reference"] = copies[src]


def copy_clip(src: Path, folder: Path, owner: str) -> str | None:
    """Copy a user's clip into `folder` under a name that its content decides (one copy per distinct clip,
    never a change to the original); returns its path relative to `folder`'s parent, or None, with a
    warning naming `owner`, when the clip is gone."""
    if not src.is_file():
        log.warning("%s: reference clip %s not found; the report shows it as missing", owner, src)
        return None
    name = f"{src.stem}-{content_hash(src)[:10]}{src.suffix}"
    dest = folder / name
    if not dest.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return f"{folder.name}/{name}"


def spectrogram_png(audio: np.ndarray, width: int = 300, height: int = 80) -> bytes:
    """A small log-magnitude spectrogram (time left to right, low frequencies at the bottom) as PNG bytes:
    at most `width` frames of a 512-point STFT, its bins averaged down to `height` rows, 80 dB of range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_fft = 512
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    hop = max(TARGET_SR // 100, -(-(audio.size - n_fft) // width))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)[:, : (n_fft // 2 // height) * height]) ** 2
    rows = power.reshape(power.shape[0], height, -1).mean(axis=2).T
    db = 10 * np.log10(rows + 1e-12)
    buffer = io.BytesIO()
    plt.imsave(buffer, np.clip(db, db.max() - 80, None), cmap="magma", origin="lower", format="png")
    return buffer.getvalue()
