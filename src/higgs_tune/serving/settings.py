"""The settings of `higgs-tune serve`: where it listens and what it accepts, with their bounds."""

from __future__ import annotations

from pydantic import Field

from higgs_tune.command_settings import CommandSettings

# OpenAI's own limit on `input`.
DEFAULT_MAX_CHARS = 4096
# The environment variable `--api-key` is read from when the option is not given.
API_KEY_ENV = "HIGGS_TUNE_API_KEY"


class ServeSettings(CommandSettings):
    """What the server accepts and how it gathers work. `max_body_bytes` bounds any request body (a
    base64 reference of 30 s of 48 kHz stereo 24-bit audio is about 12 MB)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_key: str | None = None
    max_batch_size: int = Field(8, ge=1)
    batch_wait_ms: float = Field(10.0, ge=0)
    max_queue: int = Field(64, ge=1)
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=1)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    timeout_s: float = Field(300.0, gt=0)
    max_seconds: float = Field(30.0, gt=0)
