"""Stop health of a system on the eval set: the same teacher-forced figures the trainer logs.

Generation shows whether clips stopped; these figures say why, from the model's own probabilities on the
eval samples' target audio (no sampling): code accuracy, the probability of the stream EOS at its labelled
frame (mean and per codebook) and the risk of stopping early (`training.stop_health`). The examples are
built as in training (`training.examples.build_example`: the cloning prompt plus the target, labels from
`mask_labels`) with the system's own prompt settings, and scored by the training loss model in eval mode.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from higgs_tune.config import PromptSettings
from higgs_tune.model.codes import encode_file
from higgs_tune.training.collate import LOSS_INPUTS, Collator
from higgs_tune.training.examples import build_example
from higgs_tune.training.loss import CloningLossModel
from higgs_tune.training.stop_health import stop_health_metrics

log = logging.getLogger(__name__)


@torch.inference_mode()
def teacher_forced_stop_health(
    model, processor, samples: list, prompt: PromptSettings, batch_size: int = 8
) -> dict[str, float] | None:
    """Stop-health figures of `model` over the samples that have target audio; None when none has."""
    targets = [s for s in samples if s.audio is not None]
    if not targets:
        log.info("no eval sample has target audio: no teacher-forced stop health")
        return None
    loss_model = CloningLossModel(model).eval()
    device = next(model.parameters()).device
    collate = Collator(processor)
    codes: dict[Path, np.ndarray] = {}

    def clip(path: Path) -> torch.Tensor:
        if path not in codes:
            codes[path] = encode_file(processor, path)
        return torch.from_numpy(codes[path])

    total = None
    for start in range(0, len(targets), batch_size):
        examples = [
            build_example(
                processor, s.id, s.ref_text, clip(s.ref_audio), s.text, clip(s.audio), prompt, scene=s.scene
            )
            for s in targets[start : start + batch_size]
        ]
        batch = collate(examples)
        sums = loss_model(**{k: batch[k].to(device) for k in LOSS_INPUTS}).stop_health
        total = sums if total is None else total + sums
    return stop_health_metrics(total)
