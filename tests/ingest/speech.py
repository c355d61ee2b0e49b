"""Test recordings for ingest: synthetic voices (`tiny.synth`) that silero-vad hears as speech, joined by
pauses of low noise, so every cut the slicer makes can be checked against where the pauses really are."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from higgs_tune.tiny.synth import synth_speech

SR = 24_000
# Voices silero-vad scores as speech throughout (mean speech probability over 0.9 on 4 s clips): a lively
# syllable rate, no pauses inside an utterance. Slower synthetic voices get false pauses mid-utterance.
VOICES = ({"pitch_hz": 130.0, "formant_scale": 1.0}, {"pitch_hz": 200.0, "formant_scale": 1.2})


@lru_cache(maxsize=16)
def utterance(seconds: float, seed: int, voice: int = 0) -> np.ndarray:
    """Cached: synthesis costs about 0.2 s per second of audio, and tests share their voices."""
    audio = synth_speech(seconds, SR, seed=seed, syllables_per_second=5.0, pause_prob=0.0, **VOICES[voice])
    audio.flags.writeable = False
    return audio


def long_recording(
    parts: int, seed: int = 0, voice: int = 0, part_seconds=(2.0, 4.0), pause_seconds=(0.6, 1.5)
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Utterances (stretches of three synthesised ones) joined by pauses of low noise (about -50 dBFS);
    returns the audio and the joins' (start, end) in seconds."""
    rng = np.random.default_rng(seed)
    pieces, joins, position = [], [], 0
    for i in range(parts):
        source = utterance(5.0, seed=3 * seed + i % 3, voice=voice)
        n = round(rng.uniform(*part_seconds) * SR)
        offset = int(rng.integers(0, source.size - n + 1))
        pieces.append(source[offset : offset + n])
        position += n
        if i < parts - 1:
            n = round(rng.uniform(*pause_seconds) * SR)
            pieces.append((0.003 * rng.standard_normal(n)).astype(np.float32))
            joins.append((position / SR, (position + n) / SR))
            position += n
    return np.concatenate(pieces), joins
