"""Clones during training: every `preview_steps`, clone a fixed few held-out prompts and log the audio and
its speech checks to every tracker that takes them (`training.trackers`), so a user hears the run improve
(or start trailing silence) before it ends.

It clones, so it lives here, above training: the trainer does not import it, but is handed it by the
callers above both (`cli`, `tiny`), as the `previews` argument of `training.trainer.Trainer` and
`training.run.train` (typed in `training.preview_hook`).

Generation runs on the main process with the live (unmerged) model; it needs every weight in one place,
so it is skipped under FSDP and DeepSpeed ZeRO-3, where weights are sharded across processes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from higgs_tune.config import PromptSettings
from higgs_tune.inference.clone import Clone, clone_samples
from higgs_tune.inference.settings import LengthLimit, SamplingSettings
from higgs_tune.inference.speech_checks import summarize

if TYPE_CHECKING:
    from higgs_tune.training.trackers import Trackers

log = logging.getLogger(__name__)


class TrainingPreviews:
    """A fixed set of prompts (reference codes and texts from held-out samples) cloned at intervals."""

    def __init__(self, processor, prompts: list, prompt: PromptSettings, limit: LengthLimit | None = None):
        self.processor = processor
        self.items = [
            {"ref_text": p.ref_text, "ref_codes": p.ref_codes, "text": p.text, "scene": p.scene, "id": p.id}
            for p in prompts
        ]
        self.prompt = prompt
        self.limit = limit or LengthLimit(max_seconds=15.0)

    def run(self, model, step: int, trackers: Trackers) -> dict:
        """Clone the prompts with `model`, log audio and checks to the trackers; returns the metrics row."""
        rate = self.processor.audio_tokenizer.config.frame_rate
        sr = self.processor.feature_extractor.sampling_rate
        limits = [self.limit.frames(it["text"], rate) for it in self.items]
        was_training = model.training
        model.eval()
        with torch.random.fork_rng(
            devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []
        ):
            clones = clone_samples(
                model, self.processor, self.items, self.prompt, SamplingSettings(seed=0), limits
            )
        model.train(was_training)
        checks = [clone.checks for clone in clones if clone.checks is not None]
        rows, clips, scalars = [], {}, {}
        for item, clone in zip(self.items, clones, strict=True):
            seconds = clone.checks.duration_s if clone.checks else 0.0
            rows.append({"id": item["id"], "seconds": seconds, "flags": clone.flags})
            if clone.checks is not None:
                clips[f"previews/{item['id']}"] = clone.audio
                scalars.update(_check_scalars(item["id"], clone))
        for flag, count in summarize(checks)["flags"].items():
            scalars[f"preview_flags/{flag}"] = count
        trackers.log({"step": step, **scalars})
        trackers.log_audio(clips, sr, step)
        log.info(
            "step %d previews: %s",
            step,
            "; ".join(f"{r['id']} {r['seconds']:.2f}s {r['flags']}" for r in rows),
        )
        return {"step": step, "previews": rows}


def _check_scalars(name: str, clone: Clone) -> dict[str, float]:
    """The float measurements of one clip's speech checks, by tracker tag."""
    return {
        f"preview_checks/{name}/{key}": value
        for key, value in asdict(clone.checks).items()
        if isinstance(value, float)
    }
