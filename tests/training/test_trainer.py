"""Training: loss falls, LoRA touches only adapters, accumulation and resume are exact, saves atomic."""

import json
import logging
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from conftest import train_config

from higgs_tune import checkpoint
from higgs_tune.config import TrainSettings
from higgs_tune.config_files import load_config
from higgs_tune.inference.generate import load_for_cloning
from higgs_tune.inference.previews import TrainingPreviews
from higgs_tune.training.collate import MODEL_INPUTS
from higgs_tune.training.trainer import NonFiniteLossError, Trainer


def _cfg(tiny_model_dir, prepared_dir, out, *overrides):
    return train_config(
        tiny_model_dir,
        prepared_dir,
        out,
        "max_steps=4",
        "save_steps=100",
        "eval_steps=100",
        "learning_rate=1e-3",
        *overrides,
    )


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_audio_loss_is_nonzero_and_falls(tiny_model_dir, prepared_dir, tmp_path):
    # A random tiny model's frozen audio head caps what LoRA alone can do to its logits, so the head is
    # trained too here (the real checkpoint's head is already trained).
    overrides = ("max_steps=30", "learning_rate=3e-3", "lora.train_audio_head=true")
    Trainer(_cfg(tiny_model_dir, prepared_dir, tmp_path / "run", *overrides)).run()
    rows = [r for r in _metrics(tmp_path / "run") if "loss" in r]
    assert rows[0]["audio_loss"] > 0
    assert rows[-1]["audio_loss"] < 0.92 * rows[0]["audio_loss"], (rows[0], rows[-1])
    assert {"step", "loss", "audio_loss", "lr", "grad_norm", "tokens_per_sec", "loss_codebook_7"} <= rows[
        0
    ].keys()


def test_lora_changes_adapters_and_leaves_base_bit_identical(tiny_model_dir, prepared_dir, tmp_path):
    trainer = Trainer(_cfg(tiny_model_dir, prepared_dir, tmp_path / "run"))
    named = dict(trainer.model.named_parameters())
    base = {n: p.detach().clone() for n, p in named.items() if "lora_" not in n}
    adapters = {n: p.detach().clone() for n, p in named.items() if "lora_" in n}
    assert adapters and all(not named[n].requires_grad for n in base)
    trainer.run()
    for n, before in base.items():
        assert torch.equal(named[n].detach(), before), f"base weight {n} changed"
    unchanged = {n for n, before in adapters.items() if torch.equal(named[n].detach(), before)}
    # Only audio positions are scored without a text head, and the last layer's text MLP feeds nothing
    # after it: its adapters get no gradient. Every other adapter, text MLPs of earlier layers included,
    # must have been trained.
    assert unchanged == {n for n in adapters if "layers.1.mlp." in n}, sorted(unchanged)
    assert any("audio_mlp" in n for n in adapters if n not in unchanged)


def _record_gradient(into: list, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """A step pre-hook: the whole gradient the optimizer is about to apply, as one vector."""
    into.append(torch.cat([p.grad.flatten() for g in optimizer.param_groups for p in g["params"]]))


def test_accumulation_matches_larger_micro_batch(tiny_model_dir, prepared_dir, tmp_path):
    """Micro-batch 4 x 1 and micro-batch 1 x 4 over the same samples give the same gradient.

    What accumulation must get right is the gradient handed to the optimizer, so that is compared, taken
    just before the step. The weights after Adam are not: Adam divides by the gradient's own scale, so on
    a parameter whose gradient is near zero the float32 summation order (which differs between one batch
    of 4 and four of 1) becomes a relative difference of the whole update.
    """
    results = []
    for bs, accum in ((4, 1), (1, 4)):
        cfg = _cfg(
            tiny_model_dir,
            prepared_dir,
            tmp_path / f"run{bs}",
            "max_steps=1",
            f"per_device_train_batch_size={bs}",
            f"gradient_accumulation_steps={accum}",
            "full=true",
            "max_grad_norm=1e9",  # never clips, but reports the gradient norm
            "eval_fraction=0",
        )
        trainer = Trainer(cfg)
        grads: list[torch.Tensor] = []
        trainer.optimizer.optimizer.register_step_pre_hook(partial(_record_gradient, grads))
        trainer.run()
        assert len(grads) == 1
        results.append((grads[0], _metrics(tmp_path / f"run{bs}")[0]))
    (g4, m4), (g1, m1) = results
    assert m4["loss"] == pytest.approx(m1["loss"], rel=1e-5)
    assert m4["grad_norm"] == pytest.approx(m1["grad_norm"], rel=1e-4)
    # Each gradient entry is a float32 sum over thousands of positions, so summing in another order moves
    # it by a few ulps of the largest terms: compared against the gradient's scale, not entry by entry.
    # A missing or doubled normalisation (a factor of 4 or 1/4) is far outside this.
    scale = float(g4.abs().max())
    torch.testing.assert_close(g1, g4, rtol=0, atol=1e-5 * scale)
    assert float((g1 - g4).norm() / g4.norm()) < 1e-5


def test_resume_gives_the_same_losses_with_dropout(tiny_model_dir, prepared_dir, tmp_path):
    """LoRA dropout draws from the random generator on every step, so this holds only when nothing else
    (such as building the data iterator on resume) draws from it in one run and not the other."""
    overrides = ("max_steps=6", "save_steps=3", "save_total_limit=null", "lora.dropout=0.1")
    full_run = tmp_path / "full"
    Trainer(_cfg(tiny_model_dir, prepared_dir, full_run, *overrides)).run()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full_run / "checkpoint-3", resumed / "checkpoint-3")
    cfg = _cfg(tiny_model_dir, prepared_dir, resumed, *overrides)
    Trainer(cfg, resume=True).run()
    expected = {r["step"]: r["loss"] for r in _metrics(full_run) if "loss" in r}
    got = {r["step"]: r["loss"] for r in _metrics(resumed) if "loss" in r}
    assert sorted(got) == [4, 5, 6]
    for step, loss in got.items():
        assert loss == pytest.approx(expected[step], rel=1e-5), step


KILL_IN_SAVE = """
import os, signal, sys
from higgs_tune import checkpoint
from higgs_tune.config import TrainSettings
from higgs_tune.config_files import load_config
from higgs_tune.training.trainer import Trainer

def die(run_dir, step, *args, **kwargs):
    if step == 4:  # everything of checkpoint-4 is written but it is not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
    return real(run_dir, step, *args, **kwargs)

real = checkpoint.finalize
checkpoint.finalize = die
Trainer(load_config(TrainSettings, None, sys.argv[1:])).run()
"""


def test_kill_during_save_leaves_no_half_checkpoint(tiny_model_dir, prepared_dir, tmp_path):
    run = tmp_path / "run"
    overrides = [f"model={tiny_model_dir}", f"data={prepared_dir}", f"output_dir={run}"]
    overrides += ["max_steps=4", "save_steps=2", "warmup_steps=0", "save_total_limit=null"]
    proc = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *overrides], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert checkpoint.temporary_dir(run, 4).exists()
    assert checkpoint.last_checkpoint(run) == run / "checkpoint-2"
    trainer = Trainer(load_config(TrainSettings, None, overrides), resume=True)
    assert trainer.step == 2 and not checkpoint.temporary_dir(run, 4).exists()
    trainer.run()
    assert checkpoint.last_checkpoint(run) == run / "checkpoint-4"


def test_checkpoint_records_prompt_settings_and_clone_uses_them(tiny_model_dir, prepared_dir, tmp_path):
    cfg = _cfg(
        tiny_model_dir, prepared_dir, tmp_path / "run", "max_steps=1", "prompt.system_prompt=Talk like them."
    )
    final = Trainer(cfg).run()
    assert checkpoint.read_trainer_state(final)["prompt"] == {
        "system_prompt": "Talk like them.",
        "scene": "Audio is recorded from a quiet room.",  # the base model's default scene
        "text_normalisation": "none",  # the prepared data's
        "preset": "original",  # the original implementation's prompt (not vLLM-Omni's)
    }
    _, _, settings = load_for_cloning(str(tiny_model_dir), tmp_path / "run")
    assert settings.system_prompt == "Talk like them."
    _, _, overridden = load_for_cloning(str(tiny_model_dir), final, system_prompt="Other.", scene="Hall.")
    assert (overridden.system_prompt, overridden.scene) == ("Other.", "Hall.")


def test_non_finite_loss_names_step_samples_and_checkpoint(tiny_model_dir, prepared_dir, tmp_path):
    cfg = _cfg(
        tiny_model_dir,
        prepared_dir,
        tmp_path / "run",
        "max_steps=20",
        "save_steps=1",
        "learning_rate=1e30",
        "lr_scheduler_type=constant",
        "max_grad_norm=0",
        "full=true",
    )
    with pytest.raises(NonFiniteLossError) as err:
        Trainer(cfg).run()
    message = str(err.value)
    assert "at step" in message and "on samples [" in message and "checkpoint-" in message


def test_text_head_training_logs_text_loss(tiny_model_dir, prepared_dir, tmp_path):
    """The first step's logged losses are transformers' own audio and text losses of its batch (computed
    before the update), weighted 1 and `text_loss_weight`."""
    cfg = _cfg(tiny_model_dir, prepared_dir, tmp_path / "run", "text_loss_weight=0.5", "max_steps=1")
    trainer = Trainer(cfg)
    batch = next(trainer.data.micro_batches(0))
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    higgs = trainer.model.model.eval()  # dropout 0; eval mode changes nothing else here
    with torch.no_grad():
        audio = float(higgs(**inputs, audio_labels=batch["audio_labels"]).loss)
        text = float(higgs(**inputs, labels=batch["labels"]).loss)
    higgs.train()
    trainer.run()
    (row,) = [r for r in _metrics(tmp_path / "run") if "loss" in r]
    assert row["text_loss"] == pytest.approx(text, rel=1e-4) and text > 0
    assert row["audio_loss"] == pytest.approx(audio, rel=1e-4)
    assert row["loss"] == pytest.approx(audio + 0.5 * text, rel=1e-4)


def test_previews_are_cloned_checked_and_logged(tiny_model_dir, prepared_dir, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(tiny_model_dir, prepared_dir, run, "preview_steps=2", "eval_fraction=0.1")
    Trainer(cfg, previews=TrainingPreviews).run()
    sampled = [r for r in _metrics(run) if "previews" in r]
    assert [r["step"] for r in sampled] == [2, 4]
    assert all(len(r["previews"]) == 2 and all("flags" in s for s in r["previews"]) for r in sampled)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"audio": 0}).Reload()
    assert any(tag.startswith("previews/") for tag in events.Tags()["audio"])


def test_previews_without_a_hook_are_a_warning(tiny_model_dir, prepared_dir, tmp_path, caplog):
    """Cloning is a later stage (`inference.previews`), so the trainer is handed the previews rather than
    importing them; a run with preview_steps but no hook says so instead of dropping them silently."""
    cfg = _cfg(tiny_model_dir, prepared_dir, tmp_path / "run", "preview_steps=2", "eval_fraction=0.1")
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        trainer = Trainer(cfg)
    assert trainer.previews is None
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "preview_steps=2" in warning and "previews=TrainingPreviews" in warning
    assert Trainer(cfg, overwrite=True, previews=TrainingPreviews).previews is not None


def test_lora_training_state_holds_trainable_weights_only(tiny_model_dir, prepared_dir, tmp_path):
    from safetensors import safe_open

    trainer = Trainer(_cfg(tiny_model_dir, prepared_dir, tmp_path / "run", "max_steps=1"))
    final = trainer.run()
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    with safe_open(str(final / "state" / "model.safetensors"), "pt") as f:
        saved = set(f.keys())
    assert saved == trainable


def test_held_out_loss_is_the_training_loss_of_the_same_batch(tiny_model_dir, prepared_dir, tmp_path):
    """Held-out evaluation and training share one loss (`loss.combine`): the same model on the same batch
    gives the same loss, text head and codebook weights included."""
    cfg = _cfg(
        tiny_model_dir,
        prepared_dir,
        tmp_path / "run",
        "eval_fraction=0.1",
        "per_device_train_batch_size=4",
        "text_loss_weight=0.5",
        "codebook_weights=[2, 1, 1, 1, 1, 1, 1, 0.5]",
        "full=true",
    )
    trainer = Trainer(cfg)
    share = list(trainer.data.held_out_share())
    assert len(share) == 1 and share[0][0] == 1.0, "the whole held-out set is one batch"
    held_out = trainer.held_out_metrics()["eval_loss"]
    trained = trainer.train_step([share[0][1]])  # the loss is computed before the update
    assert trained["text_loss"] > 0
    assert float(trained["loss"]) == pytest.approx(held_out, rel=1e-5)
