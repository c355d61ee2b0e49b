"""Transcribe cloned clips with Whisper, to score what was said (WER/CER, see `text_metrics`).

Any `WhisperForConditionalGeneration` checkpoint works: a hub id or a local folder, loaded with
`from_pretrained` (through `model.loading.load_checked`, so one with missing weights is refused).
Transcription is greedy (the checkpoint's generation config), and the task is always "transcribe":
translating would score a different text.

Whisper hears 30 s windows. Clips up to 30 s are batched as they are (every clip is padded to the window,
so batching cannot change a transcript); longer ones go through transformers' long-form transcription,
which walks the clip window by window using Whisper's timestamps. Truncating them instead would hide
exactly the babbling a broken fine-tune produces.

`transcribe_with_confidence` also says how sure Whisper was of each transcript: the geometric mean of the
probabilities its own distribution (the raw logits, before generation suppresses or forces any token) gave
the text tokens it chose, taken from the same generate call. Special tokens (end of text, timestamps) and
the padding after a row's end do not count, so a clip gets the same confidence alone or in any batch.
It costs memory: generate keeps every step's logits until the batch is done (batch x tokens x vocabulary;
for whisper-large-v3 at 8 clips and 448 tokens, 0.37 GB in float16, scored in float32 copies).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from higgs_tune.data.audio import TARGET_SR, resample
from higgs_tune.logs import Progress
from higgs_tune.model.loading import load_checked

log = logging.getLogger(__name__)

DEFAULT_ASR_MODEL = "openai/whisper-large-v3"
ASR_FIX = (
    f"pass a complete WhisperForConditionalGeneration checkpoint with --asr-model (e.g. {DEFAULT_ASR_MODEL})"
)


class Heard(NamedTuple):
    """One transcript and Whisper's confidence in it, in [0, 1] (None when it wrote no text token)."""

    text: str
    confidence: float | None


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
        model = load_checked(
            WhisperForConditionalGeneration,
            model_id,
            "Whisper model",
            ASR_FIX,
            dtype=dtype,
            local_files_only=local_files_only,
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
        return [heard.text for heard in self._transcribe(audios, sr, confidence=False)]

    def transcribe_with_confidence(self, audios: Sequence[np.ndarray], sr: int = TARGET_SR) -> list[Heard]:
        """`transcribe`'s transcripts, each with Whisper's confidence in it (see the module docstring)."""
        return self._transcribe(audios, sr, confidence=True)

    def _transcribe(self, audios: Sequence[np.ndarray], sr: int, confidence: bool) -> list[Heard]:
        waves = [resample(audio, sr, self.sampling_rate) for audio in audios]
        window = self.processor.feature_extractor.n_samples
        short = [i for i, wave in enumerate(waves) if wave.size <= window]
        # similar lengths together: long-form batches run until their longest clip is done
        long = sorted((i for i, wave in enumerate(waves) if wave.size > window), key=lambda i: waves[i].size)
        if long:
            seconds = window / self.sampling_rate
            log.info("%d of %d clips are over %g s: long-form transcription", len(long), len(waves), seconds)
        heard = [Heard("", None)] * len(waves)
        with Progress(total=len(waves), desc="transcribe", unit="clip") as bar:
            for group, long_form in ((short, False), (long, True)):
                for start in range(0, len(group), self.batch_size):
                    batch = group[start : start + self.batch_size]
                    found = self._transcribe_batch([waves[i] for i in batch], long_form, confidence)
                    for i, one in zip(batch, found, strict=True):
                        heard[i] = one
                    bar.update(len(batch))
        return heard

    def _transcribe_batch(self, waves: list[np.ndarray], long_form: bool, confidence: bool) -> list[Heard]:
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
        if confidence:
            # on a config, not as arguments: Whisper's generate reads the output flags only from there
            config = copy.deepcopy(self.model.generation_config)
            config.return_dict_in_generate = config.output_logits = True
            config.max_new_tokens = self.max_new_tokens or config.max_new_tokens
            kwargs["generation_config"] = config
        else:
            kwargs["max_new_tokens"] = self.max_new_tokens
        features = inputs.input_features.to(self.device, self.model.dtype)
        with torch.inference_mode():
            out = self.model.generate(features, language=self.language, task="transcribe", **kwargs)
        ids = out["sequences"] if confidence else out
        texts = [text.strip() for text in self.processor.batch_decode(ids, skip_special_tokens=True)]
        if not confidence:
            return [Heard(text, None) for text in texts]
        scores = self._long_form_scores(out["segments"]) if long_form else self._short_form_scores(out)
        end_of_text = self.processor.tokenizer.eos_token_id
        return [
            Heard(text, _geometric_mean(*row, end_of_text)) for text, row in zip(texts, scores, strict=True)
        ]

    def _short_form_scores(self, out) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(chosen tokens, their log-probabilities) of each row of one generate call; the padding after a
        row's end is Whisper's end-of-text token, a special token that `_geometric_mean` leaves out."""
        logits = tuple(step.float() for step in out.logits)
        logprobs = self.model.compute_transition_scores(out.sequences, logits, normalize_logits=True)
        return list(zip(out.sequences[:, -len(logits) :], logprobs, strict=True))

    def _long_form_scores(self, segments: list[list[dict]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The same, for long-form rows: each segment's tokens scored by the logits of the 30 s window call
        that wrote them (`idxs` are positions in that call's sequence, prompt included)."""
        rows = []
        for row in segments:
            tokens, logprobs = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0)]
            for segment in row:
                result = segment["result"]
                prompt = len(result["sequences"]) - len(result["logits"])
                start, end = segment["idxs"]
                steps = tuple(step[None].float() for step in result["logits"][start - prompt : end - prompt])
                chosen = result["sequences"][start:end].cpu()
                tokens.append(chosen)
                logprobs.append(
                    self.model.compute_transition_scores(chosen[None], steps, normalize_logits=True)[0].cpu()
                )
            rows.append((torch.cat(tokens), torch.cat(logprobs)))
        return rows


def _geometric_mean(tokens: torch.Tensor, logprobs: torch.Tensor, end_of_text: int) -> float | None:
    """exp of the mean log-probability of the text tokens: Whisper's vocabulary puts every special token
    (end of text, which is also the padding; start, languages, tasks, timestamps) from `end_of_text` on."""
    text = tokens.cpu() < end_of_text
    if not text.any():
        return None
    return float(torch.exp(logprobs.cpu()[text].double().mean()))
