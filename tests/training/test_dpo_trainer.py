"""`train objective=dpo`: the reference is the starting model, runs prefer the chosen clips, resume is
exact, and the config refuses what DPO cannot use."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import synthetic_prefs

import higgs_tune
from higgs_tune.config import TrainSettings
from higgs_tune.config_files import ConfigError, load_config
from higgs_tune.model.loading import load_finetuned, load_model
from higgs_tune.training.dpo import clip_logprobs
from higgs_tune.training.dpo_trainer import DpoTrainer
from higgs_tune.training.loss import CloningLossModel
from higgs_tune.training.run import train


def dpo_config(model: Path, prefs: Path, out: Path, *overrides: str) -> TrainSettings:
    base = [
        "objective=dpo",
        f"model={model}",
        f"prefs={prefs}",
        f"output_dir={out}",
        "max_steps=8",
        "warmup_steps=0",
        "logging_steps=1",
        "per_device_train_batch_size=2",
        "learning_rate=5e-3",
        "lora.dropout=0",
        "eval_fraction=0",
        "report_to=[none]",
        "dpo.beta=0.5",
    ]
    return load_config(TrainSettings, None, [*base, *overrides])


@pytest.fixture(scope="module")
def prefs_dir(tmp_path_factory, prepared_dir, tiny_model_dir) -> Path:
    return synthetic_prefs(prepared_dir, tiny_model_dir, tmp_path_factory.mktemp("prefs") / "p", pairs=4)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _starting_logprobs(model, trainer: DpoTrainer) -> torch.Tensor:
    """Each pair's (chosen, rejected) log-probabilities under `model`, by a plain pass of our own."""
    wrapped = CloningLossModel(model).eval()
    every = trainer.data.reference_share()
    with torch.no_grad():
        rows = [clip_logprobs(wrapped, batch).view(2, -1).T for _, _, batch in every]
    return torch.cat(rows).double()


def _cached_reference(run: Path) -> torch.Tensor:
    cached = json.loads((run / "reference_logps.json").read_text())
    return torch.tensor([cached["chosen"], cached["rejected"]], dtype=torch.float64).T


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_reference_is_the_starting_model_and_a_lora_base_never_changes(
    tiny_model_dir, prefs_dir, tmp_path, caplog, mode
):
    """The reference needs no second model: fresh LoRA adapters start at zero and full fine-tuning has not
    stepped yet, so in both the starting model that scores the pairs is the base."""
    extra = ["full=true", "max_steps=2"] if mode == "full" else []
    trainer = DpoTrainer(dpo_config(tiny_model_dir, prefs_dir, tmp_path / "run", *extra))
    assert "were drawn from" not in caplog.text  # the model that drew the candidates is the one trained
    base = load_model(tiny_model_dir)
    torch.testing.assert_close(_cached_reference(tmp_path / "run"), _starting_logprobs(base, trainer))
    trainer.run()
    named = trainer.model.model.named_parameters()
    weights = {n.removeprefix("base_model.model.").replace(".base_layer", ""): p for n, p in named}
    changed = [n for n, p in base.named_parameters() if not torch.equal(p, weights[n].to(p.dtype))]
    assert (changed == []) == (mode == "lora")
    if mode == "lora":  # after training, the adapter disabled still gives the reference exactly
        with trainer.model.model.disable_adapter():
            after = _starting_logprobs(trainer.model.model, trainer)
        torch.testing.assert_close(_cached_reference(tmp_path / "run"), after)
    first = _rows(tmp_path / "run")[0]
    assert first["reward_margin"] == pytest.approx(0.0, abs=1e-3)  # step 1 scores the reference itself


def test_dpo_prefers_the_chosen_clips_and_swapped_pairs_the_other_way(
    tiny_model_dir, prepared_dir, prefs_dir, tmp_path
) -> None:
    swapped = synthetic_prefs(prepared_dir, tiny_model_dir, tmp_path / "swapped", pairs=4, swap=True)
    for prefs, run in ((prefs_dir, tmp_path / "a"), (swapped, tmp_path / "b")):
        # One micro-batch of all 4 pairs a step: a smooth climb, as the whole batch moves together.
        train(dpo_config(tiny_model_dir, prefs, run, "per_device_train_batch_size=4", "learning_rate=2e-3"))
        rows = _rows(run)
        assert rows[-1]["reward_accuracy"] == 1.0
        assert rows[-1]["reward_margin"] > 0.5 and abs(rows[0]["reward_margin"]) < 1e-3
        assert rows[-1]["loss"] < 0.5 < rows[0]["loss"]
        assert rows[-1]["chosen_reward"] > rows[-1]["rejected_reward"]
    # Run a learned A over B, run b (the same pairs swapped) B over A: the same clips, opposite ways.
    a, b = _rows(tmp_path / "a")[-1], _rows(tmp_path / "b")[-1]
    assert a["chosen_logp"] - a["rejected_logp"] > 0 > b["rejected_logp"] - b["chosen_logp"]


def test_dpo_starts_from_an_sft_adapter(tiny_model_dir, prepared_dir, prefs_dir, tmp_path, caplog) -> None:
    from conftest import train_config

    sft = tmp_path / "sft"
    train(
        train_config(
            tiny_model_dir, prepared_dir, sft, "max_steps=2", "learning_rate=1e-2", "report_to=[none]"
        )
    )
    trainer = DpoTrainer(dpo_config(tiny_model_dir, prefs_dir, tmp_path / "dpo", f"init_adapter={sft}"))
    assert "were drawn from model" in caplog.text  # the candidates came from the base, not the adapter
    merged, _ = load_finetuned(tiny_model_dir, sft)
    reference = _cached_reference(tmp_path / "dpo")
    torch.testing.assert_close(reference, _starting_logprobs(merged, trainer), rtol=1e-4, atol=1e-2)
    assert not torch.allclose(reference, _starting_logprobs(load_model(tiny_model_dir), trainer), atol=1.0)
    trainer.run()
    assert _rows(tmp_path / "dpo")[0]["reward_margin"] == pytest.approx(0.0, abs=1e-2)


def test_dpo_from_an_adapter_with_dropout_starts_at_the_reference(
    tiny_model_dir, prepared_dir, prefs_dir, tmp_path
) -> None:
    """An adapter trained with LoRA dropout keeps it in its own config: DPO turns it off (as its reference
    pass does), so step 1 scores the reference itself: loss ln 2 and margin 0."""
    from conftest import train_config

    sft = tmp_path / "sft"
    train(
        train_config(
            tiny_model_dir, prepared_dir, sft, "max_steps=1", "lora.dropout=0.05", "report_to=[none]"
        )
    )
    run = tmp_path / "dpo"
    train(dpo_config(tiny_model_dir, prefs_dir, run, f"init_adapter={sft}", "max_steps=1"))
    first = _rows(run)[0]
    # Policy and reference log-probs are float32 sums of ~2000 terms, batched alike here (0 apart when
    # run); with the adapter's dropout on, the tiny model starts 6e-5 off ln 2 at a margin of 1.2e-4.
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert first["reward_margin"] == pytest.approx(0.0, abs=1e-5)


def test_a_resumed_dpo_run_continues_exactly(tiny_model_dir, prefs_dir, tmp_path) -> None:
    """Resumed from step 2 with its reference cache gone: the reference pass runs again before the
    checkpoint's weights are restored, so it is the starting model's, and the losses continue exactly."""
    common = ("save_steps=2", "save_total_limit=null", "max_steps=4")
    train(dpo_config(tiny_model_dir, prefs_dir, tmp_path / "whole", *common))
    # Killed after saving step 2: the later checkpoint never written, the reference cache lost.
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoint-4")
    (tmp_path / "cut" / "reference_logps.json").unlink()
    train(dpo_config(tiny_model_dir, prefs_dir, tmp_path / "cut", *common), resume=True)
    reference = tmp_path / "whole" / "reference_logps.json"
    assert (tmp_path / "cut" / "reference_logps.json").read_text() == reference.read_text()
    whole, cut = _rows(tmp_path / "whole"), _rows(tmp_path / "cut")
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    for w, c in zip(whole, cut, strict=True):
        assert c["loss"] == pytest.approx(w["loss"], rel=1e-5, abs=1e-6)
        assert c["reward_margin"] == pytest.approx(w["reward_margin"], rel=1e-4, abs=1e-5)


def test_the_config_says_what_dpo_cannot_use_all_at_once(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(
            TrainSettings,
            None,
            [
                "objective=dpo",
                "data=d",
                "max_tokens_per_batch=8192",
                "text_loss_weight=1",
                "init_adapter=a",
                "full=true",
            ],
        )
    text = str(e.value)
    for needle in ("not data", "max_tokens_per_batch=null", "text_loss_weight=0", "drop one of them"):
        assert needle in text
    with pytest.raises(ConfigError, match="objective=dpo only"):
        load_config(TrainSettings, None, ["prefs=p", "metric_for_best_model=eval_reward_accuracy"])
    with pytest.raises(ConfigError, match="prefs is required"):
        DpoTrainer(load_config(TrainSettings, None, ["objective=dpo", "model=m", f"output_dir={tmp_path}"]))


def test_two_processes_match_one_with_the_same_global_batch(tiny_model_dir, prepared_dir, tmp_path) -> None:
    """`torchrun` with 2 gloo processes of 1 pair each steps exactly like 1 process of 2 pairs: the loss is
    normalised by the step's pairs over all ranks, the reference pass is shared out and gathered, and the
    one held-out pair is measured by rank 0 while rank 1 runs a weight-0 copy."""
    prefs_dir = synthetic_prefs(
        prepared_dir, tiny_model_dir, tmp_path / "prefs", pairs=5
    )  # 4 train, 1 held out
    common = [
        "max_steps=3",
        "eval_fraction=0.2",
        "eval_steps=3",
        "report_to=[none]",
        "seed=5",
        "dpo.beta=0.5",
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(higgs_tune.__file__).parents[1]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "higgs_tune.cli", "train", "--objective", "dpo", "--model", str(tiny_model_dir)]
    cmd += ["--prefs", str(prefs_dir), "--out", str(tmp_path / "two"), "lora.dropout=0", "warmup_steps=0"]
    cmd += ["logging_steps=1", "learning_rate=2e-3", "per_device_train_batch_size=1", *common]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    train(dpo_config(tiny_model_dir, prefs_dir, tmp_path / "one", "learning_rate=2e-3", *common))
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["step"] for r in two] == [r["step"] for r in one] == [1, 2, 3, 3]
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "reward_margin", "chosen_logp", "grad_norm", "eval_loss", "eval_eos_prob"):
            if key in a:
                # Clip log-probs are float32 sums of ~2000 terms, padded differently per batch: ~1e-4 apart.
                assert b[key] == pytest.approx(a[key], rel=2e-4, abs=1e-4), (a["step"], key)
    cached = [json.loads((tmp_path / run / "reference_logps.json").read_text()) for run in ("one", "two")]
    assert cached[0]["chosen"] == pytest.approx(cached[1]["chosen"], rel=1e-6)
