"""Audio codes: a clip's waveform through the codec (`HiggsAudioV2TokenizerModel`) into [K, T] codes.

This is the same feature extractor and `audio_tokenizer.encode` call that `HiggsAudioV2Processor` makes
on raw audio, so codes prepared here give the processor's own `audio_input_ids` (a test checks).
Clips are encoded one at a time: the codec's semantic branch attends over the whole clip, so padding a
batch would change the codes of the shorter clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from higgs_tune.data.audio import load_audio


@torch.inference_mode()
def encode_waveform(processor, audio: np.ndarray) -> np.ndarray:
    """Codes [K, T] (int64) of one mono 24 kHz waveform."""
    sampling_rate = processor.feature_extractor.sampling_rate
    features = processor.feature_extractor(audio, sampling_rate=sampling_rate, return_tensors="pt")
    codec = processor.audio_tokenizer
    values = features["input_values"].to(device=codec.device, dtype=codec.dtype)
    codes = codec.encode(values).audio_codes
    return codes[0].cpu().numpy().astype(np.int64)


def encode_file(processor, path: Path) -> np.ndarray:
    """Codes [K, T] of an audio file: decoded, downmixed to mono and resampled to the codec's rate."""
    return encode_waveform(processor, load_audio(path, processor.feature_extractor.sampling_rate))


@torch.inference_mode()
def decode_codes(processor, codes: np.ndarray | torch.Tensor) -> np.ndarray:
    """Waveform (float32, codec rate) of codes [K, T]. No frames (a clone that stopped at once) give
    an empty waveform: the codec's convolutions cannot run on an empty input."""
    codec = processor.audio_tokenizer
    codes = torch.as_tensor(np.asarray(codes), dtype=torch.long, device=codec.device)
    if codes.shape[-1] == 0:
        return np.zeros(0, dtype=np.float32)
    audio = codec.decode(codes[None]).audio_values
    return audio.reshape(-1).float().cpu().numpy()
