"""Fingerprints of a base model and of its codec, so an adapter or prepared codes meet only their own model.

A LoRA adapter is a difference from one set of base weights. Merged onto another base of the same shapes it
loads silently and sounds wrong; onto another architecture peft prints a page of size mismatches. A run
therefore records the base it was trained on (`base_fingerprint`: where it came from, a digest of its
config, of its weights' shapes and of a sample of its weights) and every later load compares
(`check_base`): other shapes are an error in one line, another config or other weights a warning.
Prepared codes likewise record their codec (`codec_digest`), since codes of one codec are noise to another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from higgs_tune.errors import UserError

log = logging.getLogger(__name__)

# Config entries that say where or how a model was saved, not what it is.
NOT_IDENTITY = {
    "_name_or_path",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_commit_hash",
    "architectures",
    "quantization_config",  # QLoRA quantises the same base; its adapter merges onto the unquantised one
}
# Values taken from each weight for the weights digest: enough to tell two trainings apart, cheap at 3B.
SAMPLED_VALUES = 1024


class BaseMismatchError(UserError):
    """An adapter applied to a base model of other shapes than the one it was trained on."""


def _digest(obj: object) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_digest(config) -> str:
    """A digest of what a (model or codec) config says the model is, not where it was saved."""
    return _digest({k: v for k, v in config.to_dict().items() if k not in NOT_IDENTITY})


def codec_digest(codec) -> str:
    """The identity of a codec (`HiggsAudioV2TokenizerModel`), as prepared datasets record it: its config
    and a sample of its weights, since two codecs of one config still give each other's codes no meaning."""
    return _digest([config_digest(codec.config), _weights_digest(codec)])


def model_reference(model_id_or_path: str | os.PathLike) -> str:
    """A local folder as its absolute path (a relative one means nothing elsewhere), a hub id as it is."""
    path = Path(model_id_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else str(model_id_or_path)


def _shapes_digest(config) -> str:
    """The base's weight names and shapes, from its config on the meta device: the same whether the
    weights are loaded in fp32, bf16 or quantised (packed 4-bit weights have other shapes)."""
    from transformers import HiggsAudioV2ForConditionalGeneration

    with torch.device("meta"):
        model = HiggsAudioV2ForConditionalGeneration(config)
    return _digest(sorted((name, list(p.shape)) for name, p in model.state_dict().items()))


def _weights_digest(model: torch.nn.Module) -> str | None:
    """A digest of evenly spaced values of every weight, rounded to bf16 so that fp32 and bf16 loads of
    the same checkpoint agree; None for a quantised base, whose stored values are not the weights."""
    digest = hashlib.sha1()
    for name, p in sorted(model.state_dict().items()):
        if name.startswith("text_lm_head") or p.numel() == 0:
            continue
        if not p.is_floating_point():
            return None
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // SAMPLED_VALUES)].to("cpu", torch.bfloat16)
        digest.update(name.encode() + sample.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()[:16]


def base_fingerprint(model: torch.nn.Module, model_id_or_path: str | os.PathLike) -> dict:
    """What a checkpoint records of the base model it was trained on (before any adapter is added)."""
    return {
        "model": model_reference(model_id_or_path),
        "config": config_digest(model.config),
        "shapes": _shapes_digest(model.config),
        "weights": _weights_digest(model),
    }


def check_base(recorded: dict | None, actual: dict, adapter: object) -> None:
    """Refuse an adapter whose base had other shapes; warn when its config or weights differ.

    `recorded` is the checkpoint's fingerprint (None for checkpoints made before fingerprints existed,
    which are let through with a note).
    """
    if recorded is None:
        log.info("%s records no base fingerprint; not checked against %s", adapter, actual["model"])
        return
    if recorded["shapes"] != actual["shapes"]:
        raise BaseMismatchError(
            f"{adapter} was trained on {recorded['model']}, whose weights have other shapes than those of "
            f"{actual['model']}: give --model {recorded['model']} (or the same model from another place)"
        )
    differs = [k for k in ("config", "weights") if None not in (recorded.get(k), actual.get(k))]
    differs = [k for k in differs if recorded[k] != actual[k]]
    if differs:
        log.warning(
            "%s was trained on %s; the base given, %s, has the same shapes but another %s: it loads, but "
            "the fine-tune was not made for these weights",
            adapter,
            recorded["model"],
            actual["model"],
            " and ".join(differs),
        )
