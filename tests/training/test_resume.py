"""--resume: the config is compared with the run's, the logs are cut back to the checkpoint, and nothing in
a checkpoint is unpickled. (That a resumed run gives the uninterrupted run's losses, dropout included, is
tested in test_trainer.py and, on two processes, in test_distributed.py.)"""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import train_config

from higgs_tune.training.resume import ResumeConfigError
from higgs_tune.training.trainer import Trainer

RUN = ("max_steps=4", "save_steps=2", "eval_steps=2", "save_total_limit=null", "eval_fraction=0.1")


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, prepared_dir, tmp_path_factory) -> Path:
    """A 4-step run with checkpoints at steps 2 and 4 and held-out evaluations at both."""
    run = tmp_path_factory.mktemp("resume") / "run"
    Trainer(train_config(tiny_model_dir, prepared_dir, run, *RUN)).run()
    return run


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_changed_settings_are_named_refused_unless_forced(
    finished_run, tiny_model_dir, prepared_dir, tmp_path, caplog
):
    run = _copy(finished_run, tmp_path / "run")
    changed = train_config(
        tiny_model_dir, prepared_dir, run, *RUN, "seed=7", "per_device_train_batch_size=1", "max_steps=6"
    )
    with pytest.raises(ResumeConfigError) as err:
        Trainer(changed, resume=True)
    message = str(err.value)
    assert (
        "seed: 42 -> 7" in message
        and "per_device_train_batch_size: 2 -> 1" in message
        and "--force" in message
    )
    assert "max_steps" not in message, "a longer run changes nothing already trained"
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        Trainer(changed, resume=True, force=True)
    warned = " | ".join(r.getMessage() for r in caplog.records)
    assert "max_steps: 4 -> 6" in warned and "seed: 42 -> 7" in warned


def test_resume_keeps_no_duplicate_steps_and_purges_tensorboard(
    finished_run, tiny_model_dir, prepared_dir, tmp_path
):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    run = _copy(finished_run, tmp_path / "run")
    shutil.rmtree(run / "checkpoint-4")  # as if killed after logging step 4, before saving it
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 1.')  # a line cut short by a full disk
    Trainer(train_config(tiny_model_dir, prepared_dir, run, *RUN), resume=True).run()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 4]
    purges = [
        event.step
        for path in (run / "tensorboard").iterdir()
        for event in EventFileLoader(str(path)).Load()
        if event.session_log.status == SessionLog.START
    ]
    assert purges == [3], "TensorBoard hides the interrupted run's events from the first resumed step"


class Payload:
    """Unpickling this creates `marker`: what a planted pickle could do with any other code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_no_file_in_a_checkpoint_is_unpickled(finished_run, tiny_model_dir, prepared_dir, tmp_path):
    run = _copy(finished_run, tmp_path / "run")
    state = run / "checkpoint-4" / "state"
    assert {p.name for p in state.iterdir()} == {
        "model.safetensors",
        "optimizer.bin",  # loaded with weights_only=True, which refuses anything but tensors and plain data
        "scheduler.json",
        "rng_state_0.json",
    }
    marker = tmp_path / "payload-ran"
    cfg = train_config(tiny_model_dir, prepared_dir, run, *RUN)
    # Planted where accelerate keeps the random states it pickles: loaded with weights_only=True, refused,
    # and the JSON states are used.
    torch.save({"state": Payload(marker)}, state / "random_states_0.pkl")
    assert Trainer(cfg, resume=True).step == 4
    # Where accelerate keeps a registered object's state (loaded with full pickle): no object is
    # registered, so accelerate refuses the folder without opening it.
    torch.save({"state": Payload(marker)}, state / "custom_checkpoint_0.pkl")
    with pytest.raises(RuntimeError, match="custom checkpoints"):
        Trainer(cfg, resume=True)
    (state / "custom_checkpoint_0.pkl").unlink()
    torch.save({"state": Payload(marker)}, state / "optimizer.bin")
    with pytest.raises(Exception, match="Weights only load failed"):
        Trainer(cfg, resume=True)
    assert not marker.exists(), "a planted pickle ran"
