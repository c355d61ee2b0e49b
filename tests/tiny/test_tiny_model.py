"""The tiny model folder loads like the real checkpoint, spreads speech over codes, builds reproducibly."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    GenerationConfig,
    HiggsAudioV2Config,
    HiggsAudioV2ForConditionalGeneration,
    HiggsAudioV2Processor,
    HiggsAudioV2TokenizerModel,
)

from higgs_tune.data.audio import TARGET_SR
from higgs_tune.model.chat_template import CHAT_TEMPLATE, CHAT_TEMPLATE_SHA256
from higgs_tune.model.loading import (
    AUDIO_TOKENIZER_SUBDIR,
    build_model_from_config,
    load_model,
    load_processor,
)
from higgs_tune.tiny.model import (
    CALIBRATION_SEED_OFFSET,
    NUM_CODEBOOKS,
    SPECIAL_TOKENS,
    TOKENIZER_VOCAB_SIZE,
    build_tiny_model,
)
from higgs_tune.tiny.synth import synth_speech

WEIGHT_FILES = ("model.safetensors", f"{AUDIO_TOKENIZER_SUBDIR}/model.safetensors")
UNSEEN_SEED = 123  # far below CALIBRATION_SEED_OFFSET: speech the codebooks were not fitted on
SYSTEM = "Generate audio following instruction."


def conversation(ref_audio: np.ndarray, target_text: str = "Hello, how are you today?") -> list[dict]:
    """A cloning prompt: system, reference transcript, reference audio, target text."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "text", "text": "The reference sentence."}]},
        {"role": "assistant", "content": [{"type": "audio", "audio": ref_audio}]},
        {"role": "user", "content": [{"type": "text", "text": target_text}]},
    ]


def codec_dir(processor: HiggsAudioV2Processor) -> Path:
    """Where the processor's codec was loaded from."""
    return Path(processor.audio_tokenizer.name_or_path).resolve()


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path) -> HiggsAudioV2Processor:
    return load_processor(tiny_model_dir)


def test_plain_transformers_loads_every_part(tiny_model_dir: Path) -> None:
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(tiny_model_dir)
    processor = HiggsAudioV2Processor.from_pretrained(tiny_model_dir)
    codec = HiggsAudioV2TokenizerModel.from_pretrained(tiny_model_dir / AUDIO_TOKENIZER_SUBDIR)

    assert model.config.num_hidden_layers == 2
    assert (model.config.num_codebooks, model.config.codebook_size) == (NUM_CODEBOOKS, 1026)
    assert model.config.vocab_size == len(processor.tokenizer) == TOKENIZER_VOCAB_SIZE
    assert codec.config.num_quantizers == NUM_CODEBOOKS
    assert codec.config.frame_rate == 25
    assert codec.config.semantic_downsample_factor == 2
    assert processor.chat_template == CHAT_TEMPLATE


def test_config_token_ids_are_the_tokenizers(tiny_model_dir: Path, processor: HiggsAudioV2Processor) -> None:
    config = HiggsAudioV2Config.from_pretrained(tiny_model_dir)
    ids = processor.tokenizer.convert_tokens_to_ids
    assert config.audio_token_id == ids("<|AUDIO_OUT|>") == processor.audio_token_id
    assert config.audio_bos_token_id == ids("<|audio_out_bos|>") == processor.audio_bos_token_id
    delay_id = ids("<|reserved_special_token_6|>")
    assert config.audio_delay_token_id == delay_id == processor.audio_delay_token_id
    assert config.pad_token_id == ids("<|end_of_text|>") == processor.tokenizer.pad_token_id
    assert config.eos_token_id == ids("<|eot_id|>")
    assert config.bos_token_id == ids("<|begin_of_text|>") == processor.tokenizer.bos_token_id


def test_generation_config_mirrors_the_conversion(tiny_model_dir: Path) -> None:
    config = HiggsAudioV2Config.from_pretrained(tiny_model_dir)
    generation = GenerationConfig.from_pretrained(tiny_model_dir)
    assert generation._from_model_config is False
    assert (generation.bos_token_id, generation.eos_token_id, generation.pad_token_id) == (
        config.bos_token_id,
        config.eos_token_id,
        config.pad_token_id,
    )
    assert (generation.ras_win_len, generation.ras_win_max_num_repeat) == (7, 2)
    assert generation.use_text_head is True


def test_special_tokens_follow_the_learned_vocab_in_llama_order(processor: HiggsAudioV2Processor) -> None:
    tokenizer = processor.tokenizer
    first = TOKENIZER_VOCAB_SIZE - len(SPECIAL_TOKENS)
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(first, TOKENIZER_VOCAB_SIZE)
    )
    assert SPECIAL_TOKENS[:2] == ("<|begin_of_text|>", "<|end_of_text|>")
    assert SPECIAL_TOKENS[9:19] == (
        "<|eot_id|>",
        "<|python_tag|>",
        "<|audio_bos|>",
        "<|audio_eos|>",
        "<|audio_out_bos|>",
        "<|reserved_special_token_6|>",
        "<|AUDIO|>",
        "<|AUDIO_OUT|>",
        "<|scene_desc_start|>",
        "<|scene_desc_end|>",
    )


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_special_tokens_are_never_split_and_round_trip(processor: HiggsAudioV2Processor, token: str) -> None:
    tokenizer = processor.tokenizer
    text = f"word{token}كلمة {token}"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids.count(tokenizer.convert_tokens_to_ids(token)) == 2
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize(
    "text", ["The river flows north through the valley.", "يجري النهر شمالا عبر الوادي.", "Mixed نص 123!\n"]
)
def test_text_round_trips(processor: HiggsAudioV2Processor, text: str) -> None:
    tokenizer = processor.tokenizer
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text


@pytest.mark.parametrize(
    "text", ["The weather in the valley was cold and quiet.", "كان الطقس في الوادي باردا وهادئا."]
)
def test_both_scripts_tokenize_compactly(processor: HiggsAudioV2Processor, text: str) -> None:
    # Unseen sentences: 3+ UTF-8 bytes per token means sub-words, not bytes (or 2-byte Arabic letters).
    ids = processor.tokenizer(text, add_special_tokens=False).input_ids
    assert len(text.encode()) >= 3 * len(ids)


def test_text_head_loads_only_when_asked(tiny_model_dir: Path) -> None:
    saved = load_file(tiny_model_dir / "model.safetensors")["text_lm_head.weight"]
    with_head = load_model(tiny_model_dir, use_text_head=True)
    assert torch.equal(with_head.text_lm_head.weight, saved)
    assert load_model(tiny_model_dir).text_lm_head is None


def test_chat_template_is_the_released_one(tiny_model_dir: Path) -> None:
    assert hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest() == CHAT_TEMPLATE_SHA256
    assert (tiny_model_dir / "chat_template.jinja").read_text(encoding="utf-8") == CHAT_TEMPLATE


def test_rendered_prompt_has_the_real_format(processor: HiggsAudioV2Processor) -> None:
    audio = synth_speech(1.0, seed=UNSEEN_SEED)
    text = processor.apply_chat_template(conversation(audio), add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n")
    assert text == (
        f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nThe reference sentence.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|><|AUDIO_OUT|><|audio_eos|><|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you today?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n<|audio_out_bos|>"
    )


def test_tokenized_prompt_carries_delayed_reference_codes(processor: HiggsAudioV2Processor) -> None:
    seconds = 5.0
    frames = int(seconds * 25)
    inputs = processor.apply_chat_template(
        conversation(synth_speech(seconds, seed=UNSEEN_SEED)),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"sampling_rate": TARGET_SR},
    )
    # codes + stream BOS + stream EOS, then the delay pattern adds num_codebooks - 1 steps
    assert inputs["audio_input_ids"].shape == (1, frames + 2 + NUM_CODEBOOKS - 1, NUM_CODEBOOKS)
    ids = inputs["input_ids"][0]
    placeholders = (ids == processor.audio_token_id) | (ids == processor.audio_delay_token_id)
    assert int(placeholders.sum()) == inputs["audio_input_ids"].shape[1]
    assert int((ids == processor.tokenizer.bos_token_id).sum()) == 1


def test_speech_spreads_over_many_codes_in_every_codebook(processor: HiggsAudioV2Processor) -> None:
    assert UNSEEN_SEED < CALIBRATION_SEED_OFFSET
    clip = synth_speech(5.0, seed=UNSEEN_SEED, pitch_hz=170.0, formant_scale=1.1)
    with torch.no_grad():
        codes = processor.audio_tokenizer.encode(torch.from_numpy(clip)[None, None]).audio_codes[0]
    distinct = [len(torch.unique(level)) for level in codes]
    assert codes.shape == (NUM_CODEBOOKS, 125)
    assert min(distinct) >= 50, distinct


def test_decode_gives_960_audio_values_per_frame(processor: HiggsAudioV2Processor) -> None:
    codec = processor.audio_tokenizer
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(synth_speech(2.0, seed=UNSEEN_SEED))[None, None]).audio_codes
        audio = codec.decode(codes).audio_values
    assert audio.shape == (1, 1, codes.shape[-1] * 960)
    assert torch.isfinite(audio).all()


def test_forward_on_a_batch_gives_the_chance_level_loss(tiny_model_dir: Path) -> None:
    processor = load_processor(tiny_model_dir)
    model = load_model(tiny_model_dir, use_text_head=True)
    batch = [
        conversation(synth_speech(1.0 + i, seed=UNSEEN_SEED + i), target_text=text)
        + [{"role": "assistant", "content": [{"type": "audio", "audio": synth_speech(1.5, seed=i)}]}]
        for i, text in enumerate(["Short.", "A somewhat longer target sentence."])
    ]
    inputs = processor.apply_chat_template(
        batch,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"sampling_rate": TARGET_SR, "output_labels": True},
    )
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape == (*inputs["input_ids"].shape, NUM_CODEBOOKS * 1026)
    # An untrained model is near uniform: 8 audio cross-entropies over 1026 codes plus a text one over 1024.
    chance = NUM_CODEBOOKS * np.log(1026) + np.log(TOKENIZER_VOCAB_SIZE)
    assert abs(out.loss.item() - chance) < 0.05 * chance


def test_build_model_from_config_is_seeded(tiny_model_dir: Path) -> None:
    config = HiggsAudioV2Config.from_pretrained(tiny_model_dir)
    a, b = (build_model_from_config(config, seed=3) for _ in range(2))
    c = build_model_from_config(config, seed=4)
    assert torch.equal(a.audio_lm_head.weight, b.audio_lm_head.weight)
    assert not torch.equal(a.audio_lm_head.weight, c.audio_lm_head.weight)


def test_same_seed_same_bytes_other_seed_other_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in WEIGHT_FILES:
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
        assert (other / name).read_bytes() != (tiny_model_dir / name).read_bytes(), name
    assert (again / "tokenizer.json").read_bytes() == (tiny_model_dir / "tokenizer.json").read_bytes()


def test_moved_folder_still_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    built = build_tiny_model(tmp_path / "built", seed=0)
    moved = Path(shutil.move(built, tmp_path / "moved"))  # the processor's codec pointer is now stale

    processor = load_processor(moved)
    model = load_model(moved)

    assert codec_dir(processor) == (moved / AUDIO_TOKENIZER_SUBDIR).resolve()
    assert processor.chat_template == CHAT_TEMPLATE
    assert processor.audio_token_id == model.config.audio_token_id
    clip = torch.from_numpy(synth_speech(1.0, seed=UNSEEN_SEED))[None, None]
    reference = load_processor(tiny_model_dir).audio_tokenizer  # same seed, built in place
    with torch.no_grad():
        codes = processor.audio_tokenizer.encode(clip).audio_codes
        assert torch.equal(codes, reference.encode(clip).audio_codes)


def test_copied_folder_uses_its_own_codec(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "copy"))
    processor = load_processor(copy)
    assert codec_dir(processor) == (copy / AUDIO_TOKENIZER_SUBDIR).resolve()


def test_bf16_model_runs_when_autocast_sums_audio_embeddings_in_float32(tiny_model_dir: Path) -> None:
    """CUDA autocast runs the codebook-embedding `sum` in float32; with a bf16 base (LoRA) the model's
    `masked_scatter` then fails unless the loader casts the audio embeddings back (seen on an H200).
    CPU autocast keeps the sum in bf16, so a hook placed before the loader's stands in for the GPU."""
    model = load_model(tiny_model_dir, dtype=torch.bfloat16)
    embeddings = model.model.embed_audio_tokens
    embeddings.register_forward_hook(lambda m, args, out: out.float(), prepend=True)
    codes = torch.randint(0, 1024, (1, 3, NUM_CODEBOOKS))
    input_ids = torch.full((1, 5), model.config.audio_token_id)
    input_ids[0, :2] = 1
    with torch.no_grad():
        hidden = model.model(
            input_ids=input_ids,
            audio_input_ids=codes,
            audio_input_ids_mask=torch.ones(1, 3, dtype=torch.bool),
        ).last_hidden_state
    assert hidden.dtype == torch.bfloat16 and torch.isfinite(hidden).all()
