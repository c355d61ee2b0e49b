"""Direct preference optimisation on audio codes: raise a chosen clip's probability over a rejected one's.

For a prompt x (the cloning prompt: reference voice, target text) with a chosen clip y_w and a rejected
clip y_l, DPO minimises

    -log sigmoid( beta * [ (log p(y_w|x) - log p_ref(y_w|x)) - (log p(y_l|x) - log p_ref(y_l|x)) ] )

where log p(y|x) is the sum of the log-probabilities of every labelled code of the clip: each frame's 8
codebooks and the stream EOS, exactly what supervised training learns (the same `build_example` prompt and
`mask_labels` masks, so DPO cannot score a position SFT does not; a candidate cut at its length limit has
no EOS label). `beta * (log p - log p_ref)` is a candidate's implicit reward; the step logs its accuracy
(chosen above rejected) and margin. An optional SFT term on the chosen clip keeps the model from drifting
away from speech it already made well.

The reference p_ref is the starting model: the model before its first step (with fresh LoRA adapters that
is the base, since peft starts them at zero; with `init_adapter` the base plus that adapter). Its
log-probabilities of every pair are computed once, before training, by the same `clip_logprobs`
(`DpoTrainer`), so no second copy of the model is held and no reference forward pass runs in a step; that
works alike for LoRA, full fine-tuning, FSDP and DeepSpeed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from higgs_tune.training.collate import LOSS_INPUTS, Collator
from higgs_tune.training.examples import IGNORE, Example
from higgs_tune.training.loss import CloningLossModel


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with two clips of it, both built by `build_example` (same prompt, same masks), and the
    reference model's log-probabilities of both (None before the reference pass)."""

    chosen: Example
    rejected: Example
    reference: tuple[float, float] | None = None


class PairCollator:
    """A batch of P pairs as one batch of 2P rows: the chosen clips first, then the rejected ones."""

    def __init__(self, processor) -> None:
        self.collate = Collator(processor)

    def __call__(self, pairs: list[PreferencePair]) -> dict:
        batch = self.collate([p.chosen for p in pairs] + [p.rejected for p in pairs])
        batch["num_pairs"] = len(pairs)
        batch["num_chosen_frames"] = sum(_labelled_frames(p.chosen) for p in pairs)
        if all(p.reference is not None for p in pairs):
            batch["reference_logp"] = torch.tensor(
                [p.reference[0] for p in pairs] + [p.reference[1] for p in pairs], dtype=torch.float32
            )
        return batch


def chosen_and_rejected(rows: torch.Tensor, pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A pair batch's per-row values split into its chosen rows and its rejected rows (`PairCollator`
    puts the `pairs` chosen clips first)."""
    return rows[:pairs], rows[pairs:]


def _labelled_frames(example: Example) -> int:
    """Labelled frames of an example (labelled codes over codebooks; the stream EOS counts as one)."""
    return int((example.audio_labels != IGNORE).sum()) // example.audio_labels.shape[1]


def clip_logprobs(model: CloningLossModel, batch: dict) -> torch.Tensor:
    """log p(clip | prompt) of every row of `batch`: minus its summed cross-entropy over labelled codes."""
    sums = model(**{k: batch[k] for k in LOSS_INPUTS}, per_row=True)
    return -sums.audio_per_row


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DPO loss of each pair [P] from the four log-probabilities, and each pair's figures [P]: whether
    its implicit rewards rank it right (`reward_accuracy`), their margin, both rewards and log-probs."""
    chosen_reward = beta * (chosen - ref_chosen)
    rejected_reward = beta * (rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    figures = {
        "reward_accuracy": (margin > 0).float(),
        "reward_margin": margin,
        "chosen_reward": chosen_reward,
        "rejected_reward": rejected_reward,
        "chosen_logp": chosen,
        "rejected_logp": rejected,
    }
    return -F.logsigmoid(margin), {k: v.detach() for k, v in figures.items()}


def dpo_step_loss(
    model: CloningLossModel,
    batch: dict,
    beta: float,
    sft_weight: float = 0.0,
    step_pairs: float | None = None,
    step_chosen_frames: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This batch's share of a step's loss: its pairs' DPO losses summed over the step's pair count, plus
    `sft_weight` times its chosen clips' cross-entropy summed over the step's labelled chosen frames.

    The counts default to this batch's own (a step of one batch). Summed over a step's micro-batches and
    processes, loss and figures are the step's means whatever the split, as in SFT (`trainer`). The batch
    carries the reference log-probabilities (`PairCollator`, from the reference pass).
    """
    pairs = batch["num_pairs"]
    step_pairs = step_pairs or pairs
    logp = clip_logprobs(model, batch)
    reference = batch["reference_logp"].to(logp.device)
    losses, figures = dpo_loss(
        *chosen_and_rejected(logp, pairs), *chosen_and_rejected(reference, pairs), beta
    )
    parts = {k: v.sum() / step_pairs for k, v in figures.items()}
    parts["dpo_loss"] = losses.detach().sum() / step_pairs
    loss = losses.sum() / step_pairs
    if sft_weight > 0:
        frames = step_chosen_frames or max(batch["num_chosen_frames"], 1)
        sft = -chosen_and_rejected(logp, pairs)[0].sum() / frames
        loss = loss + sft_weight * sft
        parts["sft_loss"] = sft.detach()
    return loss, parts
