"""`higgs-tune normalise`: a client's way to send the texts a fine-tune was trained on."""

import subprocess
import sys

from higgs_tune.data.text_normalisation import normalise_text


def test_normalise_prints_the_prompt_builders_text(run_cli):
    text = "أَهلاً بِكُم في عام ١٩٤٥"
    code, out, _ = run_cli("normalise", "--language", "ar", text)
    assert code == 0
    assert out == normalise_text(text, "arabic_spoken") + "\n"
    assert "١٩٤٥" not in out  # the number is spoken


def test_normalise_reads_stdin_one_line_out_per_line_in():
    lines = "إِلى   اللقاء\n\nآخر سطر\n"
    done = subprocess.run(
        [sys.executable, "-m", "higgs_tune", "normalise", "--text-normalisation", "arabic_no_diacritics"],
        input=lines, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines() == [normalise_text(x, "arabic_no_diacritics") for x in lines.splitlines()]
    assert len(done.stdout.splitlines()) == 3


def test_an_unknown_normalisation_is_one_line(run_cli):
    code, _, err = run_cli("normalise", "--text-normalisation", "klingon", "x")
    assert code == 2 and "choose from" in err and "Traceback" not in err
