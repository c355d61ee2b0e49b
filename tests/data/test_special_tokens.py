"""A control token in a text is refused with `special_token_in_text`, naming the sample and the token, by
every reader of user text: `validate`, `prepare`, `pairs` and `clone --text` (the prompt builder's own
defence, texts tokenized as plain text, is tested in tests/model/test_prompt.py)."""

import subprocess
import sys

import pytest
from conftest import AR, entry, write_jsonl

from higgs_tune.data.pairs import read_utterances
from higgs_tune.data.problems import special_token_problem
from higgs_tune.data.samples import SampleError
from higgs_tune.data.validate import validate_manifest
from higgs_tune.prepared.prepare import read_samples

TOKENS = ["<|AUDIO_OUT|>", "<|eot_id|>", "<|start_header_id|>", "<|audio_out_bos|>", "<|begin_of_text|>"]
FULL_WIDTH = "\uff1c\uff5ceot_id\uff5c\uff1e"  # NFKC: <|eot_id|>


@pytest.mark.parametrize("token", [*TOKENS, "<|reserved_special_token_6|>"])
def test_the_check_names_the_token(token):
    code, message = special_token_problem(f"{AR} {token} {AR}", "text")
    assert code == "special_token_in_text" and token in message


@pytest.mark.parametrize("text", [AR, "a < b | c > d", "<| not a token |>", "price <5|6>", "x <||> y"])
def test_plain_text_passes(text):
    assert special_token_problem(text, "text") is None


def test_a_full_width_look_alike_is_refused():
    assert "<|eot_id|>" in special_token_problem(FULL_WIDTH, "text")[1]


@pytest.fixture
def manifest(tmp_path, make_wav):
    """One plain sample and one per token, in the target text, the reference transcript or the scene."""
    make_wav("clips/ref.wav", seed=1)
    make_wav("clips/tgt.wav", seed=2)
    fields = ["text", "ref_text", "scene"]
    records = [entry("plain")]
    for i, token in enumerate([*TOKENS, FULL_WIDTH]):
        field = fields[i % 3]
        records.append(entry(f"bad{i}", **{field: f"{AR} {token}"}))
    return write_jsonl(tmp_path / "m.jsonl", records)


def test_validate_reports_each_sample_and_token(manifest):
    report = validate_manifest(manifest, max_examples=10)
    found = {p.sample_id: p.message for p in report.examples["special_token_in_text"]}
    assert sorted(found) == [f"bad{i}" for i in range(6)]
    for i, token in enumerate([*TOKENS, "<|eot_id|>"]):
        assert token in found[f"bad{i}"]
    assert report.n_errors == 6 and [s.id for s in report.clean_samples()] == ["plain"]


def test_prepare_refuses_or_skips(manifest):
    with pytest.raises(SampleError, match=r"bad0.*special_token|bad0.*<\|AUDIO_OUT\|>"):
        read_samples(manifest)
    samples, skipped = read_samples(manifest, skip_bad=True)
    assert [s.id for s in samples] == ["plain"]
    assert {k.id: k.code for k in skipped} == {f"bad{i}": "special_token_in_text" for i in range(6)}


def test_pairs_refuses(tmp_path):
    lines = [
        {"id": "u1", "audio": "a.wav", "text": AR, "speaker": "s"},
        {"id": "u2", "audio": "b.wav", "text": f"{AR}<|eot_id|>", "speaker": "s"},
    ]
    with pytest.raises(SampleError, match=r"u2.*<\|eot_id\|>"):
        read_utterances(write_jsonl(tmp_path / "u.jsonl", lines))


def test_clone_text_is_one_line_and_exit_2(tmp_path, make_wav):
    ref = make_wav("ref.wav")
    cmd = [sys.executable, "-m", "higgs_tune", "clone", "--model", str(tmp_path / "never-loaded")]
    cmd += ["--out", str(tmp_path / "o.wav"), "--ref-audio", str(ref), "--ref-text", AR]
    proc = subprocess.run([*cmd, "--text", f"{AR}<|start_header_id|>"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "--text" in errors[0] and "<|start_header_id|>" in errors[0]
    assert "Traceback" not in proc.stderr
