"""Training examples: a prompt from `prompt.build_prompt` plus the labels that say what is learned.

Labels are in the model's own layout, unshifted: `labels[t]` is the text label of position t and
`audio_labels[f]` the codes label of audio frame f, exactly what `HiggsAudioV2ForConditionalGeneration`
takes as `labels` / `audio_labels`. The next-token shift happens later, once, in `loss.next_token_targets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from higgs_tune.config import PromptSettings
from higgs_tune.model.prompt import PromptLengths, PromptTokens, audio_positions, build_prompt
from higgs_tune.prepared.dataset import PreparedData

IGNORE = -100
"""The label of a position or code that is not learned (PyTorch's cross-entropy `ignore_index`)."""


@dataclass(frozen=True)
class Example:
    """One tokenized training example; every tensor is unbatched and unshifted."""

    sample_id: str
    input_ids: torch.Tensor  # [L]
    labels: torch.Tensor  # [L], IGNORE except the target turn's closing text tokens (with a text head)
    audio_input_ids: torch.Tensor  # [F, K]
    audio_labels: torch.Tensor  # [F, K], IGNORE except the target's codes and its stream-EOS frame

    @property
    def num_tokens(self) -> int:
        """Sequence length: text tokens and audio placeholders alike (one position per audio frame)."""
        return int(self.input_ids.shape[0])


def mask_labels(
    processor, tokens: PromptTokens, learn_text: bool, ended: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one place that decides what is learned. Returns (labels [L], audio_labels [F, K]).

    Layout of the target clip of T frames after the delay pattern (K = 8 codebooks, here T = 3, K = 4 for
    space), one column per audio position, `B` stream BOS, `E` stream EOS, `c` a code:

        position p   0  1  2  3  4  5  6  7
        codebook 0   B  c  c  c  E  E  E  E      learned: p = k+1 .. k+T+1
        codebook 1   B  B  c  c  c  E  E  E      (the codes and the stream EOS
        codebook 2   B  B  B  c  c  c  E  E       of every codebook)
        codebook 3   B  B  B  B  c  c  c  E
                     ^  ^^^^^^^ delay filler B    -100: the stream BOS (p = k), the BOS delay filler
                     stream BOS                   (p < k) and the EOS delay filler (p > k+T+1)

    The stream EOS is learned so the model learns to stop; the fillers are forced by the delay-pattern
    logits processor at generation time, so learning them would only dilute the loss. Reference audio,
    system and user text, and padding are never learned. With `learn_text` the target turn's closing
    text tokens (`<|audio_eos|><|eot_id|>`) carry text labels for the text head.

    A clip that did not end (`ended=False`: a generated candidate cut at its length limit, scored by DPO)
    has no stream-EOS label, since the model never chose to stop there: learned p = k+1 .. k+T.
    """
    input_ids = tokens.input_ids
    audio_labels = torch.full_like(tokens.audio_input_ids, IGNORE)
    target_start, target_len = tokens.audio_segments[-1]
    num_codebooks = tokens.audio_input_ids.shape[1]
    num_frames = target_len - 2 - (num_codebooks - 1)  # T
    position = torch.arange(target_len)[:, None]
    codebook = torch.arange(num_codebooks)[None, :]
    learned = (position > codebook) & (position <= codebook + num_frames + int(ended))
    target = tokens.audio_input_ids[target_start : target_start + target_len]
    audio_labels[target_start : target_start + target_len] = torch.where(learned, target, IGNORE)

    labels = torch.full_like(input_ids, IGNORE)
    if learn_text:
        last_audio = int(audio_positions(processor, input_ids).nonzero()[-1])
        labels[last_audio + 1 :] = input_ids[last_audio + 1 :]
    return labels, audio_labels


def build_example(
    processor,
    sample_id: str,
    ref_text: str,
    ref_codes: torch.Tensor,
    text: str,
    target_codes: torch.Tensor,
    prompt: PromptSettings,
    learn_text: bool = False,
    scene: str | None = None,
    ended: bool = True,
) -> Example:
    """A training example for one sample, built with the same prompt function as cloning uses (`ended`:
    see `mask_labels`)."""
    tokens = build_prompt(
        processor, ref_text, ref_codes, text, prompt, target_codes=target_codes, scene=scene
    )
    labels, audio_labels = mask_labels(processor, tokens, learn_text, ended)
    return Example(
        sample_id=sample_id,
        input_ids=tokens.input_ids,
        labels=labels,
        audio_input_ids=tokens.audio_input_ids,
        audio_labels=audio_labels,
    )


def example_lengths(
    processor, records: Sequence[dict], frames: Sequence[int], prompt: PromptSettings
) -> list[int]:
    """Sequence length (text tokens plus audio positions) of each example, without building it.

    `records` hold each example's texts (`ref_text`, `text`, `scene`), `frames` the audio frames of its
    two clips together (reference and target). Exactly `build_example(...).num_tokens`, at a fraction of
    the cost: no codes are read, no delay pattern is built and the chat template is rendered once per
    layout, not per example (`prompt.PromptLengths`); a test checks equality against built examples.
    """
    return PromptLengths(processor, prompt)(records, frames)


def prepared_lengths(
    processor,
    data: PreparedData,
    prompt: PromptSettings,
    indices: Sequence[int] | None = None,
) -> list[int]:
    """`example_lengths` of a prepared dataset's samples at `indices` (all by default): clip lengths come
    from its index, no codes are read."""
    table = data.records
    columns = [table.column(name, indices) for name in ("ref_text", "text", "scene")]
    return PromptLengths(processor, prompt).of_columns(*columns, data.frames(indices).tolist())


class ExampleDataset(torch.utils.data.Dataset):
    """Examples built on the fly from a prepared dataset (codes only, no audio is decoded)."""

    def __init__(
        self, data: PreparedData, processor, prompt: PromptSettings, learn_text: bool, indices=None
    ) -> None:
        self.data = data
        self.processor = processor
        self.prompt = prompt
        self.learn_text = learn_text
        self.indices = list(range(len(data))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def lengths(self) -> list[int]:
        """Sequence length of every example, in dataset order, without building any (`example_lengths`)."""
        return prepared_lengths(self.processor, self.data, self.prompt, self.indices)

    def __getitem__(self, i: int) -> Example:
        s = self.data[self.indices[i]]
        return build_example(
            self.processor,
            s.id,
            s.ref_text,
            torch.from_numpy(s.ref_codes),
            s.text,
            torch.from_numpy(s.target_codes),
            self.prompt,
            learn_text=self.learn_text,
            scene=s.scene,
        )
