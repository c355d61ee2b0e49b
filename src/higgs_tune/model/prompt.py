"""The one prompt builder, used by training and by inference alike.

A prompt that differs between training and cloning is one of the quiet ways a fine-tune breaks, so there
is exactly one function that turns a sample's texts and codes into model inputs: `build_prompt`. Training
calls it with the target's codes (the target assistant turn is rendered in full); cloning calls it without
(the prompt ends with the generation prompt, `<|audio_out_bos|>`). The inference prompt is therefore a
token-exact prefix of the training prompt, which a test checks.

The text comes from the checkpoint's own chat template through `HiggsAudioV2Processor.apply_chat_template`,
and audio placeholders are expanded with the processor's own `get_audio_tokens`, so the prompt is the one the
processor would build from raw audio; only the codec call is skipped because codes are prepared once.

Texts are never control tokens: a transcript holding `<|eot_id|>` or `<|AUDIO_OUT|>` is tokenized as the
characters it is, so it cannot forge a turn or an audio placeholder, while a plain text gives exactly the
ids the processor gives (`_tokenize`). The transcripts are normalised by the run's setting first
(`data.text_normalisation`), so training and cloning prompt the same spelling.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from higgs_tune.config import PromptSettings
from higgs_tune.data.text_normalisation import normalise_text
from higgs_tune.errors import UserError


class PromptError(UserError):
    """A prompt that cannot be built as the model expects: a chat template of another format, or a
    control token inside a text; the message names it and the fix."""


@dataclass(frozen=True)
class PromptTokens:
    """A tokenized prompt: text ids with one placeholder per audio frame, and those frames' codes.

    `audio_segments` holds (start, length) of each audio clip in `audio_input_ids` frame order: the
    reference first, then the earlier turns' clips (`context`), then the target when one was given.
    """

    input_ids: torch.Tensor  # [L] text ids; audio frames are <|AUDIO_OUT|> / delay placeholders
    audio_input_ids: torch.Tensor  # [F, K] delayed codes of every clip, concatenated in order
    audio_segments: tuple[tuple[int, int], ...]


def audio_positions(ids_of, input_ids: torch.Tensor) -> torch.Tensor:
    """Where the audio frames sit in a sequence of ids: its `<|AUDIO_OUT|>` and delay placeholders.

    The prompt's layout puts one placeholder per audio frame, so this mask lines up with the frames of
    `audio_input_ids`; labels, collation and the loss all find audio positions through it. `ids_of` is
    the processor or the model config: both name the two placeholder ids the same way.
    """
    return (input_ids == ids_of.audio_token_id) | (input_ids == ids_of.audio_delay_token_id)


def build_conversation(
    ref_text: str,
    text: str,
    prompt: PromptSettings,
    scene: str | None = None,
    with_target: bool = True,
    context_texts: Sequence[str] = (),
) -> list[dict]:
    """The cloning conversation: system, [scene], user (reference transcript), assistant (reference audio),
    then a user and an assistant (audio) turn for each of `context_texts` (the chunks of a long text
    spoken before this one), user (target text), and with `with_target` the assistant turn holding the
    target audio.

    The earlier chunks sit where the original implementation puts them (boson-ai/higgs-audio
    `examples/generation.py`, `generation_chunk_buffer_size`): after the reference, as alternating user
    text and assistant audio turns. A sample's own scene description wins over the prompt settings' default
    scene.
    """
    messages: list[dict] = [{"role": "system", "content": [{"type": "text", "text": prompt.system_prompt}]}]
    scene_text = scene if scene else prompt.scene
    if scene_text:
        messages.append({"role": "scene", "content": [{"type": "text", "text": scene_text}]})
    messages += [
        {"role": "user", "content": [{"type": "text", "text": ref_text}]},
        {"role": "assistant", "content": [{"type": "audio"}]},
    ]
    for earlier in context_texts:
        messages += [
            {"role": "user", "content": [{"type": "text", "text": earlier}]},
            {"role": "assistant", "content": [{"type": "audio"}]},
        ]
    messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
    if with_target:
        messages.append({"role": "assistant", "content": [{"type": "audio"}]})
    return messages


def spoken_texts(ref_text: str, text: str, prompt: PromptSettings) -> tuple[str, str]:
    """The reference transcript and the target text as a prompt holds them: normalised by
    `prompt.text_normalisation`. The one place that applies it, so what plans a prompt's length without
    building it (`examples.example_lengths`) sees the texts `build_prompt` tokenizes."""
    return spoken_text(ref_text, prompt), spoken_text(text, prompt)


def spoken_text(text: str, prompt: PromptSettings) -> str:
    """One transcript as a prompt holds it (`spoken_texts`)."""
    return normalise_text(text, prompt.text_normalisation)


def _render(processor, texts: list[str | None], prompt: PromptSettings, with_target: bool) -> str:
    """The chat template rendered with every text in its slot (`texts`: ref, text, system, scene, own
    scene, then the texts of earlier turns), so that texts are never parsed as control tokens (`_tokenize`
    fills them in)."""
    slots = [_TEXT_SLOT.format(i) if t else t for i, t in enumerate(texts)]  # a falsy text is left out
    # the texts' slots in place of the texts (whatever their preset's rules would say of a slot)
    in_slots = replace(prompt, system_prompt=slots[2], scene=slots[3], preset="original")
    conversation = build_conversation(
        slots[0], slots[1], in_slots, scene=slots[4], with_target=with_target, context_texts=slots[5:]
    )
    return processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=not with_target)


def delayed_codes(processor, codes: torch.Tensor) -> torch.Tensor:
    """Codes [K, T] of one clip -> stream BOS + codes + stream EOS, delay-patterned: [T + 2 + K - 1, K].

    This is the one place where the delay pattern is applied; inputs and labels are both cut from its
    output, so their shapes agree by construction.
    """
    codes = torch.as_tensor(codes, dtype=torch.long)
    k = codes.shape[0]
    bos = codes.new_full((k, 1), processor.audio_stream_bos_id)
    eos = codes.new_full((k, 1), processor.audio_stream_eos_id)
    framed = torch.cat([bos, codes, eos], dim=1)
    return processor.build_delay_pattern(framed[None])[0].transpose(0, 1)


def build_prompt(
    processor,
    ref_text: str,
    ref_codes: torch.Tensor,
    text: str,
    prompt: PromptSettings,
    target_codes: torch.Tensor | None = None,
    scene: str | None = None,
    context: Sequence[tuple[str, torch.Tensor]] = (),
) -> PromptTokens:
    """Build the model inputs of one cloning prompt from texts and codec codes ([K, T] each).

    With `target_codes` the target turn is included (training); without, the prompt ends where generation
    starts (cloning). Everything else is identical. `context` holds (text, codes) of earlier turns spoken
    after the reference and before the target (a long text's previous chunks, `inference.long_text`).
    The transcripts are normalised by `prompt.text_normalisation`, and every text is tokenized as plain
    text (`_tokenize`).
    """
    with_target = target_codes is not None
    earlier = [normalise_text(t, prompt.text_normalisation) for t, _ in context]
    texts = [*spoken_texts(ref_text, text, prompt), prompt.system_prompt, prompt.scene, scene, *earlier]
    rendered = _render(processor, texts, prompt, with_target)
    clips = [ref_codes, *(codes for _, codes in context)] + ([target_codes] if with_target else [])
    delayed = [delayed_codes(processor, c) for c in clips]
    pieces = rendered.split(processor.audio_token)
    if len(pieces) != len(delayed) + 1:
        raise PromptError(
            f"chat template rendered {len(pieces) - 1} audio placeholders for {len(delayed)} clips; "
            "the model's chat template does not match the Higgs Audio v2 cloning format"
        )
    text_with_audio = pieces[0]
    for frames, piece in zip(delayed, pieces[1:], strict=True):
        text_with_audio += processor.get_audio_tokens(frames.shape[0]) + piece
    input_ids = _tokenize(processor.tokenizer, text_with_audio, texts)

    segments, start = [], 0
    for frames in delayed:
        segments.append((start, frames.shape[0]))
        start += frames.shape[0]
    audio_input_ids = torch.cat(delayed, dim=0)
    n_placeholders = int(audio_positions(processor, input_ids).sum())
    if n_placeholders != audio_input_ids.shape[0]:
        raise PromptError(
            f"prompt has {n_placeholders} audio placeholders but {audio_input_ids.shape[0]} audio frames; "
            "the model's chat template does not match the Higgs Audio v2 cloning format"
        )
    return PromptTokens(input_ids=input_ids, audio_input_ids=audio_input_ids, audio_segments=tuple(segments))


# Where a text goes in the rendered template: private-use characters, which no template writes.
_TEXT_SLOT = "\ue000{}\ue001"
_SLOTS = re.compile("\ue000(\\d+)\ue001")


def _tokenize(tokenizer, rendered: str, texts: list[str | None]) -> torch.Tensor:
    """Token ids of a rendered prompt whose texts sit in slots: the template's control tokens are control
    tokens, the texts are never.

    The fast tokenizer splits its input at added (control) tokens and tokenizes the plain runs between them
    on their own, so splitting the same way here gives it exactly the ids it would give the whole string;
    the only difference is that each plain run, texts filled in (trimmed, as the template trims them), is
    tokenized with special-token parsing off. A text holding `<|eot_id|>` is thus read as the characters it
    is and cannot forge a turn or an audio placeholder. A token the tokenizer does not treat as special (an
    added token that is not) would still be parsed; it is refused rather than passed on.
    """
    control, control_ids = _control_tokens(tokenizer)
    ids: list[int] = []
    for i, run in enumerate(control.split(rendered)):
        if i % 2:  # a run of control tokens, all the template's own
            ids += tokenizer(run, add_special_tokens=False, split_special_tokens=False)["input_ids"]
        elif run:
            plain = _fill(run, texts)
            run_ids = tokenizer(plain, add_special_tokens=False, split_special_tokens=True)["input_ids"]
            leaked = control_ids.intersection(run_ids)
            if leaked:
                names = ", ".join(tokenizer.convert_ids_to_tokens(sorted(leaked)))
                raise PromptError(f"text {plain!r} holds the control token(s) {names}; remove them")
            ids += run_ids
    return torch.tensor(ids, dtype=torch.long)


def _fill(run: str, texts: Sequence[str | None]) -> str:
    """A plain run of the rendered template with its slots filled (trimmed, as the template trims)."""
    return _SLOTS.sub(lambda m: (texts[int(m.group(1))] or "").strip(), run)


@functools.lru_cache(maxsize=8)
def _control_tokens(tokenizer) -> tuple[re.Pattern[str], frozenset[int]]:
    """A pattern matching runs of the tokenizer's added tokens (longest first, so none matches a prefix),
    and their ids."""
    added = tokenizer.added_tokens_decoder
    tokens = sorted((t.content for t in added.values()), key=len, reverse=True)
    return re.compile("((?:" + "|".join(map(re.escape, tokens)) + ")+)"), frozenset(added)


class PromptLengths:
    """Sequence lengths of training prompts without building them: exactly the length of
    `build_prompt(...).input_ids` with the target's codes given, from the texts and the clips' frame counts.

    A planner of millions of samples cannot render the chat template per sample (that was most of the
    time a run spent before its first step). The template is rendered once per layout (which texts are
    given): its control-token runs and its text-free plain runs are counted once, and each plain run that
    holds a text is tokenized once per distinct text it holds, in batches, exactly as `_tokenize` does.
    Each clip's `<|AUDIO_OUT|>` placeholder becomes its T + 2 + (K - 1) audio positions (stream BOS, T
    frames, stream EOS and the K - 1 frames of the delay pattern). A test compares with built examples.
    """

    VARYING = (0, 1, 4)
    """The slots whose text varies by sample (`_render`'s order): reference, target, own scene."""

    def __init__(self, processor, prompt: PromptSettings) -> None:
        self.processor, self.prompt = processor, prompt
        self._layouts: dict[tuple[bool, ...], tuple[int, list[tuple[str, tuple[int, ...]]]]] = {}
        self._counts: dict[str, dict] = {}  # plain run -> its texts (one, or a tuple) -> tokens
        self._spoken: dict[str, str] = {}
        # Per clip, besides the placeholder counted with the template: 2 + (K - 1) - 1 positions.
        self._per_clip = processor.audio_tokenizer.config.num_quantizers

    def __call__(self, records: Sequence[dict], frames: Sequence[int]) -> list[int]:
        """The length of each record's example (`ref_text`, `text`, optional `scene`), its clips'
        frames (reference and target together) in `frames`."""
        columns = [
            [r["ref_text"] for r in records],
            [r["text"] for r in records],
            [r.get("scene") for r in records],
        ]
        return self.of_columns(*columns, frames)

    def of_columns(
        self,
        ref_texts: Sequence[str],
        texts: Sequence[str],
        scenes: Sequence[str | None],
        frames: Sequence[int],
    ) -> list[int]:
        """`__call__` with the samples' fields given column by column (no dict per sample)."""
        spoken = self._spoken_text
        columns = {0: [spoken(t) for t in ref_texts], 1: [spoken(t) for t in texts], 4: scenes}
        lengths = np.asarray(frames, dtype=np.int64) + 2 * self._per_clip
        keys = list(zip(*(map(bool, columns[s]) for s in self.VARYING), strict=True))
        numbered: dict[tuple[bool, ...], int] = {}
        layout_of = np.array([numbered.setdefault(k, len(numbered)) for k in keys], dtype=np.int64)
        for key, number in numbered.items():
            rows = np.flatnonzero(layout_of == number) if len(numbered) > 1 else np.arange(len(ref_texts))
            fixed, runs = self._layout(key)
            lengths[rows] += fixed
            for run, slots in runs:
                held = [columns[s] for s in slots]
                texts = (
                    [held[0][i] for i in rows]
                    if len(slots) == 1
                    else [tuple(c[i] for c in held) for i in rows]
                )
                counts = self._run_counts(run, slots, texts)
                lengths[rows] += np.array([counts[t] for t in texts], dtype=np.int64)
        return lengths.tolist()

    def _spoken_text(self, text: str) -> str:
        spoken = self._spoken.get(text)
        if spoken is None:
            spoken = self._spoken[text] = spoken_text(text, self.prompt)
        return spoken

    def _run_counts(self, run: str, slots: tuple[int, ...], texts: list) -> dict:
        """Tokens of `run` with each of `texts` in its `slots` (one text, or a tuple for several slots),
        tokenized once per distinct text, in batches, as `_tokenize` tokenizes a plain run."""
        counts = self._counts.setdefault(run, {})
        todo = [t for t in dict.fromkeys(texts) if t not in counts]
        constant = {2: self.prompt.system_prompt, 3: self.prompt.scene}
        for start in range(0, len(todo), 4096):
            part = todo[start : start + 4096]
            filled = [
                _fill(run, {**constant, **dict(zip(slots, t if len(slots) > 1 else (t,), strict=True))})
                for t in part
            ]
            counts.update(
                zip(part, map(len, self._tokenizer(filled, split_special_tokens=True)), strict=True)
            )
        return counts

    def _tokenizer(self, texts: list[str], split_special_tokens: bool) -> list[list[int]]:
        tokenizer = self.processor.tokenizer
        return tokenizer(texts, add_special_tokens=False, split_special_tokens=split_special_tokens)[
            "input_ids"
        ]

    def _layout(self, key: tuple[bool, ...]) -> tuple[int, list[tuple[str, tuple[int, ...]]]]:
        """For the layout `key` (whether each varying text is given): the tokens that do not depend on
        the sample, with one per audio placeholder, and each plain run that holds varying texts with
        their slot numbers."""
        if key not in self._layouts:
            texts: list[str | None] = ["x" if given else None for given in key]
            texts[2:2] = [self.prompt.system_prompt, self.prompt.scene]
            rendered = _render(self.processor, texts, self.prompt, with_target=True)
            if rendered.count(self.processor.audio_token) != 2:
                raise PromptError(
                    f"chat template rendered {rendered.count(self.processor.audio_token)} audio placeholders "
                    "for 2 clips; the model's chat template does not match the Higgs Audio v2 cloning format"
                )
            control, _ = _control_tokens(self.processor.tokenizer)
            fixed, runs = 0, []
            for i, run in enumerate(control.split(rendered)):
                slots = tuple(
                    int(m.group(1)) for m in _SLOTS.finditer(run) if int(m.group(1)) in self.VARYING
                )
                if slots:
                    runs.append((run, slots))
                elif run:
                    filled = _fill(run, texts)
                    fixed += (
                        len(self._tokenizer([filled], split_special_tokens=not i % 2)[0]) if filled else 0
                    )
            self._layouts[key] = fixed, runs
        return self._layouts[key]
