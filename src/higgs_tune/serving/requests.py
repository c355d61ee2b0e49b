"""The body of `POST /v1/audio/speech`: OpenAI's fields, plus vLLM-Omni's `ref_audio` / `ref_text` for a
reference sent with the request. Unknown fields are refused, so nothing a client sends is silently ignored."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# What `response_format` may be, by OpenAI's names, and what each is sent as.
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
# The formats a stream is sent in (as vLLM-Omni does): raw 16-bit samples, or WAV with an open-ended header.
STREAM_FORMATS = ("pcm", "wav")


class SpeechRequest(BaseModel):
    """OpenAI's speech request. `model` is required as OpenAI's client sends it, and not used to choose: the
    server serves one model. `voice` names a voice of `GET /v1/audio/voices` (or OpenAI's `{"id": name}`)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    input: str
    voice: str | dict[str, str] | None = None
    response_format: str = "mp3"
    speed: float | None = None
    instructions: str | None = None
    stream_format: Literal["audio", "sse"] | None = None
    ref_audio: str | None = Field(None, description="A reference clip as base64 or a data: URI.")
    ref_text: str | None = None

    def voice_name(self) -> str | None:
        """The name of the voice asked for, whichever way it was spelled."""
        if isinstance(self.voice, dict):
            return self.voice.get("id")
        return self.voice
