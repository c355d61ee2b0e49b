"""Raw recordings to a trained adapter through the command line: ingest -> pairs -> validate -> prepare ->
train, on the tiny model and the tiny Whisper."""

import json
import subprocess
import sys

import pytest
from speech import write_folder

pytestmark = pytest.mark.cli


def run(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "higgs_tune", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True)


def test_raw_audio_to_a_trained_adapter(tiny_model_dir, tmp_path):
    from higgs_tune.tiny.eval_models import build_tiny_asr

    asr = build_tiny_asr(tmp_path / "whisper")
    source = write_folder(tmp_path / "recordings")
    corpus = tmp_path / "corpus"
    options = ("--max-seconds", "8", "--language", "en", "--asr-max-new-tokens", "8", "--workers", "2")
    proc = run("ingest", source, "--out", corpus, "--asr-model", asr, *options)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reason" in proc.stdout and "amal" in proc.stdout and "omar" in proc.stdout
    kept = [json.loads(line) for line in (corpus / "utterances.jsonl").read_text().splitlines()]
    assert len(kept) >= 4

    pairs = tmp_path / "pairs.jsonl"
    for step in (
        ("pairs", corpus / "utterances.jsonl", "--out", pairs),
        ("validate", pairs),
        ("prepare", pairs, "--model", tiny_model_dir, "--out", tmp_path / "data", "--workers", "0"),
        ("train", "--model", tiny_model_dir, "--data", tmp_path / "data", "--out", tmp_path / "run",
         "max_steps=2", "save_steps=2", "logging_steps=1", "per_device_train_batch_size=2", "warmup_steps=0"),
    ):  # fmt: skip
        proc = run(*step)
        assert proc.returncode == 0, (step[0], proc.stdout[-2000:], proc.stderr[-3000:])
    assert (tmp_path / "run" / "checkpoint-2").is_dir()

    proc = run("ingest", source, "--out", tmp_path / "other", "--asr-model", tmp_path / "no-such-model")
    assert proc.returncode == 2 and "--asr-model" in proc.stderr and "Traceback" not in proc.stderr
