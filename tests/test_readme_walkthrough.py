"""The README's Arabic walk-through runs as written, on the tiny model, from raw recordings to a merged clone.

The test reads README.md's bash block between the comments `arabic-walkthrough:start` and
`arabic-walkthrough:end` and runs it with `bash -euo pipefail` in a temporary folder that holds synthetic
Arabic recordings in `ar_raw/`. Only three things are changed, each exactly once (the test fails if one
of them is no longer in the block, so README and test cannot drift apart unnoticed):

1. the `MODEL=...` line points at a copy of the tiny model folder (fixture `tiny_model_dir`) with its tiny
   evaluation models in `eval-models/`, as `higgs-tune tiny-model` writes it, so `eval` downloads nothing;
2. `max_steps=N` becomes `max_steps=10` (the smallest the default `warmup_steps=10` allows);
3. `higgs-tune` is a shim on PATH that runs `sys.executable -m higgs_tune` with this checkout's sources
   on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import higgs_tune
from higgs_tune.tiny.synth import synth_speech

pytestmark = pytest.mark.cli

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"<!-- arabic-walkthrough:start -->\n```bash\n(.*?)```\n<!-- arabic-walkthrough:end -->", re.S
)
SR = 24_000
# (pitch Hz, formant scale) per speaker: voices silero-vad hears as speech throughout at 5 syllables/s.
VOICES = {"amal": (200.0, 1.2), "karim": (130.0, 1.0), "huda": (230.0, 1.25), "samir": (110.0, 0.95)}
CLIPS = 2  # per speaker: the fewest that pair, and every clip and pair costs codec and generation time
# Diacritics and both kinds of digits exercise arabic_spoken (spoken letters per second over the 1.5 s
# clips: 3.3 to 8.7, inside validate's 2-35). Speaker v reads texts v and v + 1; the speaker seed 0 holds
# out (huda) reads the two shortest, as eval's generation budget grows with the text.
TEXTS = ("الساعة ١٥", "ذَهَبَ الوَلَدُ", "مرحبا", "عندي 15")
DIACRITICS = re.compile("[\u064b-\u065f\u0670]")


def walkthrough() -> str:
    found = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(found) == 1, "README.md needs exactly one arabic-walkthrough bash block"
    return found[0]


def substitute(script: str, model: Path) -> str:
    """The two textual substitutions (the third, `higgs-tune`, is the PATH shim)."""
    script, models = re.subn(r"^MODEL=\S+$", f"MODEL={model}", script, flags=re.M)
    script, steps = re.subn(r"\bmax_steps=\d+\b", "max_steps=10", script)
    assert (models, steps) == (1, 1), "the walk-through must set MODEL= once and max_steps= once"
    return script


def write_recordings(root: Path) -> None:
    """`ar_raw/SPEAKER/00N.wav` with `00N.txt` beside it: 0.9 s of synthetic speech between 0.3 s edges of
    low noise (so ingest's SNR and speech-fraction filters can judge it)."""
    for v, (speaker, (pitch, formants)) in enumerate(VOICES.items()):
        (root / speaker).mkdir(parents=True)
        for i in range(CLIPS):
            speech = synth_speech(
                0.9, SR, seed=10 * v + i, syllables_per_second=5.0, pause_prob=0.0, pitch_hz=pitch,
                formant_scale=formants,
            )  # fmt: skip
            edge = (0.003 * np.random.default_rng(10 * v + i).standard_normal(round(0.3 * SR))).astype(
                np.float32
            )
            sf.write(root / speaker / f"{i + 1:03d}.wav", np.concatenate([edge, speech, edge]), SR)
            (root / speaker / f"{i + 1:03d}.txt").write_text(TEXTS[(v + i) % len(TEXTS)], encoding="utf-8")


def speakers(manifest: Path) -> set[str]:
    return {json.loads(line)["speaker"] for line in manifest.read_text(encoding="utf-8").splitlines()}


def test_the_arabic_walkthrough_runs_as_written(tiny_model_dir, tmp_path):
    from conftest import fast_tiny_eval_models

    model = shutil.copytree(tiny_model_dir, tmp_path / "tiny-model")
    fast_tiny_eval_models(model)
    shim = tmp_path / "bin" / "higgs-tune"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m higgs_tune "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    write_recordings(work / "ar_raw")
    src = str(Path(higgs_tune.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])]),
    }

    script = "set -euo pipefail\n" + substitute(walkthrough(), model)
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-5000:])

    heldout, training = speakers(work / "pairs.heldout.jsonl"), speakers(work / "pairs.jsonl")
    assert heldout and training and not heldout & training
    index = json.loads((work / "data" / "index.json").read_text(encoding="utf-8"))
    assert index["text_normalisation"] == "arabic_spoken"
    stored = [json.loads(line) for line in (work / "data" / "samples.jsonl").read_text("utf-8").splitlines()]
    texts = [s[key] for s in stored for key in ("text", "ref_text")]
    assert not any(re.search(r"\d", t) or DIACRITICS.search(t) for t in texts)  # all read as spoken
    assert any("خمسة عشر" in t for t in texts)  # ١٥ and 15 alike
    assert (work / "eval" / "report.md").is_file()
    assert {"finetuned", "base"} <= {p.name for p in (work / "eval").iterdir() if p.is_dir()}
    assert sf.info(work / "amal.wav").frames > 0
    assert (work / "merged" / "config.json").is_file()
    assert sf.info(work / "amal_merged.wav").frames > 0
