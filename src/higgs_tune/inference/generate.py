"""Generation: build the prompt with the training prompt builder, generate audio codes, revert the delay.

Generation is transformers' own `HiggsAudioV2ForConditionalGeneration.generate` (its delay-pattern logits
processor forces the BOS and EOS fillers). We add what a toolkit needs around it: batching with left
padding, a per-sample frame limit so a sample that never stops is cut and flagged instead of running to a
global maximum, and an honest record of whether each sample ended by its stream EOS. Turning codes into
audio and checking it is `higgs_tune.inference.clone`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from higgs_tune.config import PromptSettings
from higgs_tune.errors import UserError
from higgs_tune.inference.settings import SamplingSettings
from higgs_tune.model.loading import load_finetuned, load_model, load_processor, model_prompt
from higgs_tune.model.prompt import PromptTokens, build_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratedCodes:
    """Generated codes [K, T] of one sample and how generation ended."""

    codes: np.ndarray
    stopped_by_eos: bool
    frame_limit: int


class FrameLimit(StoppingCriteria):
    """Stops each sample at its own number of generated audio positions."""

    def __init__(self, prompt_length: int, limits: torch.Tensor, eos_token_id: int) -> None:
        self.prompt_length = prompt_length
        self.limits = limits
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        generated = input_ids.shape[1] - self.prompt_length
        ended = (input_ids[:, self.prompt_length :] == self.eos_token_id).any(-1)
        return (generated >= self.limits.to(input_ids.device)) & ~ended


def _left_pad(prompts: list[PromptTokens], pad_token_id: int, audio_pad_id: int) -> dict[str, torch.Tensor]:
    """Batch prompts for generation: text left-padded (new tokens append on the right), audio frames
    right-padded and masked out, which keeps each sample's frames in placeholder order."""
    length = max(p.input_ids.shape[0] for p in prompts)
    frames = max(p.audio_input_ids.shape[0] for p in prompts)
    k = prompts[0].audio_input_ids.shape[1]
    b = len(prompts)
    input_ids = torch.full((b, length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((b, length), dtype=torch.long)
    audio_input_ids = torch.full((b, frames, k), audio_pad_id, dtype=torch.long)
    audio_mask = torch.zeros((b, frames), dtype=torch.bool)
    for i, p in enumerate(prompts):
        n, f = p.input_ids.shape[0], p.audio_input_ids.shape[0]
        input_ids[i, length - n :] = p.input_ids
        attention_mask[i, length - n :] = 1
        audio_input_ids[i, :f] = p.audio_input_ids
        audio_mask[i, :f] = True
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "audio_input_ids": audio_input_ids,
        "audio_input_ids_mask": audio_mask,
    }


def frames_to_codes(processor, frames: torch.Tensor) -> tuple[np.ndarray, bool]:
    """Delayed generated frames [N, K] (starting with the stream-BOS frame) -> codes [K, T], and whether
    a stream EOS ended them. On the frames of a sample still generating, the whole frames so far: a
    prefix of its final codes (the server streams them).

    The clip ends at the earliest stream EOS over all codebooks, each shifted back by its delay: codebook
    k's EOS at body position p ends the clip at frame p - k. That is where the original implementation
    ends it (boson-ai/higgs-audio `modeling_higgs_audio.py` forces the codebooks below the one that stopped
    to EOS at that step, and `serve_engine.py` reverts the delay and drops the BOS and EOS frames),
    so a clip keeps s - j - 1 frames when codebook j stops first at step s. Any later frame would hold
    codebook j's EOS clipped to a code, then codes drawn after it stopped. When codebook 0 stops first this
    is its own EOS, whatever codebooks 1-7 sample in their slots before the logits processor forces theirs.
    A clip cut by the frame limit without any EOS keeps what it has. The frame limit may also cut the
    delay cascade after an EOS (transformers' logits processor forces the other codebooks one by one):
    the clip's frames are all there, so it ended by its EOS all the same.
    """
    k = frames.shape[1]
    body = frames[1:]
    is_eos = body == processor.audio_stream_eos_id
    ends = [int(is_eos[:, j].nonzero()[0]) - j for j in range(k) if is_eos[:, j].any()]
    num_frames = max(min(ends), 0) if ends else max(body.shape[0] - (k - 1), 0)
    body = body[: num_frames + k - 1]
    if body.shape[0] < k:
        return np.zeros((k, 0), dtype=np.int64), bool(ends)
    codes = processor.revert_delay_pattern(body)[:num_frames].clip(0, processor.audio_stream_bos_id - 1)
    return codes.transpose(0, 1).cpu().numpy().astype(np.int64), bool(ends)


def generated_positions(frame_limit: int, num_codebooks: int) -> int:
    """Positions that generating at most `frame_limit` frames takes after the prompt: the stream BOS, the
    frames, the stream EOS and the K-1 positions of the delay pattern."""
    return frame_limit + 1 + num_codebooks


def prompt_length(processor, item: dict, prompt: PromptSettings) -> int:
    """Positions the cloning prompt of `item` (as `generate_codes` takes it) fills, its reference audio
    included."""
    return int(item_prompt(processor, item, prompt).input_ids.shape[0])


def item_prompt(processor, item: dict, prompt: PromptSettings) -> PromptTokens:
    """The cloning prompt of one item of `generate_codes` (`model.prompt.build_prompt`)."""
    return build_prompt(
        processor,
        item["ref_text"],
        item["ref_codes"],
        item["text"],
        prompt,
        scene=item.get("scene"),
        context=item.get("context", ()),
    )


def context_problem(model, prompt_length: int, frame_limit: int, num_codebooks: int) -> str | None:
    """Why a prompt of `prompt_length` positions plus `frame_limit` generated frames does not fit the
    model's positions (`max_position_embeddings`), else None. Past them the model's attention is
    untrained: it stops early or babbles, and the clip says nothing of why."""
    limit = getattr(model.config, "max_position_embeddings", None)
    needed = prompt_length + generated_positions(frame_limit, num_codebooks)
    if limit is None or needed <= limit:
        return None
    return (
        f"the prompt takes {prompt_length} positions and the length limit allows {frame_limit} frames, "
        f"{needed} positions in all, past the model's {limit} (max_position_embeddings): shorten the text "
        "or the reference, or lower --max-seconds"
    )


@torch.inference_mode()
def generate_codes(
    model,
    processor,
    items: list[dict],
    prompt: PromptSettings,
    sampling: SamplingSettings,
    frame_limits: list[int],
) -> list[GeneratedCodes]:
    """Generate the codes of a batch. Each item has `ref_text`, `ref_codes` ([K, T]), `text` and optional
    `scene`, `context` (earlier turns' (text, codes), `model.prompt.build_prompt`) and `id` (the sample's
    name in warnings).

    `frame_limits` caps each sample's generated audio frames; a sample cut there is flagged.
    """
    prompts = [item_prompt(processor, it, prompt) for it in items]
    batch = _left_pad(prompts, processor.tokenizer.pad_token_id, processor.audio_stream_eos_id)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    k = prompts[0].audio_input_ids.shape[1]
    limits = torch.tensor([generated_positions(lim, k) for lim in frame_limits])
    eos_token_id = model.generation_config.eos_token_id
    stopper = FrameLimit(batch["input_ids"].shape[1], limits, eos_token_id)
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    kwargs: dict = {"do_sample": not sampling.greedy}
    if sampling.greedy:
        kwargs.update(temperature=None, top_p=None, top_k=None, ras_win_len=None)
    else:
        kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
        kwargs.update(ras_win_len=sampling.ras_window, ras_win_max_num_repeat=sampling.ras_max_repeat)
    out = model.generate(
        **batch,
        max_new_tokens=int(limits.max()) + 1,
        stopping_criteria=StoppingCriteriaList([stopper]),
        return_dict_in_generate=True,
        **kwargs,
    )
    new_tokens = out.sequences.shape[1] - batch["input_ids"].shape[1]
    generated = out.audio_sequences[:, -new_tokens:]
    return [
        finish_codes(processor, generated[i], frame_limits[i], items[i].get("id", f"{i} of the batch"))
        for i in range(len(items))
    ]


def finish_codes(processor, frames: torch.Tensor, frame_limit: int, name: str) -> GeneratedCodes:
    """One sample's generated frames [N, K] (delayed, from its stream BOS frame on) as its codes, cut at
    `frame_limit`: ended within its limit by an EOS, or cut, then its first `frame_limit` whole frames.
    `generate_codes` finishes every sample here; the server finishes here a sample whose frames it watched
    end before the rest of its batch."""
    codes, ended = frames_to_codes(processor, frames)
    stopped = ended and codes.shape[1] <= frame_limit
    if not stopped:
        # INFO, not WARNING: clone_manifest counts cut clips and warns once with what to do about them.
        log.info("sample %s did not emit its stream EOS within %d frames: cut", name, frame_limit)
    return GeneratedCodes(codes=codes[:, :frame_limit], stopped_by_eos=stopped, frame_limit=frame_limit)


def load_for_cloning(
    model_id: str, adapter: Path | None, system_prompt: str | None = None, scene: str | None = None
) -> tuple[torch.nn.Module, object, PromptSettings]:
    """The model to clone with, its processor, and the prompt settings: the checkpoint's own (see
    `loading.load_finetuned`), or a merged folder's (`loading.model_prompt`; the base model's defaults for
    any other model), unless `system_prompt` / `scene` override them."""
    if adapter is None:
        model, prompt = load_model(model_id), model_prompt(model_id)
    else:
        model, prompt = load_finetuned(model_id, adapter)
    if prompt.preset == "vllm-omni" and (system_prompt is not None or scene is not None):
        raise UserError(
            "this model was trained with prompt.preset=vllm-omni (vLLM-Omni's prompt: no scene, its system"
            " prompt); drop --system-prompt and --scene to clone with the prompt it was trained with"
        )
    if system_prompt is not None:
        prompt = replace(prompt, system_prompt=system_prompt)
    if scene is not None:
        prompt = replace(prompt, scene=scene)
    model.eval()
    return model, load_processor(model_id), prompt
