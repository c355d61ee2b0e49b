"""The whole command line, end to end in subprocesses, on the tiny model: the CPU tier of the suite."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.cli


# A library's log line (a logger outside higgs_tune) at WARNING or above, in `logs.setup_logging`'s format.
LIBRARY_WARNING = re.compile(r"^\S+ (?:WARNING|ERROR|CRITICAL) (?!higgs_tune[.:])\S+: .*$", re.MULTILINE)


def run(*args, ok: bool = True) -> subprocess.CompletedProcess:
    """`higgs-tune ARGS` in a subprocess; with `ok`, it must succeed and no library may warn (what a
    library says about itself is nothing a user can act on: peft importing bitsandbytes for a base that is
    not quantised made it log about a CPU kernel on every command that loads peft)."""
    proc = subprocess.run(
        [sys.executable, "-m", "higgs_tune", *map(str, args)], capture_output=True, text=True
    )
    if ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert LIBRARY_WARNING.findall(proc.stderr) == [], args[0]
    return proc


def test_tiny_model_command_writes_a_loadable_folder(tmp_path):
    run("tiny-model", tmp_path / "m", "--seed", "3")
    for name in (
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    ):
        assert (tmp_path / "m" / name).is_file(), name
    assert (tmp_path / "m" / "audio_tokenizer" / "model.safetensors").is_file()


def test_data_to_clone_through_the_cli(tiny_model_dir, sample_data_dir, tmp_path):
    manifest = sample_data_dir["manifest_json"]  # the ChatML format
    assert "0 errors" in run("validate", manifest, "--report", tmp_path / "report.json").stdout
    assert json.loads((tmp_path / "report.json").read_text())

    clip = sample_data_dir["clips"] / "spk00_00.wav"
    run("encode", clip, "--model", tiny_model_dir, "--out", tmp_path / "codes")
    codes = np.load(tmp_path / "codes" / "spk00_00.npy")
    assert codes.shape[0] == 8 and codes.shape[1] > 10

    run("prepare", manifest, "--model", tiny_model_dir, "--out", tmp_path / "data")
    run(
        "train", "--model", tiny_model_dir, "--data", tmp_path / "data", "--out", tmp_path / "run",
        "max_steps=3", "save_steps=2", "logging_steps=1", "per_device_train_batch_size=2", "warmup_steps=0",
        "prompt.system_prompt=Speak as the reference does.",
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "audio_loss", "lr"} <= rows[0].keys()

    run(
        "train", "--model", tiny_model_dir, "--data", tmp_path / "data", "--out", tmp_path / "run",
        "--resume", "max_steps=4", "save_steps=2", "logging_steps=1", "per_device_train_batch_size=2",
        "warmup_steps=0", "prompt.system_prompt=Speak as the reference does.",  # --resume refuses a change
    )  # fmt: skip
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
            if "loss" in line][-1] == 4  # fmt: skip

    out = tmp_path / "clone.wav"
    proc = run(
        "clone", "--model", tiny_model_dir, "--adapter", tmp_path / "run", "--ref-audio", clip,
        "--ref-text", "hello", "--text", "a new sentence", "--out", out, "--codes-out", tmp_path / "c.npy",
        "--max-seconds", "2", "--temperature", "0.9", "--top-k", "20",
    )  # fmt: skip
    assert out.stat().st_size > 44 and np.load(tmp_path / "c.npy").shape[0] == 8
    assert "wrote" in proc.stderr


def test_pairs_and_sample_data_commands(tmp_path):
    paths = run("sample-data", tmp_path / "sd").stdout
    assert "manifest_jsonl" in paths
    run("pairs", tmp_path / "sd" / "utterances.jsonl", "--out", tmp_path / "pairs.jsonl", "--seed", "1")
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert rows and all(r["ref_audio"] != r["audio"] for r in rows)


def test_missing_file_and_malformed_entry_are_named(tiny_model_dir, tmp_path, make_wav):
    clip = make_wav("clips/a.wav", seconds=1.0)
    manifest = tmp_path / "m.jsonl"
    good = {"id": "good", "ref_audio": str(clip), "ref_text": "a", "text": "b", "audio": str(clip)}
    no_text = {"id": "no-text", "ref_audio": str(clip), "ref_text": "a", "audio": str(clip)}
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(no_text) + "\n")
    proc = run("prepare", manifest, "--model", tiny_model_dir, "--out", tmp_path / "d", ok=False)
    assert proc.returncode == 2
    assert "line 2" in proc.stderr and "text" in proc.stderr and "Traceback" not in proc.stderr

    missing = tmp_path / "missing.jsonl"
    missing.write_text(
        json.dumps({"id": "lost", "ref_audio": "nope.wav", "ref_text": "a", "text": "b", "audio": str(clip)})
        + "\n"
    )
    proc = run("validate", missing, ok=False)
    assert proc.returncode == 1 and "lost" in proc.stdout and "nope.wav" in proc.stdout
    proc = run("clone", "--model", tiny_model_dir, "--ref-audio", tmp_path / "nope.wav", "--ref-text", "a",
               "--text", "b", "--out", tmp_path / "x.wav", ok=False)  # fmt: skip
    assert proc.returncode == 2 and "nope.wav" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_config_reports_every_problem_at_once(tiny_model_dir, tmp_path):
    proc = run(
        "train", "--model", tiny_model_dir, "--data", tmp_path, "--out", tmp_path / "r",
        "learing_rate=1", "per_device_train_batch_size=0", ok=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "learning_rate" in proc.stderr and "per_device_train_batch_size" in proc.stderr


def test_demo_runs_end_to_end(tmp_path):
    proc = run("demo", "--out", tmp_path / "demo", "--steps", "20", "--speakers", "4", "--utterances", "6")
    summary = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert summary["last_loss"] < summary["first_loss"]
    assert Path(summary["paths"]["clone"]).is_file()
    assert "Demo finished" in proc.stdout and "wall time for the whole command" in proc.stdout
    memorised = summary["memorised_clone"]
    assert memorised["identical"] and memorised["stopped_by_eos"], memorised
    assert memorised["frames"] == memorised["target_frames"] > 0
    assert f"memorised clone of {memorised['sample_id']}" in proc.stdout
    assert "codes identical to the target: yes" in proc.stdout and "stop health" in proc.stdout
    model, run_folder = summary["paths"]["model"], summary["paths"]["run"]
    assert f"  serve          higgs-tune serve --model {model} --adapter {run_folder}" in proc.stdout
    assert summary["serve_command"] == f"higgs-tune serve --model {model} --adapter {run_folder}"
