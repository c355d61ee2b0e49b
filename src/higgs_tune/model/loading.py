"""Load the Higgs Audio v2 model and processor, the same way for a hub id and for a local folder.

Everything goes through transformers' own `from_pretrained`, so a hub checkpoint in transformers' layout
and the tiny test model (`higgs_tune.tiny.model`) take the same path. The processor is assembled from its
parts, because of its audio tokenizer (the codec): transformers stores only a pointer to it
(`audio_tokenizer_name_or_path` in processor_config.json, loaded as given, so a local pointer is an absolute
path) and loads it unchecked. A folder that carries its own codec in `audio_tokenizer/` is self-contained:
that codec is used even when the pointer names another place (the folder was moved or copied), so folders
stay relocatable.

Before any of that, `model.reference.check_model_reference` makes a mistyped `--model` one clear line
at once, before transformers spends minutes retrying the hub. After it, every load of weights (the model,
an adapter's base, a full fine-tune, the codec, the measuring models) goes through `load_checked`: a
checkpoint that lacks some of the model's weights, or holds them at another shape, is refused in one line
instead of being filled with random values (transformers only logs that, and our logging set-up hides it).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

import torch
from transformers import (
    AutoTokenizer,
    DacFeatureExtractor,
    HiggsAudioV2Config,
    HiggsAudioV2ForConditionalGeneration,
    HiggsAudioV2Processor,
    HiggsAudioV2TokenizerModel,
)
from transformers.utils import CHAT_TEMPLATE_FILE, PROCESSOR_NAME, cached_file

from higgs_tune.config import PromptSettings
from higgs_tune.errors import UserError
from higgs_tune.model import fast_dual_ffn as fast_dual_ffn_layer
from higgs_tune.model.reference import check_model_reference

logger = logging.getLogger(__name__)

# Where a self-contained model folder keeps its codec.
AUDIO_TOKENIZER_SUBDIR = "audio_tokenizer"
# Where a merged fine-tune (`higgs-tune merge`) keeps the prompt settings it was trained with.
PROMPT_FILE = "higgs_tune_prompt.json"

# transformers' script that turns a checkpoint in the original higgs-audio layout into its own. It is in the
# transformers source (src/transformers/models/higgs_audio_v2/), not in the installed package.
CONVERSION_SCRIPT = "convert_higgs_audio_v2_to_hf.py"
# Tensor names only the original layout uses; the conversion renames them (`layers.N.*` -> `model.layers.N.*`,
# `audio_codebook_embeddings.*` -> `model.embed_audio_tokens.embed_audio_tokens.*`, ...).
_ORIGINAL_LAYOUT = re.compile(
    r"^(audio_codebook_embeddings\.|layers\.\d+\.|embed_tokens\.|norm\.|audio_decoder_proj\.\w+\.linear_)"
)
# Tensors a converted checkpoint may carry besides the model's own: the conversion keeps copies of the two
# heads under their original names. They are unused, and expected, so they are not worth a warning. (The text
# head itself, `text_lm_head.weight`, transformers already ignores when the model is built without it.)
CONVERTED_EXTRAS = frozenset(
    {"audio_decoder_proj.audio_lm_head.weight", "audio_decoder_proj.text_lm_head.weight"}
)
MODEL_FIX = (
    "pass a Higgs Audio v2 checkpoint in transformers' layout (as HiggsAudioV2ForConditionalGeneration."
    "save_pretrained or `higgs-tune merge` writes it)"
)
CODEC_FIX = (
    "pass a model whose codec is in transformers' layout (as HiggsAudioV2TokenizerModel.save_pretrained "
    f"writes it), in its {AUDIO_TOKENIZER_SUBDIR}/ folder or at processor_config.json's "
    "audio_tokenizer_name_or_path"
)
# Names shown in a refusal; the rest are counted.
_NAMES_SHOWN = 3

PreTrained = TypeVar("PreTrained")


def load_processor(
    model_id_or_path: str | os.PathLike, *, device: str | torch.device | None = None
) -> HiggsAudioV2Processor:
    """The model's processor (text tokenizer + chat template + feature extractor + codec).

    `device` places the codec, which encodes reference audio inside the processor call; None leaves it on CPU.
    """
    check_model_reference(model_id_or_path)
    processor = _processor_with_codec(model_id_or_path, load_codec(_codec_source(model_id_or_path)))
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
    model = load_checked(
        HiggsAudioV2ForConditionalGeneration,
        model_id_or_path,
        "Higgs Audio v2 model",
        MODEL_FIX,
        use_text_head=use_text_head,
        **kwargs,
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


def load_codec(source: str | os.PathLike) -> HiggsAudioV2TokenizerModel:
    """The codec (`HiggsAudioV2TokenizerModel`) saved in `source`, refused if its weights do not fill it."""
    return load_checked(HiggsAudioV2TokenizerModel, source, "Higgs Audio v2 codec", CODEC_FIX)


def load_checked(
    cls: type[PreTrained], source: str | os.PathLike, what: str, fix: str, **kwargs: object
) -> PreTrained:
    """`cls.from_pretrained(source, **kwargs)`, refused (`UserError`) when the checkpoint does not fill it.

    transformers gives a weight that the checkpoint lacks, or holds at another shape, random values and goes
    on: a model in the original higgs-audio layout then clones noise, and a codec without its weights encodes
    training data into noise. `check_loading_info` reads transformers' own loading report instead, so the
    refusal comes before any work starts. Sizes that differ are reported, not raised, by transformers
    (`ignore_mismatched_sizes`), so they get the same one line. `what` names the model in that line and
    `fix` says what to pass instead. transformers' report table is left out: this one line replaces it.
    """
    with _without_load_report():
        model, info = cls.from_pretrained(
            source, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
    check_loading_info(info, source, what, fix, total=len(model.state_dict()))
    return model


def check_loading_info(info: dict, source: str | os.PathLike, what: str, fix: str, total: int) -> None:
    """Raise `UserError` when `from_pretrained`'s loading report (`output_loading_info=True`) has a weight
    that is missing or of another size, or an error; warn about tensors the model does not use.

    transformers already leaves out of `missing_keys` what it ties on purpose to a loaded weight (Whisper's
    output projection, tied to its token embeddings) and what the model class declares optional, and out
    of `unexpected_keys` what the class declares ignorable (`text_lm_head.weight` without a text head).
    """
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(info.get("mismatched_keys", ()))
    errors = [str(e).strip().splitlines()[0] for e in info.get("error_msgs", ()) if str(e).strip()]
    unexpected = sorted(info.get("unexpected_keys", ()))
    if missing or mismatched or errors:
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} of its {total} weights missing from the checkpoint ({_few(missing)})"
            )
        if mismatched:
            shapes = [
                f"{name} {tuple(saved)} instead of {tuple(wanted)}" for name, saved, wanted in mismatched
            ]
            problems.append(f"{len(mismatched)} of another size there ({_few(shapes)})")
        problems.extend(errors)
        original = [name for name in unexpected if _ORIGINAL_LAYOUT.match(name)]
        layout = (
            f"; it holds tensors under the original higgs-audio names ({_few(original)}): "
            f"convert it with transformers' {CONVERSION_SCRIPT} (in the transformers source, "
            "src/transformers/models/higgs_audio_v2/), or"
            if original
            else "; "
        )
        raise UserError(
            f"{source}: not a complete {what}: {'; '.join(problems)}, so they would be random{layout} {fix}"
        )
    extra = [name for name in unexpected if name not in CONVERTED_EXTRAS]
    if extra:
        logger.warning(
            "%s: %d unused tensor(s) in the checkpoint, ignored by the %s (%s)",
            source,
            len(extra),
            what,
            _few(extra),
        )


def _few(names: Collection[str]) -> str:
    """The first few of `names`, and how many more there are."""
    shown = ", ".join(list(names)[:_NAMES_SHOWN])
    rest = len(names) - _NAMES_SHOWN
    return f"{shown} and {rest} more" if rest > 0 else shown


@contextmanager
def _without_load_report() -> Iterator[None]:
    """Drop transformers' table of missing and unexpected weights while `load_checked` loads: its one
    line replaces the table (and our logging set-up would hide the table anyway)."""
    hf_logger = logging.getLogger("transformers.modeling_utils")

    def not_a_load_report(record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()

    hf_logger.addFilter(not_a_load_report)
    try:
        yield
    finally:
        hf_logger.removeFilter(not_a_load_report)


def _codec_source(model_id_or_path: str | os.PathLike) -> str | Path:
    """Where the model's codec is: the folder's own `audio_tokenizer/` when it has one, else what the
    processor config points to (`audio_tokenizer_name_or_path`, a hub id or a path)."""
    folder = Path(model_id_or_path)
    bundled = folder / AUDIO_TOKENIZER_SUBDIR
    pointer = _codec_pointer(model_id_or_path)
    if folder.is_dir() and (bundled / "config.json").is_file():
        if pointer is None or not Path(pointer).is_dir() or Path(pointer).resolve() != bundled.resolve():
            logger.info("using the codec in %s (processor config points to %s)", bundled, pointer)
        return bundled
    if pointer is None:
        raise UserError(
            f"{model_id_or_path}: its {PROCESSOR_NAME} names no codec (audio_tokenizer_name_or_path) and "
            f"it has no {AUDIO_TOKENIZER_SUBDIR}/ folder; {CODEC_FIX}"
        )
    return pointer


def _processor_config(model_id_or_path: str | os.PathLike) -> dict:
    """The model's processor_config.json (from the folder, or the hub)."""
    config_file = cached_file(model_id_or_path, PROCESSOR_NAME, _raise_exceptions_for_missing_entries=False)
    if config_file is None:
        raise UserError(
            f"{model_id_or_path}: has no {PROCESSOR_NAME}, so no processor (tokenizer, codec); {MODEL_FIX}"
        )
    return json.loads(Path(config_file).read_text(encoding="utf-8"))


def _codec_pointer(model_id_or_path: str | os.PathLike) -> str | None:
    """`audio_tokenizer_name_or_path` from the model's processor config, if any."""
    entry = _processor_config(model_id_or_path).get("audio_tokenizer") or {}
    return entry.get("audio_tokenizer_name_or_path")


def _processor_with_codec(
    model_id_or_path: str | os.PathLike, codec: HiggsAudioV2TokenizerModel
) -> HiggsAudioV2Processor:
    """What `HiggsAudioV2Processor.from_pretrained(model_id_or_path)` builds, but with `codec`.

    `from_pretrained` loads the codec its pointer names itself, unchecked, and a stale pointer cannot be
    overridden through it; instead each part is loaded with its own `from_pretrained` and assembled by the
    processor's `from_dict` with the saved processor config, as `from_pretrained` does.
    """
    processor_dict = _processor_config(model_id_or_path)
    processor_dict["audio_tokenizer"] = codec
    template_file = cached_file(
        model_id_or_path, CHAT_TEMPLATE_FILE, _raise_exceptions_for_missing_entries=False
    )
    if template_file is not None:
        processor_dict["chat_template"] = Path(template_file).read_text(encoding="utf-8")
    return HiggsAudioV2Processor.from_dict(
        processor_dict,
        feature_extractor=DacFeatureExtractor.from_pretrained(model_id_or_path),
        tokenizer=AutoTokenizer.from_pretrained(model_id_or_path),
    )


def model_prompt(model_id_or_path: str | os.PathLike) -> PromptSettings:
    """The prompt settings to use a model with: those a merged fine-tune records (`PROMPT_FILE`), else the
    defaults the base model was trained with.

    A merged folder is what users publish and serve, so it must be prompted as its adapter was (the same
    system text, scene and text normalisation), by every command that loads it, as for `--adapter RUN`.
    """
    found = cached_file(
        model_id_or_path,
        PROMPT_FILE,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    if found is None:
        return PromptSettings()
    try:
        recorded = json.loads(Path(found).read_text(encoding="utf-8"))
        return PromptSettings(**recorded)
    except (ValueError, TypeError) as e:
        raise UserError(
            f"{found}: not the prompt settings `higgs-tune merge` writes ({e}); restore it from the "
            "merged run's checkpoint (trainer_state.json's prompt) or merge again"
        ) from e


def load_finetuned(
    model_id_or_path: str | os.PathLike,
    adapter: str | os.PathLike,
    *,
    use_text_head: bool = False,
    which: Literal["best", "last"] = "best",
) -> tuple[HiggsAudioV2ForConditionalGeneration, PromptSettings]:
    """A fine-tuned model and the prompt settings it was trained with.

    `adapter` is a checkpoint folder (used as is) or a run folder, whose best checkpoint is used, or its
    newest with `which="last"` (`checkpoint.resolve_checkpoint`); from LoRA (the adapter is merged into the
    base weights, so generation runs at plain speed) or from full fine-tuning.
    """
    from higgs_tune import checkpoint

    ckpt = checkpoint.resolve_checkpoint(Path(adapter), which)
    state = checkpoint.read_trainer_state(ckpt)
    settings = PromptSettings(**state["prompt"])
    weights = checkpoint.weights_dir(ckpt, state["mode"])
    if state["mode"] == "lora":
        from peft import PeftModel

        from higgs_tune.model.fingerprint import base_fingerprint, check_base
        from higgs_tune.model.lora import lora_without_bitsandbytes

        base = load_model(model_id_or_path, use_text_head=use_text_head)
        check_base(state.get("base"), base_fingerprint(base, model_id_or_path), ckpt)
        with lora_without_bitsandbytes(base):
            model = PeftModel.from_pretrained(base, str(weights)).merge_and_unload()
    else:
        model = load_model(weights, use_text_head=use_text_head)
    logger.info("loaded %s fine-tune from %s (step %d)", state["mode"], ckpt, state["step"])
    return model, settings
