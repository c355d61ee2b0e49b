"""The training loss: the next-token shift, applied exactly once, and the loss over only what is learned.

`next_token_targets` is the only place where labels are shifted: the label of position t+1 is scored
against the output at position t. The collator calls it on CPU, so the training step gathers hidden
states at known positions without a host-device synchronisation, and `CloningLossModel` applies the
8 x 1026-class audio head (and the 128k-class text head) only where a label exists instead of over the
whole sequence.

Normalisation: the audio loss is sum over codebooks of w_k * sum(CE_k) / N, where N is the number of
labelled frames in the whole optimizer step (all micro-batches, all ranks). With unit weights and one
micro-batch this is exactly the model's own loss (sum over codebooks of the per-codebook mean), which a
test checks; with accumulation it makes micro-batch 4 x 1 and micro-batch 1 x 4 give the same update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from higgs_tune.training.examples import IGNORE
from higgs_tune.training.stop_health import StopHealthSums, stop_health_sums


def next_token_targets(
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    audio_labels: torch.Tensor,
    audio_input_ids_mask: torch.Tensor,
    audio_placeholder: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Shift labels by one position, once, and keep only positions whose next token is labelled.

    Inputs are batched [B, L] / [B, F, K] in the model's unshifted layout. Returns flat indices into the
    B*L positions whose output predicts a labelled next position, with the targets they are scored on:
    `audio_index` [N], `audio_targets` [N, K], `text_index` [M], `text_targets` [M].
    """
    batch, length = input_ids.shape
    num_codebooks = audio_labels.shape[-1]
    per_position = torch.full((batch, length, num_codebooks), IGNORE, dtype=torch.long)
    per_position[audio_placeholder] = audio_labels[audio_input_ids_mask]
    # Output at position t predicts position t + 1.
    next_audio = per_position[:, 1:]
    next_text = labels[:, 1:]
    audio_rows = (next_audio != IGNORE).any(-1)
    text_rows = next_text != IGNORE
    flat = torch.arange(batch * length).view(batch, length)[:, :-1]
    return {
        "audio_index": flat[audio_rows],
        "audio_targets": next_audio[audio_rows],
        "text_index": flat[text_rows],
        "text_targets": next_text[text_rows],
    }


@dataclass
class LossSums:
    """Un-normalised loss sums of one micro-batch; the trainer divides by step-wide counts."""

    audio_per_codebook: torch.Tensor  # [K] summed cross-entropy per codebook
    text: torch.Tensor  # [] summed text cross-entropy (0 without a text head)
    audio_per_row: torch.Tensor | None = None  # [B] each row's summed cross-entropy: -log p(its target audio)
    stop_health: StopHealthSums | None = None  # in eval mode only (held-out evaluation, `eval`)


class CloningLossModel(nn.Module):
    """Wraps a (possibly peft-wrapped) `HiggsAudioV2ForConditionalGeneration` for training.

    The wrapper is what DDP / FSDP / DeepSpeed wrap, so the whole loss, heads included, runs inside
    their forward. It runs the backbone once, gathers the hidden states at the positions that predict
    a label, and applies the heads there only.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model  # a HiggsAudioV2ForConditionalGeneration, or a peft model around one

    @property
    def higgs(self) -> nn.Module:
        """The HiggsAudioV2ForConditionalGeneration inside (peft injects adapters into its modules, so
        calling them directly trains the adapters). Not a second registered submodule, which would
        duplicate every weight in state dicts."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio_input_ids: torch.Tensor,
        audio_input_ids_mask: torch.Tensor,
        audio_index: torch.Tensor,
        audio_targets: torch.Tensor,
        text_index: torch.Tensor,
        text_targets: torch.Tensor,
        per_row: bool = False,
    ) -> LossSums:
        """The loss sums of a batch; with `per_row` also each row's summed cross-entropy (DPO scores
        whole clips), which the training step of SFT does not need."""
        hidden = self.higgs.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            audio_input_ids=audio_input_ids,
            audio_input_ids_mask=audio_input_ids_mask,
            use_cache=False,
        ).last_hidden_state
        hidden = hidden.flatten(0, 1)
        num_codebooks = audio_targets.shape[-1]
        audio_logits = self.higgs.audio_lm_head(hidden.index_select(0, audio_index)).float()
        audio_logits = audio_logits.view(audio_index.shape[0], num_codebooks, -1)
        ce = F.cross_entropy(
            audio_logits.reshape(-1, audio_logits.shape[-1]),
            audio_targets.reshape(-1),
            ignore_index=IGNORE,
            reduction="none",
        ).view(-1, num_codebooks)
        text = hidden.new_zeros((), dtype=torch.float32)
        if self.higgs.text_lm_head is not None:
            # Run even on an empty selection (a sum of 0): the head stays in the graph of every step,
            # so DDP never finds it unused.
            text_logits = self.higgs.text_lm_head(hidden.index_select(0, text_index)).float()
            text = F.cross_entropy(text_logits, text_targets, ignore_index=IGNORE, reduction="sum")
        # Which batch row (clip) each scored position belongs to: per-clip sums serve DPO and stop health.
        clip_of_row = torch.div(audio_index, input_ids.shape[1], rounding_mode="floor")
        row_sums = ce.new_zeros(input_ids.shape[0]).index_add(0, clip_of_row, ce.sum(-1)) if per_row else None
        health = None
        if not self.training:
            # Held-out evaluation: the same logits also say whether the model is learning to stop.
            health = stop_health_sums(
                audio_logits, audio_targets, clip_of_row, self.higgs.config.audio_stream_eos_id
            )
        return LossSums(audio_per_codebook=ce.sum(0), audio_per_row=row_sums, text=text, stop_health=health)


def combine(
    sums: LossSums,
    num_audio_frames: int | torch.Tensor,
    num_text_tokens: int | torch.Tensor,
    codebook_weights: torch.Tensor,
    text_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Normalise a micro-batch's sums by the step-wide counts and weight them into the loss to backprop.

    Returns the loss and its detached parts (audio, text, per-codebook) for logging.
    """
    per_codebook = sums.audio_per_codebook / max(float(num_audio_frames), 1.0)
    audio = (per_codebook * codebook_weights.to(per_codebook.device)).sum()
    text = sums.text / max(float(num_text_tokens), 1.0)
    loss = audio + text_weight * text if text_weight > 0 else audio
    parts = {"audio_loss": audio.detach(), "text_loss": text.detach(), "per_codebook": per_codebook.detach()}
    return loss, parts
