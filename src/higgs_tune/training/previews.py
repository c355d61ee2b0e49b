"""Clones during training: every `preview_steps`, clone a fixed few held-out prompts and log the audio and
its speech checks, so a user hears the run improve (or start trailing silence) before it ends.

Generation runs on the main process with the live (unmerged) model; it needs every weight in one place,
so it is skipped under FSDP and DeepSpeed ZeRO-3, where weights are sharded across processes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import torch

from higgs_tune.config import PromptConfig
from higgs_tune.inference.clone import Clone, clone_samples
from higgs_tune.inference.settings import LengthLimit, SamplingConfig
from higgs_tune.inference.speech_checks import summarize

log = logging.getLogger(__name__)


class TrainingPreviews:
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
            clones = clone_samples(
                model, self.processor, self.items, self.settings, SamplingConfig(seed=0), limits
            )
        model.train(was_training)
        checks = [clone.checks for clone in clones if clone.checks is not None]
        rows = []
        for item, clone in zip(self.items, clones, strict=True):
            seconds = clone.checks.duration_s if clone.checks else 0.0
            rows.append({"id": item["id"], "seconds": seconds, "flags": clone.flags})
            if writer is not None and clone.checks is not None:
                _log_clone(writer, item["id"], clone, step, sr)
        summary = summarize(checks)
        if writer is not None:
            for flag, count in summary["flags"].items():
                writer.add_scalar(f"preview_flags/{flag}", count, step)
        log.info(
            "step %d previews: %s",
            step,
            "; ".join(f"{r['id']} {r['seconds']:.2f}s {r['flags']}" for r in rows),
        )
        return {"step": step, "previews": rows}


def _log_clone(writer, name: str, clone: Clone, step: int, sr: int) -> None:
    """One clip's audio and the float measurements of its speech checks, to TensorBoard."""
    writer.add_audio(f"previews/{name}", torch.from_numpy(clone.audio)[None], step, sample_rate=sr)
    for key, value in asdict(clone.checks).items():
        if isinstance(value, float):
            writer.add_scalar(f"preview_checks/{name}/{key}", value, step)
