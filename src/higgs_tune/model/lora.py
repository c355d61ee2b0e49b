"""peft's LoRA on a base that is not quantised, without importing bitsandbytes.

peft imports bitsandbytes whenever it is installed, each time it wraps a model's layers with LoRA
(`peft.tuners.lora.model.LoraModel._create_new_module`: `if is_bnb_available(): from .bnb import ...`), only
to ask whether a layer is one of bitsandbytes' quantised Linear layers. That import costs seconds and, on a
CPU with AVX512-BF16, makes bitsandbytes try to fetch a kernel from the hub and log a WARNING a user can do
nothing about ("Failed to load CPU gemm_4bit_forward from kernels-community ..."). A base loaded without a
quantisation config has no such layers, so peft is told that bitsandbytes is absent while it wraps one:
the same answer, without the import. A quantised base (`quantization=nf4/int8`) is left to peft as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# peft's own names for "is bitsandbytes installed", as `LoraModel._create_new_module` looks them up.
_PEFT_BNB_CHECKS = ("is_bnb_available", "is_bnb_4bit_available")


@contextmanager
def lora_without_bitsandbytes(model: torch.nn.Module) -> Iterator[None]:
    """While inside, peft wraps `model` in LoRA without importing bitsandbytes, unless `model` is quantised.

    Where a peft version looks the names up elsewhere, nothing is changed here and bitsandbytes is imported
    as before (slower and noisier, never wrong); the CLI test of library warnings then says so.
    """
    from peft.tuners.lora import model as lora_model

    if getattr(model, "hf_quantizer", None) is not None:
        yield
        return
    saved = {name: getattr(lora_model, name) for name in _PEFT_BNB_CHECKS if hasattr(lora_model, name)}
    try:
        for name in saved:
            setattr(lora_model, name, _absent)
        yield
    finally:
        for name, check in saved.items():
            setattr(lora_model, name, check)


def _absent() -> bool:
    """peft's answer to "is bitsandbytes installed" for a base that has no bitsandbytes layers."""
    return False
