"""The loaded measuring models are named, not indexed: `eval` and `prefs` take the speaker encoder by name."""

from conftest import fast_tiny_eval_models

from higgs_tune.scoring.asr import Transcriber
from higgs_tune.scoring.measuring import load_measuring_models
from higgs_tune.scoring.speaker import SpeakerEncoder


def test_measuring_models_are_named(tmp_path) -> None:
    asr, speaker = fast_tiny_eval_models(tmp_path)
    measuring = load_measuring_models(str(asr), str(speaker), None, "cpu", 1)
    assert isinstance(measuring.transcriber, Transcriber)
    assert isinstance(measuring.speaker, SpeakerEncoder)
    transcriber, encoder = measuring  # still unpacks as the pair it was
    assert (transcriber, encoder) == (measuring.transcriber, measuring.speaker)
