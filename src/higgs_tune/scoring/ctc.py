"""Transcribe clips with a wav2vec2 CTC model: the ASR Habibi's WER-S uses for EGY
(`IbrahimAmin/egyptian-arabic-wav2vec2-xlsr-53`) and MAR (`boumehdi/wav2vec2-large-xlsr-moroccan-darija`).

As SWivid/Habibi-TTS src/habibi_tts/eval/2_cal_wer-s.py does it (fork Santzy1/Habibi-TTS, commit
9660c7158bc6d2c9f4c78e12352619c13d1f472c): one clip at a time at 16 kHz, greedy (argmax of the logits),
decoded by the checkpoint's processor. One clip at a time, because padding a batch changes what a model
without an attention mask hears.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from higgs_tune.data.audio import TARGET_SR, resample

log = logging.getLogger(__name__)

CTC_RATE = 16_000


class CtcTranscriber:
    """Greedy CTC transcription of waveforms (`transcribe`, like `asr.Transcriber`'s)."""

    def __init__(
        self, model_id: str, device: str | torch.device = "cpu", local_files_only: bool = False
    ) -> None:
        from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

        self.device = torch.device(device)
        self.processor = Wav2Vec2Processor.from_pretrained(model_id, local_files_only=local_files_only)
        model = Wav2Vec2ForCTC.from_pretrained(model_id, local_files_only=local_files_only)
        self.model = model.to(self.device).eval()
        log.info("CTC transcriber %s on %s", model_id, self.device)

    def transcribe(self, audios: Sequence[np.ndarray], sr: int = TARGET_SR) -> list[str]:
        """Transcripts of mono waveforms at `sr`, in input order."""
        texts = []
        for audio in audios:
            inputs = self.processor(
                resample(audio, sr, CTC_RATE), sampling_rate=CTC_RATE, return_tensors="pt"
            )
            kwargs = {
                k: v.to(self.device) for k, v in inputs.items() if k in ("input_values", "attention_mask")
            }
            with torch.inference_mode():
                logits = self.model(**kwargs).logits
            texts.append(self.processor.batch_decode(torch.argmax(logits, dim=-1))[0])
        return texts


def is_ctc_model(model_id: str, local_files_only: bool = False) -> bool:
    """Whether `model_id` is a CTC checkpoint (its config names a `...ForCTC` architecture)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_id, local_files_only=local_files_only)
    return any(name.endswith("ForCTC") for name in getattr(config, "architectures", None) or [])
