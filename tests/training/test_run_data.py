"""The data contract SFT and DPO share (`training.run_data`): the lengths a batch plan uses are those of the
examples built, the prompt is resolved once, and the preference folder of today's `prefs` still reads."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from conftest import synthetic_prefs, train_config

from higgs_tune.config_files import load_config
from higgs_tune.training.dpo_trainer import DpoTrainer
from higgs_tune.training.trainer import Trainer

VOWELED = "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ وَقَرَأَ الكِتَابَ "
"""Arabic with diacritics: arabic_no_diacritics drops about half its characters."""


def _voweled_prepared(prepared_dir: Path, out: Path) -> Path:
    """The prepared sample data as if prepared with arabic_no_diacritics, its texts still voweled (so the
    prompt's normalisation changes them)."""
    shutil.copytree(prepared_dir, out)
    index = json.loads((out / "index.json").read_text())
    (out / "index.json").write_text(json.dumps({**index, "text_normalisation": "arabic_no_diacritics"}))
    lines = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    lines = [{**r, "ref_text": VOWELED * 2, "text": VOWELED * (3 + i % 4)} for i, r in enumerate(lines)]
    (out / "samples.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    return out


def _voweled_prefs(prepared_dir: Path, model: Path, out: Path) -> Path:
    """A preference folder whose candidates were cloned with arabic_no_diacritics, its texts voweled."""
    prefs = synthetic_prefs(prepared_dir, model, out, pairs=4)
    prompt = json.loads((prefs / "prompt.json").read_text())
    (prefs / "prompt.json").write_text(json.dumps({**prompt, "text_normalisation": "arabic_no_diacritics"}))
    lines = [json.loads(line) for line in (prefs / "prefs.jsonl").read_text().splitlines()]
    lines = [{**r, "ref_text": VOWELED * 2, "text": VOWELED * (3 + i)} for i, r in enumerate(lines)]
    (prefs / "prefs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    return prefs


def _dpo_config(model: Path, prefs: Path, out: Path, *overrides: str):
    from higgs_tune.config import TrainSettings

    base = ["objective=dpo", f"model={model}", f"prefs={prefs}", f"output_dir={out}", "report_to=[none]"]
    return load_config(
        TrainSettings, None, [*base, "eval_fraction=0", "per_device_train_batch_size=2", *overrides]
    )


def _built_lengths(data) -> list[int]:
    """The sequence length of each training item's example as built (a pair's: its longer clip's)."""
    items = [data.train_set[i] for i in range(len(data.train_set))]
    return [
        max(x.chosen.num_tokens, x.rejected.num_tokens) if hasattr(x, "chosen") else x.num_tokens
        for x in items
    ]


@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_planned_lengths_are_the_built_lengths_under_text_normalisation(
    objective, tiny_model_dir, prepared_dir, tmp_path
) -> None:
    """With arabic_no_diacritics the prompt holds about half the characters the stored texts have: the
    lengths the batch plan and the max_seq_len filter use are those of the examples built, SFT and DPO."""
    if objective == "sft":
        data_dir = _voweled_prepared(prepared_dir, tmp_path / "prepared")
        cfg = train_config(tiny_model_dir, data_dir, tmp_path / "run", "report_to=[none]", "eval_fraction=0")
        trainer = Trainer(cfg)
    else:
        prefs = _voweled_prefs(prepared_dir, tiny_model_dir, tmp_path / "prefs")
        trainer = DpoTrainer(_dpo_config(tiny_model_dir, prefs, tmp_path / "run"))
    data = trainer.data
    assert trainer.cfg.prompt.text_normalisation == "arabic_no_diacritics"
    assert [data.lengths[i] for i in data.train_set.indices] == _built_lengths(data)


def test_a_preference_folder_of_todays_prefs_still_reads(
    tiny_model_dir, prepared_dir, tmp_path, caplog
) -> None:
    """Folders written before null was recorded say adapter "None": read as no adapter, so DPO from the
    model that drew them does not warn, and `prefs` continues such a folder with the same settings."""
    from higgs_tune.data import preference_folder

    prefs = synthetic_prefs(prepared_dir, tiny_model_dir, tmp_path / "prefs", pairs=4)
    made = {"model": str(tiny_model_dir), "adapter": "None", "candidates": 4}
    (prefs / "settings.json").write_text(json.dumps(made))
    assert preference_folder.read_settings(prefs)["adapter"] is None
    preference_folder.check_settings(prefs, {**made, "adapter": None})  # not refused as other settings
    with caplog.at_level(logging.WARNING):
        DpoTrainer(_dpo_config(tiny_model_dir, prefs, tmp_path / "run"))
    assert "were drawn from model" not in caplog.text
