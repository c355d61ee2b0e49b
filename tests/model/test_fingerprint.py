"""An adapter meets only the base it was trained on: other shapes are refused, other weights warned about."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from transformers import HiggsAudioV2ForConditionalGeneration

from higgs_tune.model.fingerprint import BaseMismatchError, base_fingerprint, check_base, codec_digest
from higgs_tune.model.loading import load_model


@pytest.fixture(scope="module")
def recorded(tiny_model, tiny_model_dir) -> dict:
    return base_fingerprint(tiny_model, tiny_model_dir)


def test_the_same_base_in_bf16_has_the_same_fingerprint(tiny_model_dir, recorded) -> None:
    again = base_fingerprint(load_model(tiny_model_dir, dtype=torch.bfloat16), tiny_model_dir)
    assert again == recorded
    assert recorded["model"] == str(tiny_model_dir.resolve())


def test_other_weights_of_the_same_shapes_warn(tiny_model, tiny_model_dir, recorded, caplog) -> None:
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    actual = base_fingerprint(other, tiny_model_dir)
    assert (actual["shapes"], actual["config"]) == (recorded["shapes"], recorded["config"])
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        check_base(recorded, actual, "run/checkpoint-10")
    assert "another weights" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        check_base(recorded, recorded, "run/checkpoint-10")
    assert caplog.text == ""


def test_another_architecture_is_refused_in_one_line(tiny_model, tiny_model_dir, recorded) -> None:
    config = copy.deepcopy(tiny_model.config)
    config.intermediate_size *= 2
    other = HiggsAudioV2ForConditionalGeneration(config)
    with pytest.raises(BaseMismatchError, match=r"run/checkpoint-10 was trained on .*other shapes"):
        check_base(recorded, base_fingerprint(other, "elsewhere"), "run/checkpoint-10")


def test_checkpoints_without_a_fingerprint_pass(recorded) -> None:
    check_base(None, recorded, "old/checkpoint-1")


def test_codec_digest_tells_codecs_apart(processor) -> None:
    codec = processor.audio_tokenizer
    other = copy.deepcopy(codec)
    other.config.sample_rate = codec.config.sample_rate * 2
    assert codec_digest(codec) == codec_digest(copy.deepcopy(codec))
    assert codec_digest(codec) != codec_digest(other)


def test_codec_digest_tells_codecs_of_one_config_apart(processor, tmp_path) -> None:
    from higgs_tune.tiny.model import build_tiny_codec

    assert codec_digest(build_tiny_codec(seed=1)) != codec_digest(processor.audio_tokenizer)
