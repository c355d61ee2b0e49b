"""Long recordings -> clips, cut at the pauses a voice activity detector finds.

The detector is silero-vad (its model ships inside the package: offline, CPU, about 50x real time on one
core). It returns speech segments; the gaps between them are the pauses. The cut rule (`plan_clips`):

1. A recording no longer than `max_seconds` is kept whole: a clip that comes cut is not re-cut.
2. Sentence boundaries first: pauses of `sentence_pause` or more, longest first, each become a cut
   whenever the pieces on both sides are at least `min_seconds` long.
3. Pieces still over `max_seconds` are split at their own longest pause (any length) whose sides are both
   long enough, again and again until they fit. Shorter pauses are used only for this.
4. A piece with no usable pause stays as it is (and the duration filter rejects it): a cut never falls
   mid-word.

Each clip keeps up to `edge_seconds` of silence at both edges (half the pause at most, so neighbouring
clips never share audio), so no clip starts or ends on a clipped consonant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from higgs_tune.data.audio import resample
from higgs_tune.ingest.settings import SliceSettings

VAD_SR = 16_000
Span = tuple[float, float]  # (start, end) in seconds


class SpeechDetector:
    """silero-vad, loaded once per process: speech segments of a waveform, in seconds."""

    def __init__(self, threshold: float = 0.5) -> None:
        threads = torch.get_num_threads()
        from silero_vad import get_speech_timestamps, load_silero_vad

        self._model = load_silero_vad()  # its import sets torch to one thread: give back the caller's
        torch.set_num_threads(threads)
        self._timestamps = get_speech_timestamps
        self.threshold = threshold

    def segments(self, audio: np.ndarray, sr: int) -> list[Span]:
        wave = torch.from_numpy(resample(audio, sr, VAD_SR))
        threads = torch.get_num_threads()
        # The model runs on 32 ms windows one after the other: more threads only add overhead (many
        # times slower on a busy machine), so it runs on one, as silero-vad itself sets.
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                found = self._timestamps(
                    wave,
                    self._model,
                    threshold=self.threshold,
                    sampling_rate=VAD_SR,
                    min_silence_duration_ms=100,
                    speech_pad_ms=0,  # `plan_clips` keeps its own edge silence
                )
        finally:
            torch.set_num_threads(threads)
        return [(s["start"] / VAD_SR, s["end"] / VAD_SR) for s in found]


def plan_clips(duration: float, speech: Sequence[Span], settings: SliceSettings) -> list[Span]:
    """The clips (start, end) to cut from a recording of `duration` seconds with these speech segments."""
    if duration <= settings.max_seconds or not speech:
        return [(0.0, duration)]
    plan = _Plan(duration, list(speech), settings.edge_seconds)
    pieces = [(0, len(speech) - 1)]
    sentence_pauses = [k for k in plan.by_length if plan.gap(k) >= settings.sentence_pause]
    for k in sentence_pauses:
        index = next(i for i, (a, b) in enumerate(pieces) if a <= k < b)
        a, b = pieces[index]
        if plan.fits(a, k, settings.min_seconds) and plan.fits(k + 1, b, settings.min_seconds):
            pieces[index : index + 1] = [(a, k), (k + 1, b)]
    done: list[tuple[int, int]] = []
    while pieces:
        a, b = pieces.pop(0)
        k = _longest_split(plan, a, b, settings) if plan.length(a, b) > settings.max_seconds else None
        if k is None:
            done.append((a, b))
        else:
            pieces[:0] = [(a, k), (k + 1, b)]
    return [plan.span(a, b) for a, b in done]


def _longest_split(plan: _Plan, a: int, b: int, settings: SliceSettings) -> int | None:
    """The longest pause inside piece (a, b) whose two sides both reach `min_seconds`, if any."""
    for k in plan.by_length:
        if a <= k < b and plan.fits(a, k, settings.min_seconds) and plan.fits(k + 1, b, settings.min_seconds):
            return k
    return None


class _Plan:
    """Pieces as runs of speech segments (first, last); pause k lies between segments k and k + 1."""

    def __init__(self, duration: float, speech: list[Span], edge: float) -> None:
        self.duration = duration
        self.speech = speech
        self.edge = edge
        self.by_length = sorted(range(len(speech) - 1), key=lambda k: (-self.gap(k), k))

    def gap(self, k: int) -> float:
        return self.speech[k + 1][0] - self.speech[k][1]

    def span(self, a: int, b: int) -> Span:
        start = self.speech[a][0] - (self.edge if a == 0 else min(self.edge, self.gap(a - 1) / 2))
        last = len(self.speech) - 1
        end = self.speech[b][1] + (self.edge if b == last else min(self.edge, self.gap(b) / 2))
        return max(0.0, start), min(self.duration, end)

    def length(self, a: int, b: int) -> float:
        start, end = self.span(a, b)
        return end - start

    def fits(self, a: int, b: int, min_seconds: float) -> bool:
        return self.length(a, b) >= min_seconds


def speech_seconds(speech: Sequence[Span], span: Span) -> float:
    """Seconds of detected speech inside `span`."""
    start, end = span
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in speech)
