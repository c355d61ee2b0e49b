"""What one ingest run is asked to do, in one place: the workers, the resume check and the CLI share it.

Plain dataclasses only, so that the command line can show their defaults without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class SliceSettings:
    """The cut rule's knobs (`ingest.slicing`) and the voice activity detector's threshold."""

    min_seconds: float = 1.0
    max_seconds: float = 20.0
    sentence_pause: float = 0.6
    edge_seconds: float = 0.2
    vad_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds < self.max_seconds:
            raise ValueError(
                f"need 0 <= min_seconds < max_seconds, got {self.min_seconds}, {self.max_seconds}"
            )
        if self.sentence_pause <= 0 or self.edge_seconds < 0:
            raise ValueError("need sentence_pause > 0 and edge_seconds >= 0")


@dataclass(frozen=True)
class FilterSettings:
    """Thresholds of the ingest-only filters (the others are `validate`'s)."""

    min_seconds: float = 1.0
    max_seconds: float = 20.0
    min_snr_db: float = 15.0
    min_speech_fraction: float = 0.4
    max_cer: float = 0.3
    min_asr_confidence: float = 0.0  # 0: every ASR transcript is kept

    def __post_init__(self) -> None:
        if not 0 <= self.min_asr_confidence <= 1:
            raise ValueError(f"--min-asr-confidence must be in [0, 1], got {self.min_asr_confidence}")


@dataclass(frozen=True)
class SourceOptions:
    """How to read a dataset source: its split, hub config, and which columns hold what (None: the first
    of the usual names that the dataset has)."""

    split: str | None = None
    config: str | None = None
    audio_column: str | None = None
    text_column: str | None = None
    speaker_column: str | None = None


@dataclass(frozen=True)
class IngestSettings:
    """`slicing` and `filters` both hold `min_seconds`/`max_seconds` (the CLI gives them the same values:
    pieces are cut to fit the limits the filter then enforces). `language` forces the ASR's language and
    picks the text normalisation of the transcript check. `check_transcripts` runs the ASR on clips that
    have text too and rejects mismatches."""

    slicing: SliceSettings = field(default_factory=SliceSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    source: SourceOptions = field(default_factory=SourceOptions)
    language: str | None = None
    asr_model: str | None = None  # None: the one `eval` uses (scoring.asr.DEFAULT_ASR_MODEL)
    check_transcripts: bool = False
    chunk_size: int = 16  # recordings per completion record: what a killed run redoes at most
    asr_max_new_tokens: int | None = None  # per 30 s window; None: the checkpoint's limit
    asr_batch_size: int = 8
    device: str | None = None  # None: CUDA when there is one

    def recorded(self) -> dict:
        """The settings that decide the corpus's content (not how fast it is made), as stored in
        `ingest.json`: a re-run with other values would mix two corpora in one folder."""
        values = asdict(self)
        for key in ("asr_batch_size", "device"):
            values.pop(key)
        return values
