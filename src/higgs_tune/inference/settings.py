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


class LongTextSettings(CommandSettings):
    """How a text longer than one clip is spoken (`inference.long_text`): split at sentence ends into
    chunks of at most `max_chars_per_chunk` characters (0: never split), each cloned with the reference and
    the last `context_chunks` chunks in context, joined with a `crossfade_seconds` crossfade.

    300 characters is about 20 s of speech at the 14-15 letters a second of read speech: within the clip
    lengths a fine-tune trains on (the data's bounds end at 30 s), so each chunk is a length the model has
    learnt to finish, while a text that fits one clip is never split. Two earlier chunks (the original
    implementation keeps all of them by default) carry the voice and the pace across the joins while the
    prompt stays bounded however long the text is. 50 ms of crossfade lies inside the pause a sentence end
    leaves, so it removes the click of a hard cut without blending words.
    """

    flags = {"crossfade_seconds": "--crossfade-seconds"}

    max_chars_per_chunk: int = Field(300, ge=0)
    context_chunks: int = Field(2, ge=0)
    crossfade_seconds: float = Field(0.05, ge=0, le=1)
