"""Checkpoints: written atomically, found again for `--resume`, and loaded for cloning.

A checkpoint folder `RUN/checkpoint-<step>/` holds

    adapter/ or model/     the LoRA adapter (peft) or the full weights (HF layout), for cloning and merging
    state/                 the training state: trainable weights (safetensors) and optimizer (accelerate's
                           `save_state`, loaded with `weights_only=True`), the schedule and every
                           process's random generators as JSON (`write_plain_state`)
    trainer_state.json     step, mode, base model, prompt settings, config, the run's best checkpoint
    train_config.yaml      the exact run configuration

Nothing in a checkpoint is unpickled: a run folder may come from anyone, and a pickle runs code when it is
loaded. The schedule and the random generators, which accelerate would pickle (its custom checkpointing
loads with full pickle), are written as plain JSON here instead.

It is written to `RUN/.tmp-checkpoint-<step>/` and renamed into place when complete, so a process killed
mid-save leaves only a temporary folder that `--resume` ignores.

What goes into a checkpoint is decided here: the weights of the training state (`keep_trainable_weights`),
the weights for cloning (`write_weights`) and the trainer state (`trainer_state`); the trainer decides
when to save and takes part in the collective save.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.config_files import config_to_dict
from higgs_tune.errors import UserError
from higgs_tune.files import write_json, write_text_atomic

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
SCHEDULER_STATE = "scheduler.json"
# Where a checkpoint keeps its weights for cloning and merging, by training mode (read through `weights_dir`).
_WEIGHTS_SUBDIR = {"lora": "adapter", "full": "model"}
# A folder holds weights when it has one of these (peft's adapter, transformers' model, sharded or not).
WEIGHT_FILES = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
)


class CheckpointError(UserError):
    """A checkpoint whose files are missing, truncated or not what a checkpoint holds; names the file."""


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of interrupted saves excluded)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _CHECKPOINT.match(p.name)
        if m and (p / TRAINER_STATE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def resolve_checkpoint(path: Path, which: Literal["best", "last"] = "best") -> Path:
    """The checkpoint to load from a checkpoint folder (used as is) or a run folder.

    Of a run, `which="best"` takes the best checkpoint its trainer state records (`best_model_checkpoint`,
    see `training.best`) and the newest one when none was tracked (a run without held-out data);
    `which="last"` takes the newest. The choice is logged with the step, so every command that loads a
    fine-tune says which one it loaded.
    """
    path = Path(path)
    if (path / TRAINER_STATE).is_file():
        check_loadable(path)
        return path
    last = last_checkpoint(path)
    if last is None:
        raise FileNotFoundError(f"{path}: neither a checkpoint nor a run folder with a complete checkpoint")
    state = check_loadable(last)
    best_name = state.get("best_model_checkpoint")
    if which == "last" or best_name is None:
        why = (
            "--checkpoint last" if which == "last" else "no best checkpoint tracked (no held-out evaluation)"
        )
        log.info("%s: using the last checkpoint, %s (step %d): %s", path, last.name, state["step"], why)
        return last
    best = path / str(best_name)
    if not (best / TRAINER_STATE).is_file():
        raise FileNotFoundError(
            f"{path}: the best checkpoint {best_name} is recorded but missing; use --checkpoint last"
        )
    check_loadable(best)
    log.info(
        "%s: using the best checkpoint, %s (step %d, %s %.4g); --checkpoint last for the newest (step %d)",
        path,
        best_name,
        state["best_step"],
        state["metric_for_best_model"],
        state["best_metric"],
        state["step"],
    )
    return best


def read_trainer_state(checkpoint: Path) -> dict:
    """The trainer state (step, mode, base model, prompt settings, config) of a checkpoint; a file that is
    not a JSON object (cut short by a full disk or a partial copy, edited by hand) is a `CheckpointError`
    naming it."""
    return _json_object(Path(checkpoint) / TRAINER_STATE)


def weights_dir(checkpoint_folder: Path, mode: str | None = None) -> Path:
    """Where a checkpoint keeps its weights for cloning and merging, and its model card: `adapter/` for a
    LoRA run, `model/` for full fine-tuning. `mode` is the trainer state's ("lora" or "full"); None reads
    it from the checkpoint's trainer state. The one place that maps a mode to its folder."""
    if mode is None:
        mode = read_trainer_state(checkpoint_folder)["mode"]
    return Path(checkpoint_folder) / _WEIGHTS_SUBDIR[mode]


def check_loadable(checkpoint: Path) -> dict:
    """The trainer state of a checkpoint that is about to be loaded, checked first, together with its
    weights folder, so that a damaged checkpoint is one line naming the file instead of a traceback from
    deep inside peft, transformers or safetensors minutes later.

    Checked: the trainer state's step, mode and prompt settings; the weights folder (`weights_dir`), its
    config (`adapter_config.json` or `config.json`) as a JSON object, at least one of `WEIGHT_FILES`, and
    the header of every safetensors file, which safetensors compares with the file's size (an empty or
    truncated file fails there) without reading the weights.
    """
    checkpoint = Path(checkpoint)
    path = checkpoint / TRAINER_STATE
    state = _json_object(path)
    if isinstance(state.get("step"), bool) or not isinstance(state.get("step"), int):
        raise CheckpointError(f'{path}: no step number ("step"); the checkpoint is damaged')
    mode = state.get("mode")
    if mode not in _WEIGHTS_SUBDIR:
        raise CheckpointError(f'{path}: "mode" is {mode!r}, not one of {", ".join(_WEIGHTS_SUBDIR)}')
    prompt = state.get("prompt")
    known = set(PromptSettings.__dataclass_fields__)
    if not isinstance(prompt, dict) or not set(prompt) <= known:
        raise CheckpointError(
            f'{path}: "prompt" must be an object of the prompt settings ({", ".join(sorted(known))})'
        )
    weights = weights_dir(checkpoint, mode)
    config = weights / ("adapter_config.json" if mode == "lora" else "config.json")
    if not config.is_file():
        raise CheckpointError(f"{config} is missing: the checkpoint is incomplete")
    if mode == "lora" and "peft_type" not in _json_object(config):
        raise CheckpointError(f'{config}: no "peft_type"; not a peft adapter\'s config')
    if mode == "full":
        _json_object(config)
    if not any((weights / name).is_file() for name in WEIGHT_FILES):
        raise CheckpointError(
            f"{weights}: no weights ({', '.join(WEIGHT_FILES)}); the checkpoint is incomplete"
        )
    for file in sorted(weights.glob("*.safetensors")):
        _check_safetensors(file)
    return state


def _json_object(path: Path) -> dict:
    """A JSON file that must hold an object, or a `CheckpointError` naming it and what is wrong."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}): the checkpoint is damaged") from None
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{path} holds {type(value).__name__}, not a JSON object: the checkpoint is damaged"
        )
    return value


def _check_safetensors(path: Path) -> None:
    """Read a safetensors file's header (not its weights); an empty, truncated or foreign file is a
    `CheckpointError` naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except SafetensorError as e:
        raise CheckpointError(
            f"{path} is damaged ({e}): the file is empty, truncated or not safetensors; copy it again or "
            "use another checkpoint"
        ) from None


def training_mode(cfg: TrainSettings) -> Literal["full", "lora"]:
    """How a run trains, as its checkpoints record it: `full` weights or a `lora` adapter."""
    return "full" if cfg.full else "lora"


def trainer_state(
    cfg: TrainSettings,
    step: int,
    metrics: dict | None = None,
    best: dict | None = None,
    base: dict | None = None,
) -> dict:
    """What `trainer_state.json` records: enough to resume the run and to clone with its prompt settings,
    the run's best checkpoint so far (`best`: `training.best.BestCheckpoint.state()`), and the base model
    it was trained on (`base`: `model.fingerprint.base_fingerprint`), checked wherever an adapter loads."""
    return {
        **(best or {}),
        "step": step,
        "mode": training_mode(cfg),
        "model": cfg.model,
        "base": base,
        "text_head": cfg.text_loss_weight > 0,
        "prompt": asdict(cfg.prompt),
        "config": config_to_dict(cfg),
        "metrics": metrics or {},
    }


def keep_trainable_weights(accelerator: Accelerator, model: torch.nn.Module) -> None:
    """Make accelerate's training state hold `model`'s trainable weights only.

    The frozen base is loaded from the model itself on resume, so a LoRA checkpoint of the 5.4B model
    would otherwise carry an 11 GB copy of it each time. `model` is the unwrapped module, whose
    state-dict keys carry no DDP "module." prefix. (FSDP and DeepSpeed save through their own paths and
    pass no weights to the hook.)
    """

    def trainable_only(models: list, weights: list[dict], output_dir: str) -> None:
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        weights[:] = [{k: v for k, v in w.items() if k in trainable} for w in weights]
        if weights and len(weights[0]) != len(trainable):
            raise RuntimeError(
                f"training state would hold {len(weights[0])} of {len(trainable)} trainable weights; "
                "the state-dict keys do not match the parameter names"
            )

    accelerator.register_save_state_pre_hook(trainable_only)


def write_weights(folder: Path, model: torch.nn.Module, state_dict: dict, cfg: TrainSettings) -> None:
    """The weights for cloning and merging, in transformers' / peft's layout: `adapter/` or `model/`.

    `model` is the (peft-wrapped) model inside the loss wrapper and `state_dict` the loss wrapper's full
    state dict (gathered from every rank under FSDP / ZeRO-3), whose keys carry its `model.` prefix.
    """
    weights = {k.removeprefix("model."): v for k, v in state_dict.items()}
    model.save_pretrained(str(weights_dir(folder, training_mode(cfg))), state_dict=weights)


def temporary_dir(run_dir: Path, step: int) -> Path:
    """Where a checkpoint is written before it is complete."""
    return Path(run_dir) / f".tmp-checkpoint-{step}"


def finalize(run_dir: Path, step: int, trainer_state: dict, keep: int | None) -> Path:
    """Write the trainer state last, rename the temporary folder into place and prune old checkpoints.

    Pruning keeps the newest `keep` checkpoints and, beyond them, the best one the state records, as
    transformers does, and never the one just written (should the folder hold checkpoints of higher
    steps): the checkpoint a run is loaded from is never deleted."""
    tmp = temporary_dir(run_dir, step)
    (tmp / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2, ensure_ascii=False))
    final = Path(run_dir) / f"checkpoint-{step}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if keep is not None:
        spared = {final.name, trainer_state.get("best_model_checkpoint")}
        for old in checkpoint_dirs(run_dir)[:-keep]:
            if old.name not in spared:
                shutil.rmtree(old, ignore_errors=True)
    log.info("saved %s", final)
    return final


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete folders left by saves that were interrupted (they are never resumed from)."""
    for p in Path(run_dir).glob(".tmp-checkpoint-*"):
        log.warning("removing incomplete checkpoint %s left by an interrupted save", p)
        shutil.rmtree(p, ignore_errors=True)


def _rng_file(state_dir: Path, rank: int) -> Path:
    return Path(state_dir) / f"rng_state_{rank}.json"


def random_states() -> dict:
    """This process's random generators (Python, NumPy, torch CPU and CUDA) as plain JSON data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        states["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return states


def set_random_states(states: dict) -> None:
    """Restore what `random_states` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in states["cuda"]])


def write_plain_state(state_dir: Path, scheduler, accelerator: Accelerator) -> None:
    """After accelerate's `save_state` (every process): this process's random generators as JSON in place
    of accelerate's pickle of them, and (main process) the schedule's state as JSON."""
    rank = accelerator.process_index
    (Path(state_dir) / f"random_states_{rank}.pkl").unlink(missing_ok=True)
    write_text_atomic(_rng_file(state_dir, rank), json.dumps(random_states()))
    if accelerator.is_main_process:
        write_json(Path(state_dir) / SCHEDULER_STATE, scheduler.state_dict())


def read_plain_state(state_dir: Path, scheduler, accelerator: Accelerator) -> None:
    """Restore what `write_plain_state` wrote: the schedule, and this process's random generators."""
    schedule = Path(state_dir) / SCHEDULER_STATE
    if not schedule.is_file():
        raise FileNotFoundError(
            f"{schedule} is missing: the checkpoint was saved by an older higgs-tune, whose pickled state "
            "is never loaded; start a new run (its adapter/ or model/ still loads for cloning)"
        )
    scheduler.load_state_dict(json.loads(schedule.read_text()))
    rng = _rng_file(state_dir, accelerator.process_index)
    if rng.is_file():
        set_random_states(json.loads(rng.read_text()))
    else:
        log.warning(
            "%s is missing (the run was saved by fewer processes): process %d continues with fresh random "
            "generators, so dropout and sampling differ from the interrupted run",
            rng,
            accelerator.process_index,
        )
