"""Direct preference optimisation on audio codes: raise a chosen clip's probability over a rejected one's.

For a prompt x (the cloning prompt: reference voice, target text) with a chosen clip y_w and a rejected
clip y_l, DPO minimises

    -log sigmoid( beta * [ (log p(y_w|x) - log p_ref(y_w|x)) - (log p(y_l|x) - log p_ref(y_l|x)) ] )

where log p(y|x) is the sum of the log-probabilities of every labelled code of the clip: each frame's 8
codebooks and the stream EOS, exactly what supervised training learns (the same `build_example` prompt and
`mask_labels` masks, so DPO cannot score a position SFT does not). The reference p_ref is the starting
model; with LoRA it is the same model with its adapter disabled, so no second copy is held in memory.
`beta * (log p - log p_ref)` is a candidate's implicit reward; the step logs its accuracy (chosen above
rejected) and margin. An optional SFT term on the chosen clip keeps the model from drifting away from
speech it already made well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from higgs_tune.training.collate import LOSS_INPUTS, Collator
from higgs_tune.training.examples import IGNORE, Example
from higgs_tune.training.loss import CloningLossModel


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with two clips of it, both built by `build_example` (same prompt, same masks)."""

    chosen: Example
    rejected: Example


class PairCollator:
    """A batch of P pairs as one batch of 2P rows: the chosen clips first, then the rejected ones."""

    def __init__(self, processor) -> None:
        self.collate = Collator(processor)

    def __call__(self, pairs: list[PreferencePair]) -> dict:
        batch = self.collate([p.chosen for p in pairs] + [p.rejected for p in pairs])
        batch["num_pairs"] = len(pairs)
        return batch


def clip_logprobs(model: CloningLossModel, batch: dict) -> torch.Tensor:
    """log p(clip | prompt) of every row of `batch`: minus its summed cross-entropy over labelled codes."""
    sums = model(**{k: batch[k] for k in LOSS_INPUTS}, per_row=True)
    return -sums.audio_per_row


@contextlib.contextmanager
def reference_of(
    model: CloningLossModel, reference: CloningLossModel | None = None
) -> Iterator[CloningLossModel]:
    """The reference model: `reference` when given (full fine-tuning keeps a frozen copy), else `model` with
    its LoRA adapter disabled (peft's `disable_adapter`), which is exactly the starting model."""
    if reference is not None:
        yield reference
        return
    if not hasattr(model.model, "disable_adapter"):
        raise ValueError("DPO without LoRA needs a frozen reference model: pass `reference`")
    with model.model.disable_adapter():
        yield model


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DPO loss of each pair [P] from the four log-probabilities, and the implicit rewards' figures."""
    chosen_reward = beta * (chosen - ref_chosen)
    rejected_reward = beta * (rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    losses = -F.logsigmoid(margin)
    parts = {
        "reward_accuracy": (margin > 0).float().mean(),
        "reward_margin": margin.mean(),
        "chosen_reward": chosen_reward.mean(),
        "rejected_reward": rejected_reward.mean(),
        "chosen_logp": chosen.mean(),
        "rejected_logp": rejected.mean(),
    }
    return losses, {k: v.detach() for k, v in parts.items()}


def dpo_step_loss(
    model: CloningLossModel,
    batch: dict,
    beta: float,
    sft_weight: float = 0.0,
    reference: CloningLossModel | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss to backpropagate for a batch from `PairCollator`: mean DPO loss over its pairs, plus
    `sft_weight` times the chosen clips' mean per-frame cross-entropy. The reference pass runs without
    gradients."""
    pairs = batch["num_pairs"]
    logp = clip_logprobs(model, batch)
    with torch.no_grad(), reference_of(model, reference) as ref:
        ref_logp = clip_logprobs(ref, batch)
    losses, parts = dpo_loss(logp[:pairs], logp[pairs:], ref_logp[:pairs], ref_logp[pairs:], beta)
    loss = losses.mean()
    if sft_weight > 0:
        num_codebooks = batch["audio_targets"].shape[-1]
        chosen_frames = _labelled_frames(batch, pairs) / num_codebooks
        sft = -logp[:pairs].sum() / chosen_frames.clamp(min=1.0)
        loss = loss + sft_weight * sft
        parts["sft_loss"] = sft.detach()
    parts["dpo_loss"] = losses.mean().detach()
    return loss, parts


def _labelled_frames(batch: dict, pairs: int) -> torch.Tensor:
    """Labelled codes in the chosen rows (rows < `pairs`), counted from the loss targets."""
    rows = torch.div(batch["audio_index"], batch["input_ids"].shape[1], rounding_mode="floor")
    labelled = (batch["audio_targets"] != IGNORE).sum(-1)
    return labelled[rows < pairs].sum().float()
