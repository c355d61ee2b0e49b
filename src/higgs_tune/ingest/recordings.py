"""One chunk of recordings -> clips on disk and rows: the work a worker process does.

Each recording is decoded to 24 kHz mono, its speech found by the voice activity detector, cut at pauses
when it has no transcript of its own (`slicing.plan_clips`; a recording that comes with its text is one
clip), and each clip checked (`filters`). Kept clips are written at once; their rows carry `text` None when
the ASR must still provide it, which happens in the main process (`transcribe`), where the ASR model lives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from higgs_tune.data.audio import TARGET_SR, AudioError
from higgs_tune.data.samples import SampleError
from higgs_tune.ingest.corpus import clip_name, write_clip
from higgs_tune.ingest.filters import audio_findings, text_findings
from higgs_tune.ingest.settings import IngestSettings
from higgs_tune.ingest.slicing import Span, SpeechDetector, plan_clips
from higgs_tune.ingest.sources import Recording

_detector: SpeechDetector | None = None  # one per process, loaded on first use


@dataclass
class ChunkResult:
    """What a worker hands back for one chunk: rows only (clips are already on disk)."""

    chunk: int
    digest: str
    kept: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # audio decoded, for the progress bar


def init_worker() -> None:
    """Worker processes: one thread each (the processes are the parallelism)."""
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def process_chunk(
    chunk: int, digest: str, recordings: list[Recording], settings: IngestSettings, out: Path
) -> ChunkResult:
    global _detector
    if _detector is None:
        _detector = SpeechDetector(settings.slicing.vad_threshold)
    result = ChunkResult(chunk, digest)
    for recording in recordings:
        _process(recording, settings, out, _detector, result)
    return result


def _process(
    recording: Recording, settings: IngestSettings, out: Path, detector: SpeechDetector, result: ChunkResult
) -> None:
    base = {"source": recording.key, "speaker": recording.speaker}
    unused = {**base, "start": 0.0, "end": 0.0, "duration": 0.0}
    if recording.problem is not None:  # a bad table row, a transcript that is not UTF-8
        code, message = recording.problem
        result.rejected.append({**unused, "code": code, "message": message})
        return
    try:
        audio = recording.decode(TARGET_SR)
    except SampleError as e:
        code = e.code if isinstance(e, AudioError) else "audio_unreadable"
        result.rejected.append({**unused, "code": code, "message": e.problem})
        return
    duration = audio.size / TARGET_SR
    result.seconds += duration
    speech = detector.segments(audio, TARGET_SR)
    spans = (
        [(0.0, duration)] if recording.text is not None else plan_clips(duration, speech, settings.slicing)
    )
    for index, (start, end) in enumerate(spans):
        clip = audio[round(start * TARGET_SR) : round(end * TARGET_SR)]
        name = clip_name(recording.speaker, recording.key, index)
        row = {
            **base,
            "start": round(start, 3),
            "end": round(end, 3),
            "duration": round(clip.size / TARGET_SR, 3),
        }
        findings = audio_findings(clip, TARGET_SR, _shift(speech, start), name, settings.filters)
        if recording.text is not None:
            findings += text_findings(recording.text, clip.size / TARGET_SR)
        if findings:
            code, message = findings[0]
            result.rejected.append({**row, "text": recording.text, "code": code, "message": message})
            continue
        audio_path = write_clip(out, name, clip)
        result.kept.append({"id": Path(name).stem, "audio": audio_path, "text": recording.text, **row})


def _shift(speech: list[Span], offset: float) -> list[Span]:
    """Speech segments in the time of a clip that starts at `offset`."""
    return [(s - offset, e - offset) for s, e in speech]
