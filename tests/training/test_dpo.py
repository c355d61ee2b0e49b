"""DPO on audio codes: the loss is the textbook one over the SFT masks, and training moves the margin the way
the pairs say (the trainer's reference pass and runs: test_dpo_trainer.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import train_config

from higgs_tune.config import PromptSettings
from higgs_tune.model.loading import load_model
from higgs_tune.training.build import prepare_for_training
from higgs_tune.training.collate import MODEL_INPUTS
from higgs_tune.training.dpo import PairCollator, PreferencePair, clip_logprobs, dpo_loss, dpo_step_loss
from higgs_tune.training.examples import IGNORE, build_example
from higgs_tune.training.loss import CloningLossModel

BETA = 0.5


def _codes(frames: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 1024, (8, frames), generator=torch.Generator().manual_seed(seed))


def _pairs(processor, swap: bool = False) -> list[PreferencePair]:
    """Two prompts (reference voice + text), each with a fixed chosen clip and a different rejected one."""
    pairs = []
    for i in range(2):
        ref = _codes(10 + i, seed=i)
        good, bad = _codes(6 + i, seed=100 + i), _codes(9 - i, seed=200 + i)
        if swap:
            good, bad = bad, good
        build = lambda codes, i=i, ref=ref: build_example(  # noqa: E731
            processor, f"p{i}", f"reference {i}", ref, f"say {i}", codes, PromptSettings()
        )
        pairs.append(PreferencePair(chosen=build(good), rejected=build(bad)))
    return pairs


def _plain_logprobs(higgs, processor, batch) -> torch.Tensor:
    """Each row's log p(target audio), from the model's own forward and a position-by-position shift."""
    logits = higgs(**{k: batch[k] for k in MODEL_INPUTS}).logits.float()
    logp = F.log_softmax(logits.view(*logits.shape[:2], 8, -1), dim=-1)
    totals = torch.zeros(logits.shape[0])
    for b in range(logits.shape[0]):
        ids = batch["input_ids"][b]
        positions = ((ids == processor.audio_token_id) | (ids == processor.audio_delay_token_id)).nonzero()
        labels = batch["audio_labels"][b][batch["audio_input_ids_mask"][b]]
        for frame, p in enumerate(positions.flatten().tolist()):
            for k in range(8):
                if labels[frame, k] != IGNORE:
                    totals[b] += logp[b, p - 1, k, labels[frame, k]]
    return totals


@pytest.fixture
def lora(tiny_model_dir, prepared_dir, tmp_path):
    """The tiny model with a LoRA adapter moved away from zero, so policy and reference differ."""
    cfg = train_config(tiny_model_dir, prepared_dir, tmp_path)
    model = prepare_for_training(load_model(tiny_model_dir), cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return model.eval()


def test_dpo_loss_equals_the_hand_computed_one(lora, tiny_model, processor) -> None:
    batch = PairCollator(processor)(_pairs(processor))
    reference = _plain_logprobs(tiny_model, processor, batch)
    batch["reference_logp"] = reference
    loss, parts = dpo_step_loss(lora, batch, BETA)

    policy = _plain_logprobs(lora.higgs, processor, batch)
    torch.testing.assert_close(clip_logprobs(lora, batch), policy, rtol=1e-5, atol=1e-3)
    margin = BETA * ((policy[:2] - reference[:2]) - (policy[2:] - reference[2:]))
    # Sums of ~100 log-probs in float32, by two routes (fused cross-entropy, log-softmax and gather).
    torch.testing.assert_close(loss, -F.logsigmoid(margin).mean(), rtol=0, atol=5e-4)
    torch.testing.assert_close(parts["reward_accuracy"], (margin > 0).float().mean())
    torch.testing.assert_close(parts["reward_margin"], margin.mean(), rtol=0, atol=5e-4)
    assert not torch.allclose(policy, reference)  # the adapter really is on for the policy


def test_sft_term_is_the_chosen_clips_cross_entropy_per_frame(lora, tiny_model, processor) -> None:
    batch = PairCollator(processor)(_pairs(processor))
    batch["reference_logp"] = _plain_logprobs(tiny_model, processor, batch)
    plain, _ = dpo_step_loss(lora, batch, BETA)
    with_sft, parts = dpo_step_loss(lora, batch, BETA, sft_weight=0.5)
    chosen_frames = sum(int((p.chosen.audio_labels != IGNORE).sum()) // 8 for p in _pairs(processor))
    sft = -_plain_logprobs(lora.higgs, processor, batch)[:2].sum() / chosen_frames
    torch.testing.assert_close(parts["sft_loss"], sft, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(with_sft - plain, 0.5 * sft, rtol=1e-4, atol=1e-3)


def _train_margins(tiny_model_dir, prepared_dir, tmp_path, processor, swap: bool) -> list[float]:
    cfg = train_config(tiny_model_dir, prepared_dir, tmp_path)
    model = prepare_for_training(load_model(tiny_model_dir), cfg).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    batch = PairCollator(processor)(_pairs(processor, swap=swap))
    with torch.no_grad():  # the reference: the starting model (the base, as LoRA starts at zero)
        batch["reference_logp"] = clip_logprobs(CloningLossModel(load_model(tiny_model_dir)).eval(), batch)
    margins = []
    for _ in range(12):
        loss, parts = dpo_step_loss(model, batch, BETA, sft_weight=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        margins.append(float(parts["reward_margin"]))
    with torch.no_grad():
        _, parts = dpo_step_loss(model.eval(), batch, BETA)
    margins.append(float(parts["reward_margin"]))
    assert float(parts["reward_accuracy"]) == 1.0
    return margins


def test_training_raises_the_chosen_margin_and_swapping_reverses_it(
    tiny_model_dir, prepared_dir, tmp_path, processor
) -> None:
    """Pairs (A over B) make the margin of A over B grow; swapped pairs (B over A) make B win instead."""
    forward = _train_margins(tiny_model_dir, prepared_dir, tmp_path / "a", processor, swap=False)
    swapped = _train_margins(tiny_model_dir, prepared_dir, tmp_path / "b", processor, swap=True)
    assert forward[0] == pytest.approx(0.0, abs=1e-4)  # LoRA starts at the base: no reward yet
    assert forward[-1] > 1.0 and swapped[-1] > 1.0


def test_reward_figures_follow_the_formula() -> None:
    chosen, rejected = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -15.0])
    ref_chosen, ref_rejected = torch.tensor([-11.0, -20.0]), torch.tensor([-11.0, -16.0])
    losses, parts = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1)
    margins = torch.tensor([0.1 * (1.0 - (-1.0)), 0.1 * (0.0 - 1.0)])
    torch.testing.assert_close(losses, -F.logsigmoid(margins))
    assert parts["reward_accuracy"].tolist() == [1.0, 0.0]
    torch.testing.assert_close(parts["reward_margin"], margins)
    assert parts["chosen_logp"].tolist() == [-10.0, -20.0]
