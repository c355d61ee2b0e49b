"""The run folder: a used one is refused unless --resume or --overwrite, --overwrite deletes only what the
trainer wrote, pruning never deletes the checkpoint just written, and --out that is a file is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_config

import higgs_tune
from higgs_tune import checkpoint
from higgs_tune.training.run_data import TooFewSamplesError
from higgs_tune.training.run_folder import RunFolderError
from higgs_tune.training.trainer import Trainer


def _fake_checkpoint(run: Path, step: int) -> Path:
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / checkpoint.TRAINER_STATE).write_text(json.dumps({"step": step}))
    return folder


def test_a_used_run_folder_is_refused_naming_the_choices(tiny_model_dir, prepared_dir, tmp_path):
    run = tmp_path / "run"
    _fake_checkpoint(run, 10)
    with pytest.raises(RunFolderError) as err:
        Trainer(train_config(tiny_model_dir, prepared_dir, run, "max_steps=1"))
    message = str(err.value)
    assert "checkpoint-10" in message and "\n" not in message
    assert all(choice in message for choice in ("--resume", "another --out", "--overwrite"))
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-10"], "nothing written"


def test_out_that_is_a_file_is_refused(tiny_model_dir, prepared_dir, tmp_path):
    out = tmp_path / "run.txt"
    out.write_text("not a folder")
    with pytest.raises(RunFolderError, match="is a file"):
        Trainer(train_config(tiny_model_dir, prepared_dir, out))


def test_overwrite_deletes_the_earlier_run_and_nothing_else(tiny_model_dir, prepared_dir, tmp_path):
    run = tmp_path / "run"
    _fake_checkpoint(run, 10)
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 1.0}\n')
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out").write_text("old")
    (run / "notes.txt").write_text("mine")
    (run / "my_clips").mkdir()
    cfg = train_config(tiny_model_dir, prepared_dir, run, "max_steps=1", "eval_fraction=0")
    final = Trainer(cfg, overwrite=True).run()
    assert final == run / "checkpoint-1" and checkpoint.checkpoint_dirs(run) == [final]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1]
    assert not (run / "tensorboard" / "events.out").exists()
    assert (run / "notes.txt").read_text() == "mine" and (run / "my_clips").is_dir()


def test_pruning_never_deletes_the_checkpoint_just_written_nor_the_best(tmp_path):
    run = tmp_path / "run"
    for step in (2, 5, 6):
        _fake_checkpoint(run, step)
    checkpoint.temporary_dir(run, 3).mkdir()
    state = {"step": 3, "best_model_checkpoint": "checkpoint-2"}
    final = checkpoint.finalize(run, 3, state, keep=1)
    assert final.is_dir()
    assert [p.name for p in checkpoint.checkpoint_dirs(run)] == [
        "checkpoint-2",
        "checkpoint-3",
        "checkpoint-6",
    ]


def test_too_few_training_samples_is_a_clear_error(tiny_model_dir, prepared_dir, tmp_path):
    cfg = train_config(tiny_model_dir, prepared_dir, tmp_path / "run", "max_seq_len=8")
    with pytest.raises(TooFewSamplesError, match="0 training samples .* longer than max_seq_len=8"):
        Trainer(cfg)


@pytest.mark.parametrize("case", ["file", "used"])
def test_the_train_command_refuses_in_one_line(tiny_model_dir, prepared_dir, tmp_path, case):
    out = tmp_path / "out"
    if case == "file":
        out.write_text("x")
    else:
        _fake_checkpoint(out, 1)
    env = dict(os.environ, PYTHONPATH=str(Path(higgs_tune.__file__).parents[1]))
    cmd = [sys.executable, "-m", "higgs_tune.cli", "train", "--model", str(tiny_model_dir)]
    cmd += ["--data", str(prepared_dir), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len([line for line in proc.stderr.splitlines() if str(out) in line]) == 1, proc.stderr
