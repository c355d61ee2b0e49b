"""The best checkpoint and early stopping, decided from the held-out metrics of each evaluation.

Named as transformers' `TrainingArguments` / `EarlyStoppingCallback` name them: the metric is
`metric_for_best_model`, the best so far is `best_metric` at `best_model_checkpoint`, and patience counts
evaluations whose metric did not improve on the best by more than `early_stopping_threshold`.

Every rank sees the same (all-reduced) held-out metrics, so every rank takes the same decisions, and
the collective saves they call for happen on all ranks together. The state is written into each
checkpoint's `trainer_state.json` (`state()`), which is how `checkpoint.resolve_checkpoint` finds the best
checkpoint of a run and how `--resume` continues the patience count.
"""

from __future__ import annotations

import logging
import re

from higgs_tune.config_files import ConfigError

log = logging.getLogger(__name__)


class BestCheckpoint:
    """Tracks the best value of `metric_for_best_model` and the evaluations since it last improved."""

    def __init__(self, metric: str, greater_is_better: bool, patience: int | None, threshold: float) -> None:
        """`metric` is `metric_for_best_model`, `greater_is_better` its direction
        (`config.metric_greater_is_better`), `patience` and `threshold` those of early stopping."""
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.patience = patience
        self.threshold = threshold
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.evaluations_without_improvement = 0

    def check_metric(self, num_codebooks: int) -> None:
        """Fail before training when the metric names a codebook the model does not have (the config
        alone cannot know: test models have fewer codebooks than Higgs Audio v2)."""
        codebook = re.search(r"_codebook_(\d+)$", self.metric)
        if codebook and int(codebook.group(1)) >= num_codebooks:
            raise ConfigError(
                [
                    f"metric_for_best_model={self.metric}: the model has codebooks 0 to {num_codebooks - 1}; "
                    "pick one of them"
                ]
            )

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.greater_is_better else value < than

    def update(self, metrics: dict[str, float], step: int) -> bool:
        """Take one evaluation's metrics; True when it is the new best (so its checkpoint must be saved)."""
        value, best = float(metrics[self.metric]), self.best_value
        improved = best is None or self._better(value, best)
        if best is None or (improved and abs(value - best) > self.threshold):
            self.evaluations_without_improvement = 0
        else:
            self.evaluations_without_improvement += 1
        if improved:
            self.best_value, self.best_step = value, step
        return improved

    def should_stop(self) -> bool:
        """Whether early stopping ends the run: `patience` evaluations in a row without improvement."""
        return self.patience is not None and self.evaluations_without_improvement >= self.patience

    def state(self) -> dict:
        """The best checkpoint for `trainer_state.json`: its folder name (relative to the run, so runs can
        be moved), step and metric, and the patience count (for `--resume`)."""
        return {
            "metric_for_best_model": self.metric,
            "greater_is_better": self.greater_is_better,
            "best_metric": self.best_value,
            "best_step": self.best_step,
            "best_model_checkpoint": None if self.best_step is None else f"checkpoint-{self.best_step}",
            "evaluations_without_improvement": self.evaluations_without_improvement,
        }

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint's `state()`; a run resumed with another metric starts afresh."""
        if state.get("metric_for_best_model") != self.metric or state.get("best_step") is None:
            if state.get("best_step") is not None:
                log.warning(
                    "--resume: the run tracked its best checkpoint by %s, now by %s: starting afresh",
                    state.get("metric_for_best_model"),
                    self.metric,
                )
            return
        self.best_value, self.best_step = state["best_metric"], state["best_step"]
        self.evaluations_without_improvement = state["evaluations_without_improvement"]
