"""Collation: pad a list of examples of mixed lengths into one batch the model and the loss take.

Text is right-padded with the pad token (attention mask 0, labels -100); audio frames are right-padded
with the stream EOS and masked out through `audio_input_ids_mask`, as `HiggsAudioV2Processor` does. The
next-token targets are computed here, on CPU, by `loss.next_token_targets`.
"""

from __future__ import annotations

import torch

from higgs_tune.model.prompt import audio_positions
from higgs_tune.training.examples import IGNORE, Example
from higgs_tune.training.loss import next_token_targets


class Collator:
    """Turns examples into a padded batch plus the loss's next-token targets and label counts."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.pad_token_id = processor.tokenizer.pad_token_id
        self.audio_pad_id = processor.audio_stream_eos_id

    def __call__(self, examples: list[Example]) -> dict:
        batch = len(examples)
        length = max(e.num_tokens for e in examples)
        frames = max(e.audio_input_ids.shape[0] for e in examples)
        num_codebooks = examples[0].audio_input_ids.shape[1]

        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, length), dtype=torch.long)
        labels = torch.full((batch, length), IGNORE, dtype=torch.long)
        audio_input_ids = torch.full((batch, frames, num_codebooks), self.audio_pad_id, dtype=torch.long)
        audio_input_ids_mask = torch.zeros((batch, frames), dtype=torch.bool)
        audio_labels = torch.full((batch, frames, num_codebooks), IGNORE, dtype=torch.long)
        for i, e in enumerate(examples):
            n, f = e.num_tokens, e.audio_input_ids.shape[0]
            input_ids[i, :n] = e.input_ids
            attention_mask[i, :n] = 1
            labels[i, :n] = e.labels
            audio_input_ids[i, :f] = e.audio_input_ids
            audio_input_ids_mask[i, :f] = True
            audio_labels[i, :f] = e.audio_labels

        placeholder = audio_positions(self.processor, input_ids)
        targets = next_token_targets(input_ids, labels, audio_labels, audio_input_ids_mask, placeholder)
        return {
            "sample_ids": [e.sample_id for e in examples],
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "audio_input_ids": audio_input_ids,
            "audio_input_ids_mask": audio_input_ids_mask,
            "audio_labels": audio_labels,
            **targets,
            # Label counts as Python ints, so step-wide normalisation needs no device synchronisation.
            "num_audio_frames": int((targets["audio_targets"] != IGNORE).sum()) // num_codebooks,
            "num_text_tokens": int(targets["text_targets"].numel()),
            "num_tokens": int(attention_mask.sum()),
            "num_padded_tokens": batch * length,
        }


MODEL_INPUTS = ("input_ids", "attention_mask", "audio_input_ids", "audio_input_ids_mask")
LOSS_INPUTS = (*MODEL_INPUTS, "audio_index", "audio_targets", "text_index", "text_targets")
