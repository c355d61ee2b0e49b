"""The evaluation models for real, on tiny random checkpoints loaded through `from_pretrained` on a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr
import torch
from safetensors.torch import load_file
from transformers import (
    AutoFeatureExtractor,
    WavLMConfig,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
    WhisperTokenizerFast,
)

from higgs_tune.scoring.asr import Transcriber
from higgs_tune.scoring.speaker import SpeakerEncoder, cosine_similarity, min_input_length
from higgs_tune.tiny.eval_models import build_tiny_asr, build_tiny_speaker

SR = 24_000
MAX_TOKENS = 6  # the random decoder never stops by itself: keep each window short


def voice(seconds: float, f0: float = 140.0, seed: int = 0, sr: int = SR) -> np.ndarray:
    """A seeded harmonic tone with noise and a syllable-rate envelope, at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * (
        0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    )
    x = x + 0.05 * rng.standard_normal(t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_asr(tmp_path_factory.mktemp("tiny_asr"))


@pytest.fixture(scope="module")
def speaker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_speaker(tmp_path_factory.mktemp("tiny_speaker"))


@pytest.fixture(scope="module")
def transcriber(asr_dir: Path) -> Transcriber:
    return Transcriber(str(asr_dir), language="ar", max_new_tokens=MAX_TOKENS)


@pytest.fixture(scope="module")
def encoder(speaker_dir: Path) -> SpeakerEncoder:
    return SpeakerEncoder(str(speaker_dir))


def test_tiny_whisper_tokenizer_has_the_checkpoint_layout(asr_dir):
    processor = WhisperProcessor.from_pretrained(asr_dir)
    assert isinstance(processor.tokenizer, WhisperTokenizer)
    fast = WhisperTokenizerFast.from_pretrained(asr_dir)
    ids = fast.convert_tokens_to_ids
    sot, notimestamps = ids("<|startoftranscript|>"), ids("<|notimestamps|>")
    assert ids("<|endoftext|>") == fast.eos_token_id == fast.pad_token_id == sot - 1
    assert (ids("<|en|>"), ids("<|ar|>")) == (sot + 1, sot + 14)  # LANGUAGES order: en, zh, ... ar is 14th
    assert ids("<|0.00|>") == notimestamps + 1 and ids("<|30.00|>") == notimestamps + 1501
    fast.set_prefix_tokens(language="ar", task="transcribe")
    assert fast.prefix_tokens == [sot, ids("<|ar|>"), ids("<|transcribe|>"), notimestamps]
    text = "مرحبا hello"
    assert fast.decode(fast(text).input_ids, skip_special_tokens=True) == text


def test_tiny_whisper_generation_config(asr_dir):
    model = WhisperForConditionalGeneration.from_pretrained(asr_dir)
    tokenizer = WhisperTokenizer.from_pretrained(asr_dir)
    config = model.generation_config
    assert config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    assert config.lang_to_id["<|ar|>"] == tokenizer.convert_tokens_to_ids("<|ar|>")
    assert len(config.lang_to_id) == 100
    assert config.task_to_id == {
        "transcribe": tokenizer.convert_tokens_to_ids("<|transcribe|>"),
        "translate": tokenizer.convert_tokens_to_ids("<|translate|>"),
    }
    assert config.no_timestamps_token_id == tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert max(config.suppress_tokens + config.begin_suppress_tokens) < model.config.vocab_size


def _spy_on_generate(transcriber: Transcriber, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    generate = transcriber.model.generate

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return generate(*args, **kwargs)

    monkeypatch.setattr(transcriber.model, "generate", spy)
    return calls


@pytest.mark.parametrize("language", ["ar", "en"])
def test_transcriber_forces_the_language(asr_dir, language, monkeypatch):
    transcriber = Transcriber(str(asr_dir), language=language, max_new_tokens=MAX_TOKENS)
    calls = _spy_on_generate(transcriber, monkeypatch)
    texts = transcriber.transcribe([voice(1.0), voice(0.6, f0=220, seed=1)])
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    assert [(c["language"], c["task"]) for c in calls] == [(language, "transcribe")]


def test_transcriber_detects_the_language_when_not_given(asr_dir):
    transcriber = Transcriber(str(asr_dir), max_new_tokens=MAX_TOKENS)
    assert transcriber.transcribe([voice(0.5)])[0]


def test_batches_keep_order_and_do_not_change_transcripts(transcriber, monkeypatch):
    clips = [voice(0.4 + 0.2 * i, f0=110 + 40 * i, seed=i) for i in range(3)]
    one_by_one = [transcriber.transcribe([clip])[0] for clip in clips]
    calls = _spy_on_generate(transcriber, monkeypatch)
    monkeypatch.setattr(transcriber, "batch_size", 2)
    assert transcriber.transcribe(clips) == one_by_one
    assert len(calls) == 2
    assert transcriber.transcribe([]) == []


def test_clips_over_30_s_use_long_form_transcription(transcriber, monkeypatch):
    calls = _spy_on_generate(transcriber, monkeypatch)
    texts = transcriber.transcribe([voice(31.0), voice(0.5)])
    assert len(texts) == 2 and all(texts)
    assert len(texts[0]) > len(texts[1])  # two windows of text, not one truncated window
    assert [c.get("return_timestamps", False) for c in calls] == [False, True]


def test_transcriber_feeds_features_in_the_model_dtype(asr_dir):
    # float16 is the CUDA default; bfloat16 stands in for it on CPU
    transcriber = Transcriber(str(asr_dir), language="ar", dtype=torch.bfloat16, max_new_tokens=MAX_TOKENS)
    assert transcriber.model.dtype == torch.bfloat16
    assert transcriber.transcribe([voice(0.5)])[0]
    with pytest.raises(ValueError, match="batch_size"):
        Transcriber(str(asr_dir), batch_size=0)


def test_tiny_models_are_deterministic_for_a_seed(tmp_path):
    def weights(folder: Path) -> dict[str, torch.Tensor]:
        return load_file(folder / "model.safetensors")

    for build in (build_tiny_asr, build_tiny_speaker):
        a, b, c = (weights(build(tmp_path / f"{build.__name__}{i}", seed=s)) for i, s in enumerate((0, 0, 1)))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert any(not torch.equal(a[k], c[k]) for k in a)


def test_speaker_embeddings_and_similarity(encoder):
    a, b = voice(1.5, f0=120, seed=0), voice(1.5, f0=230, seed=1)
    embeddings = encoder.embed([a, a, b])
    assert embeddings.shape == (3, encoder.dim) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert cosine_similarity(embeddings[0], embeddings[1]) == pytest.approx(1.0, abs=1e-6)
    assert cosine_similarity(embeddings[0], embeddings[2]) < 0.999
    np.testing.assert_allclose(
        cosine_similarity(embeddings, embeddings[0]), [1.0, 1.0, embeddings[2] @ embeddings[0]]
    )


def test_speaker_encoder_resamples_to_its_rate(encoder):
    clip = voice(1.0)
    at16 = soxr.resample(clip, SR, 16_000, quality="HQ")
    np.testing.assert_allclose(encoder.embed([clip]), encoder.embed([at16], sr=16_000), atol=1e-6)
    # the same waveform read at the model's own rate are a slower, lower voice: a different embedding
    assert cosine_similarity(encoder.embed([clip])[0], encoder.embed([clip], sr=16_000)[0]) < 0.999
    assert encoder.embed([]).shape == (0, encoder.dim)


def test_speaker_encoder_minimum_length(encoder):
    assert min_input_length(WavLMConfig()) == 5200  # the base models: 0.325 s at 16 kHz
    assert encoder.min_length == 5200 and encoder.min_seconds == pytest.approx(0.325)
    rng = np.random.default_rng(0)
    shortest = 0.1 * rng.standard_normal(encoder.min_length).astype(np.float32)
    assert np.isfinite(encoder.embed([shortest], sr=16_000)).all()
    with pytest.raises(ValueError, match="clip 1 is 0.325 s long"):
        encoder.embed([shortest, shortest[:-1]], sr=16_000)


def test_speaker_feature_extractor_loads_through_the_auto_class(speaker_dir):
    extractor = AutoFeatureExtractor.from_pretrained(speaker_dir)
    assert extractor.sampling_rate == 16_000


def test_cosine_similarity_by_hand():
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert cosine_similarity(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == pytest.approx(1.0)
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([-3.0, 0.0])) == pytest.approx(-1.0)
    rows = cosine_similarity(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(rows, [1.0, np.sqrt(0.5)])
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity(np.zeros(3), np.ones(3))
