"""The held-out evaluation while training: stop health in metrics.jsonl and TensorBoard, its warnings,
and datasets too small for a micro-batch or a held-out split."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from conftest import train_config

from higgs_tune import checkpoint
from higgs_tune.training.trainer import Trainer

STOP_KEYS = {
    "eval_loss",
    "eval_accuracy",
    "eval_eos_prob",
    "eval_early_stop_risk",
    "eval_accuracy_codebook_7",
    "eval_eos_prob_codebook_7",
}


def subset(prepared_dir: Path, out: Path, ids: list[str]) -> Path:
    """A copy of the prepared dataset whose samples are its first sample under each of `ids` (the codes
    are shared, so the same clip can be a training and a held-out sample)."""
    shutil.copytree(prepared_dir, out)
    first = json.loads((prepared_dir / "samples.jsonl").read_text().splitlines()[0])
    (out / "samples.jsonl").write_text("".join(json.dumps({**first, "id": i}) + "\n" for i in ids))
    return out


def eval_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "eval_loss" in r]


def test_memorising_one_sample_teaches_it_to_stop(tiny_model_dir, prepared_dir, tmp_path):
    """The same clip is trained on and held out: learnt by heart, its EOS gets probability near 1 where
    the clip ends and near 0 before; untrained, the EOS gets chance (1 / 1026)."""
    data = subset(prepared_dir, tmp_path / "data", ["a", "b"])
    run = tmp_path / "run"
    cfg = train_config(
        tiny_model_dir, data, run, "eval_fraction=0.5", "max_steps=30", "eval_steps=100", "save_steps=100",
        "full=true", "learning_rate=1e-2", "lr_scheduler_type=constant",
    )  # fmt: skip
    trainer = Trainer(cfg)
    assert len(trainer.data.train_set) == 1 and len(trainer.data.eval_set) == 1
    untrained = trainer.held_out_metrics()
    assert 0.2 / 1026 < untrained["eval_eos_prob"] < 5 / 1026
    trainer.run()
    (row,) = eval_rows(run)
    assert row.keys() >= STOP_KEYS and row["step"] == 30
    assert row["eval_eos_prob"] > 0.9 and row["eval_early_stop_risk"] < 0.1, row
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert {"eval_eos_prob", "eval_early_stop_risk", "eval_accuracy"} <= set(events.Tags()["scalars"])


def test_poor_stop_health_after_warmup_is_a_warning(tiny_model_dir, prepared_dir, tmp_path, caplog):
    cfg = train_config(
        tiny_model_dir, prepared_dir, tmp_path / "run", "eval_fraction=0.1", "max_steps=2", "eval_steps=1",
        "warmup_steps=1",
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        Trainer(cfg).run()
    rows = eval_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["eval_eos_prob"] < 0.5
    warned = [r.getMessage() for r in caplog.records if "not learning to stop" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("step 2:"), "no warning during warm-up (step 1)"
    assert "pad speech with silence" in warned[0]


def test_a_single_sample_trains_with_the_default_config(tiny_model_dir, prepared_dir, tmp_path, caplog):
    """Default micro-batch 4 and eval_fraction 0.05 on one sample: a batch of 1, no held-out set."""
    from higgs_tune.config import TrainSettings
    from higgs_tune.config_files import load_config

    data = subset(prepared_dir, tmp_path / "data", ["only"])
    run = tmp_path / "run"
    cfg = load_config(TrainSettings, None, [f"model={tiny_model_dir}", f"data={data}", f"output_dir={run}"])
    assert cfg.per_device_train_batch_size == 4 and cfg.eval_fraction > 0
    cfg = TrainSettings(**{**cfg.__dict__, "max_steps": 2, "warmup_steps": 0})
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        final = Trainer(cfg).run()
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "cannot fill one micro-batch of 4" in messages and "micro-batches of 1" in messages
    assert "without a held-out set" in messages
    plan = json.loads((run / "data_plan.json").read_text())
    assert plan["train_samples"] == 1 and plan["eval_samples"] == 0
    assert final == run / "checkpoint-2" and not eval_rows(run)
    # No held-out set, so no best checkpoint: the run's checkpoint is its last.
    assert checkpoint.resolve_checkpoint(run) == final


@pytest.mark.parametrize("samples, batch", [(3, 3), (5, 4)])
def test_the_micro_batch_shrinks_only_when_it_must(tiny_model_dir, prepared_dir, tmp_path, samples, batch):
    data = subset(prepared_dir, tmp_path / "data", [f"s{i}" for i in range(samples)])
    cfg = train_config(
        tiny_model_dir, data, tmp_path / "run", "eval_fraction=0", "per_device_train_batch_size=4"
    )
    assert Trainer(cfg).data.plan.batch_size == batch
