"""Text normalisation: its rules, its one home, and that it is the same at training and at cloning."""

import json
import random

import pytest
import torch
from conftest import train_config, write_jsonl

from higgs_tune.config import PromptSettings
from higgs_tune.config_files import ConfigError
from higgs_tune.data.manifests import read_manifest
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.data.text_normalisation import (
    TEXT_NORMALISATIONS,
    normalise_sample,
    normalise_text,
    training_normalisation,
)
from higgs_tune.inference.generate import load_for_cloning
from higgs_tune.model.prompt import build_prompt
from higgs_tune.prepared.prepare import prepare_dataset
from higgs_tune.prepared.settings import PrepareSettings
from higgs_tune.scoring.text_metrics import normalize_text
from higgs_tune.training.trainer import Trainer

DIACRITISED = "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ"
PLAIN = "ذهب الولد إلى المدرسة"
MESSY = " \u200fذهـــب\u00a0الولد\tإلى   المدرسة\u200d\n"


@pytest.mark.parametrize(
    ("how", "text", "expected"),
    [
        ("none", MESSY, MESSY),
        ("whitespace", MESSY, "ذهـــب الولد إلى المدرسة"),  # invisible marks and spacing only
        ("whitespace", DIACRITISED, DIACRITISED),
        ("arabic", MESSY, "ذهب الولد الى المدرسة"),  # tatweel gone, hamza seat folded
        ("arabic", DIACRITISED, "ذَهَبَ الوَلَدُ اِلَى المَدْرَسَةِ"),  # diacritics kept
        ("arabic_no_diacritics", DIACRITISED, "ذهب الولد الى المدرسة"),
        ("arabic", "أإآٱ", "اااا"),
        ("arabic", "على علي مدرسة", "على علي مدرسة"),  # alef maqsura and ta marbuta are read: kept
        ("arabic", "\ufefb \ufdf2", "لا الله"),  # presentation forms and ligatures from PDFs
        ("arabic", "ا\u0654", "ا"),  # decomposed hamza: composed (NFKC), then folded
    ],
)
def test_rules(how, text, expected):
    assert normalise_text(text, how) == expected


@pytest.mark.parametrize("how", TEXT_NORMALISATIONS)
@pytest.mark.parametrize("text", [MESSY, DIACRITISED, "اـٔ", "ؤ ئ ء ١٢٣ Hello,  World!"])
def test_normalising_twice_is_normalising_once(how, text):
    once = normalise_text(text, how)
    assert normalise_text(once, how) == once


WITH_NUMBERS = "عام ١٩٤٥ مات ٨٠٪ منهم، و 15 في 2024"


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("none", WITH_NUMBERS),
        ("whitespace", WITH_NUMBERS),
        ("arabic", WITH_NUMBERS),
        ("arabic_no_diacritics", WITH_NUMBERS),
    ],
)
def test_the_older_settings_leave_digits_as_they_were(how, expected):
    # A run trained before `arabic_spoken` existed clones exactly as it was trained: digits stay digits.
    assert normalise_text(WITH_NUMBERS, how) == expected


def test_arabic_spoken_writes_numbers_out_in_any_digit_system():
    spoken = "عام الف وتسعمئة وخمسة واربعون مات ثمانون في المئة منهم، و خمسة عشر في الفان واربعة وعشرون"
    assert normalise_text(WITH_NUMBERS, "arabic_spoken") == spoken  # words folded like any text (ألف)
    assert normalise_text("قرأت ١٥ كتابا", "arabic_spoken") == normalise_text(
        "قرأت 15 كتابا", "arabic_spoken"
    )
    assert normalise_text("قرأت ۱۵ كتابًا", "arabic_spoken") == "قرات خمسة عشر كتابا"  # no diacritics either


def test_normalising_twice_is_normalising_once_fuzzed():
    alphabet = "0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹.,٫٬%٪ \u00a0\tabstndrh عمروبـَُأإ\u200f-،"
    rng = random.Random(0)
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        for how in TEXT_NORMALISATIONS:
            once = normalise_text(text, how)
            assert normalise_text(once, how) == once, (how, text, once)


def test_scoring_shares_the_tables_and_folds_more():
    # The evaluation normaliser reuses the diacritics and alef tables and also folds what the audio
    # cannot show (alef maqsura, ta marbuta), which the training normalisation keeps.
    assert normalize_text(DIACRITISED) == "ذهب الولد الي المدرسه"
    assert normalise_text(DIACRITISED, "arabic_no_diacritics") == "ذهب الولد الى المدرسة"


def test_a_text_left_empty_is_named():
    sample = Sample("s1", ref_audio="r.wav", ref_text="\u064e\u0640", text="نص")
    with pytest.raises(SampleError, match="s1.*ref_text is empty"):
        normalise_sample(sample, "arabic_no_diacritics")


def test_a_run_takes_the_datas_normalisation_and_refuses_another():
    assert training_normalisation(None, "arabic", "data/") == "arabic"
    assert training_normalisation("arabic", "arabic", "data/") == "arabic"
    with pytest.raises(ConfigError, match="--text-normalisation arabic_no_diacritics"):
        training_normalisation("arabic_no_diacritics", "none", "data/")


def _prompt(processor, settings, text):
    codes = torch.randint(0, 1024, (8, 6), generator=torch.Generator().manual_seed(0))
    return build_prompt(processor, text, codes, text, settings).input_ids


def test_diacritised_and_plain_prompt_alike_only_when_trained_so(processor):
    same = PromptSettings(text_normalisation="arabic_no_diacritics")
    assert torch.equal(_prompt(processor, same, DIACRITISED), _prompt(processor, same, PLAIN))
    for how in (None, "none", "arabic"):
        settings = PromptSettings(text_normalisation=how)
        assert not torch.equal(_prompt(processor, settings, DIACRITISED), _prompt(processor, settings, PLAIN))


def test_digit_systems_prompt_alike_only_when_trained_so(processor):
    # The prompt is what generation sees: identical input ids give identical greedy codes.
    spoken = PromptSettings(text_normalisation="arabic_spoken")
    assert torch.equal(_prompt(processor, spoken, "عام ١٥"), _prompt(processor, spoken, "عام 15"))
    assert torch.equal(_prompt(processor, spoken, "عام ١٥"), _prompt(processor, spoken, "عام خمسة عشر"))
    for how in (None, "none", "arabic", "arabic_no_diacritics"):
        settings = PromptSettings(text_normalisation=how)
        assert not torch.equal(_prompt(processor, settings, "عام ١٥"), _prompt(processor, settings, "عام 15"))


def test_prepare_records_it_train_carries_it_clone_applies_it(tiny_model_dir, processor, make_wav, tmp_path):
    make_wav("c/a.wav", seed=1)
    make_wav("c/b.wav", seed=2)
    records = [
        {"id": f"s{i}", "ref_audio": ref, "ref_text": MESSY, "text": DIACRITISED, "audio": target}
        for i, (ref, target) in enumerate([("c/a.wav", "c/b.wav"), ("c/b.wav", "c/a.wav")])
    ]
    samples = read_manifest(write_jsonl(tmp_path / "m.jsonl", records))
    data = tmp_path / "data"
    index = prepare_dataset(
        samples,
        processor,
        data,
        str(tiny_model_dir),
        settings=PrepareSettings(workers=0, text_normalisation="arabic_no_diacritics"),
    )
    assert index["text_normalisation"] == "arabic_no_diacritics"
    stored = [json.loads(line) for line in (data / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(r["ref_text"], r["text"]) for r in stored} == {("ذهب الولد الى المدرسة",) * 2}

    cfg = train_config(tiny_model_dir, data, tmp_path / "run", "max_steps=1", "eval_fraction=0")
    Trainer(cfg).run()
    _, _, settings = load_for_cloning(str(tiny_model_dir), tmp_path / "run")
    assert settings.text_normalisation == "arabic_no_diacritics"
    assert torch.equal(_prompt(processor, settings, DIACRITISED), _prompt(processor, settings, PLAIN))
    with pytest.raises(ConfigError, match="prepared with --text-normalisation arabic_no_diacritics"):
        Trainer(train_config(tiny_model_dir, data, tmp_path / "r2", "prompt.text_normalisation=none"))
