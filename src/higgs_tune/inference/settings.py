"""How generation draws codes and when it stops: the one home of their defaults and bounds.

Torch-free, so the command line reads its option defaults from these classes without importing torch.
"""

from __future__ import annotations

from pydantic import Field

from higgs_tune.command_settings import CommandSettings


class SamplingSettings(CommandSettings):
    """How codes are drawn. `greedy` wins over the sampling knobs; repetition-aware sampling (RAS,
    supported by the model's generation) resamples a code that repeats `ras_max_repeat` times in the
    last `ras_window` frames; it is off under greedy choice so greedy stays deterministic."""

    greedy: bool = False
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    ras_window: int | None = Field(7, ge=1)  # None: off (the command line's 0)
    ras_max_repeat: int = Field(2, ge=1)
    seed: int | None = 0


class LengthLimit(CommandSettings):
    """Per-sample frame budget from the text: at `chars_per_second` (slower than any real speech, so a
    sample that stops on its own is never cut) plus `slack_seconds`, within [min, max] seconds."""

    chars_per_second: float = Field(5.0, gt=0)
    slack_seconds: float = Field(1.0, ge=0)
    min_seconds: float = Field(2.0, ge=0)
    max_seconds: float = Field(30.0, ge=0)

    def frames(self, text: str, rate: int) -> int:
        seconds = len(text) / self.chars_per_second + self.slack_seconds
        return int(min(max(seconds, self.min_seconds), self.max_seconds) * rate)
