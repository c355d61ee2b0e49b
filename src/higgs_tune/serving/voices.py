"""Named voices: a reference clip and its transcript, encoded once to codes and kept in memory.

They come from `--voices DIR` (`NAME.wav` or `NAME.flac` beside `NAME.txt`) at start, or from
`POST /v1/audio/voices`; an upload lives in memory only, nothing is written to disk. A request may bring
its own reference instead (`ref_audio`, base64 or a data URI): the server fetches no URL and reads no
path named in a request. Every reference passes `clone --ref-audio`'s checks (`clone.check_reference`:
readable, 1-30 s) and its transcript `validate`'s (not empty, no control token).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from higgs_tune.data.audio import AudioSource
from higgs_tune.data.problems import empty_text_problem, special_token_problem
from higgs_tune.errors import UserError
from higgs_tune.serving.api_errors import ApiError

AUDIO_SUFFIXES = (".wav", ".flac")
VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# (clip or its bytes, name in errors) -> codes [K, T], raising `UserError` for a bad clip.
Encoder = Callable[[AudioSource, str], np.ndarray]


@dataclass(frozen=True)
class Voice:
    """A reference as the prompt builder takes it: its transcript and its codes [K, T]."""

    name: str
    ref_text: str
    codes: np.ndarray


def text_problem(text: str, field: str) -> str | None:
    """What is wrong with a text to speak or a transcript (`validate`'s rules), else None."""
    found = empty_text_problem(text, field) or special_token_problem(text, field)
    return None if found is None else found[1]


class Voices:
    """The voices the server knows, by name; safe to read while an upload adds one."""

    def __init__(self, encode: Encoder) -> None:
        self._encode = encode
        self._voices: dict[str, Voice] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._voices)

    def get(self, name: str) -> Voice:
        with self._lock:
            voice = self._voices.get(name)
        if voice is None:
            known = ", ".join(self.names()) or "none (start with --voices DIR, or upload one)"
            raise ApiError(404, f"unknown voice {name!r}; the voices are: {known}", param="voice")
        return voice

    def add(self, name: str, audio: AudioSource, ref_text: str) -> Voice:
        """Check and encode a voice, then keep it; a `UserError` says what is wrong with it."""
        if not VOICE_NAME.fullmatch(name):
            raise UserError(f"voice name {name!r}: use 1-64 letters, digits, '.', '-' or '_'")
        problem = text_problem(ref_text, f"transcript of voice {name!r}")
        if problem is not None:
            raise UserError(problem)
        voice = Voice(name, ref_text, self._encode(audio, f"voice {name!r}"))
        with self._lock:
            self._voices[name] = voice
        return voice

    def load_folder(self, folder: Path) -> None:
        """Every `NAME.wav|flac` + `NAME.txt` of `folder`; a clip without its transcript, or a bad one,
        stops the start naming the file (a voice silently missing would be found by a client's 404)."""
        clips = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not clips:
            raise UserError(f"--voices {folder}: no NAME.wav or NAME.flac (with NAME.txt) in it")
        for clip in clips:
            transcript = clip.with_suffix(".txt")
            if not transcript.is_file():
                raise UserError(f"--voices: {clip} has no transcript {transcript.name} beside it")
            try:
                self.add(clip.stem, clip, transcript.read_text(encoding="utf-8").strip())
            except UserError as e:
                raise UserError(f"--voices: {clip}: {e}") from None


def reference_bytes(value: str) -> bytes:
    """The clip of a request's `ref_audio`: base64, or a `data:` URI holding base64. A URL or a file URI is
    refused: the server fetches nothing and reads no path a request names."""
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        if not header.endswith(";base64"):
            raise ApiError(
                400, "ref_audio: a data URI must hold base64 (data:audio/wav;base64,...)", "ref_audio"
            )
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise ApiError(
            400,
            "ref_audio: send the clip itself as base64 or a data URI; the server fetches no URL "
            "and reads no file",
            "ref_audio",
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "ref_audio is not valid base64", "ref_audio") from None
