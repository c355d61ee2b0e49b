"""How `prepare` encodes a manifest: the one home of its options, their defaults and bounds.

A frozen pydantic model (`command_settings`), torch-free, so that the command line shows these defaults
without importing torch, and every bad value is one line naming its option.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from higgs_tune.command_settings import CommandSettings, check_less
from higgs_tune.config import TextNormalisation
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS

DEFAULT_SHARD_SIZE = 2000


class PrepareSettings(CommandSettings):
    """`workers`: clip-loading processes per rank (None: up to 4, `prepare.default_workers`; 0: in this
    process). `skip_bad`: leave out the samples of a bad clip (listed in skipped.jsonl) instead of stopping.
    `min_seconds`/`max_seconds`: the clip lengths accepted, `validate`'s rule and defaults.
    `text_normalisation`: how the stored texts are normalised (`data.text_normalisation`)."""

    workers: int | None = Field(None, ge=0)
    skip_bad: bool = False
    shard_size: int = Field(DEFAULT_SHARD_SIZE, ge=1)
    min_seconds: float = Field(MIN_SECONDS, ge=0)
    max_seconds: float = MAX_SECONDS
    text_normalisation: TextNormalisation = "none"

    @field_validator("max_seconds")
    @classmethod
    def _longer_than_min(cls, max_seconds: float, info: ValidationInfo) -> float:
        if "min_seconds" in info.data:  # else its own problem is reported
            check_less(info.data["min_seconds"], max_seconds, "--min-seconds", "--max-seconds")
        return max_seconds

    @property
    def bounds(self) -> tuple[float, float]:
        """(min_seconds, max_seconds): the clip lengths accepted."""
        return (self.min_seconds, self.max_seconds)
