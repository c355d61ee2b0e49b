"""How generation draws codes and when it stops: the one home of their defaults.

Torch-free, so the command line reads its option defaults from these classes without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingConfig:
    """How codes are drawn. `greedy` wins over the sampling knobs; repetition-aware sampling (RAS,
    supported by the model's generation) resamples a code that repeats `ras_max_repeat` times in the
    last `ras_window` frames; it is off under greedy choice so greedy stays deterministic."""

    greedy: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    ras_window: int | None = 7
    ras_max_repeat: int = 2
    seed: int | None = 0


@dataclass(frozen=True)
class LengthLimit:
    """Per-sample frame budget from the text: at `chars_per_second` (slower than any real speech, so a
    sample that stops on its own is never cut) plus `slack_seconds`, within [min, max] seconds."""

    chars_per_second: float = 5.0
    slack_seconds: float = 1.0
    min_seconds: float = 2.0
    max_seconds: float = 30.0

    def frames(self, text: str, rate: int) -> int:
        seconds = len(text) / self.chars_per_second + self.slack_seconds
        return int(min(max(seconds, self.min_seconds), self.max_seconds) * rate)
