"""A stream's audio, decoded by the codec while the model generates.

The frames a sample generated so far are turned into its whole codes so far (`generate.frames_to_codes`,
a prefix of its final codes), and every `CHUNK_FRAMES` new frames the codec decodes a window: `LEFT`
frames already sent before the new ones as left context, and the newest `RIGHT` frames held back as right
context (the codec's convolutions see both sides, so the last frames of a window come out different once
the next frames exist). Only the samples of the frames between are sent. At the end the rest is decoded
from the sample's final codes with the same left context. Measured on the tiny model (LEFT = RIGHT = 8):
the stream differs from decoding the whole clip at once by float32 rounding (1.4e-8), at most 1 in 16-bit
PCM (`tests/test_serve.py::test_stream_equals_one_shot` measures it); with no right context the joins
differed by about a third of the clip's peak.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import torch

from higgs_tune.inference.generate import frames_to_codes

CHUNK_FRAMES = 8
LEFT = 8
RIGHT = 8


class StreamDecoder:
    """Decodes one sample's audio as it is generated and hands each new piece to `emit` (thread-safe:
    called from the generation thread); `finish` sends the rest, then None."""

    def __init__(self, processor, decode: Callable[[np.ndarray], np.ndarray], emit: Callable) -> None:
        self.processor = processor
        self.decode = decode
        self.emit = emit
        self.hop = processor.feature_extractor.sampling_rate // processor.audio_tokenizer.config.frame_rate
        self.sent = 0  # frames whose audio was sent

    def on_frames(self, frames: list[torch.Tensor]) -> None:
        """Called after each generated frame; decodes when `CHUNK_FRAMES` frames are ready beyond those
        sent and the right context."""
        codebooks = frames[0].shape[0]  # a frame's codes are whole once the delay pattern has passed
        if len(frames) < self.sent + CHUNK_FRAMES + RIGHT + codebooks:
            return
        codes, _ = frames_to_codes(self.processor, torch.stack(frames))
        if codes.shape[1] - RIGHT >= self.sent + CHUNK_FRAMES:
            self._send(codes, codes.shape[1] - RIGHT)

    def finish(self, codes: np.ndarray) -> None:
        """The rest of the audio from the sample's final codes, then the end of the stream (None)."""
        if codes.shape[1] > self.sent:
            self._send(codes, codes.shape[1])
        self.emit(None)

    def _send(self, codes: np.ndarray, end: int) -> None:
        """Send the audio of frames [sent, end), decoded with up to `LEFT` frames before them and all the
        codes there are after them (at most `RIGHT`: `end` is that far from the last)."""
        start = max(self.sent - LEFT, 0)
        audio = self.decode(codes[:, start:])
        self.emit(audio[(self.sent - start) * self.hop : (end - start) * self.hop])
        self.sent = end


def thread_safe_queue(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Queue, Callable]:
    """An asyncio queue on `loop` and a function any thread may call to put into it, in order."""
    queue: asyncio.Queue = asyncio.Queue()
    return queue, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item)
