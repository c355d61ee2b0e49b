"""Which clips are worth training on: each rejected one gets a problem code, the same codes `validate` uses.

Duration, near-silence and clipping are `validate`'s own checks (`data.validate`), applied to the clip in
memory, and the speaking-rate bounds are its fixed ones, so a corpus that `ingest` writes validates clean.
`ingest` adds what only it can measure, because it has run the voice activity detector and the ASR:

* `low_snr`: speech power over the power of the clip's non-speech frames below `min_snr_db` (a clip
  with less than 0.2 s of non-speech is not judged);
* `little_speech`: less than `min_speech_fraction` of the clip is speech (music, noise, long silences);
* `transcript_mismatch`: the given transcript's CER against the ASR's (with the project's Arabic-aware
  normalisation, `scoring.text_metrics`) over `max_cer`; a mismatched transcript teaches the model to
  say the wrong words;
* `low_asr_confidence`: Whisper's confidence in a transcript it wrote is under `min_asr_confidence`
  (off at 0): an unsure transcript is likely a wrong one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from higgs_tune.data.audio import CLIP_LEVEL, AudioInfo, AudioStats
from higgs_tune.data.spoken import count_letters
from higgs_tune.data.validate import CPS_BOUNDS, clip_findings
from higgs_tune.ingest.settings import FilterSettings
from higgs_tune.ingest.slicing import Span, speech_seconds
from higgs_tune.scoring.text_metrics import cer

Finding = tuple[str, str]  # (problem code, message)
_FRAME_SECONDS = 0.02
_MIN_NOISE_SECONDS = 0.2


def audio_findings(
    audio: np.ndarray, sr: int, speech: Sequence[Span], name: str, settings: FilterSettings
) -> list[Finding]:
    """Problems of a clip's audio; `speech` holds the detected speech segments in clip time."""
    frames = audio.size
    peak = float(np.abs(audio).max()) if frames else 0.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if frames else 0.0
    clipped = int(np.count_nonzero(np.abs(audio) >= CLIP_LEVEL)) / max(frames, 1)
    stats = AudioStats(AudioInfo(Path(name), sr, 1, frames, "FLAC", "PCM_16"), peak, rms, clipped)
    limits = {"min_seconds": settings.min_seconds, "max_seconds": settings.max_seconds}
    found = list(clip_findings(stats, limits))
    if any(code == "near_silent" for code, _ in found):
        return found  # the other measures say nothing new about silence
    duration = frames / sr
    spoken = speech_seconds(speech, (0.0, duration))
    if spoken < settings.min_speech_fraction * duration:
        found.append(
            (
                "little_speech",
                f"only {spoken:.1f} s of speech in {duration:.1f} s "
                f"(under --min-speech-fraction {settings.min_speech_fraction:g})",
            )
        )
    snr = snr_db(audio, sr, speech)
    if snr is not None and snr < settings.min_snr_db:
        found.append(("low_snr", f"estimated SNR {snr:.1f} dB, under --min-snr-db {settings.min_snr_db:g}"))
    return found


def snr_db(audio: np.ndarray, sr: int, speech: Sequence[Span]) -> float | None:
    """Mean power of the speech frames over the median power of the non-speech frames (the median, so that
    speech onsets the detector placed a frame late do not count as noise), in dB; None when the clip has
    no speech or less than `_MIN_NOISE_SECONDS` of non-speech to measure the noise on (a clip that is
    speech from edge to edge is not judged: its quietest frames are speech, not noise)."""
    hop = max(1, int(_FRAME_SECONDS * sr))
    n = audio.size // hop
    if n == 0:
        return None
    power = np.mean(np.square(audio[: n * hop].reshape(n, hop), dtype=np.float64), axis=1)
    times = (np.arange(n) + 0.5) * hop / sr
    in_speech = np.zeros(n, dtype=bool)
    for start, end in speech:
        in_speech |= (times >= start) & (times < end)
    if not in_speech.any() or np.count_nonzero(~in_speech) * _FRAME_SECONDS < _MIN_NOISE_SECONDS:
        return None
    noise = max(float(np.median(power[~in_speech])), 1e-12)
    return 10.0 * float(np.log10(max(float(power[in_speech].mean()), 1e-12) / noise))


def text_findings(text: str | None, duration: float) -> list[Finding]:
    """Problems of a clip's transcript: none at all, or a length that cannot fit the clip (`validate`'s
    fixed letters-per-second bounds)."""
    if text is None or not text.strip():
        return [("empty_text", "no transcript (none given and the ASR heard nothing)")]
    letters = count_letters(text)
    rate = letters / duration if duration > 0 else float("inf")
    low, high = CPS_BOUNDS
    if not low <= rate <= high:
        return [
            (
                "chars_per_second",
                f"{rate:.1f} letters/s ({letters} letters in {duration:.2f} s; bounds {low:g}-{high:g}), "
                "so the transcript may not match the clip",
            )
        ]
    return []


def mismatch_finding(text: str, heard: str, language: str | None, max_cer: float) -> Finding | None:
    """`transcript_mismatch` when the given text's CER against the ASR's transcript exceeds `max_cer`."""
    rate = cer(text, heard, language)
    if rate <= max_cer:
        return None
    return (
        "transcript_mismatch",
        f"CER {rate:.2f} between the given text and the ASR's {heard[:60]!r} (over --max-cer {max_cer:g})",
    )


def confidence_finding(confidence: float | None, minimum: float) -> Finding | None:
    """`low_asr_confidence` when Whisper's confidence in the transcript it wrote is under `minimum`."""
    if confidence is None or confidence >= minimum:
        return None
    return (
        "low_asr_confidence",
        f"ASR confidence {confidence:.3f} in its transcript, under --min-asr-confidence {minimum:g}",
    )
