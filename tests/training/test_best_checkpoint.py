"""The best checkpoint: tracked by the chosen held-out metric, never pruned, used by `clone` unless told
`--checkpoint last`; early stopping after `patience` evaluations without improvement."""

import json
import logging
from pathlib import Path

import pytest
from conftest import train_config

from higgs_tune import checkpoint
from higgs_tune.config_files import ConfigError
from higgs_tune.training.trainer import Trainer


def _run(tiny_model_dir, prepared_dir, out, *overrides) -> Path:
    """A full fine-tune evaluated every step, keeping one checkpoint besides the best."""
    cfg = train_config(
        tiny_model_dir, prepared_dir, out, "full=true", "learning_rate=1e-3", "eval_fraction=0.1",
        "eval_steps=1", "save_steps=100", "save_total_limit=1", "max_steps=8", *overrides,
    )  # fmt: skip
    Trainer(cfg).run()
    return out


def _eval_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}


@pytest.fixture(scope="module")
def early_stopped_run(tiny_model_dir, prepared_dir, tmp_path_factory) -> Path:
    """Held-out loss falls at every step; with greater_is_better the first evaluation is the best and
    every later one fails to improve, so patience 2 stops the run after step 3."""
    out = tmp_path_factory.mktemp("best") / "run"
    return _run(tiny_model_dir, prepared_dir, out, "greater_is_better=true", "early_stopping_patience=2")


def test_early_stopping_keeps_the_best_checkpoint(early_stopped_run):
    run = early_stopped_run
    losses = _eval_losses(run)
    assert sorted(losses) == [1, 2, 3], "stopped after 2 evaluations without improvement"
    assert losses[1] > losses[2] > losses[3]
    # save_total_limit=1 keeps the newest checkpoint and, beyond it, the best one.
    assert [p.name for p in checkpoint.checkpoint_dirs(run)] == ["checkpoint-1", "checkpoint-3"]
    state = checkpoint.read_trainer_state(run / "checkpoint-3")
    assert state["best_model_checkpoint"] == "checkpoint-1" and state["best_step"] == 1
    assert state["metric_for_best_model"] == "eval_loss" and state["best_metric"] == pytest.approx(losses[1])
    assert state["evaluations_without_improvement"] == 2
    assert checkpoint.resolve_checkpoint(run) == run / "checkpoint-1"
    assert checkpoint.resolve_checkpoint(run, "last") == run / "checkpoint-3"
    assert checkpoint.resolve_checkpoint(run / "checkpoint-3") == run / "checkpoint-3", "a folder as is"


def test_improvements_below_the_threshold_do_not_reset_patience(tiny_model_dir, prepared_dir, tmp_path):
    """The loss improves every step (each is the new best, saved), but never by the threshold."""
    run = _run(
        tiny_model_dir, prepared_dir, tmp_path / "run", "early_stopping_patience=2",
        "early_stopping_threshold=1e9",
    )  # fmt: skip
    assert sorted(_eval_losses(run)) == [1, 2, 3]
    assert [p.name for p in checkpoint.checkpoint_dirs(run)] == ["checkpoint-3"]
    assert checkpoint.read_trainer_state(run / "checkpoint-3")["best_model_checkpoint"] == "checkpoint-3"


@pytest.mark.parametrize("which, step", [(None, 1), ("best", 1), ("last", 3)])
def test_clone_loads_the_best_checkpoint_unless_told_last(
    early_stopped_run, tiny_model_dir, tmp_path, caplog, make_wav, which, step
):
    from typer.testing import CliRunner

    from higgs_tune.cli import app

    args = ["clone", "--model", str(tiny_model_dir), "--adapter", str(early_stopped_run)]
    args += ["--ref-audio", str(make_wav("ref.wav")), "--ref-text", "hello", "--text", "world"]
    args += ["--out", str(tmp_path / "out.wav"), "--max-seconds", "0.5", "--greedy"]
    args += [] if which is None else ["--checkpoint", which]
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1), result.output  # 1: the tiny model stopped at once (no audio)
    loaded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded full fine-tune")]
    assert loaded == [f"loaded full fine-tune from {early_stopped_run / f'checkpoint-{step}'} (step {step})"]


def test_a_metric_for_a_codebook_the_model_lacks_fails_before_training(
    tiny_model_dir, prepared_dir, tmp_path
):
    cfg = train_config(
        tiny_model_dir, prepared_dir, tmp_path / "run", "metric_for_best_model=eval_eos_prob_codebook_8"
    )
    with pytest.raises(ConfigError, match="codebooks 0 to 7"):
        Trainer(cfg)


def test_resume_continues_the_best_and_the_patience_count():
    from higgs_tune.training.best import BestCheckpoint

    before = BestCheckpoint("eval_eos_prob", True, patience=2, threshold=0.0)
    assert [before.update({"eval_eos_prob": p}, step) for step, p in ((1, 0.5), (2, 0.7), (3, 0.6))] == [
        True,
        True,
        False,
    ]
    resumed = BestCheckpoint("eval_eos_prob", True, patience=2, threshold=0.0)
    resumed.restore(before.state())
    assert (resumed.best_step, resumed.best_value, resumed.evaluations_without_improvement) == (2, 0.7, 1)
    assert not resumed.update({"eval_eos_prob": 0.65}, 4) and resumed.should_stop()
    other = BestCheckpoint("eval_loss", False, patience=None, threshold=0.0)
    other.restore(before.state())  # tracked by another metric: starts afresh
    assert other.best_step is None
