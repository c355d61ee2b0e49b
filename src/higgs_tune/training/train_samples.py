"""Samples during training: every `sample_steps`, clone a fixed few held-out prompts and log the audio and
its speech checks, so a user hears the run improve (or start trailing silence) before it ends.

Generation runs on the main process with the live (unmerged) model; it needs every weight in one place,
so it is skipped under FSDP and DeepSpeed ZeRO-3, where weights are sharded across processes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import torch

from higgs_tune.config import PromptConfig
from higgs_tune.evaluation.speech_checks import check_speech, summarize
from higgs_tune.inference.generate import LengthLimit, SamplingConfig, clone_batch
from higgs_tune.model.codes import decode_codes

log = logging.getLogger(__name__)


class TrainingSamples:
    """A fixed set of prompts (reference codes and texts from held-out samples) cloned at intervals."""

    def __init__(self, processor, prompts: list, settings: PromptConfig, limit: LengthLimit | None = None):
        self.processor = processor
        self.items = [
            {"ref_text": p.ref_text, "ref_codes": p.ref_codes, "text": p.text, "scene": p.scene, "id": p.id}
            for p in prompts
        ]
        self.settings = settings
        self.limit = limit or LengthLimit(max_seconds=15.0)

    def run(self, model, step: int, writer) -> dict:
        """Clone the prompts with `model`, log audio and checks to TensorBoard; returns the metrics row."""
        rate = self.processor.audio_tokenizer.config.frame_rate
        sr = self.processor.feature_extractor.sampling_rate
        limits = [self.limit.frames(it["text"], rate) for it in self.items]
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(
            devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []
        ):
            results = clone_batch(
                model, self.processor, self.items, self.settings, SamplingConfig(seed=0), limits
            )
        model.train(was_training)
        checks, rows = [], []
        for item, result in zip(self.items, results, strict=True):
            audio = decode_codes(self.processor, result.codes)
            if audio.size == 0:
                rows.append({"id": item["id"], "seconds": 0.0, "flags": ["silent"]})
                continue
            c = check_speech(audio, item["text"], result.stopped_by_eos, sr=sr)
            checks.append(c)
            rows.append({"id": item["id"], "seconds": c.duration_s, "flags": c.flags})
            if writer is not None:
                writer.add_audio(f"samples/{item['id']}", torch.from_numpy(audio)[None], step, sample_rate=sr)
                for key, value in asdict(c).items():
                    if isinstance(value, float):
                        writer.add_scalar(f"sample_checks/{item['id']}/{key}", value, step)
        summary = summarize(checks)
        if writer is not None:
            for flag, count in summary["flags"].items():
                writer.add_scalar(f"sample_flags/{flag}", count, step)
        log.info(
            "step %d samples: %s",
            step,
            "; ".join(f"{r['id']} {r['seconds']:.2f}s {r['flags']}" for r in rows),
        )
        return {"step": step, "samples": rows}
