"""Transcribe cloned clips with Whisper, to score what was said (WER/CER, see `text_metrics`).

Any `WhisperForConditionalGeneration` checkpoint works: a hub id or a local folder, loaded with
`from_pretrained`. Transcription is greedy (the checkpoint's generation config), and the task is always
"transcribe": translating would score a different text.

Whisper hears 30 s windows. Clips up to 30 s are batched as they are (every clip is padded to the window,
so batching cannot change a transcript); longer ones go through transformers' long-form transcription,
which walks the clip window by window using Whisper's timestamps. Truncating them instead would hide
exactly the babbling a broken fine-tune produces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from higgs_tune.data.audio import TARGET_SR, resample

log = logging.getLogger(__name__)

DEFAULT_ASR_MODEL = "openai/whisper-large-v3"


class Transcriber:
    """Whisper transcription of 24 kHz waveforms, in batches.

    `language` ("ar", "en", or a name such as "arabic") forces the decoder's language token, so an Arabic
    clip is never transcribed as, say, Farsi or translated; None lets Whisper detect it per clip.
    `dtype` defaults to float16 on CUDA (Whisper's own precision) and float32 elsewhere. `max_new_tokens`
    caps each window's tokens (None: the checkpoint's limit, 448 for the released models).
    `local_files_only` loads without asking the hub (see `model.reference.check_model_reference`).
    """

    def __init__(
        self,
        model_id: str = DEFAULT_ASR_MODEL,
        language: str | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        local_files_only: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.language = language
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.processor = WhisperProcessor.from_pretrained(model_id, local_files_only=local_files_only)
        dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        model = WhisperForConditionalGeneration.from_pretrained(
            model_id, dtype=dtype, local_files_only=local_files_only
        )
        self.model = model.to(self.device).eval()
        log.info(
            "transcriber %s (%s) on %s, language %s", model_id, dtype, self.device, language or "detected"
        )

    @property
    def sampling_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    def transcribe(self, audios: Sequence[np.ndarray], sr: int = TARGET_SR) -> list[str]:
        """Transcripts of mono waveforms at `sr` (24 kHz by default), in input order, trimmed."""
        waves = [resample(audio, sr, self.sampling_rate) for audio in audios]
        window = self.processor.feature_extractor.n_samples
        short = [i for i, wave in enumerate(waves) if wave.size <= window]
        # similar lengths together: long-form batches run until their longest clip is done
        long = sorted((i for i, wave in enumerate(waves) if wave.size > window), key=lambda i: waves[i].size)
        if long:
            seconds = window / self.sampling_rate
            log.info("%d of %d clips are over %g s: long-form transcription", len(long), len(waves), seconds)
        texts = [""] * len(waves)
        for group, long_form in ((short, False), (long, True)):
            for start in range(0, len(group), self.batch_size):
                batch = group[start : start + self.batch_size]
                found = self._transcribe_batch([waves[i] for i in batch], long_form)
                for i, text in zip(batch, found, strict=True):
                    texts[i] = text
        return texts

    def _transcribe_batch(self, waves: list[np.ndarray], long_form: bool) -> list[str]:
        extractor = self.processor.feature_extractor
        kwargs: dict[str, object] = {}
        if long_form:
            inputs = extractor(
                waves,
                sampling_rate=self.sampling_rate,
                return_tensors="pt",
                truncation=False,
                padding="longest",
                return_attention_mask=True,
            )
            kwargs = {"attention_mask": inputs.attention_mask.to(self.device), "return_timestamps": True}
        else:
            inputs = extractor(waves, sampling_rate=self.sampling_rate, return_tensors="pt")
        features = inputs.input_features.to(self.device, self.model.dtype)
        with torch.inference_mode():
            ids = self.model.generate(
                features,
                language=self.language,
                task="transcribe",
                max_new_tokens=self.max_new_tokens,
                **kwargs,
            )
        return [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]
