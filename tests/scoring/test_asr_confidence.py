"""Whisper's confidence in its transcripts (`Transcriber.transcribe_with_confidence`), on the tiny Whisper."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GenerationConfig, WhisperForConditionalGeneration

from higgs_tune.data.audio import TARGET_SR, resample
from higgs_tune.scoring.asr import Transcriber

TOKENS = 12
PROMPT = ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>")
RNG = np.random.default_rng(0)
SILENCE = np.zeros(TARGET_SR, np.float32)
NOISE = (0.5 * RNG.standard_normal(2 * TARGET_SR)).astype(np.float32)


def _generated(asr: Transcriber, audio: np.ndarray) -> tuple[torch.Tensor, list[int]]:
    """The clip's features and the tokens a plain `generate` writes for it alone."""
    wave = resample(audio, TARGET_SR, asr.sampling_rate)
    extractor = asr.processor.feature_extractor
    features = extractor([wave], sampling_rate=asr.sampling_rate, return_tensors="pt").input_features
    with torch.inference_mode():
        ids = asr.model.generate(features, language="en", task="transcribe", max_new_tokens=TOKENS)
    return features, ids[0].tolist()


@pytest.fixture(scope="module")
def asr(tmp_path_factory: pytest.TempPathFactory) -> Transcriber:
    """The tiny Whisper made to hear its input (the random one writes the same tokens for any audio), with
    the first token it writes for silence made an end token too: silence's row then ends at once and the
    noise row runs on, so a batch of both pads one row after its end, as real transcripts of different
    lengths do."""
    from higgs_tune.tiny.eval_models import build_tiny_asr

    path: Path = build_tiny_asr(tmp_path_factory.mktemp("asr") / "whisper")
    model = WhisperForConditionalGeneration.from_pretrained(path)
    with torch.no_grad():
        model.model.encoder.conv1.weight.mul_(50)
        for layer in model.model.decoder.layers:
            layer.encoder_attn.v_proj.weight.mul_(50)
            layer.encoder_attn.out_proj.weight.mul_(50)
    model.save_pretrained(path)
    first = _generated(Transcriber(str(path), language="en"), SILENCE)[1][0]
    config = GenerationConfig.from_pretrained(path)
    config.eos_token_id = [config.eos_token_id, first]
    config.save_pretrained(path)
    return Transcriber(str(path), language="en", max_new_tokens=TOKENS, batch_size=2)


def test_the_confidence_is_the_geometric_mean_of_the_text_tokens_probabilities(asr):
    ((text, confidence),) = asr.transcribe_with_confidence([NOISE])
    assert text == asr.transcribe([NOISE])[0]
    features, generated = _generated(asr, NOISE)
    # by hand: one teacher-forced pass over the prompt and the generated tokens
    prompt = asr.processor.tokenizer.convert_tokens_to_ids(list(PROMPT))
    with torch.inference_mode():
        logits = asr.model(
            input_features=features, decoder_input_ids=torch.tensor([prompt + generated])
        ).logits
    logprobs = logits[0, len(prompt) - 1 : -1].log_softmax(-1)
    chosen = logprobs[torch.arange(len(generated)), torch.tensor(generated)]
    is_text = torch.tensor(generated) < asr.processor.tokenizer.eos_token_id  # no end token, no padding
    assert 0 < is_text.sum() == len(generated) - (generated[-1] >= asr.processor.tokenizer.eos_token_id)
    expected = float(chosen[is_text].mean().exp())
    assert 0 <= confidence <= 1
    assert confidence == pytest.approx(expected, abs=1e-5)


def test_a_clip_has_the_same_confidence_alone_and_in_a_batch(asr):
    # the preconditions: silence's transcript ends at once, the noise's runs to the token limit
    assert len(_generated(asr, SILENCE)[1]) == 1 and len(_generated(asr, NOISE)[1]) == TOKENS
    alone = [asr.transcribe_with_confidence([clip])[0] for clip in (SILENCE, NOISE)]
    together = asr.transcribe_with_confidence([SILENCE, NOISE])
    for one, batched in zip(alone, together, strict=True):
        assert batched.text == one.text
        assert 0 <= batched.confidence <= 1
        assert batched.confidence == pytest.approx(one.confidence, abs=1e-5)


def test_a_clip_over_30_s_is_scored_window_by_window(asr):
    long = np.tile(NOISE, 20)  # 40 s: long-form transcription, two 30 s windows
    ((text, confidence),) = asr.transcribe_with_confidence([long])
    assert text == asr.transcribe([long])[0]
    wave = resample(long, TARGET_SR, asr.sampling_rate)
    extractor = asr.processor.feature_extractor
    features = extractor(
        [wave], sampling_rate=asr.sampling_rate, return_tensors="pt", truncation=False, padding="longest"
    ).input_features
    with torch.inference_mode():
        written = asr.model.generate(
            features, language="en", task="transcribe", return_timestamps=True, max_new_tokens=TOKENS
        )[0].tolist()
    # the precondition: each window wrote TOKENS tokens and no segment end, so the second starts at 30 s
    assert len(written) == 2 * TOKENS
    # by hand: one teacher-forced pass per window, on its 30 s of features (the last one padded)
    prompt = asr.processor.tokenizer.convert_tokens_to_ids(list(PROMPT[:3]))  # timestamps on
    frames, end_of_text, chosen = extractor.nb_max_frames, asr.processor.tokenizer.eos_token_id, []
    for window in range(2):
        tokens = written[window * TOKENS : (window + 1) * TOKENS]
        part = features[..., window * frames : (window + 1) * frames]
        part = torch.nn.functional.pad(part, (0, frames - part.shape[-1]))
        with torch.inference_mode():
            ids = torch.tensor([prompt + tokens])
            logits = asr.model(input_features=part, decoder_input_ids=ids).logits[0, len(prompt) - 1 : -1]
        logprobs = logits.log_softmax(-1)[torch.arange(TOKENS), torch.tensor(tokens)]
        chosen += [lp for lp, t in zip(logprobs.tolist(), tokens, strict=True) if t < end_of_text]
    assert len(chosen) < len(written)  # the windows' timestamps are no text
    assert 0 <= confidence <= 1
    assert confidence == pytest.approx(float(np.exp(np.mean(chosen))), abs=1e-5)
