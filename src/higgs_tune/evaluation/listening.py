"""`higgs-tune listen`: a blind A/B listening test of the base model against the fine-tune, as a static page.

WER and speaker similarity come from models; whether a clone sounds like the reference, and natural, is
for people to say. For each sample the page plays the two clones as A and B in a seeded random order and
asks two questions (more like the reference? more natural? A, B or the same). The order is saved in
`key.json`, which the page neither shows nor loads, and the clips are copied in under names that say
nothing of their system, so the listener cannot tell which is which. Answers stay in the browser's
storage until "export answers" downloads them as JSON; `listen-score` (`listening_score`) un-blinds them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import random
import shutil
from pathlib import Path
from string import Template

from higgs_tune.data.samples import SampleError
from higgs_tune.evaluation.html_report import DURATIONS_JS, STYLE, audio_html, copy_clip
from higgs_tune.evaluation.page_text import html_text
from higgs_tune.evaluation.report import BASELINE, REFERENCES, SYSTEMS, TUNED, system_titles
from higgs_tune.files import check_output_folder, content_hash, write_json, write_text_atomic

log = logging.getLogger(__name__)

CHOICES = ("A", "B", "same")
QUESTIONS = {
    "similar": "Which sounds more like the reference?",
    "natural": "Which is more natural?",
}
CLIPS = "clips"

_PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Listening test</title>
<link rel="icon" href="data:,"><style>$style
.trial{border:1px solid #ccc;padding:.5em 1em;margin:1em 0}.players{display:flex;gap:1.5em;flex-wrap:wrap}
fieldset{border:none;padding:0;margin:.4em 0}legend{font-weight:600}</style></head>
<body>
<h1>Listening test</h1>
<p>For each sentence, listen to the reference, then to A and B, and answer both questions. A and B are two
voice clones in a random order that changes from sentence to sentence; "same" is a fine answer. Answers are
kept in this browser; press "export answers" when done and send the file.</p>
<p><label>Your name (optional): <input id="listener" autocomplete="off"></label>
<span id="progress"></span></p>
$trials
<p><button type="button" id="export">export answers</button></p>
<script type="application/json" id="test">$test_json</script>
<script>
const test = JSON.parse(document.getElementById("test").textContent);
const store = "higgs-tune-listening-" + test.test_id;
const saved = JSON.parse(localStorage.getItem(store) || '{"listener": "", "answers": {}}');
const listener = document.getElementById("listener");
function progress() {
  const done = test.trials.filter((t) => test.questions.every((q) => (saved.answers[t] || {})[q]));
  document.getElementById("progress").textContent = done.length + " of " + test.trials.length + " answered";
}
listener.value = saved.listener;
listener.addEventListener("input", () => { saved.listener = listener.value;
  localStorage.setItem(store, JSON.stringify(saved)); });
for (const input of document.querySelectorAll("input[type=radio]")) {
  const [trial, question] = input.name.split("/");
  input.checked = (saved.answers[trial] || {})[question] === input.value;
  input.addEventListener("change", () => {
    saved.answers[trial] = Object.assign(saved.answers[trial] || {}, {[question]: input.value});
    localStorage.setItem(store, JSON.stringify(saved));
    progress();
  });
}
document.getElementById("export").addEventListener("click", () => {
  const data = {test_id: test.test_id, listener: saved.listener, answers: saved.answers,
                exported: new Date().toISOString()};
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], {type: "application/json"}));
  link.download = "answers-" + (saved.listener || "listener").replace(/[^\\w-]+/g, "_") + ".json";
  link.click();
});
progress();
$durations_js</script>
</body></html>
""")


def write_listening_test(eval_dir: Path, out: Path, seed: int = 0) -> Path:
    """Write the blind A/B page `out/index.html`, its clips and `out/key.json` from an `eval --baseline`
    folder. Samples where either system wrote no audio are left out (and named in the key). Returns the
    page's path.

    `out` must be new or empty (`files.check_output_folder`): nothing of the user's is overwritten or
    deleted. Every clip is checked to lie inside `eval_dir` before anything is written, since the page is
    sent to listeners and must carry nothing else (`_clips`).
    """
    eval_dir, out = Path(eval_dir), Path(out)
    check_output_folder(out, "--out")
    rows, systems = _paired_rows(eval_dir)
    audible = [(t, b) for t, b in rows if t["wav"] and b["wav"]]
    if not audible:
        raise SampleError(str(eval_dir), "no sample has audio from both systems: nothing to listen to")
    clips = [_clips(eval_dir, {TUNED: tuned, BASELINE: base}) for tuned, base in audible]
    order = list(range(len(audible)))
    rng = random.Random(seed)
    rng.shuffle(order)  # no order effect, and the manifest order says nothing either
    trials, sections = [], []
    for number, index in enumerate(order, start=1):
        tuned = audible[index][0]
        sides = {"A": TUNED, "B": BASELINE} if rng.random() < 0.5 else {"A": BASELINE, "B": TUNED}
        trial = {"trial": f"t{number:03d}", "id": tuned["id"], **sides}
        trials.append(trial)
        sections.append(_write_trial(trial, number, tuned["text"], clips[index], out))
    test_id = hashlib.sha1(f"{content_hash(eval_dir / 'report.json')}:{seed}".encode()).hexdigest()[:12]
    left_out = [t["id"] for t, b in rows if not (t["wav"] and b["wav"])]
    key = {
        "test_id": test_id,
        "eval_dir": str(eval_dir),
        "seed": seed,
        "questions": QUESTIONS,
        "systems": systems,
    }
    write_json(out / "key.json", {**key, "trials": trials, "left_out": left_out})
    test = {"test_id": test_id, "trials": [t["trial"] for t in trials], "questions": list(QUESTIONS)}
    page = _PAGE.substitute(
        style=STYLE,
        trials="\n".join(sections),
        test_json=json.dumps(test).replace("</", "<\\/"),
        durations_js=DURATIONS_JS,
    )
    write_text_atomic(out / "index.html", page)
    log.info(
        "listening test of %d samples (%d without audio left out): %s; key (keep it from the listeners): %s",
        len(trials),
        len(left_out),
        out / "index.html",
        out / "key.json",
    )
    return out / "index.html"


def _write_trial(trial: dict, number: int, text: str, clips: dict[str, Path | None], out: Path) -> str:
    """Copy one trial's clips (checked by `_clips`) into `out/clips/` under blind names; returns its section
    of the page: the text, the reference, A and B, and the two questions as radio buttons."""
    name = trial["trial"]
    ref = clips["reference"]
    players = [("reference", ref and copy_clip(ref, out / CLIPS, f"sample {trial['id']!r}"))]
    for letter in ("A", "B"):
        src = clips[trial[letter]]
        rel = f"{CLIPS}/{name}-{letter}{src.suffix}"
        (out / CLIPS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / rel)
        players.append((letter, rel))
    questions = "".join(
        f"<fieldset><legend>{html_text(text)}</legend>"
        + "".join(f'<label><input type="radio" name="{name}/{q}" value="{c}"> {c}</label> ' for c in CHOICES)
        + "</fieldset>"
        for q, text in QUESTIONS.items()
    )
    return (
        f'<section class="trial" data-trial="{name}"><h2>{number}</h2>'
        f'<p class="text" dir="auto">{html_text(text)}</p><div class="players">'
        + "".join(f"<div><b>{label}</b>{audio_html(rel, 'clip not found')}</div>" for label, rel in players)
        + f"</div>{questions}</section>"
    )


def _clips(eval_dir: Path, rows: dict[str, dict]) -> dict[str, Path | None]:
    """One sample's clips, each resolved (symlinks too) and refused unless it lies inside `eval_dir`: the two
    clones, and the reference's copy that `eval` made (None when the original was gone).

    `report.json` is only a file: one edited, or from someone else, could name `/etc/passwd` or
    `../../secret.txt`, and the page would carry it to every listener. A clone that is missing is refused
    here too, so a refusal always comes before anything is written.
    """
    clips: dict[str, Path | None] = {}
    for system, row in rows.items():
        clips[system] = _inside(eval_dir, row, "wav", eval_dir / system / str(row["wav"]))
        if not clips[system].is_file():
            raise SampleError(
                str(eval_dir / "report.json"),
                f"sample {row['id']!r}: wav {row['wav']!r} not found in {system}/",
            )
    row = rows[BASELINE]
    if "reference" in row:  # the copy `eval` recorded (`html_report.copy_references`)
        given = row["reference"]
        clips["reference"] = given and _inside(eval_dir, row, "reference", eval_dir / str(given))
    else:  # a report.json from before the copy was recorded: the copy in references/ that bears its name
        src = Path(str(row["ref_audio"]))
        pattern = f"{glob.escape(src.stem)}-{'[0-9a-f]' * 10}{glob.escape(src.suffix)}"
        copies = sorted((eval_dir / REFERENCES).glob(pattern))
        clips["reference"] = _inside(eval_dir, row, "ref_audio", copies[0] if len(copies) == 1 else src)
    return clips


def _inside(eval_dir: Path, row: dict, field: str, path: Path) -> Path:
    """`path`, the clip `row[field]` names, resolved with its symlinks; refused unless inside `eval_dir`."""
    resolved = path.resolve()
    if not resolved.is_relative_to(eval_dir.resolve()):
        raise SampleError(
            str(eval_dir / "report.json"),
            f"sample {row['id']!r}: {field} {row[field]!r} lies outside the eval folder: a listening test "
            "only plays clips that `eval` wrote into it (run `higgs-tune eval` again to record them)",
        )
    return resolved


def _paired_rows(eval_dir: Path) -> tuple[list[tuple[dict, dict]], dict[str, str]]:
    """The (fine-tuned, base) result rows of each sample from `eval_dir/report.json`, and what the report
    calls the two systems (`report.system_titles`: the base model, or a baseline adapter)."""
    path = eval_dir / "report.json"
    if not path.is_file():
        raise SampleError(str(eval_dir), "no report.json: pass the folder that `higgs-tune eval --out` wrote")
    report = json.loads(path.read_text(encoding="utf-8"))
    samples = report["samples"]
    if any(name not in samples for name in SYSTEMS):
        raise SampleError(
            str(path),
            "a listening test compares the fine-tune with the base model: run "
            "`higgs-tune eval --adapter RUN --baseline` to clone with both",
        )
    return list(zip(samples[TUNED], samples[BASELINE], strict=True)), system_titles(
        bool(report.get("baseline_adapter"))
    )
