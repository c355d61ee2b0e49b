"""One fine-tune, start to end: the objective of the run config picks the trainer (`objective: sft`, the
default, `trainer.Trainer`; `objective: dpo`, `dpo_trainer.DpoTrainer`).

The choice lives here, above both trainers, because the DPO trainer builds on the SFT one: were it in
`trainer.py`, the two modules would import each other.
"""

from __future__ import annotations

from pathlib import Path

from higgs_tune.config import TrainSettings
from higgs_tune.training.dpo_trainer import DpoTrainer
from higgs_tune.training.preview_hook import PreviewsFactory
from higgs_tune.training.trainer import Trainer


def train(
    cfg: TrainSettings,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    previews: PreviewsFactory | None = None,
) -> Path:
    """Run a fine-tune described by `cfg` (`Trainer` says what the flags do); returns the final checkpoint."""
    trainer = DpoTrainer if cfg.objective == "dpo" else Trainer
    return trainer(cfg, resume=resume, overwrite=overwrite, force=force, previews=previews).run()
