"""Load the Higgs Audio v2 model and processor, the same way for a hub id and for a local folder.

Everything goes through transformers' own `from_pretrained`, so the real checkpoint
(`bosonai/higgs-audio-v2-generation-3B-base`) and the tiny test model (`higgs_tune.tiny.model`) take the
same path. The one exception is the processor's audio tokenizer (the codec): transformers stores only a
pointer to it (`audio_tokenizer_name_or_path` in processor_config.json, loaded as given, so a local pointer is
an absolute path). A folder that carries its own codec in `audio_tokenizer/` is self-contained: that codec is
used even when the pointer names another place (the folder was moved or copied), so folders stay relocatable.

Before any of that, `model.reference.check_model_reference` makes a mistyped `--model` one clear line
at once, before transformers spends minutes retrying the hub.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoTokenizer,
    DacFeatureExtractor,
    HiggsAudioV2Config,
    HiggsAudioV2ForConditionalGeneration,
    HiggsAudioV2Processor,
    HiggsAudioV2TokenizerModel,
)
from transformers.utils import CHAT_TEMPLATE_FILE, PROCESSOR_NAME

from higgs_tune.config import PromptConfig
from higgs_tune.model import fast_dual_ffn as fast_dual_ffn_layer
from higgs_tune.model.reference import check_model_reference

logger = logging.getLogger(__name__)

# Where a self-contained model folder keeps its codec.
AUDIO_TOKENIZER_SUBDIR = "audio_tokenizer"


def load_processor(
    model_id_or_path: str | os.PathLike, *, device: str | torch.device | None = None
) -> HiggsAudioV2Processor:
    """The model's processor (text tokenizer + chat template + feature extractor + codec).

    `device` places the codec, which encodes reference audio inside the processor call; None leaves it on CPU.
    """
    check_model_reference(model_id_or_path)
    bundled = _bundled_codec_dir(model_id_or_path)
    if bundled is None:
        processor = HiggsAudioV2Processor.from_pretrained(model_id_or_path)
    else:
        processor = _processor_with_codec(Path(model_id_or_path), bundled)
    if device is not None:
        processor.audio_tokenizer.to(device)
    return processor


def load_model(
    model_id_or_path: str | os.PathLike,
    *,
    use_text_head: bool = False,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    attn_implementation: str | None = None,
    fast_dual_ffn: bool = True,
    quantization_config: object | None = None,
) -> HiggsAudioV2ForConditionalGeneration:
    """The LM, with the text head only if asked for.

    `use_text_head` is forwarded by `from_pretrained` to the model's `__init__` (it is not a config field),
    which builds `text_lm_head` so its saved weights load; without it they are skipped as expected-unused.
    The head is only needed for a text loss; generation uses the audio head alone. `dtype=None` keeps
    transformers' default for the checkpoint; `device=None` loads on CPU. `fast_dual_ffn` routes the
    decoder layers without host syncs (`fast_dual_ffn.install`; same weights, same outputs);
    `quantization_config` (transformers' `BitsAndBytesConfig`) quantises the base for QLoRA.
    """
    check_model_reference(model_id_or_path)
    kwargs: dict[str, object] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if device is not None:
        kwargs["device_map"] = device
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(
        model_id_or_path, use_text_head=use_text_head, **kwargs
    )
    if fast_dual_ffn:
        fast_dual_ffn_layer.install(model)
    return keep_audio_embeddings_in_weight_dtype(model)


def build_model_from_config(
    config: HiggsAudioV2Config, *, use_text_head: bool = False, seed: int = 0, fast_dual_ffn: bool = True
) -> HiggsAudioV2ForConditionalGeneration:
    """A freshly initialised model for `config`; same seed, same weights. The global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HiggsAudioV2ForConditionalGeneration(config, use_text_head=use_text_head)
    if fast_dual_ffn:
        fast_dual_ffn_layer.install(model)
    return keep_audio_embeddings_in_weight_dtype(model)


def keep_audio_embeddings_in_weight_dtype(
    model: HiggsAudioV2ForConditionalGeneration,
) -> HiggsAudioV2ForConditionalGeneration:
    """Make the audio embeddings come out in their weights' dtype, also under CUDA autocast.

    The model sums the 8 codebook embeddings of a frame (`HiggsAudioV2Embeddings`), and CUDA autocast runs
    `sum` in float32, so with bf16 weights (LoRA on a bf16 base) the audio embeddings come out float32 while
    the text embeddings stay bf16, and the model's `masked_scatter` of one into the other fails
    ("expected self and source to have same dtypes"). CPU autocast keeps `sum` in bf16, so only a GPU shows
    it. A forward hook casts the sum back; it changes nothing when the dtypes already agree. Hooks are not
    saved, so checkpoints stay transformers' own.
    """
    embeddings = model.model.embed_audio_tokens

    def cast(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output.to(module.embed_audio_tokens.weight.dtype)

    embeddings.register_forward_hook(cast)
    return model


def _bundled_codec_dir(model_id_or_path: str | os.PathLike) -> Path | None:
    """The folder's own codec when the processor's pointer does not already name it, else None.

    None means plain `from_pretrained` is right: a hub id, a folder without `audio_tokenizer/`, or a folder
    whose pointer is its own `audio_tokenizer/` (built here and not moved).
    """
    folder = Path(model_id_or_path)
    bundled = folder / AUDIO_TOKENIZER_SUBDIR
    if not (folder.is_dir() and (bundled / "config.json").is_file()):
        return None
    pointer = _codec_pointer(folder)
    if pointer is not None and Path(pointer).is_dir() and Path(pointer).resolve() == bundled.resolve():
        return None
    logger.info("using the codec in %s (processor config points to %s)", bundled, pointer)
    return bundled


def _codec_pointer(folder: Path) -> str | None:
    """`audio_tokenizer_name_or_path` from the folder's processor config, if any."""
    config_file = folder / PROCESSOR_NAME
    if not config_file.is_file():
        return None
    entry = json.loads(config_file.read_text(encoding="utf-8")).get("audio_tokenizer") or {}
    return entry.get("audio_tokenizer_name_or_path")


def _processor_with_codec(folder: Path, codec_dir: Path) -> HiggsAudioV2Processor:
    """What `HiggsAudioV2Processor.from_pretrained(folder)` builds, but with the codec from `codec_dir`.

    `from_pretrained` always loads the pointer first, so a stale one cannot be overridden through it; instead
    each part is loaded with its own `from_pretrained` and assembled by the processor's `from_args_and_dict`,
    which applies the saved processor config the same way.
    """
    processor_dict = json.loads((folder / PROCESSOR_NAME).read_text(encoding="utf-8"))
    processor_dict["audio_tokenizer"] = HiggsAudioV2TokenizerModel.from_pretrained(codec_dir)
    template_file = folder / CHAT_TEMPLATE_FILE
    if template_file.is_file():
        processor_dict["chat_template"] = template_file.read_text(encoding="utf-8")
    parts = [DacFeatureExtractor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)]
    return HiggsAudioV2Processor.from_args_and_dict(parts, processor_dict)


def load_finetuned(
    model_id_or_path: str | os.PathLike,
    adapter: str | os.PathLike,
    *,
    use_text_head: bool = False,
    which: Literal["best", "last"] = "best",
) -> tuple[HiggsAudioV2ForConditionalGeneration, PromptConfig]:
    """A fine-tuned model and the prompt settings it was trained with.

    `adapter` is a checkpoint folder (used as is) or a run folder, whose best checkpoint is used, or its
    newest with `which="last"` (`checkpoint.resolve_checkpoint`); from LoRA (the adapter is merged into the
    base weights, so generation runs at plain speed) or from full fine-tuning.
    """
    from higgs_tune import checkpoint

    ckpt = checkpoint.resolve_checkpoint(Path(adapter), which)
    state = checkpoint.read_trainer_state(ckpt)
    settings = PromptConfig(**state["prompt"])
    if state["mode"] == "lora":
        from peft import PeftModel

        from higgs_tune.model.fingerprint import base_fingerprint, check_base

        base = load_model(model_id_or_path, use_text_head=use_text_head)
        check_base(state.get("base"), base_fingerprint(base, model_id_or_path), ckpt)
        model = PeftModel.from_pretrained(base, str(ckpt / "adapter")).merge_and_unload()
    else:
        model = load_model(ckpt / "model", use_text_head=use_text_head)
    logger.info("loaded %s fine-tune from %s (step %d)", state["mode"], ckpt, state["step"])
    return model, settings
