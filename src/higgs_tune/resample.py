"""One waveform to another sample rate, the way the rest of the toolkit does it.

Evaluation models listen at 16 kHz while the codec speaks at 24 kHz; resampling with soxr at high quality
(as `higgs_tune.audio.load_audio` does) keeps the two paths from disagreeing about what a clip sounds like.
"""

from __future__ import annotations

import numpy as np
import soxr


def resample(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """A mono float waveform at `sr` as contiguous float32 at `target_sr` (unchanged if the rates match)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (n,), got shape {x.shape}")
    if sr != target_sr:
        x = soxr.resample(x, sr, target_sr, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)
