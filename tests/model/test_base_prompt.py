"""The default prompt is the released model's own cloning prompt, pinned to text written out by hand.

The layout below is the one `bosonai/higgs-audio-v2-generation-3B-base` was trained and is used with: the
original implementation's voice-cloning usage (boson-ai/higgs-audio, README and examples/generation.py)
and the docstrings of transformers' `HiggsAudioV2ForConditionalGeneration` use the system text "Generate
audio following instruction." and the scene "Audio is recorded from a quiet room.", rendered by the chat
template (transformers' conversion script) as written here. Nothing in this file calls our conversation
builder, so a change of layout, system text or scene in the code fails it.
"""

import torch

from higgs_tune.config import PromptSettings
from higgs_tune.model.prompt import build_prompt

BASE_PROMPT_TEXT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Generate audio following instruction.\n\n"
    "<|scene_desc_start|>\nAudio is recorded from a quiet room.\n<|scene_desc_end|><|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{ref_text}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>{ref_audio}<|audio_eos|><|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{text}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>"
)


def test_default_prompt_is_the_released_models_cloning_prompt(processor) -> None:
    k, frames = 8, 11
    ref = torch.randint(0, 1024, (k, frames), generator=torch.Generator().manual_seed(0))
    ours = build_prompt(processor, "the reference words", ref, "say this now", PromptSettings())
    # A clip of T frames takes T + 2 (stream BOS, EOS) + K - 1 (delay) positions; the last K - 1 are the
    # delay placeholder, Llama-3's <|reserved_special_token_6|> (id 128014 in the released vocabulary).
    ref_audio = "<|AUDIO_OUT|>" * (frames + 2) + "<|reserved_special_token_6|>" * (k - 1)
    text = BASE_PROMPT_TEXT.format(ref_text="the reference words", ref_audio=ref_audio, text="say this now")
    expected = processor.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    assert ours.input_ids.tolist() == expected.tolist()


def test_default_settings_are_the_base_models() -> None:
    assert PromptSettings().system_prompt == "Generate audio following instruction."
    assert PromptSettings().scene == "Audio is recorded from a quiet room."
