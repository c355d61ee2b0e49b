"""A run records its base model and meets only it; training meets only codes of its own codec."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from conftest import train_config

from higgs_tune import checkpoint
from higgs_tune.model.fingerprint import BaseMismatchError, base_fingerprint
from higgs_tune.model.loading import load_finetuned, load_model, load_processor
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.tiny.model import build_tiny_model
from higgs_tune.training.build import build_model
from higgs_tune.training.data import CodecMismatchError, check_codec
from higgs_tune.training.run import train


@pytest.fixture(scope="module")
def other_tiny_model_dir(tmp_path_factory):
    """A tiny model of the same shapes with other weights and another codec (seed 1)."""
    return build_tiny_model(tmp_path_factory.mktemp("other") / "higgs-tiny-1", seed=1)


def test_checkpoint_records_its_base_and_loading_checks_it(
    tiny_model_dir, other_tiny_model_dir, prepared_dir, tmp_path, caplog
) -> None:
    run = tmp_path / "run"
    last = train(train_config(tiny_model_dir, prepared_dir, run, "max_steps=1", "save_steps=1"))
    recorded = checkpoint.read_trainer_state(last)["base"]
    assert recorded == base_fingerprint(load_model(tiny_model_dir), tiny_model_dir)
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        load_finetuned(tiny_model_dir, last)
    assert "same shapes but another" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        load_finetuned(other_tiny_model_dir, last)
    assert "same shapes but another weights" in caplog.text


def test_starting_from_an_adapter_warns_only_about_another_base(
    tiny_model_dir, prepared_dir, tmp_path, caplog
) -> None:
    """`init_adapter` checks the fingerprint the run records, taken before training switches the cache off
    (and checkpointing on): the same base passes quietly, a base of another config is warned about."""
    last = train(train_config(tiny_model_dir, prepared_dir, tmp_path / "run", "max_steps=1", "save_steps=1"))
    other = shutil.copytree(tiny_model_dir, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-6}))
    for model, warned in ((tiny_model_dir, False), (other, True)):
        caplog.clear()
        cfg = train_config(
            model, prepared_dir, tmp_path / "next", f"init_adapter={last}", "gradient_checkpointing=true"
        )
        with caplog.at_level(logging.WARNING, logger="higgs_tune"):
            build_model(cfg, use_bf16=False)
        assert ("same shapes but another config" in caplog.text) == warned, caplog.text


def test_adapter_on_a_base_of_other_shapes_is_refused(tiny_model_dir, prepared_dir, tmp_path) -> None:
    last = train(train_config(tiny_model_dir, prepared_dir, tmp_path / "run", "max_steps=1", "save_steps=1"))
    state = checkpoint.read_trainer_state(last)
    state["base"]["shapes"] = "0" * 16
    (last / checkpoint.TRAINER_STATE).write_text(json.dumps(state))
    with pytest.raises(BaseMismatchError, match="other shapes"):
        load_finetuned(tiny_model_dir, last)


def test_codes_of_another_codec_are_refused(prepared_dir, processor, other_tiny_model_dir) -> None:
    data = PreparedData(prepared_dir)
    check_codec(data, processor, "tiny")
    with pytest.raises(CodecMismatchError, match="prepare the manifest again"):
        check_codec(data, load_processor(other_tiny_model_dir), str(other_tiny_model_dir))
