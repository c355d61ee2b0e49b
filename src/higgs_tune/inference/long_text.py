"""Long texts: split at sentence ends, each chunk cloned with the reference and the chunks before it, joined.

A text much longer than the clips a model was trained on drifts, rushes or never stops when it is spoken in
one go. So a text longer than `LongTextSettings.max_chars_per_chunk` is split at sentence ends
(`split_text`), and each chunk is cloned as its own sample with the same reference, as the original
implementation does (boson-ai/higgs-audio `examples/generation.py`, `generate` with
`generation_chunk_buffer_size`): the reference always in context, then the texts and generated codes of the
last `context_chunks` chunks as alternating user and assistant turns, then the chunk to speak. The prompt is
built by the one prompt builder (`model.prompt.build_prompt`, its `context`), so a chunk is prompted as
training and every other clone are. As in the original, every generated chunk enters the window of earlier
chunks, flagged or not: the flags say which chunk to listen to, and the window moves on past it.

Each chunk's audio gets the speech checks of any clone (`clone.clone_samples`): a chunk that fails to stop
is flagged `cut` in `LongClone.chunk_flags` (and in `flags`), never kept silently. The chunks' audio is
joined with a short linear crossfade (`join_audio`), which falls inside the pause a sentence end leaves.

This module takes a loaded model, its processor, the prompt settings and the reference's codes, so the
`clone` command and a server call it alike (`clone_long_text`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from higgs_tune.config import PromptSettings
from higgs_tune.data.samples import SampleError
from higgs_tune.inference.clone import Clone, check_reference, clone_one, clone_samples
from higgs_tune.inference.generate import context_problem, prompt_length
from higgs_tune.inference.settings import LengthLimit, LongTextSettings, SamplingSettings
from higgs_tune.inference.speech_checks import FLAGS
from higgs_tune.model.codes import encode_file

log = logging.getLogger(__name__)

# A sentence ends at a run of . ! ? (and the Arabic question mark, comma and semicolon) with any closing
# quotes or brackets after it, followed by whitespace or the end of the text (so 3.5 and e.g. inside a word
# are never a sentence end), or at a line break.
_SENTENCE_END = re.compile(r"[.!?\u061f\u060c\u061b]+[\"'\u201d\u2019\u00bb)\]]*(?=\s|$)|\n")


def split_text(text: str, max_chars: int) -> list[str]:
    """`text` as chunks of at most `max_chars` characters, cut at sentence ends and never inside a word.

    Sentences are packed greedily, joined by one space, while they fit. A sentence longer than `max_chars`
    is cut at the last space before the limit (a single word longer than the limit stays whole, the one
    case where a chunk is longer). Whitespace runs become one space. `max_chars` 0, or a text that fits,
    gives the text as one chunk, stripped.
    """
    text = text.strip()
    if max_chars <= 0 or len(text) <= max_chars:
        return [text] if text else []
    chunks: list[str] = []
    current = ""
    for sentence in _sentences(text):
        for piece in _fit(sentence, max_chars):
            if current and len(current) + 1 + len(piece) <= max_chars:
                current += " " + piece
                continue
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


def _sentences(text: str) -> list[str]:
    """The sentences of `text` (see `_SENTENCE_END`), whitespace collapsed, empty ones left out."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(text)]
    bounds = zip([0, *cuts], [*cuts, len(text)], strict=True)
    sentences = (" ".join(text[start:end].split()) for start, end in bounds)
    return [s for s in sentences if s]


def _fit(sentence: str, max_chars: int) -> list[str]:
    """`sentence` cut at the last space before `max_chars` until each piece fits; a word longer than the
    limit is cut after, never inside."""
    pieces = []
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars + 1)
        if cut <= 0:
            cut = sentence.find(" ", max_chars)
            if cut < 0:
                break
        pieces.append(sentence[:cut])
        sentence = sentence[cut + 1 :]
    return [*pieces, sentence]


def join_audio(pieces: list[np.ndarray], crossfade: int) -> np.ndarray:
    """The pieces one after the other, each join a linear crossfade over `crossfade` samples (fewer where a
    piece is shorter): the output is the pieces' total length minus the overlaps. Empty pieces (a chunk that
    gave no audio) are left out."""
    joiner = AudioJoiner(crossfade)
    parts = [joiner.add(piece) for piece in pieces]
    return np.concatenate([*parts, joiner.finish()])


class AudioJoiner:
    """`join_audio` piece by piece, for a stream that sends each chunk when it is done: `add` returns the
    audio that is final (all but the last `crossfade` samples, which the next piece fades into), `finish`
    the rest. What it returns, one after the other, is `join_audio` of the pieces, sample for sample."""

    def __init__(self, crossfade: int) -> None:
        self.crossfade = crossfade
        self.held = np.zeros(0, dtype=np.float32)

    def add(self, piece: np.ndarray) -> np.ndarray:
        piece = np.asarray(piece, dtype=np.float32)
        n = min(self.crossfade, self.held.size, piece.size)
        if n:
            fade_in = (np.arange(1, n + 1, dtype=np.float32) / (n + 1)).astype(np.float32)
            mixed = self.held[-n:] * (1 - fade_in) + piece[:n] * fade_in
            out = np.concatenate([self.held[:-n], mixed, piece[n:]])
        else:
            out = np.concatenate([self.held, piece])
        keep = min(self.crossfade, out.size)
        self.held = out[out.size - keep :]
        return out[: out.size - keep]

    def finish(self) -> np.ndarray:
        held, self.held = self.held, np.zeros(0, dtype=np.float32)
        return held


@dataclass(frozen=True)
class LongClone:
    """A long text cloned chunk by chunk: the chunks, each chunk's clone, and the joined audio.

    `codes` are the chunks' codes one after the other ([K, sum of T]); `stopped_by_eos` holds only when
    every chunk stopped by its EOS; `flags` are every flag of any chunk, and `chunk_flags` say which."""

    chunks: tuple[str, ...]
    clones: tuple[Clone, ...]
    audio: np.ndarray

    @property
    def codes(self) -> np.ndarray:
        return np.concatenate([c.codes for c in self.clones], axis=1)

    @property
    def stopped_by_eos(self) -> bool:
        return all(c.stopped_by_eos for c in self.clones)

    @property
    def chunk_flags(self) -> list[list[str]]:
        return [c.flags for c in self.clones]

    @property
    def flags(self) -> list[str]:
        found = {flag for c in self.clones for flag in c.flags}
        return [flag for flag in FLAGS if flag in found]


def clone_long_text(
    model,
    processor,
    ref_text: str,
    ref_codes,
    text: str,
    prompt: PromptSettings,
    sampling: SamplingSettings,
    limit: LengthLimit,
    settings: LongTextSettings,
    on_chunk: Callable[[int, Clone], None] | None = None,
) -> LongClone:
    """Clone `text` chunk by chunk (`split_text`) with the reference (`ref_codes` [K, T]) and the last
    `settings.context_chunks` chunks in context; each chunk's frames are capped by `limit` from its
    text. A chunk whose prompt would run past the model's positions is a `SampleError` naming it.
    `on_chunk(index, clone)` is told of each chunk as it is done (a server streams it from there)."""
    chunks = split_text(text, settings.max_chars_per_chunk)
    rate = processor.audio_tokenizer.config.frame_rate
    context: list[tuple[str, np.ndarray]] = []
    clones: list[Clone] = []
    for i, chunk in enumerate(chunks):
        name = f"chunk {i + 1} of {len(chunks)}"
        kept = context[len(context) - settings.context_chunks :] if settings.context_chunks else []
        item = {"ref_text": ref_text, "ref_codes": ref_codes, "text": chunk, "context": kept, "id": name}
        frames = limit.frames(chunk, rate)
        problem = context_problem(model, prompt_length(processor, item, prompt), frames, len(ref_codes))
        if problem is not None:
            raise SampleError(name, f"{problem}, --context-chunks or --max-chars-per-chunk")
        clone = clone_samples(model, processor, [item], prompt, sampling, [frames])[0]
        clones.append(clone)
        if on_chunk is not None:
            on_chunk(i, clone)
        if clone.flags:
            log.warning("%s (%r): speech checks flagged %s", name, chunk, ", ".join(clone.flags))
        context.append((chunk, clone.codes))
    crossfade = round(settings.crossfade_seconds * processor.feature_extractor.sampling_rate)
    return LongClone(tuple(chunks), tuple(clones), join_audio([c.audio for c in clones], crossfade))


def clone_file(
    model,
    processor,
    ref_audio: Path,
    ref_text: str,
    text: str,
    prompt: PromptSettings,
    sampling: SamplingSettings,
    limit: LengthLimit,
    settings: LongTextSettings,
) -> Clone | LongClone:
    """Clone `text` with the reference a clip on disk (`clone`'s `--ref-audio`): in one go (`clone_one`,
    at most `limit.max_seconds`) when it fits one chunk, else chunk by chunk (`clone_long_text`), the
    reference checked as `clone_one` checks it and encoded once for every chunk."""
    if len(split_text(text, settings.max_chars_per_chunk)) <= 1:
        return clone_one(
            model, processor, ref_audio, ref_text, text, prompt, sampling, max_seconds=limit.max_seconds
        )
    check_reference(ref_audio)
    ref_codes = encode_file(processor, ref_audio)
    return clone_long_text(model, processor, ref_text, ref_codes, text, prompt, sampling, limit, settings)
