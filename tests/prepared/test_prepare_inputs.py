"""prepare against hostile input: lying headers, a second run on one folder, paths that must not leak."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone, write_jsonl

from higgs_tune.data.samples import SampleError
from higgs_tune.errors import UserError
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.prepared.lock import folder_lock, lock_path
from higgs_tune.prepared.prepare import prepare_dataset, read_samples
from higgs_tune.prepared.settings import PrepareSettings

SRC = Path(__file__).resolve().parents[2] / "src"

# Holds the lock of OUT (argv[1]) until killed; the parent waits for "locked" on stdout.
HOLD_LOCK = """
import sys, time
from pathlib import Path
from higgs_tune.prepared.lock import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def _wav(path: Path, seconds: float, seed: int, sr: int = 24_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, sr=sr, seed=seed), sr, subtype="PCM_16")
    return path


def _claim_rate(path: Path, rate: int) -> Path:
    """Rewrite a WAV header's sample rate (and byte rate) to `rate`; the samples stay as they are."""
    raw = bytearray(path.read_bytes())
    raw[24:28] = rate.to_bytes(4, "little")
    raw[28:32] = (rate * int.from_bytes(raw[32:34], "little")).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


@pytest.fixture
def hostile(tmp_path) -> Path:
    """Two good samples (one with its reference outside the manifest's folder, given by an absolute path),
    a target whose header claims 1 Hz, one whose header says 40 s (at 4 kHz), and a malformed entry."""
    root = tmp_path / "corpus"
    _wav(root / "clips/ref.wav", 1.0, seed=1)
    _wav(root / "clips/t0.wav", 0.6, seed=2)
    _wav(root / "clips/t1.wav", 0.7, seed=3)
    _claim_rate(_wav(root / "clips/one_hz.wav", 0.5, seed=4), 1)
    _wav(root / "clips/forty.wav", 40.0, seed=5, sr=4_000)
    outside = _wav(tmp_path / "home/user/secret/ref2.wav", 0.8, seed=6)
    rows = [("ok0", "clips/ref.wav", "clips/t0.wav"), ("ok1", str(outside), "clips/t1.wav")]
    rows += [("one_hz", "clips/ref.wav", "clips/one_hz.wav"), ("forty", "clips/ref.wav", "clips/forty.wav")]
    records = [{"id": i, "ref_audio": r, "ref_text": "a b", "text": "c d", "audio": a} for i, r, a in rows]
    records.append({"id": "no_text", "ref_audio": "clips/ref.wav"})  # skipped.jsonl names its line
    return write_jsonl(root / "m.jsonl", records)


def test_lying_headers_are_refused_before_decoding_and_no_absolute_path_is_stored(
    hostile, processor, tmp_path, monkeypatch
):
    real_read = sf.read

    def read(path, *args, **kwargs):
        assert Path(path).name not in ("one_hz.wav", "forty.wav"), f"decoded {path} despite its header"
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(sf, "read", read)
    out = tmp_path / "data"
    samples, skipped = read_samples(hostile, skip_bad=True)
    prepare_dataset(
        samples,
        processor,
        out,
        "tiny",
        settings=PrepareSettings(workers=0, skip_bad=True),
        skipped=skipped,
        source_dir=hostile.parent,
    )
    skips = {k["id"]: k for k in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert skips.keys() == {"one_hz", "forty", "no_text"}
    assert skips["no_text"]["problem"].startswith("m.jsonl line 5: ")
    assert "claims a sample rate of 1 Hz" in skips["one_hz"]["problem"]
    assert skips["forty"]["code"] == "too_long" and "is 40.00 s" in skips["forty"]["problem"]
    data = PreparedData(out)
    assert [r["id"] for r in data.records] == ["ok0", "ok1"]
    text = "".join(p.read_text() for p in out.rglob("*") if p.suffix in (".json", ".jsonl"))
    assert str(tmp_path) not in text  # neither the corpus's folder nor the "home" one
    lines = [
        json.loads(line) for p in sorted(out.glob("clips/*.jsonl")) for line in p.read_text().splitlines()
    ]
    assert sorted(line.get("path") for line in lines if "path" in line) == [
        "clips/forty.wav",
        "clips/one_hz.wav",
        "clips/ref.wav",
        "clips/t0.wav",
        "clips/t1.wav",
    ]  # the clip outside the manifest's folder is its content hash alone
    assert len(lines) == 6


def test_a_second_prepare_on_one_folder_is_refused_and_a_killed_ones_lock_taken_over(
    hostile, processor, tmp_path, caplog
):
    out = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        samples = read_samples(hostile, skip_bad=True)[0][:1]
        with pytest.raises(SampleError) as caught:
            prepare_dataset(samples, processor, out, "tiny", settings=PrepareSettings(workers=0))
        message = str(caught.value)
        assert "\n" not in message
        assert f"another process (pid {holder.pid} on " in message and "is writing this folder" in message
        assert not (out / "clips").exists()  # refused before writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out, 0).exists()  # a kill -9 leaves the file, but not the lock
    half_written = out / "clips/.shard-00000.npy.4242-dead.tmp"  # what a killed write leaves behind
    half_written.parent.mkdir(parents=True)
    half_written.write_bytes(b"half")
    with caplog.at_level(logging.INFO, logger="higgs_tune.prepared.lock"):
        index = prepare_dataset(samples, processor, out, "tiny", settings=PrepareSettings(workers=0))
    assert index["num_samples"] == 1
    assert f"taking over the lock of a stopped run (pid {holder.pid} on " in caplog.text
    assert not lock_path(out, 0).exists()  # released on exit
    assert not half_written.exists()  # a finished folder holds the dataset alone
    with folder_lock(out):  # and free for the next run
        pass


def test_encode_refuses_two_inputs_with_one_name_before_writing_anything(tmp_path):
    """x/a.wav and y/a.wav would both write OUT/a.npy; the model named does not exist, so the refusal comes
    before the model is loaded, and nothing is written."""
    from typer.testing import CliRunner

    from higgs_tune.cli import app

    first, second = _wav(tmp_path / "x/a.wav", 0.5, seed=1), _wav(tmp_path / "y/a.wav", 0.5, seed=2)
    out = tmp_path / "codes"
    args = ["encode", str(first), str(second), "--model", str(tmp_path / "no-such-model"), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, SampleError), result.exception
    assert "y/a.wav: would write a.npy, as " in str(result.exception) and "x/a.wav does" in str(
        result.exception
    )
    assert not out.exists()


def test_prepare_settings_refuse_every_bad_value_at_once(run_cli, sample_data_dir, tiny_model_dir, tmp_path):
    """Before the codec loads, in one line (exit 2): each bad option, its rule and the fix."""
    out = tmp_path / "data"
    args = ["--out", out, "--shard-size", 0, "--min-seconds", 3, "--max-seconds", 2, "--workers", -1]
    code, _, err = run_cli("prepare", sample_data_dir["manifest_jsonl"], "--model", tiny_model_dir, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if "--" in line]
    assert len(lines) == 1, err
    for expected in (
        "--workers: input should be greater than or equal to 0 (got -1)",
        "--shard-size: input should be greater than or equal to 1 (got 0)",
        "--min-seconds (3) must be less than --max-seconds (2): give a smaller --min-seconds",
    ):
        assert expected in lines[0]
    assert not out.exists()
    with pytest.raises(UserError, match="--shard-size"):
        PrepareSettings(shard_size=0)
