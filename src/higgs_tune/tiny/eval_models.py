"""Tiny random stand-ins for the evaluation models, so every evaluation path runs for real in tests.

`build_tiny_asr` writes a Whisper folder and `build_tiny_speaker` a WavLM x-vector folder, in the same
model families, file layouts and loading path (`from_pretrained` on a folder) as the defaults
(`openai/whisper-large-v3`, `microsoft/wavlm-base-plus-sv`). Their outputs are meaningless; what they
prove is that tokenizer, feature extractor, generation config and model fit together the way the real
checkpoints do.

The Whisper tokenizer is byte-level BPE with only the 256 byte symbols (no merges) plus Whisper's special
tokens laid out as the multilingual checkpoints have them, because transformers finds some of them by
arithmetic rather than by name: the language tokens must follow `<|startoftranscript|>` in the order of
transformers' `LANGUAGES` table (the tokenizer computes a language id as start + 1 + table index), the
no-speech token must sit just before `<|notimestamps|>`, and the timestamp tokens `<|0.00|>` ...
`<|30.00|>` must follow it (generation takes the first timestamp id as `no_timestamps_token_id + 1`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import AddedToken, pre_tokenizers
from transformers import (
    GenerationConfig,
    Wav2Vec2FeatureExtractor,
    WavLMConfig,
    WavLMForXVector,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from higgs_tune.scoring.measuring import EVAL_MODELS_ASR, EVAL_MODELS_SPEAKER

log = logging.getLogger(__name__)

_EOT = "<|endoftext|>"
_SOT = "<|startoftranscript|>"
_TASKS = ("<|translate|>", "<|transcribe|>")
# after the tasks, in the checkpoints' order; generation reads the no-speech id as no_timestamps - 1
_CONTROL = ("<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>")
_TIMESTAMPS = tuple(f"<|{i * 0.02:.2f}|>" for i in range(1501))
# symbols a speech transcript should not contain, suppressed like the checkpoints' non-speech tokens
_NON_SPEECH_SYMBOLS = '"#()*+/:;<=>@[\\]^_`{|}~'
_MEL_BINS = 128  # as whisper-large-v3 (earlier checkpoints use 80)


def build_tiny_asr(out: Path, seed: int = 0) -> Path:
    """Write a random 1+1-layer `WhisperForConditionalGeneration` with its `WhisperProcessor` to `out`.

    `generate(..., language="ar", task="transcribe")` works on it, language detection too (no language),
    and so does long-form transcription of clips over 30 s.
    """
    out = Path(out)
    tokenizer = _whisper_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in (_EOT, _SOT, *_TASKS, *_CONTROL)}
    begin_suppress = [tokenizer.convert_tokens_to_ids("Ġ"), ids[_EOT]]  # a leading space, an empty text
    suppress = [tokenizer.convert_tokens_to_ids(c) for c in _NON_SPEECH_SYMBOLS]
    # the checkpoints end their list with <|startofprev|> second to last; generation falls back to that
    suppress += [ids[_SOT], ids["<|startoflm|>"], ids["<|startofprev|>"], ids["<|nospeech|>"]]
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=_MEL_BINS,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        decoder_start_token_id=ids[_SOT],
        pad_token_id=ids[_EOT],
        bos_token_id=ids[_EOT],
        eos_token_id=ids[_EOT],
        # also in the model config: its defaults name ids of the real 51k-token vocabulary
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    _write_text_only(model, first_control=ids[_EOT])
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids[_SOT],
        bos_token_id=ids[_EOT],
        eos_token_id=ids[_EOT],
        pad_token_id=ids[_EOT],
        max_length=config.max_target_positions,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        is_multilingual=True,
        lang_to_id={f"<|{code}|>": tokenizer.convert_tokens_to_ids(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={task.strip("<|>"): ids[task] for task in _TASKS},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        max_initial_timestamp_index=50,
    )
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=_MEL_BINS), tokenizer).save_pretrained(out)
    log.info("wrote a tiny random Whisper (vocabulary %d) to %s", len(tokenizer), out)
    return out


def _write_text_only(model: WhisperForConditionalGeneration, first_control: int) -> None:
    """Make the random decoder write text tokens until its token limit, never a control or timestamp token.

    Left alone, a random model keeps choosing some special token: EOS (nothing to transcribe) or timestamps,
    which in long-form transcription make generation advance a few frames per call, for hundreds of calls.
    One output feature is pinned to 1 (zero gain, unit bias in the final layer norm); every control and
    timestamp token gets weight -30 on it (text tokens 0), so their logits stay near -30 whatever the input.
    The output layer is tied to the input embeddings; their other features stay random, so language and
    task tokens still differ as decoder inputs.
    """
    with torch.no_grad():
        norm = model.model.decoder.layer_norm
        norm.weight[0], norm.bias[0] = 0.0, 1.0
        weight = model.get_input_embeddings().weight
        weight[:first_control, 0] = 0.0
        weight[first_control:, 0] = -30.0


def _whisper_tokenizer() -> WhisperTokenizer:
    """Byte-level vocabulary, then every special token at the position the checkpoints use."""
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    languages = tuple(f"<|{code}|>" for code in LANGUAGES)
    for token in (_EOT, _SOT, *languages, *_TASKS, *_CONTROL, *_TIMESTAMPS):
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], pad_token=_EOT, model_max_length=448)
    # registering them as added tokens keeps their ids and stops BPE from splitting them
    special = [AddedToken(t, special=True, normalized=False) for t in (_SOT, *languages, *_TASKS, *_CONTROL)]
    tokenizer.add_tokens(special, special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in _TIMESTAMPS])
    return tokenizer


def build_tiny_speaker(out: Path, seed: int = 0) -> Path:
    """Write a random 1-layer `WavLMForXVector` (16-dim embeddings) and its feature extractor to `out`.

    The convolutional front end keeps the real strides (one frame per 20 ms at 16 kHz) and the x-vector
    head the real TDNN kernel and dilation pattern, so minimum input lengths match the real model's.
    """
    out = Path(out)
    config = WavLMConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        num_buckets=32,
        max_bucket_distance=64,
        tdnn_dim=(16, 16, 16, 16, 32),
        xvector_output_dim=16,
        apply_spec_augment=False,
        layerdrop=0.0,
        # the default 0.02 shrinks activations about tenfold per layer here, leaving embeddings near 1e-8
        initializer_range=0.3,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WavLMForXVector(config)
    model.save_pretrained(out)
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    extractor.save_pretrained(out)
    log.info("wrote a tiny random WavLM x-vector model to %s", out)
    return out


def build_tiny_eval_models(model_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """The tiny ASR and speaker models inside a tiny Higgs model's folder, where `eval` looks for its
    defaults (`scoring.measuring`); returns their folders."""
    return (
        build_tiny_asr(Path(model_dir) / EVAL_MODELS_ASR, seed=seed),
        build_tiny_speaker(Path(model_dir) / EVAL_MODELS_SPEAKER, seed=seed),
    )
