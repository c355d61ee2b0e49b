"""The trainer's side of the previews (clips cloned while training): what it is handed and what it calls.

Cloning is a later stage (`inference.previews.TrainingPreviews` does it), so the trainer does not import
it: the callers above both (`cli`, `tiny`) pass it in as `previews=`; without one, no previews are made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from transformers import HiggsAudioV2Processor

from higgs_tune.config import PromptSettings
from higgs_tune.prepared.dataset import PreparedSample
from higgs_tune.training.trackers import Trackers


class Previews(Protocol):
    """What the trainer calls every `preview_steps`: clone with the live model, log to the trackers, and
    return the row for metrics.jsonl."""

    def run(self, model: torch.nn.Module, step: int, trackers: Trackers) -> dict: ...


# Builds a run's previews from its processor, the prompts to clone and the run's prompt settings.
PreviewsFactory = Callable[[HiggsAudioV2Processor, list[PreparedSample], PromptSettings], Previews]
