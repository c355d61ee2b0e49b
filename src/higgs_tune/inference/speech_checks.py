"""Signal-level checks on one cloned clip: is there speech, where, how loud, and did generation stop.

These catch the failures a fine-tune most often introduces without needing any model: speech that trails
into seconds of silence before the stream EOS (or never reaches it and is cut), long hesitations, clipping,
near-silent output, and clips whose speaking length does not fit their text (skipped or repeated words).

Silence is decided per 20 ms frame by RMS energy. A frame is silent when its level is more than
`silence_below_loudest_db` below the clip's loudest frame, or below `silence_floor_dbfs` whatever the clip's
level. The relative part follows the clip's own loudness (a quiet but clean clip keeps its speech); the
absolute floor stops a nearly silent clip from calling its own noise floor speech. The loudest *frame*,
not the loudest single value, is the reference so that a single click cannot move the threshold.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from higgs_tune.data.audio import CLIP_LEVEL, TARGET_SR
from higgs_tune.data.spoken import count_letters

CUT = "cut"
SILENT = "silent"
LEADING_SILENCE = "leading_silence"
TRAILING_SILENCE = "trailing_silence"
LONG_PAUSE = "long_pause"
CLIPPING = "clipping"
TOO_QUIET = "too_quiet"
TOO_LONG = "too_long"
TOO_SHORT = "too_short"
FLAGS = (
    CUT,
    SILENT,
    LEADING_SILENCE,
    TRAILING_SILENCE,
    LONG_PAUSE,
    CLIPPING,
    TOO_QUIET,
    TOO_LONG,
    TOO_SHORT,
)

_TINY = 1e-12  # energy floor that keeps log10 finite for digital silence


@dataclass(frozen=True)
class CheckThresholds:
    """Where a measurement becomes a flag, and how silence is found.

    Defaults aim at clear failures, not at style: natural speech rarely pauses a full second inside a
    sentence, and a model has no reason to wait before its first word, while a short tail before EOS is
    normal. `chars_per_second` is the expected speaking rate in letters per second of speech, the text's
    numbers counted as they are spoken (`data.spoken.count_letters`: ١٩٤٥ is the 22 letters of its
    words, not 4; spaces, punctuation, Arabic diacritics and tatweel take no time of their own, so
    diacritised and bare Arabic text expect the same length). Read speech runs at roughly 150-180 words a
    minute with about five letters a word, i.e. 12-15 letters/s in English and similar in Modern Standard
    Arabic, whose unwritten short vowels are balanced by attached clitics; 14 sits in that range. The
    length bounds allow a factor of two either way, so only skipped or repeated phrases are flagged, not a
    slow or fast voice.
    """

    frame_seconds: float = 0.02
    silence_below_loudest_db: float = 40.0
    silence_floor_dbfs: float = -60.0
    max_leading_silence_s: float = 0.5
    max_trailing_silence_s: float = 1.0
    max_internal_pause_s: float = 1.0
    max_clipped_fraction: float = 0.001
    min_speech_rms_dbfs: float = -35.0
    chars_per_second: float = 14.0
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0


@dataclass(frozen=True)
class SpeechChecks:
    """Measurements of one clip and the names of the thresholds it crossed (see `FLAGS`).

    `speech_s` spans first to last non-silent frame; `length_ratio` compares it (not the whole clip, whose
    padding is already reported as leading/trailing silence) with the length the text should take, and is
    None for a text without letters or a clip without speech. `stopped_by_eos` is None when unknown.
    """

    duration_s: float
    leading_silence_s: float
    trailing_silence_s: float
    longest_pause_s: float
    speech_s: float
    rms_dbfs: float
    speech_rms_dbfs: float
    clipped_fraction: float
    stopped_by_eos: bool | None
    expected_s: float | None
    length_ratio: float | None
    flags: list[str] = field(default_factory=list)


def check_speech(
    audio: np.ndarray,
    text: str | None = None,
    stopped_by_eos: bool | None = None,
    sr: int = TARGET_SR,
    thresholds: CheckThresholds | None = None,
    language: str | None = None,
) -> SpeechChecks:
    """Measure one mono float waveform (by default 24 kHz, the codec's rate) and flag what looks broken.

    `text` is what the clip should say (for the length check), its numbers read in `language` (a code of
    `data.languages`) when it is known, else by script; `stopped_by_eos` is the generation fact (False
    means the frame limit cut it).
    """
    t = thresholds or CheckThresholds()
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected a non-empty mono waveform, got shape {x.shape}")
    span = _find_speech(x, sr, t)
    expected = _expected_seconds(text, t.chars_per_second, language)
    checks = SpeechChecks(
        duration_s=x.size / sr,
        leading_silence_s=span.leading_s,
        trailing_silence_s=span.trailing_s,
        longest_pause_s=span.longest_pause_s,
        speech_s=span.speech_s,
        rms_dbfs=_db(float(np.mean(x * x))),
        speech_rms_dbfs=span.rms_dbfs,
        clipped_fraction=float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / x.size,
        stopped_by_eos=stopped_by_eos,
        expected_s=expected,
        length_ratio=span.speech_s / expected if expected and span.speech_s else None,
    )
    return replace(checks, flags=_flags(checks, t))


@dataclass(frozen=True)
class _Span:
    """Where the speech is: silence before, after and inside it, its length and its level."""

    leading_s: float
    trailing_s: float
    longest_pause_s: float
    speech_s: float
    rms_dbfs: float


def _find_speech(x: np.ndarray, sr: int, t: CheckThresholds) -> _Span:
    """Split the clip into frames, call each silent or not (see the module docstring) and measure."""
    frame = max(1, round(t.frame_seconds * sr))
    starts = np.arange(0, x.size, frame)
    lengths = np.minimum(frame, x.size - starts)  # the last frame may be shorter
    energy = np.add.reduceat(x * x, starts)
    level_db = 10.0 * np.log10(np.maximum(energy / lengths, _TINY))
    silent = level_db < max(float(level_db.max()) - t.silence_below_loudest_db, t.silence_floor_dbfs)
    voiced = np.flatnonzero(~silent)
    if not voiced.size:
        return _Span(x.size / sr, x.size / sr, 0.0, 0.0, -math.inf)
    first, last = int(voiced[0]), int(voiced[-1])
    end = int(starts[last] + lengths[last])
    return _Span(
        leading_s=int(starts[first]) / sr,
        trailing_s=(x.size - end) / sr,
        # frames inside the span are all full length: only the clip's last frame can be short
        longest_pause_s=_longest_run(silent[first : last + 1]) * frame / sr,
        speech_s=(end - int(starts[first])) / sr,
        rms_dbfs=_db(float(energy[voiced].sum() / lengths[voiced].sum())),
    )


def _longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True values."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int(runs.max()) if runs.size else 0


def _db(mean_square: float) -> float:
    """Mean square to dBFS (a full-scale square wave is 0 dBFS); -inf for digital silence."""
    return 10.0 * math.log10(mean_square) if mean_square > 0 else -math.inf


def _expected_seconds(text: str | None, chars_per_second: float, language: str | None) -> float | None:
    if text is None:
        return None
    letters = count_letters(text, language)
    return letters / chars_per_second if letters else None


def _flags(c: SpeechChecks, t: CheckThresholds) -> list[str]:
    """Threshold crossings in `FLAGS` order. A clip without speech gets `silent` instead of the silence
    and level flags, which would all restate it."""
    flags = []
    has_speech = c.speech_s > 0
    if c.stopped_by_eos is False:
        flags.append(CUT)
    if not has_speech:
        flags.append(SILENT)
    else:
        if c.leading_silence_s > t.max_leading_silence_s:
            flags.append(LEADING_SILENCE)
        if c.trailing_silence_s > t.max_trailing_silence_s:
            flags.append(TRAILING_SILENCE)
        if c.longest_pause_s > t.max_internal_pause_s:
            flags.append(LONG_PAUSE)
    if c.clipped_fraction > t.max_clipped_fraction:
        flags.append(CLIPPING)
    if has_speech and c.speech_rms_dbfs < t.min_speech_rms_dbfs:
        flags.append(TOO_QUIET)
    if c.length_ratio is not None and c.length_ratio > t.max_length_ratio:
        flags.append(TOO_LONG)
    if c.length_ratio is not None and c.length_ratio < t.min_length_ratio:
        flags.append(TOO_SHORT)
    return flags


def summarize(checks: list[SpeechChecks]) -> dict[str, Any]:
    """Counts for a report: clips, clips without any flag, and clips per flag (every flag listed, zeros
    included, so reports of different runs line up)."""
    counts = Counter(flag for c in checks for flag in set(c.flags))
    return {
        "clips": len(checks),
        "clean": sum(not c.flags for c in checks),
        "flags": {flag: counts[flag] for flag in FLAGS},
    }
