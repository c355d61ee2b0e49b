"""Every filter rejects its fixture with its problem code, and passes a clean clip."""

import numpy as np
import pytest
from speech import SR, clip

from higgs_tune.ingest.filters import audio_findings, mismatch_finding, text_findings
from higgs_tune.ingest.settings import FilterSettings
from higgs_tune.ingest.slicing import SpeechDetector

SETTINGS = FilterSettings(min_seconds=1.0, max_seconds=8.0)


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector()


def codes(audio: np.ndarray, detector: SpeechDetector) -> list[str]:
    return [code for code, _ in audio_findings(audio, SR, detector.segments(audio, SR), "x.flac", SETTINGS)]


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(round(seconds * SR))).astype(np.float32)


def test_a_clean_clip_passes(detector):
    assert codes(clip(2.5, 0), detector) == []
    assert text_findings("the quick brown fox jumps", 2.5) == []


def test_each_audio_filter_rejects_its_fixture(detector):
    speech = clip(2.5, 0)
    assert codes(clip(0.4, 0, edge_seconds=0.1), detector)[0] == "too_short"
    assert codes(np.tile(speech, 4), detector)[0] == "too_long"
    assert codes(noise(2.0, 1e-5), detector) == ["near_silent"]
    assert "clipping" in codes(np.clip(speech * 8, -1, 1), detector)
    noisy = speech + noise(speech.size / SR, 0.2)  # loud noise in the pauses too
    assert "low_snr" in codes(noisy, detector)
    sparse = np.concatenate([noise(3.0, 0.003), clip(1.0, 1, edge_seconds=0.0), noise(3.0, 0.003)])
    assert codes(sparse, detector) == ["little_speech"]


def test_text_filters():
    assert text_findings(None, 2.0)[0][0] == "empty_text"
    assert text_findings("  ", 2.0)[0][0] == "empty_text"
    assert text_findings("a" * 200, 2.0)[0][0] == "chars_per_second"  # 100 letters/s
    assert text_findings("hi", 5.0)[0][0] == "chars_per_second"  # 0.4 letters/s


def test_transcript_mismatch_uses_the_arabic_aware_cer():
    plain = "\u0630\u0647\u0628 \u0627\u0644\u0648\u0644\u062f"  # ذهب الولد
    diacritised = (
        "\u0630\u064e\u0647\u064e\u0628\u064e \u0627\u0644\u0652\u0648\u064e\u0644\u064e\u062f\u064f"
    )
    assert mismatch_finding(diacritised, plain, "ar", 0.1) is None  # only diacritics differ
    found = mismatch_finding("the quick brown fox", "a completely different text", None, 0.3)
    assert found is not None and found[0] == "transcript_mismatch"
