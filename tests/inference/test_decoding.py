"""Decoding and frame limits through real `model.generate`, with a scripted audio head.

The tiny model's `audio_lm_head` is replaced by `ScriptedHead`, whose logits follow a script by generation
step, so the test knows exactly which codes generation picks (greedy), when codebook 0 emits its stream
EOS, and how many steps generation ran: the head is called once per generated position.
"""

import logging

import numpy as np
import pytest
import torch

from higgs_tune.config import PromptSettings
from higgs_tune.inference.generate import generate_codes
from higgs_tune.inference.settings import SamplingSettings
from higgs_tune.model.loading import load_model

K = 8


def scripted_code(codebook: int, step: int) -> int:
    """The code codebook k prefers at generation step n (never a stream BOS/EOS)."""
    return (37 * codebook + 11 * step + 5) % 1000


class ScriptedHead(torch.nn.Module):
    """Audio logits by step: codebook `stopper` (0 unless said) says its scripted code, then the stream
    EOS from step `eos_step` on (never, when None); the other codebooks always prefer a code, so they miss
    their own EOS slot and only the delay-pattern logits processor ends them. Counts its calls
    (= generated positions)."""

    def __init__(self, codebook_size: int, eos_id: int, eos_step: int | None, stopper: int = 0) -> None:
        super().__init__()
        self.codebook_size, self.eos_id, self.eos_step, self.stopper = (
            codebook_size,
            eos_id,
            eos_step,
            stopper,
        )
        self.calls = 0

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        step = self.calls
        self.calls += 1
        logits = torch.zeros(*hidden.shape[:-1], K, self.codebook_size)
        for k in range(K):
            stop = k == self.stopper and self.eos_step is not None and step >= self.eos_step
            logits[..., k, self.eos_id if stop else scripted_code(k, step)] = 10.0
        return logits.flatten(-2).to(hidden.dtype)


@pytest.fixture
def scripted_model(tiny_model_dir):
    """A fresh tiny model (the session one stays untouched) whose audio head is set per test."""

    def build(eos_step: int | None, stopper: int = 0):
        model = load_model(tiny_model_dir).eval()
        model.audio_lm_head = ScriptedHead(
            model.config.codebook_size, model.config.audio_stream_eos_id, eos_step, stopper
        )
        return model

    return build


def items(n: int = 1) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {"ref_text": "a b c", "ref_codes": torch.randint(0, 1024, (K, 10 + 3 * i), generator=g), "text": "hi"}
        for i in range(n)
    ]


def test_clip_length_is_codebook_0s_eos_even_when_other_codebooks_miss_theirs(scripted_model, processor):
    """Codebook 0 emits T codes then the stream EOS; the clip is exactly those T frames with the
    scripted codes, where ending at the first all-EOS frame (the old rule) gives T + 1."""
    t = 5
    model = scripted_model(eos_step=t + 1)  # step 0 is the stream-BOS frame, codes at steps 1..T
    generate = model.generate
    captured = {}

    def keep_output(**kwargs):
        captured["out"] = generate(**kwargs)
        return captured["out"]

    model.generate = keep_output
    result = generate_codes(model, processor, items(), PromptSettings(), SamplingSettings(greedy=True), [50])[
        0
    ]
    assert result.stopped_by_eos
    assert result.codes.shape == (K, t)
    expected = np.array([[scripted_code(k, f + 1 + k) for f in range(t)] for k in range(K)])
    assert np.array_equal(result.codes, expected)
    # The old rule: the body up to the first all-EOS frame, reverted, is one frame too long.
    frames = captured["out"].audio_sequences[0, -model.audio_lm_head.calls :]
    all_eos = int((frames == model.config.audio_stream_eos_id).all(-1).nonzero()[0])
    assert all_eos - 1 - (K - 1) == t + 1


@pytest.mark.parametrize("stopper", [0, 1, 3, 7])
def test_clip_ends_at_the_first_eos_of_any_codebook_shifted_back_by_its_delay(
    scripted_model, processor, stopper
):
    """Codebook j emits the first stream EOS at generation step s: its frame s - j is the EOS frame, so
    the clip has s - j - 1 frames (step 0 is the stream BOS), as the original implementation keeps
    (it forces codebooks below j to EOS at that step and reverts the delay). Frames after that would hold
    codebook j's EOS clipped to a code and codes drawn after it stopped."""
    s = 9
    model = scripted_model(eos_step=s, stopper=stopper)
    result = generate_codes(model, processor, items(), PromptSettings(), SamplingSettings(greedy=True), [50])[
        0
    ]
    t = s - stopper - 1
    assert result.stopped_by_eos
    assert result.codes.shape == (K, t), (stopper, result.codes.shape)
    expected = np.array([[scripted_code(k, f + 1 + k) for f in range(t)] for k in range(K)]).reshape(K, t)
    assert np.array_equal(result.codes, expected)


@pytest.mark.parametrize(("stopper", "eos_step", "stopped"), [(7, 13, True), (0, 8, False)])
def test_an_eos_within_the_limit_ends_the_clip_even_when_the_limit_cuts_its_cascade(
    scripted_model, processor, stopper, eos_step, stopped
):
    """Limit 5 frames: generation stops after 5 + 1 + K positions (steps 0-13). Codebook 7's EOS at step
    13 ends the clip at frame 5, within the limit, though the logits processor had not yet forced the
    other codebooks to EOS: it ended by its EOS. Codebook 0's EOS at step 8 would end it at frame 7, past
    the limit: it was cut at 5."""
    model = scripted_model(eos_step=eos_step, stopper=stopper)
    result = generate_codes(model, processor, items(), PromptSettings(), SamplingSettings(greedy=True), [5])[
        0
    ]
    assert model.audio_lm_head.calls == 5 + 1 + K
    assert result.stopped_by_eos is stopped and result.codes.shape == (K, 5)


@pytest.mark.parametrize("limit", [3, 9])
def test_frame_limit_stops_generation_at_the_limit(scripted_model, processor, limit):
    """A model that never stops is stopped by the frame limit itself: generation runs exactly the
    positions of `limit` frames (stream BOS, the frames, and the EOS cascade), not to a global maximum."""
    model = scripted_model(eos_step=None)
    result = generate_codes(
        model, processor, items(), PromptSettings(), SamplingSettings(greedy=True), [limit]
    )[0]
    assert model.audio_lm_head.calls == limit + 1 + K
    assert not result.stopped_by_eos and result.codes.shape == (K, limit)


def test_each_sample_of_a_batch_stops_at_its_own_limit(scripted_model, processor):
    """In a batch the longest limit sets the steps, and a sample whose limit came first is padded from
    there on (its positions after the limit are stream-EOS padding, not more generated codes)."""
    model = scripted_model(eos_step=None)
    generate = model.generate
    captured = {}

    def keep_output(**kwargs):
        captured["out"] = generate(**kwargs)
        return captured["out"]

    model.generate = keep_output
    limits = [4, 9]
    results = generate_codes(
        model, processor, items(2), PromptSettings(), SamplingSettings(greedy=True), limits
    )
    steps = model.audio_lm_head.calls
    assert steps == max(limits) + 1 + K
    frames = captured["out"].audio_sequences[0, -steps:]
    assert (frames[limits[0] + 1 + K :] == model.config.audio_stream_eos_id).all()
    assert [r.codes.shape[1] for r in results] == limits and not any(r.stopped_by_eos for r in results)


def test_a_cut_sample_is_named_by_its_id_in_the_log(scripted_model, processor, caplog):
    """Named at INFO: `clone_manifest` warns once for all cut clips, with what to do."""
    caplog.set_level(logging.INFO, logger="higgs_tune.inference.generate")
    model = scripted_model(eos_step=None)
    item = {**items()[0], "id": "spk_7/utt 3"}
    generate_codes(model, processor, [item], PromptSettings(), SamplingSettings(greedy=True), [3])
    assert "sample spk_7/utt 3 did not emit its stream EOS within 3 frames" in caplog.text
