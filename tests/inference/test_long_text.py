"""Long texts: chunked at sentence ends, each chunk prompted by the one builder with the reference and the
chunks before it, the chunks' audio joined with a crossfade."""

import numpy as np
import pytest

from higgs_tune.config import PromptSettings
from higgs_tune.inference.generate import generate_codes
from higgs_tune.inference.long_text import clone_long_text, join_audio, split_text
from higgs_tune.inference.settings import LengthLimit, LongTextSettings, SamplingSettings
from higgs_tune.model.codes import encode_waveform
from higgs_tune.tiny.synth import synth_speech

ENGLISH = "Hello there. How are you? I am fine!"
ARABIC = "مرحبا بكم، كيف حالكم؟ أنا بخير؛ شكرا لكم.\nإلى اللقاء"


@pytest.mark.parametrize(
    ("text", "limit", "chunks"),
    [
        (ENGLISH, 20, ["Hello there.", "How are you?", "I am fine!"]),
        (ENGLISH, 25, ["Hello there. How are you?", "I am fine!"]),
        (ENGLISH, 0, [ENGLISH]),  # 0: never split
        (ENGLISH, 100, [ENGLISH]),  # fits: one chunk, as written
        # a point inside a number is no sentence end; a sentence past the limit is cut at its last space
        ("It costs 3.5 dollars. Done.", 15, ["It costs 3.5", "dollars. Done."]),
        # a word longer than the limit stays whole
        ("A supercalifragilistic word here.", 10, ["A", "supercalifragilistic", "word here."]),
        # closing quotes stay with their sentence
        ('He said "Stop!" Then left.', 16, ['He said "Stop!"', "Then left."]),
        # Arabic comma, question mark and semicolon, and a line break, end sentences
        (ARABIC, 16, ["مرحبا بكم،", "كيف حالكم؟", "أنا بخير؛", "شكرا لكم.", "إلى اللقاء"]),
        (ARABIC, 30, ["مرحبا بكم، كيف حالكم؟", "أنا بخير؛ شكرا لكم. إلى اللقاء"]),
        ("سطر أول\n\nسطر ثان", 8, ["سطر أول", "سطر ثان"]),
    ],
)
def test_split_text_cuts_at_sentence_ends_never_inside_a_word(text, limit, chunks):
    assert split_text(text, limit) == chunks
    words = text.split()
    assert " ".join(chunks).split() == words  # nothing lost, nothing cut inside a word


def test_join_audio_is_the_chunks_minus_the_crossfades():
    pieces = [
        np.ones(100, np.float32),
        np.zeros(0, np.float32),
        np.ones(7, np.float32),
        np.ones(50, np.float32),
    ]
    joined = join_audio(pieces, 10)
    # the empty piece is left out; the 7-sample piece overlaps by its 7 samples only, the next by 10
    assert joined.size == 100 + 7 + 50 - 7 - 10
    assert np.allclose(joined, 1.0)  # a crossfade of equal signals is that signal
    ramp = join_audio([np.ones(20, np.float32), np.zeros(20, np.float32)], 4)
    assert ramp.size == 36 and np.allclose(ramp[16:20], [0.8, 0.6, 0.4, 0.2])


@pytest.fixture(scope="module")
def long_clone(tiny_model, processor):
    ref_codes = encode_waveform(processor, synth_speech(1.0, seed=3, pitch_hz=150.0))
    settings = LongTextSettings(max_chars_per_chunk=20, context_chunks=1, crossfade_seconds=0.02)
    limit = LengthLimit(min_seconds=0.4, max_seconds=0.4)
    sampling = SamplingSettings(greedy=True)
    result = clone_long_text(
        tiny_model,
        processor,
        "the reference words",
        ref_codes,
        ENGLISH,
        PromptSettings(),
        sampling,
        limit,
        settings,
    )
    return result, ref_codes, limit, sampling


def test_each_chunk_is_prompted_with_the_reference_and_the_last_chunks(long_clone, tiny_model, processor):
    """Regenerating a chunk greedily from the prompt the one builder makes of the reference and the last
    `context_chunks` chunks (as `build_prompt(context=...)`) gives exactly that chunk's codes."""
    result, ref_codes, limit, sampling = long_clone
    assert result.chunks == ("Hello there.", "How are you?", "I am fine!")
    rate = processor.audio_tokenizer.config.frame_rate
    for i, chunk in enumerate(result.chunks):
        context = [(result.chunks[i - 1], result.clones[i - 1].codes)] if i else []
        item = {"ref_text": "the reference words", "ref_codes": ref_codes, "text": chunk, "context": context}
        again = generate_codes(
            tiny_model, processor, [item], PromptSettings(), sampling, [limit.frames(chunk, rate)]
        )
        assert np.array_equal(again[0].codes, result.clones[i].codes), chunk


def test_the_joined_clip_is_the_chunks_minus_crossfades_and_cuts_are_flagged(long_clone, processor):
    result, *_ = long_clone
    sr = processor.feature_extractor.sampling_rate
    sizes = [c.audio.size for c in result.clones if c.audio.size]
    overlap = round(0.02 * sr)
    assert result.audio.size == sum(sizes) - overlap * (len(sizes) - 1)
    assert result.codes.shape[1] == sum(c.codes.shape[1] for c in result.clones)
    # a chunk that did not stop is flagged in its own entry and in the whole's flags, never dropped
    assert len(result.chunk_flags) == 3
    for clone, flags in zip(result.clones, result.chunk_flags, strict=True):
        assert ("cut" in flags) == (not clone.stopped_by_eos)
    assert ("cut" in result.flags) == (not result.stopped_by_eos)
