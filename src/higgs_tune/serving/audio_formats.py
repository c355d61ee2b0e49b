"""Audio samples to the bytes of each served format, all through libsndfile (`soundfile`): MP3 and
OGG/Opus need libsndfile 1.1 or later (1.2.2 here), checked once at start by `check_formats`."""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf

from higgs_tune.errors import UserError

# response_format -> libsndfile (format, subtype); pcm is raw little-endian 16-bit, as OpenAI sends it.
_SOUNDFILE = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
    "flac": ("FLAC", "PCM_16"),
    "wav": ("WAV", "PCM_16"),
}


def pcm16(audio: np.ndarray) -> bytes:
    """Float samples as little-endian 16-bit PCM, clipped to full scale."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def encode_audio(audio: np.ndarray, sr: int, response_format: str) -> bytes:
    """The whole clip in `response_format` (a key of `requests.CONTENT_TYPES`)."""
    if response_format == "pcm":
        return pcm16(audio)
    container, subtype = _SOUNDFILE[response_format]
    out = io.BytesIO()
    sf.write(out, audio.astype(np.float32), sr, format=container, subtype=subtype)
    return out.getvalue()


def wav_stream_header(sr: int) -> bytes:
    """A 16-bit mono WAV header whose sizes say "unknown" (0xFFFFFFFF), for a stream whose length is not
    known when it starts; players read such a WAV to its end."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sr, sr * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + (struct.pack("<I", unknown))
    )


def check_formats(sr: int) -> None:
    """Refuse to start where this libsndfile cannot write a served format, naming it, instead of failing
    on the first request that asks for it."""
    silence = np.zeros(sr // 10, dtype=np.float32)
    for name in _SOUNDFILE:
        try:
            encode_audio(silence, sr, name)
        except (sf.SoundFileError, sf.LibsndfileError, ValueError) as e:
            raise UserError(
                f"this libsndfile ({sf.__libsndfile_version__}) cannot write {name} ({e}): install "
                "libsndfile 1.1 or later"
            ) from None
