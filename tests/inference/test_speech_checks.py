from __future__ import annotations

import math

import numpy as np
import pytest

from higgs_tune.data.spoken import count_letters
from higgs_tune.inference.speech_checks import FLAGS, CheckThresholds, check_speech, summarize

SR = 24_000


def voice(seconds: float, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """A seeded harmonic tone with a little noise: steady, speech-like energy in every 20 ms frame."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * 150.0 * t) / k for k in range(1, 6)) + 0.02 * rng.standard_normal(t.size)
    return level * x / np.abs(x).max()


def silence(seconds: float, dbfs: float | None = None, seed: int = 1) -> np.ndarray:
    """Digital silence, or white noise at `dbfs` RMS (a codec's or a room's noise floor)."""
    n = round(seconds * SR)
    if dbfs is None:
        return np.zeros(n)
    return 10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(n)


def test_trailing_silence_is_measured_and_flagged():
    c = check_speech(np.concatenate([voice(1.0), silence(2.0)]))
    assert c.duration_s == pytest.approx(3.0)
    assert c.trailing_silence_s == pytest.approx(2.0, abs=0.05)
    assert c.leading_silence_s == pytest.approx(0.0, abs=0.05)
    assert c.speech_s == pytest.approx(1.0, abs=0.05)
    assert c.flags == ["trailing_silence"]


def test_leading_silence_is_measured_and_flagged():
    c = check_speech(np.concatenate([silence(0.8), voice(1.0)]))
    assert c.leading_silence_s == pytest.approx(0.8, abs=0.05)
    assert c.trailing_silence_s == pytest.approx(0.0, abs=0.05)
    assert c.flags == ["leading_silence"]


def test_longest_internal_pause():
    long_gap = check_speech(np.concatenate([voice(1.0), silence(0.3), voice(0.5), silence(1.5), voice(1.0)]))
    assert long_gap.longest_pause_s == pytest.approx(1.5, abs=0.05)
    assert long_gap.flags == ["long_pause"]
    short_gap = check_speech(np.concatenate([voice(1.0), silence(0.3), voice(1.0)]))
    assert short_gap.longest_pause_s == pytest.approx(0.3, abs=0.05)
    assert short_gap.flags == []


def test_noise_floor_below_the_relative_threshold_counts_as_silence():
    # the tone's loudest frame is near -13 dBFS, so -58 dBFS noise is 45 dB down: silence
    c = check_speech(np.concatenate([silence(0.5, -58.0), voice(1.0), silence(1.5, -58.0)]))
    assert c.leading_silence_s == pytest.approx(0.5, abs=0.05)
    assert c.trailing_silence_s == pytest.approx(1.5, abs=0.05)


def test_quiet_clip_keeps_its_speech_but_is_flagged_too_quiet():
    c = check_speech(voice(1.0, level=0.005))
    assert c.speech_s == pytest.approx(1.0, abs=0.05)
    assert c.speech_rms_dbfs < -35
    assert c.flags == ["too_quiet"]


def test_noise_below_the_absolute_floor_is_silence_even_alone():
    c = check_speech(silence(1.0, -70.0))
    assert c.speech_s == 0.0 and c.flags == ["silent"]


def test_rms_level_of_a_known_sine():
    t = np.arange(SR) / SR
    c = check_speech(0.5 * np.sin(2 * np.pi * 200 * t))
    assert c.rms_dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert c.speech_rms_dbfs == pytest.approx(c.rms_dbfs, abs=0.01)


def test_clipped_square_wave_is_flagged():
    t = np.arange(SR) / SR
    square = np.clip(3.0 * np.sign(np.sin(2 * np.pi * 100 * t)), -1.0, 1.0)
    c = check_speech(square)
    assert c.clipped_fraction > 0.9
    assert "clipping" in c.flags
    assert check_speech(voice(1.0)).clipped_fraction == 0.0


@pytest.mark.parametrize(("stopped_by_eos", "cut"), [(False, True), (True, False), (None, False)])
def test_cut_flag_passes_through(stopped_by_eos, cut):
    c = check_speech(voice(1.0), stopped_by_eos=stopped_by_eos)
    assert c.stopped_by_eos is stopped_by_eos
    assert ("cut" in c.flags) is cut


def test_digital_silence_is_flagged_silent_only():
    c = check_speech(silence(2.0), text="hello there", stopped_by_eos=True)
    assert c.leading_silence_s == c.trailing_silence_s == pytest.approx(2.0)
    assert c.speech_s == 0.0 and c.rms_dbfs == -math.inf and c.length_ratio is None
    assert c.flags == ["silent"]


def test_length_ratio_against_the_text():
    text = "a" * 28  # 2 s at the default 14 letters/s
    fits = check_speech(voice(2.0), text=text)
    assert fits.expected_s == pytest.approx(2.0)
    assert fits.length_ratio == pytest.approx(1.0, abs=0.03)
    assert fits.flags == []
    assert check_speech(voice(4.5), text=text).flags == ["too_long"]
    assert check_speech(voice(0.8), text=text).flags == ["too_short"]


def test_expected_length_ignores_diacritics_spaces_and_punctuation():
    assert count_letters("أَهْلاً وَسَهْلاً!") == count_letters("اهلا وسهلا") == 9
    assert count_letters("ذهـــب") == count_letters("ذهب") == 3  # tatweel only stretches a letter
    no_letters = check_speech(voice(1.0), text=" ... ")
    assert no_letters.expected_s is None and no_letters.length_ratio is None


def test_expected_length_counts_numbers_as_spoken():
    # A digit is not one letter: "Room one hundred and one" takes as long as it is spelled out.
    assert count_letters("Room 101, please.") == count_letters("Room one hundred and one, please.") == 26
    # Arabic-Indic, Persian and Western digits read alike, in the language of the sentence.
    assert count_letters("عام ١٥") == count_letters("عام ۱۵") == count_letters("عام 15")
    assert count_letters("عام 15") == count_letters("عام خمسة عشر") == 10
    assert count_letters("15", language="ar") == count_letters("خمسة عشر") == 7
    assert count_letters("15", language="en") == count_letters("fifteen") == 7


def test_a_sentence_with_numbers_is_not_flagged_too_long():
    # Spoken at the default rate, this sentence's words take 84 / 14 = 6 s; counting each digit as a
    # letter expected 62 / 14 = 4.4 s and called a 9.5 s recording too long (ratio 2.1).
    text = "انتهت الحرب العالمية الثانية عام ١٩٤٥ بعد أن قتل فيها أكثر من ٨٠ مليون إنسان."
    c = check_speech(voice(9.5), text=text)
    assert c.expected_s == pytest.approx(84 / 14)
    assert c.flags == []
    assert check_speech(voice(9.5), text=text, language="ar").expected_s == pytest.approx(84 / 14)


def test_thresholds_are_configurable():
    clip = np.concatenate([voice(1.0), silence(2.0)])
    assert check_speech(clip, thresholds=CheckThresholds(max_trailing_silence_s=2.5)).flags == []
    slow = check_speech(voice(2.0), text="a" * 14, thresholds=CheckThresholds(chars_per_second=7.0))
    assert slow.length_ratio == pytest.approx(1.0, abs=0.03)


def test_partial_last_frame_is_measured():
    c = check_speech(np.concatenate([voice(1.0), silence(0.51)]))
    assert c.duration_s == pytest.approx(1.51)
    assert c.trailing_silence_s == pytest.approx(0.51, abs=0.02)


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros((10, 2))])
def test_rejects_non_mono_or_empty(bad):
    with pytest.raises(ValueError, match="mono"):
        check_speech(bad)


def test_summarize_counts_clips_per_flag():
    checks = [
        check_speech(voice(1.0), stopped_by_eos=True),
        check_speech(np.concatenate([voice(1.0), silence(2.0)]), stopped_by_eos=False),
        check_speech(silence(1.0)),
    ]
    summary = summarize(checks)
    assert summary["clips"] == 3 and summary["clean"] == 1
    assert list(summary["flags"]) == list(FLAGS)
    assert summary["flags"]["cut"] == 1
    assert summary["flags"]["trailing_silence"] == 1
    assert summary["flags"]["silent"] == 1
    assert summary["flags"]["clipping"] == 0
    assert summarize([]) == {"clips": 0, "clean": 0, "flags": dict.fromkeys(FLAGS, 0)}
