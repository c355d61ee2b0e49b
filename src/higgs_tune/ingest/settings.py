"""What one ingest run is asked to do, in one place: the workers, the resume check and the CLI share it.

Frozen pydantic models (`command_settings`), torch-free, so that the command line can show their defaults
without importing torch, and every bad value is one line naming its option.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from higgs_tune.command_settings import CommandSettings, check_less


class SliceSettings(CommandSettings):
    """The cut rule's knobs (`ingest.slicing`) and the voice activity detector's threshold."""

    min_seconds: float = Field(1.0, ge=0)
    max_seconds: float = 20.0
    sentence_pause: float = Field(0.6, gt=0)
    edge_seconds: float = Field(0.2, ge=0)
    vad_threshold: float = 0.5

    @field_validator("max_seconds")
    @classmethod
    def _longer_than_min(cls, max_seconds: float, info: ValidationInfo) -> float:
        if "min_seconds" in info.data:  # else its own problem is reported
            check_less(info.data["min_seconds"], max_seconds, "--min-seconds", "--max-seconds")
        return max_seconds


class FilterSettings(CommandSettings):
    """Thresholds of the ingest-only filters (the others are `validate`'s)."""

    min_seconds: float = 1.0
    max_seconds: float = 20.0
    min_snr_db: float = 15.0
    min_speech_fraction: float = 0.4
    max_cer: float = 0.3
    min_asr_confidence: float = Field(0.0, ge=0, le=1)  # 0: every ASR transcript is kept


class SourceSettings(CommandSettings):
    """How to read a dataset source: its split, hub config, and which columns hold what (None: the first
    of the usual names that the dataset has)."""

    split: str | None = None
    config: str | None = None
    audio_column: str | None = None
    text_column: str | None = None
    speaker_column: str | None = None


class IngestSettings(CommandSettings):
    """`slicing` and `filters` both hold `min_seconds`/`max_seconds` (the CLI gives them the same values:
    pieces are cut to fit the limits the filter then enforces). `language` forces the ASR's language and
    picks the text normalisation of the transcript check. `check_transcripts` runs the ASR on clips that
    have text too and rejects mismatches."""

    slicing: SliceSettings = SliceSettings()
    filters: FilterSettings = FilterSettings()
    source: SourceSettings = SourceSettings()
    language: str | None = None
    asr_model: str | None = None  # None: the one `eval` uses (scoring.asr.DEFAULT_ASR_MODEL)
    check_transcripts: bool = False
    chunk_size: int = Field(16, ge=1)  # recordings per completion record: what a killed run redoes at most
    asr_max_new_tokens: int | None = Field(None, ge=1)  # per 30 s window; None: the checkpoint's limit
    asr_batch_size: int = Field(8, ge=1)
    device: str | None = None  # None: CUDA when there is one

    def recorded(self) -> dict:
        """The settings that decide the corpus's content (not how fast it is made), as stored in
        `ingest.json`: a re-run with other values would mix two corpora in one folder."""
        return self.model_dump(exclude={"asr_batch_size", "device"})
