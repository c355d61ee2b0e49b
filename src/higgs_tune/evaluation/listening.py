"""`higgs-tune listen`: a blind A/B listening test of the base model against the fine-tune, as a static page.

WER and speaker similarity come from models; whether a clone sounds like the reference, and natural, is
for people to say. For each sample the page plays the two clones as A and B in a seeded random order and
asks two questions (more like the reference? more natural? A, B or the same). The order is saved in
`key.json`, which the page neither shows nor loads, and the clips are copied in under names that say
nothing of their system, so the listener cannot tell which is which. Answers stay in the browser's
storage until "export answers" downloads them as JSON; `listen-score` (`listening_score`) un-blinds them.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import random
import shutil
from pathlib import Path
from string import Template

from higgs_tune.data.samples import SampleError
from higgs_tune.evaluation.evaluate import system_titles
from higgs_tune.evaluation.html_report import STYLE, audio_html, copy_clip
from higgs_tune.files import content_hash, write_json, write_text_atomic

log = logging.getLogger(__name__)

SYSTEMS = ("base", "finetuned")
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
</script>
</body></html>
""")


def write_listening_test(eval_dir: Path, out: Path, seed: int = 0) -> Path:
    """Write the blind A/B page `out/index.html`, its clips and `out/key.json` from an `eval --baseline`
    folder. Samples where either system wrote no audio are left out (and named in the key). Returns the
    page's path."""
    eval_dir, out = Path(eval_dir), Path(out)
    rows, systems = _paired_rows(eval_dir)
    audible = [(t, b) for t, b in rows if t["wav"] and b["wav"]]
    if not audible:
        raise SampleError(str(eval_dir), "no sample has audio from both systems: nothing to listen to")
    rng = random.Random(seed)
    rng.shuffle(audible)  # no order effect, and the manifest order says nothing either
    if (out / CLIPS).is_dir():  # clips of an earlier test written here would no longer match the key
        shutil.rmtree(out / CLIPS)
    trials, sections = [], []
    for number, (tuned, base) in enumerate(audible, start=1):
        order = {"A": "finetuned", "B": "base"} if rng.random() < 0.5 else {"A": "base", "B": "finetuned"}
        trial = {"trial": f"t{number:03d}", "id": tuned["id"], **order}
        trials.append(trial)
        sections.append(_write_trial(trial, number, {"finetuned": tuned, "base": base}, eval_dir, out))
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
        style=STYLE, trials="\n".join(sections), test_json=json.dumps(test).replace("</", "<\\/")
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


def _write_trial(trial: dict, number: int, rows: dict[str, dict], eval_dir: Path, out: Path) -> str:
    """Copy one trial's clips into `out/clips/` under blind names; returns its section of the page: the
    text, the reference, A and B, and the two questions as radio buttons."""
    name = trial["trial"]
    ref = copy_clip(Path(rows["base"]["ref_audio"]), out / CLIPS, f"sample {trial['id']!r}")
    players = [("reference", ref)]
    for letter in ("A", "B"):
        src = eval_dir / trial[letter] / rows[trial[letter]]["wav"]
        rel = f"{CLIPS}/{name}-{letter}{src.suffix}"
        (out / CLIPS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / rel)
        players.append((letter, rel))
    questions = "".join(
        f"<fieldset><legend>{html.escape(text)}</legend>"
        + "".join(f'<label><input type="radio" name="{name}/{q}" value="{c}"> {c}</label> ' for c in CHOICES)
        + "</fieldset>"
        for q, text in QUESTIONS.items()
    )
    return (
        f'<section class="trial" data-trial="{name}"><h2>{number}</h2>'
        f'<p class="text" dir="auto">{html.escape(rows["base"]["text"])}</p><div class="players">'
        + "".join(f"<div><b>{label}</b>{audio_html(rel, 'clip not found')}</div>" for label, rel in players)
        + f"</div>{questions}</section>"
    )


def _paired_rows(eval_dir: Path) -> tuple[list[tuple[dict, dict]], dict[str, str]]:
    """The (fine-tuned, base) result rows of each sample from `eval_dir/report.json`, and what the report
    calls the two systems (`evaluate.system_titles`: the base model, or a baseline adapter)."""
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
    return list(zip(samples["finetuned"], samples["base"], strict=True)), system_titles(report)
