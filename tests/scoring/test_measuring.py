"""Which models measure the clones, and that a user is told when they are not the released defaults."""

import logging

import pytest

from higgs_tune.scoring.asr import DEFAULT_ASR_MODEL
from higgs_tune.scoring.measuring import measuring_models
from higgs_tune.scoring.speaker import DEFAULT_SPEAKER_MODEL


@pytest.mark.parametrize("given", ["none", "asr", "both"])
def test_measuring_models_from_the_model_folder_are_a_warning(tmp_path, caplog, given):
    """A model folder's eval-models/ used to be taken with an INFO line only, while the README names
    whisper-large-v3 as the default: figures measured with others are not comparable, so it is a WARNING
    naming each model taken, the default it replaces and the option to choose; a model the user named is
    their choice, and said nothing about."""
    (tmp_path / "eval-models" / "asr").mkdir(parents=True)
    (tmp_path / "eval-models" / "speaker").mkdir()
    asr = "" if given == "none" else "my/whisper"
    speaker = "my/wavlm" if given == "both" else ""
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        chosen = measuring_models(str(tmp_path), asr, speaker)
    carried_asr, carried_speaker = str(tmp_path / "eval-models/asr"), str(tmp_path / "eval-models/speaker")
    assert chosen == (asr or carried_asr, speaker or carried_speaker)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if given == "both":
        assert warned == []
        return
    (warning,) = warned
    assert f"{carried_speaker} instead of the default {DEFAULT_SPEAKER_MODEL} (--speaker-model" in warning
    said_asr = f"{carried_asr} instead of the default {DEFAULT_ASR_MODEL} (--asr-model"
    assert (said_asr in warning) == (given == "none") and "not comparable" in warning


def test_a_folder_without_eval_models_measures_with_the_defaults_silently(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        assert measuring_models(str(tmp_path)) == (DEFAULT_ASR_MODEL, DEFAULT_SPEAKER_MODEL)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
