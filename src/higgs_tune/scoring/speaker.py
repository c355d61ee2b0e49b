"""Speaker similarity: does the cloned clip sound like the reference voice?

A WavLM x-vector model (`WavLMForXVector`, trained for speaker verification) maps a clip to an embedding;
the cosine similarity of two embeddings is the usual zero-shot cloning score (higher is closer). Any
checkpoint of that family works: a hub id or a local folder, loaded with `from_pretrained` (through
`model.loading.load_checked`: a checkpoint without the x-vector head would give random embeddings).

Clips are embedded one at a time. Batching would pad shorter clips, and the base models normalise their
convolutional features over the whole (padded) input, so a clip's embedding would depend on what it was
batched with; a similarity score must not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoFeatureExtractor, WavLMConfig, WavLMForXVector

from higgs_tune.data.audio import TARGET_SR, resample
from higgs_tune.model.loading import load_checked

log = logging.getLogger(__name__)

DEFAULT_SPEAKER_MODEL = "microsoft/wavlm-base-plus-sv"
SPEAKER_FIX = (
    f"pass a complete WavLMForXVector checkpoint with --speaker-model (e.g. {DEFAULT_SPEAKER_MODEL}); a "
    "plain WavLM or wav2vec2 checkpoint has no speaker head"
)


class SpeakerEncoder:
    """Unit-length speaker embeddings of waveforms, from a WavLM x-vector checkpoint.

    Embeddings are scaled to unit length so that a dot product is already the cosine similarity and
    averaging several reference embeddings gives a sensible voice centroid.
    """

    def __init__(
        self,
        model_id: str = DEFAULT_SPEAKER_MODEL,
        device: str | torch.device = "cpu",
        local_files_only: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(
            model_id, local_files_only=local_files_only
        )
        # float32 always: the model is small, and "auto" would follow the dtype the checkpoint was saved in
        model = load_checked(
            WavLMForXVector,
            model_id,
            "speaker model (WavLMForXVector)",
            SPEAKER_FIX,
            dtype=torch.float32,
            local_files_only=local_files_only,
        )
        self.model = model.to(self.device).eval()
        self.sampling_rate: int = self.feature_extractor.sampling_rate
        self.min_length = min_input_length(self.model.config)
        log.info("speaker encoder %s on %s", model_id, self.device)

    @property
    def min_seconds(self) -> float:
        """Shortest clip the model can embed; shorter ones raise, so filter them first (e.g. as silent)."""
        return self.min_length / self.sampling_rate

    @property
    def dim(self) -> int:
        return int(self.model.config.xvector_output_dim)

    def embed(self, audios: Sequence[np.ndarray], sr: int = TARGET_SR) -> np.ndarray:
        """Embeddings [n, dim] (float32, unit length) of mono waveforms at `sr` (24 kHz by default)."""
        rows = [self._embed_one(resample(audio, sr, self.sampling_rate), i) for i, audio in enumerate(audios)]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _embed_one(self, wave: np.ndarray, index: int) -> np.ndarray:
        if wave.size < self.min_length:
            raise ValueError(
                f"clip {index} is {wave.size / self.sampling_rate:.3f} s long; the speaker model needs at "
                f"least {self.min_seconds:.3f} s"
            )
        inputs = self.feature_extractor(wave, sampling_rate=self.sampling_rate, return_tensors="pt")
        with torch.inference_mode():
            embedding = self.model(input_values=inputs.input_values.to(self.device)).embeddings[0]
        embedding = torch.nn.functional.normalize(embedding.float(), dim=-1)
        return embedding.cpu().numpy()


def min_input_length(config: WavLMConfig) -> int:
    """Shortest waveform (in values) that leaves the x-vector head two frames to pool (its standard
    deviation needs two): the TDNN layers eat (kernel - 1) * dilation frames each, and each convolution of
    the feature encoder needs (frames - 1) * stride + kernel inputs for `frames` outputs."""
    frames = 2 + sum((k - 1) * d for k, d in zip(config.tdnn_kernel, config.tdnn_dilation, strict=True))
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        frames = (frames - 1) * stride + kernel
    return frames


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Cosine similarity along the last axis: a float for two vectors, an array for rows (which broadcast,
    e.g. many clips [n, dim] against one reference [dim]). A zero vector has no direction and raises."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    if np.any(norms == 0):
        raise ValueError("cosine similarity is undefined for a zero vector")
    similarity = np.sum(a * b, axis=-1) / norms
    return float(similarity) if similarity.ndim == 0 else similarity
