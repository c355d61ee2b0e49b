"""A tiny, random-initialised Higgs Audio v2 checkpoint folder, for tests and the offline demo.

The folder has the same layout as `bosonai/higgs-audio-v2-generation-3B-base` and loads through the same
`from_pretrained` calls (see `model.loading`), so every code path that works on it works on the real
model; only the sizes differ:

    OUT/config.json, generation_config.json, model.safetensors   2-layer HiggsAudioV2ForConditionalGeneration
    OUT/tokenizer.json, tokenizer_config.json                    byte-level BPE, English + Arabic, ~1k tokens
    OUT/processor_config.json, chat_template.jinja               HiggsAudioV2Processor, the real chat template
    OUT/audio_tokenizer/config.json, model.safetensors           tiny HiggsAudioV2TokenizerModel (codec)

Two things are not plain random initialisation, because tests would pass trivially without them:

* The codec's codebooks. transformers initialises them to zeros, so every clip would encode to code 0. They
  are calibrated (seeded) on synthetic speech so that speech spreads over many codes in every codebook.
* The processor's pointer to the codec. `ProcessorMixin.save_pretrained` does not save the audio tokenizer,
  it writes `audio_tokenizer_name_or_path` (whatever the codec was loaded from) into processor_config.json,
  and `from_pretrained` loads that path as is. We save the codec to `OUT/audio_tokenizer/`, load it back from
  there so the pointer is that folder's absolute path (plain transformers then loads the folder in place),
  and `model.loading.load_processor` prefers `<folder>/audio_tokenizer/` when present, so the folder
  still loads after being moved or copied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers.models import BPE
from transformers import (
    DacFeatureExtractor,
    HiggsAudioV2Config,
    HiggsAudioV2ForConditionalGeneration,
    HiggsAudioV2Processor,
    HiggsAudioV2TokenizerConfig,
    HiggsAudioV2TokenizerModel,
    PreTrainedTokenizerFast,
)

from higgs_tune.data.audio import TARGET_SR
from higgs_tune.model.chat_template import CHAT_TEMPLATE
from higgs_tune.model.loading import AUDIO_TOKENIZER_SUBDIR, build_model_from_config, load_codec
from higgs_tune.tiny.corpus import ARABIC, ENGLISH, PROMPTS
from higgs_tune.tiny.synth import synth_speech

logger = logging.getLogger(__name__)

NUM_CODEBOOKS = 8
CODEBOOK_SIZE = 1024  # codes per codebook; the LM adds stream BOS (1024) and EOS (1025)
AUDIO_STREAM_BOS_ID = CODEBOOK_SIZE
AUDIO_STREAM_EOS_ID = CODEBOOK_SIZE + 1

# Llama-3.1's special-token block, in its order (ids 128000..128010 in the real vocabulary) ...
_LLAMA31_SPECIALS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
)
# ... then Higgs' renamed reserved tokens 3..10 (128011..128018) ...
_HIGGS_SPECIALS = (
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|audio_out_bos|>",
    "<|reserved_special_token_6|>",
    "<|AUDIO|>",
    "<|AUDIO_OUT|>",
    "<|scene_desc_start|>",
    "<|scene_desc_end|>",
)
# ... then a few of the remaining reserved tokens, numbered as in Llama-3.1 (token k of the block is
# reserved_{k-8}), so the block is 32 tokens and the whole vocabulary 1024.
_RESERVED_SPECIALS = tuple(f"<|reserved_special_token_{i}|>" for i in range(11, 24))
SPECIAL_TOKENS = _LLAMA31_SPECIALS + _HIGGS_SPECIALS + _RESERVED_SPECIALS
TOKENIZER_VOCAB_SIZE = 1024
_PROMPT_WEIGHT = 20

# Llama-3's pre-tokenizer split: contractions, words with an optional leading non-letter, up to 3 digits,
# punctuation runs, newlines, other whitespace. \p{L} covers Arabic letters, so Arabic words split alike.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Calibration clips use synth seeds from here on; tests that need "unseen" speech use small seeds.
CALIBRATION_SEED_OFFSET = 1_000_000
# (pitch Hz, formant scale, syllables/s): low to high voices, so the codebooks cover all of them.
_CALIBRATION_VOICES = ((100.0, 1.0, 3.5), (140.0, 1.05, 4.5), (200.0, 1.15, 4.0), (250.0, 1.25, 5.0))
_CALIBRATION_SECONDS = 4.0
_KMEANS_ITERATIONS = 3


def build_tiny_model(out: Path, seed: int = 0) -> Path:
    """Write a complete tiny Higgs Audio v2 model folder to `out` and return it.

    Deterministic: the same seed gives byte-identical weight files (model and codec); another seed gives
    other weights. The tokenizer does not depend on the seed. Takes a few seconds on a laptop CPU.
    """
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()

    codec_dir = out / AUDIO_TOKENIZER_SUBDIR
    build_tiny_codec(seed).save_pretrained(codec_dir)
    # Loading it back makes the codec's name_or_path, hence the processor's pointer, this folder's path.
    codec = load_codec(codec_dir.resolve())
    build_processor(tokenizer, codec).save_pretrained(out)

    model = build_tiny_lm(tokenizer, seed)
    model.save_pretrained(out)
    logger.info("built tiny Higgs Audio v2 model in %s (%.1f s)", out, time.perf_counter() - start)
    return out


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Train a Llama-3-style byte-level BPE on the embedded corpus and append the special-token block.

    Special tokens come after the learned vocabulary, as in Llama-3.1, so their ids are
    `TOKENIZER_VOCAB_SIZE - len(SPECIAL_TOKENS) + position`. bos is `<|begin_of_text|>` (the chat template
    starts with `bos_token`, and the processor then skips adding another one). eos and pad are both
    `<|end_of_text|>`, as in the real checkpoint, whose conversion sets `pad_token = eos_token` and
    `generation_config.pad_token_id` to `<|end_of_text|>`'s id. The processor masks pad ids out of text
    labels, so pad must not be `<|eot_id|>`: that is the turn end the model has to learn, and the
    generation stop token (`eos_token_id` in the model and generation configs).
    """
    backend = Tokenizer(BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE - len(SPECIAL_TOKENS),
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # Prompt boilerplate occurs in every example, so it is weighted up like it would be in real data.
    backend.train_from_iterator([*PROMPTS * _PROMPT_WEIGHT, *ENGLISH, *ARABIC], trainer=trainer)
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    if backend.get_vocab_size() != TOKENIZER_VOCAB_SIZE:
        raise RuntimeError(
            f"tiny tokenizer has {backend.get_vocab_size()} tokens, expected {TOKENIZER_VOCAB_SIZE}"
        )
    bos = "<|begin_of_text|>"
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token="<|end_of_text|>", pad_token="<|end_of_text|>"
    )


def tiny_codec_config() -> HiggsAudioV2TokenizerConfig:
    """A codec config with the released codec's rates but tiny networks.

    24 kHz audio, 25 frames/s on both branches: DAC downsamples by 8*5*4*2*3 = 960; HuBERT runs at 16 kHz with
    conv strides 5*2^6 = 320 (50 frames/s), so `semantic_downsample_factor` is 960 / 1.5 / 320 = 2.
    `target_bandwidths` ending at 2 kbps gives 2000 // (25 * 10 bits) = 8 quantizers of 1024 codes. A small
    `codebook_dim` (8) lets calibration spread speech over many codes.
    """
    ratios = [8, 5, 4, 2, 3]
    return HiggsAudioV2TokenizerConfig(
        sample_rate=TARGET_SR,
        target_bandwidths=[0.5, 1, 1.5, 2],
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=8,
        acoustic_model_config={
            "model_type": "dac",
            "sampling_rate": TARGET_SR,
            "encoder_hidden_size": 4,
            "downsampling_ratios": ratios,
            # Set explicitly: the codec config's sub-config defaults (hidden 256, upsampling [8, 5, 4, 2])
            # override what DacConfig would derive from the downsampling ratios.
            "upsampling_ratios": ratios,
            "hidden_size": 32,
            "decoder_hidden_size": 64,
            # DAC's own quantizer is built and discarded by the codec; keep it minimal.
            "n_codebooks": 1,
            "codebook_size": 16,
        },
        semantic_model_config={
            "model_type": "hubert",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "conv_dim": [16] * 7,
            "conv_stride": [5, 2, 2, 2, 2, 2, 2],
            "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 4,
        },
    )


def build_tiny_codec(seed: int = 0) -> HiggsAudioV2TokenizerModel:
    """Random-initialise the tiny codec with `seed`, then calibrate its codebooks on synthetic speech.

    Calibration runs on one CPU thread: multi-threaded reductions sum in a thread-count dependent order,
    and those last-bit differences would make the saved codebooks depend on the machine's core count.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = HiggsAudioV2TokenizerModel(tiny_codec_config()).eval()
    with torch.no_grad(), _single_thread():
        _calibrate_codebooks(codec, seed)
    return codec


def build_processor(
    tokenizer: PreTrainedTokenizerFast, codec: HiggsAudioV2TokenizerModel
) -> HiggsAudioV2Processor:
    """Assemble the processor exactly as transformers' conversion script does for the released model."""
    feature_extractor = DacFeatureExtractor(
        feature_size=1,
        hop_length=1,
        padding_side="right",
        padding_value=0.0,
        sampling_rate=TARGET_SR,
        return_attention_mask=True,
    )
    return HiggsAudioV2Processor(
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        audio_tokenizer=codec,
        chat_template=CHAT_TEMPLATE,
        audio_token="<|AUDIO_OUT|>",
        audio_bos_token="<|audio_out_bos|>",
        audio_eos_token="<|audio_eos|>",
        audio_stream_bos_id=AUDIO_STREAM_BOS_ID,
        audio_stream_eos_id=AUDIO_STREAM_EOS_ID,
    )


def tiny_lm_config(tokenizer: PreTrainedTokenizerFast) -> HiggsAudioV2Config:
    """The 2-layer LM config, with every token id taken from `tokenizer` (the real model's ids differ)."""
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}
    return HiggsAudioV2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        num_codebooks=NUM_CODEBOOKS,
        codebook_size=CODEBOOK_SIZE + 2,
        audio_stream_bos_id=AUDIO_STREAM_BOS_ID,
        audio_stream_eos_id=AUDIO_STREAM_EOS_ID,
        audio_token_id=ids["<|AUDIO_OUT|>"],
        audio_bos_token_id=ids["<|audio_out_bos|>"],
        audio_delay_token_id=ids["<|reserved_special_token_6|>"],
        pad_token_id=ids["<|end_of_text|>"],
        eos_token_id=ids["<|eot_id|>"],
        bos_token_id=ids["<|begin_of_text|>"],
    )


def build_tiny_lm(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> HiggsAudioV2ForConditionalGeneration:
    """The 2-layer LM with a text head, and the generation config the real conversion writes."""
    config = tiny_lm_config(tokenizer)
    model = build_model_from_config(config, use_text_head=True, seed=seed)
    generation = model.generation_config
    generation._from_model_config = False
    generation.bos_token_id = config.bos_token_id
    generation.eos_token_id = config.eos_token_id
    generation.pad_token_id = config.pad_token_id
    generation.ras_win_len = 7
    generation.ras_win_max_num_repeat = 2
    generation.use_text_head = True
    return model


def _calibration_audio(seed: int) -> torch.Tensor:
    """The synthetic clips the codebooks are fitted on, shape [voices, 1, time]."""
    clips = [
        synth_speech(
            _CALIBRATION_SECONDS,
            sr=TARGET_SR,
            seed=CALIBRATION_SEED_OFFSET + len(_CALIBRATION_VOICES) * seed + i,
            pitch_hz=pitch,
            formant_scale=formants,
            syllables_per_second=rate,
        )
        for i, (pitch, formants, rate) in enumerate(_CALIBRATION_VOICES)
    ]
    return torch.from_numpy(np.stack(clips))[:, None, :]


def _calibrate_codebooks(codec: HiggsAudioV2TokenizerModel, seed: int) -> None:
    """Fit every residual codebook to the codec's own embeddings of synthetic speech, level by level.

    Mirrors `HiggsAudioV2TokenizerResidualVectorQuantization.encode`: level i sees the residual left by
    levels < i. Each `project_out` is set to the pseudo-inverse of its `project_in`, so decoding a code
    removes what that level explained and the residual shrinks from level to level as in a trained RVQ.
    """
    generator = torch.Generator().manual_seed(seed)
    residual = _quantizer_input(codec, _calibration_audio(seed))
    for level in codec.quantizer.quantizers:
        weight_pinv = torch.linalg.pinv(level.project_in.weight)
        level.project_out.weight.copy_(weight_pinv)
        level.project_out.bias.copy_(-weight_pinv @ level.project_in.bias)
        points = level.project_in(residual.transpose(1, 2)).reshape(-1, codec.config.codebook_dim)
        centroids = _fit_centroids(points, codec.config.codebook_size, generator)
        codebook = level.codebook
        codebook.embed.copy_(centroids)
        # EMA bookkeeping consistent with `embed`, as if each code had been seen once.
        codebook.embed_avg.copy_(centroids)
        codebook.cluster_size.fill_(1.0)
        codebook.inited.fill_(1.0)
        residual = residual - level.decode(level.encode(residual))


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch CPU ops on one thread inside the block, restoring the previous setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _quantizer_input(codec: HiggsAudioV2TokenizerModel, audio: torch.Tensor) -> torch.Tensor:
    """What `codec.encode(audio)` feeds the residual quantizer, [batch, hidden, frames].

    Captured by wrapping `quantizer.encode` for one call, so calibration sees exactly the encoder's
    output instead of re-implementing its semantic/acoustic fusion.
    """
    captured: list[torch.Tensor] = []
    original = codec.quantizer.encode

    def capture(embeddings: torch.Tensor, bandwidth: float | None = None) -> torch.Tensor:
        captured.append(embeddings)
        return original(embeddings, bandwidth)

    codec.quantizer.encode = capture
    try:
        codec.encode(audio)
    finally:
        del codec.quantizer.encode
    return captured[0]


def _fit_centroids(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k centroids for `points`: draws from a Gaussian fitted to them, refined by a few k-means steps.

    A few seconds of calibration audio give far fewer frames than codes, so plain k-means would leave most
    codes where they started. Starting from Gaussian draws puts every code inside the data's spread, so
    unseen speech still lands on many different codes; the k-means steps pull visited codes onto the data.
    """
    dim = points.shape[1]
    cov = torch.cov(points.T)
    cov = cov + 1e-6 * cov.diagonal().mean() * torch.eye(dim)
    noise = torch.randn(k, dim, generator=generator)
    centroids = points.mean(0) + noise @ torch.linalg.cholesky(cov).T
    for _ in range(_KMEANS_ITERATIONS):
        assignment = torch.cdist(points, centroids).argmin(1)
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        visited = counts > 0
        centroids[visited] = sums[visited] / counts[visited, None]
    return centroids
