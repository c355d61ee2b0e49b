"""Where a command runs its models when the user names no device: the one home of that default.

`eval`, `prefs` and `clone` take `default_device`; `prepare` and `ingest`, which run one process per GPU
under torchrun, take `process_device`, which adds the rank's own GPU.
"""

from __future__ import annotations

import os


def default_device(device: str | None = None) -> str:
    """The device asked for, else the GPU when there is one, else the CPU."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def process_device(device: str | None = None) -> str:
    """`default_device`, with a plain "cuda" made this process's GPU (`cuda:LOCAL_RANK` under torchrun),
    so that the processes of one machine do not all run on the first."""
    device = default_device(device or None)
    if device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device
