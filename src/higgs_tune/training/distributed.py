"""Processes: the accelerate set-up a run checks before it loads anything, and the collectives over ranks.

One process and N under `accelerate launch` / `torchrun` run the same code. The collectives here are the
only places where ranks exchange values; on one process they return their input unchanged, so a
single-process run never needs a process group.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker
from accelerate.utils import DistributedType, gather_object


def check_backends(attn_implementation: str, optim: str) -> None:
    """Fail before loading anything when the config (its `attn_implementation` and `optim`) or the launcher
    asks for a package that is missing."""
    needs = []
    if attn_implementation == "flash_attention_2":
        needs.append(("flash_attn", "attn_implementation=flash_attention_2", "flash-attn"))
    if optim == "adamw_8bit":
        needs.append(("bitsandbytes", "optim=adamw_8bit", "bitsandbytes"))
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        needs.append(("deepspeed", "the accelerate config (distributed_type: DEEPSPEED)", "deepspeed"))
    missing = [(what, pip) for module, what, pip in needs if importlib.util.find_spec(module) is None]
    if missing:
        raise RuntimeError(
            "; ".join(f"{what} needs the {pip} package: pip install {pip}" for what, pip in missing)
        )


def uses_bf16(bf16: bool | str) -> bool:
    """Whether the run trains in bf16: asked for (the config's `bf16`), or "auto" on hardware that
    supports it."""
    return bf16 is True or (bf16 == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def make_accelerator(
    gradient_accumulation_steps: int, bf16: bool, trackers: list[str | GeneralTracker] | None = None
) -> Accelerator:
    """The run's accelerator (logging to `trackers`: `trackers.log_with`), checked against what the
    launcher and the accelerate config asked for."""
    acc = Accelerator(
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision="bf16" if bf16 else "no",
        # Without an accelerator, accelerate only runs distributed (gloo) when told it is on CPU;
        # otherwise `torchrun` on a CPU machine would start N independent single-process runs.
        cpu=not torch.accelerator.is_available(),
        log_with=trackers,
    )
    for engine, wanted in (("FSDP", DistributedType.FSDP), ("DEEPSPEED", DistributedType.DEEPSPEED)):
        asked = os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() == "true"
        if asked and acc.distributed_type != wanted:
            raise RuntimeError(
                f"the accelerate config asks for {wanted.value} but accelerate set up "
                f"{acc.distributed_type.value}: accelerate runs FSDP and DeepSpeed on GPUs only; "
                "use configs/accelerate_ddp.yaml (or plain torchrun) without GPUs"
            )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != acc.num_processes:
        raise RuntimeError(
            f"launched as {launched} processes (WORLD_SIZE) but accelerate set up {acc.num_processes}; "
            "check the accelerate config and the launcher"
        )
    return acc


def sum_over_ranks(acc: Accelerator, value: torch.Tensor) -> torch.Tensor:
    """`value` summed over every process (a collective: every rank must call it); itself on one process."""
    return acc.reduce(value, reduction="sum") if acc.num_processes > 1 else value


def gather_from_ranks(acc: Accelerator, value: Any) -> list[Any]:
    """Every process's `value`, in rank order (a collective); `[value]` on one process."""
    return gather_object([value]) if acc.num_processes > 1 else [value]
