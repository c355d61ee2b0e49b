"""Transcripts for clips that have none, and the check of those that do, with the project's Whisper.

A clip Whisper transcribed keeps Whisper's confidence in its text (`asr_confidence`, rounded to 4
decimals, see `scoring.asr`); a clip with a given transcript has none, checked or not.

The ASR is `scoring.asr.Transcriber` (model loading, batching, forced language), loaded once in the main
process (on the GPU when there is one) the first time a chunk needs it, and found the way `eval` finds its
models (`model.reference.check_model_reference`: a folder, the local cache, or a reachable hub). A chunk's
clips are transcribed together, so a re-run batches them the same way and writes the same text.
"""

from __future__ import annotations

import logging
from pathlib import Path

from higgs_tune.ingest.corpus import read_clip
from higgs_tune.ingest.filters import confidence_finding, mismatch_finding, text_findings
from higgs_tune.ingest.recordings import ChunkResult
from higgs_tune.ingest.settings import IngestSettings
from higgs_tune.model.device import process_device

log = logging.getLogger(__name__)


class ChunkTranscriber:
    """Fills in `text` of a chunk's clips (and checks given texts with `check_transcripts`); clips the
    ASR rejects are moved to the rejected rows and their files deleted."""

    def __init__(self, settings: IngestSettings, out: Path) -> None:
        self.settings = settings
        self.out = out
        self._asr = None

    def needs(self, row: dict) -> bool:
        return row["text"] is None or self.settings.check_transcripts

    def __call__(self, result: ChunkResult) -> None:
        todo = [row for row in result.kept if self.needs(row)]
        if not todo:
            return
        clips = [read_clip(self.out, row["audio"]) for row in todo]
        heard = self._transcriber().transcribe_with_confidence(clips)
        for row, (text, confidence) in zip(todo, heard, strict=True):
            finding = self._finding(row, text, confidence)
            if row["text"] is None:  # a given text keeps no confidence: it is not the text Whisper wrote
                row["text"] = text
                if confidence is not None:
                    row["asr_confidence"] = round(confidence, 4)
            if finding is not None:
                result.kept.remove(row)
                (self.out / row["audio"]).unlink(missing_ok=True)
                code, message = finding
                rejected = {k: row[k] for k in ("source", "speaker", "start", "end", "duration", "text")}
                result.rejected.append({**rejected, "code": code, "message": message})

    def _finding(self, row: dict, heard: str, confidence: float | None) -> tuple[str, str] | None:
        filters = self.settings.filters
        if row["text"] is None:
            found = text_findings(heard, row["duration"])
            return found[0] if found else confidence_finding(confidence, filters.min_asr_confidence)
        return mismatch_finding(row["text"], heard, self.settings.language, filters.max_cer)

    def _transcriber(self):
        if self._asr is None:
            from higgs_tune.model.reference import check_model_reference
            from higgs_tune.scoring.asr import DEFAULT_ASR_MODEL, Transcriber
            from higgs_tune.scoring.measuring import MeasuringModelError

            model = self.settings.asr_model or DEFAULT_ASR_MODEL
            local = check_model_reference(model, "--asr-model")
            try:
                self._asr = Transcriber(
                    model,
                    language=self.settings.language,
                    device=process_device(self.settings.device),
                    batch_size=self.settings.asr_batch_size,
                    max_new_tokens=self.settings.asr_max_new_tokens,
                    local_files_only=local,
                )
            except (OSError, ValueError) as e:
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise MeasuringModelError(
                    f"cannot load the ASR model {model!r} ({reason}); pass another with --asr-model"
                ) from e
        return self._asr
