"""Experiment trackers: the run's metrics, config and preview audio in TensorBoard, wandb and trackio.

`report_to` names the trackers, and they all go through accelerate's tracker interface
(`Accelerator(log_with=...)`, `init_trackers`, `accelerator.log`), so each runs on the main process only.
wandb and trackio are accelerate's own trackers and get the metric names of `metrics.jsonl` exactly.
TensorBoard is accelerate's TensorBoard tracker pointed at `RUN/tensorboard/` (accelerate's would write to
`RUN/<project>/` and add a timestamped hparams folder) with the tags it has always had: training metrics
under `train/`, held-out (`eval_*`) and preview (`preview_*`) ones as named, so older runs compare.

The run config goes to every tracker at the start. Audio is not a scalar, so it bypasses
`accelerator.log`: `Trackers.log_audio` hands each tracker that takes audio a clip in its own type.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, TensorBoardTracker, on_main_process

from higgs_tune.config_files import ConfigError

log = logging.getLogger(__name__)

PROJECT = "higgs-tune"
"""The wandb / trackio project every run logs to; the run is named after its folder."""


class RunTensorBoard(TensorBoardTracker):
    """accelerate's TensorBoard tracker writing `RUN/tensorboard/` with the run's tag names."""

    def __init__(self, run_dir: Path) -> None:
        # accelerate writes to logging_dir / run_name.
        super().__init__("tensorboard", str(run_dir))

    @on_main_process
    def store_init_configuration(self, values: dict) -> None:
        """The config as text: TensorBoard's hparams take scalars only, and would add a folder per call."""
        text = yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
        self.writer.add_text("config", "```\n" + text + "```")
        self.writer.flush()

    @on_main_process
    def purge_from(self, step: int) -> None:
        """Hide this run's earlier events from `step` on, as SummaryWriter's `purge_step` does: a resumed
        run logs the steps after its checkpoint again."""
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        self.writer.file_writer.add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))
        self.writer.flush()

    @on_main_process
    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        for key, value in values.items():
            tag = key if key.startswith(("eval", "preview")) else f"train/{key}"
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()


def log_with(report_to: Sequence[str], run_dir: Path) -> list[str | GeneralTracker] | None:
    """What `Accelerator(log_with=...)` gets for the config's `report_to` (None for no tracker), TensorBoard
    writing into `run_dir`; fails naming the package to install when a tracker's package is missing
    (accelerate would silently drop that tracker)."""
    names = [name for name in dict.fromkeys(report_to) if name != "none"]
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            [f"report_to: {name} needs the {name} package: pip install {name}" for name in missing]
        )
    return [RunTensorBoard(Path(run_dir)) if name == "tensorboard" else name for name in names] or None


def _wandb_audio(audio: np.ndarray, sr: int, caption: str) -> object:
    import wandb

    return wandb.Audio(audio, sample_rate=sr, caption=caption)


def _trackio_audio(audio: np.ndarray, sr: int, caption: str) -> object:
    import trackio

    # int16 already, so trackio neither converts (with a warning) nor peak-normalises the level.
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    return trackio.Audio(pcm, caption=caption, sample_rate=sr)


# Trackers other than TensorBoard that take audio, and how each wants a clip.
_AUDIO: dict[str, Callable[[np.ndarray, int, str], object]] = {
    "wandb": _wandb_audio,
    "trackio": _trackio_audio,
}


class Trackers:
    """The run's trackers, started on the main process; every method is a no-op on the others."""

    def __init__(self, accelerator: Accelerator, config: dict, run_dir: Path) -> None:
        """Start the trackers of `accelerator` on the run named after `run_dir`, with the run's `config`
        (`config_files.config_to_dict`)."""
        self.accelerator = accelerator
        run_dir = Path(run_dir)
        # wandb writes its run files into the run folder unless WANDB_DIR says otherwise.
        wandb_kwargs = {
            "name": run_dir.name,
            **({} if os.environ.get("WANDB_DIR") else {"dir": str(run_dir)}),
        }
        accelerator.init_trackers(
            PROJECT,
            config=config,
            init_kwargs={"wandb": wandb_kwargs, "trackio": {"name": run_dir.name}},
        )
        if accelerator.is_main_process and accelerator.trackers:
            log.info("logging to %s", ", ".join(t.name for t in accelerator.trackers))

    def purge_from(self, step: int) -> None:
        """A resumed run: TensorBoard hides the interrupted run's events from `step` on (wandb and trackio
        start a new run each time)."""
        for tracker in self.accelerator.trackers:
            if isinstance(tracker, RunTensorBoard):
                tracker.purge_from(step)

    def log(self, metrics: dict) -> None:
        """A `metrics.jsonl` row's numbers at its step (lists such as the previews' rows stay in the file)."""
        values = {
            k: v
            for k, v in metrics.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
        }
        if values:
            self.accelerator.log(values, step=metrics["step"])

    def log_audio(self, clips: dict[str, np.ndarray], sr: int, step: int) -> None:
        """Clips (float in [-1, 1], by tag) to every tracker that takes audio."""
        for tracker in self.accelerator.trackers:
            if isinstance(tracker, RunTensorBoard):
                for tag, audio in clips.items():
                    tracker.writer.add_audio(tag, audio[None], step, sample_rate=sr)
                tracker.writer.flush()
            elif tracker.name in _AUDIO:
                make = _AUDIO[tracker.name]
                tracker.log(
                    {tag: make(audio, sr, f"{tag} at step {step}") for tag, audio in clips.items()}, step=step
                )

    def finish(self) -> None:
        """Close every tracker (wandb and trackio write their last records here)."""
        for tracker in self.accelerator.trackers:
            tracker.finish()
