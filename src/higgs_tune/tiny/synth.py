"""Seeded synthetic "speech" so tests and the demo have distinct voices without shipping or downloading audio.

The signal is a crude source-filter model: a harmonic glottal source whose pitch glides within and across
syllables, shaped by vowel formants that move from syllable to syllable, with fricative noise bursts and
pauses in between. It is nothing a listener would call speech, but it has what an audio codec and a cloning
pipeline care about: a voice-specific pitch range and timbre (formant scale), a speaking rhythm, voiced and
unvoiced stretches, and silences, all of which change with the parameters and the seed.
"""

from __future__ import annotations

import numpy as np

# (F1, F2, F3) in Hz for a handful of vowels of an adult male voice; `formant_scale` shifts them per voice.
_VOWEL_FORMANTS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [270.0, 2290.0, 3010.0],  # i
        [300.0, 870.0, 2240.0],  # u
        [530.0, 1840.0, 2480.0],  # e
        [570.0, 840.0, 2410.0],  # o
        [660.0, 1720.0, 2410.0],  # ae
    ]
)
_FORMANT_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_MAX_HARMONIC_HZ = 6000.0


def synth_speech(
    seconds: float,
    sr: int = 24000,
    seed: int = 0,
    pitch_hz: float = 120.0,
    formant_scale: float = 1.0,
    syllables_per_second: float = 4.0,
    pitch_range: float = 0.25,
    breathiness: float = 0.05,
    pause_prob: float = 0.15,
    fricative_prob: float = 0.2,
) -> np.ndarray:
    """Make `seconds` of speech-like audio: float32 mono in [-1, 1], length `round(seconds * sr)`.

    A "voice" is the tuple (pitch_hz, formant_scale, syllables_per_second, pitch_range, breathiness); the seed
    picks what that voice "says" (vowel sequence, syllable timing, intonation, pauses). The same arguments
    always give the same waveform.

    Args:
        seconds: duration of the clip.
        sr: audio rate in Hz.
        seed: picks the utterance; different seeds give different syllable sequences.
        pitch_hz: mean fundamental frequency (about 100-130 for a low voice, 180-250 for a high one).
        formant_scale: multiplies all formants (about 1.0 for a long vocal tract, 1.2 for a short one).
        syllables_per_second: speaking rate.
        pitch_range: relative spread of the intonation around `pitch_hz` (0.25 means about +-25 %).
        breathiness: level of aspiration noise mixed into voiced stretches, relative to the voiced signal.
        pause_prob: chance that a syllable slot is a pause.
        fricative_prob: chance that a syllable starts with a noise burst (an "s"/"sh"-like consonant).
    """
    if pitch_hz <= 0 or not 0 <= pitch_range < 1 or syllables_per_second <= 0:
        raise ValueError("need pitch_hz > 0, 0 <= pitch_range < 1 and syllables_per_second > 0")
    n = round(seconds * sr)
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    rng = np.random.default_rng(seed)
    bounds = _syllable_bounds(n, sr, syllables_per_second, rng)
    paused = rng.random(len(bounds) - 1) < pause_prob
    fricated = (~paused) & (rng.random(len(bounds) - 1) < fricative_prob)

    f0 = _pitch_track(n, sr, bounds, pitch_hz, pitch_range, rng)
    formants = _formant_tracks(n, sr, bounds, formant_scale, rng)
    voiced = _harmonic_source(f0, formants, sr)
    voiced += breathiness * np.sqrt(np.mean(voiced**2)) * _band_noise(n, sr, 500.0, 5000.0, rng)

    envelope = _syllable_envelopes(n, bounds, ~paused)
    frication = _band_noise(n, sr, 2500.0, min(9000.0, 0.45 * sr), rng)
    noise_env = _burst_envelopes(n, sr, bounds, fricated)
    signal = voiced * envelope + 0.3 * frication * noise_env
    signal += 0.002 * rng.standard_normal(n)  # room noise: pauses are not digital silence, peak is never 0
    return (0.9 * signal / np.abs(signal).max()).astype(np.float32)


def _syllable_bounds(n: int, sr: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Waveform indices where syllables start and end; durations jitter around 1/rate (no metronome)."""
    mean = sr / rate
    durations = []
    total = 0
    while total < n:
        d = int(mean * rng.uniform(0.6, 1.4))
        durations.append(d)
        total += d
    return np.minimum(np.concatenate([[0], np.cumsum(durations)]), n)


def _pitch_track(
    n: int, sr: int, bounds: np.ndarray, pitch_hz: float, pitch_range: float, rng: np.random.Generator
) -> np.ndarray:
    """F0 in Hz at each waveform index: a per-syllable glide, an utterance-level declination and a slight
    vibrato."""
    f0 = np.empty(n)
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        a, b = 1.0 + pitch_range * rng.uniform(-1.0, 1.0, size=2)
        f0[start:end] = np.linspace(a, b, end - start)
    f0 = _smooth(f0, int(0.03 * sr))
    t = np.arange(n) / sr
    declination = 1.0 - 0.1 * t / max(t[-1], 1e-9)
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * 5.5 * t)
    return pitch_hz * f0 * declination * vibrato


def _formant_tracks(
    n: int, sr: int, bounds: np.ndarray, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """(F1, F2, F3) at each waveform index: one random vowel per syllable, smoothed so formants glide
    between vowels."""
    tracks = np.empty((n, 3))
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        vowel = _VOWEL_FORMANTS[rng.integers(len(_VOWEL_FORMANTS))]
        tracks[start:end] = vowel * scale * rng.uniform(0.93, 1.07, size=3)
    width = int(0.04 * sr)
    return np.stack([_smooth(tracks[:, i], width) for i in range(3)], axis=1)


def _harmonic_source(f0: np.ndarray, formants: np.ndarray, sr: int) -> np.ndarray:
    """Sum harmonics of f0, each weighted by the formant envelope at its frequency (source-filter)."""
    phase = 2 * np.pi * np.cumsum(f0) / sr
    out = np.zeros(len(f0))
    n_harmonics = int(min(_MAX_HARMONIC_HZ, 0.45 * sr) / f0.min())
    for k in range(1, n_harmonics + 1):
        freq = k * f0
        gain = sum(
            1.0 / (1.0 + ((freq - formants[:, i]) / _FORMANT_BANDWIDTHS[i]) ** 2) / (i + 1) for i in range(3)
        )
        gain = gain / np.sqrt(k)  # glottal spectral tilt
        gain[freq > 0.45 * sr] = 0.0
        out += gain * np.sin(k * phase)
    return out


def _band_noise(n: int, sr: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """White noise band-limited to [low, high] Hz in the frequency domain, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    noise = np.fft.irfft(spectrum, n)
    rms = np.sqrt(np.mean(noise**2))
    return noise / rms if rms > 0 else noise


def _syllable_envelopes(n: int, bounds: np.ndarray, active: np.ndarray) -> np.ndarray:
    """A rounded amplitude bump over each active syllable, zero over pauses."""
    env = np.zeros(n)
    for start, end, on in zip(bounds[:-1], bounds[1:], active, strict=True):
        if on and end > start:
            env[start:end] = np.sin(np.linspace(0.0, np.pi, end - start)) ** 0.5
    return env


def _burst_envelopes(n: int, sr: int, bounds: np.ndarray, fricated: np.ndarray) -> np.ndarray:
    """A short decaying noise burst at the start of each fricated syllable."""
    env = np.zeros(n)
    for start, end, on in zip(bounds[:-1], bounds[1:], fricated, strict=True):
        length = min(int(0.08 * sr), end - start)
        if on and length > 0:
            env[start : start + length] = np.hanning(2 * length)[length:] if length > 1 else 1.0
    return env


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average with edge padding, so tracks glide instead of jumping at syllable boundaries."""
    if width <= 1:
        return x
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")
