"""The vllm-omni prompt preset renders, token for token, the cloning prompt vLLM-Omni builds."""

import dataclasses

import pytest
import torch

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.config_files import ConfigError, load_config
from higgs_tune.model.prompt import build_prompt

REF_TEXT = "The reference words."
TEXT = "Say this, please."


def _vllm_omni_rendering(frames: int, codebooks: int) -> str:
    """The text vLLM-Omni tokenizes for a voice clone, written out by hand from its source:
    vllm-project/vllm-omni @ 6d1a988145444e7981da6ba8f2fe9c5bd89df86f,
    vllm_omni/model_executor/models/higgs_audio_v2/higgs_audio_v2_tokenizer.py.

    `build_voice_clone_conversation` is system "Generate audio following instruction." (no scene turn),
    user ref_text, assistant [audio], user text; `build_voice_clone_prompt` renders it with
    `add_generation_prompt=True`, and its docstring says the assistant block
    `<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|>` has its `<|AUDIO_OUT|>` expanded to one `<|AUDIO_OUT|>` per
    frame of the reference's BOS + codes + EOS and `num_codebooks - 1` `<|reserved_special_token_6|>` (the
    delay pattern's length); the texts are put in as given (no normalisation); the string is tokenized with
    `add_special_tokens=False`.
    """
    header = "<|start_header_id|>{}<|end_header_id|>\n\n"
    placeholders = "<|AUDIO_OUT|>" * (frames + 2) + "<|reserved_special_token_6|>" * (codebooks - 1)
    return (
        "<|begin_of_text|>"
        + header.format("system")
        + "Generate audio following instruction.<|eot_id|>"
        + header.format("user")
        + REF_TEXT
        + "<|eot_id|>"
        + header.format("assistant")
        + "<|audio_out_bos|>"
        + placeholders
        + "<|audio_eos|><|eot_id|>"
        + header.format("user")
        + TEXT
        + "<|eot_id|>"
        + header.format("assistant")
        + "<|audio_out_bos|>"
    )


def _delay_pattern(codes: torch.Tensor) -> torch.Tensor:
    """vLLM-Omni's `_build_delay_pattern`, written out: codebook k is BOS (1024) for k + 1 frames, then its
    codes, then EOS (1025) until the end; the result is [T + 2 + K - 1, K] as its `audio_input_ids`."""
    k, t = codes.shape
    rows = [[1024] * (i + 1) + codes[i].tolist() + [1025] * (k - i) for i in range(k)]
    return torch.tensor(rows).transpose(0, 1)


def test_the_vllm_omni_preset_is_vllm_omnis_cloning_prompt_token_for_token(processor):
    settings = PromptSettings(preset="vllm-omni", text_normalisation="none")
    assert settings.scene is None and settings.system_prompt == "Generate audio following instruction."
    codes = torch.arange(8 * 6).reshape(8, 6) % 1000
    ours = build_prompt(processor, REF_TEXT, codes, TEXT, settings)
    rendering = _vllm_omni_rendering(frames=6, codebooks=8)
    theirs = processor.tokenizer(rendering, add_special_tokens=False)["input_ids"]
    assert ours.input_ids.tolist() == theirs
    assert torch.equal(ours.audio_input_ids, _delay_pattern(codes))
    # the default (original) prompt is not: it has a scene block
    assert build_prompt(processor, REF_TEXT, codes, TEXT, PromptSettings()).input_ids.tolist() != theirs


def test_the_preset_refuses_a_scene_or_another_system_prompt():
    assert load_config(TrainSettings, None, ["prompt.preset=vllm-omni"]).prompt.scene is None
    for override in ("prompt.scene=a quiet room", "prompt.system_prompt=Speak."):
        with pytest.raises(ConfigError, match="under preset=vllm-omni"):
            load_config(TrainSettings, None, ["prompt.preset=vllm-omni", override])
    saved = dataclasses.asdict(PromptSettings(preset="vllm-omni"))
    assert PromptSettings(**saved) == PromptSettings(preset="vllm-omni")  # a checkpoint's prompt.json loads
