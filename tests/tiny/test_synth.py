"""Synthetic speech: reproducible, well-formed, and its voice parameters do what they say."""

from __future__ import annotations

import numpy as np
import pytest

from higgs_tune.tiny.synth import synth_speech

SR = 24000


def dominant_pitch(audio: np.ndarray, sr: int = SR) -> float:
    """Median autocorrelation F0 over the loudest 40 ms frames, searched between 60 and 400 Hz."""
    frame = int(0.04 * sr)
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    loud = frames[np.argsort((frames**2).sum(1))[-len(frames) // 4 :]]
    lags = np.arange(sr // 400, sr // 60)
    estimates = []
    for f in loud:
        corr = np.correlate(f, f, mode="full")[frame - 1 :]
        estimates.append(sr / lags[np.argmax(corr[lags])])
    return float(np.median(estimates))


def test_same_arguments_same_waveform_and_seed_changes_it() -> None:
    a = synth_speech(1.5, seed=3)
    assert np.array_equal(a, synth_speech(1.5, seed=3))
    assert not np.array_equal(a, synth_speech(1.5, seed=4))


@pytest.mark.parametrize(("seconds", "sr"), [(2.0, SR), (0.5, 16000), (0.01, SR)])
def test_shape_dtype_and_range(seconds: float, sr: int) -> None:
    audio = synth_speech(seconds, sr=sr, seed=1)
    assert audio.shape == (round(seconds * sr),)
    assert audio.dtype == np.float32
    assert np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0.5


def test_zero_length() -> None:
    assert synth_speech(0.0).shape == (0,)


def test_pitch_parameter_sets_the_voice_pitch() -> None:
    low = dominant_pitch(synth_speech(3.0, seed=5, pitch_hz=100.0, pitch_range=0.1))
    high = dominant_pitch(synth_speech(3.0, seed=5, pitch_hz=220.0, pitch_range=0.1))
    assert 80 < low < 120
    assert 180 < high < 260


def test_has_pauses_and_loud_stretches() -> None:
    audio = synth_speech(5.0, seed=2, pause_prob=0.3)
    rms = np.sqrt((audio[: len(audio) // 2400 * 2400].reshape(-1, 2400) ** 2).mean(1))
    assert rms.min() < 0.05 * rms.max()


def test_rejects_impossible_voices() -> None:
    with pytest.raises(ValueError):
        synth_speech(1.0, pitch_range=1.0)
