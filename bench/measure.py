"""How the training benches measure: operations that make the host wait for a GPU, and peak memory.

GPU host-device synchronisations: the DualFFN in transformers' decoder layer routes text and audio
positions with boolean-mask indexing (`hidden_states[audio_token_mask]`, and `+=` through the same
masks), which on a GPU waits for the mask's nonzero count every time. `SyncCounter` counts the operations
that synchronise on a GPU (boolean-mask index / index_put, nonzero, item) on any device, with a dispatch
mode; with CUDA, `cuda_reported_syncs` also counts the synchronisations torch reports
(`torch.cuda.set_sync_debug_mode`).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = {"nonzero", "_local_scalar_dense", "masked_select", "item"}
INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}


class SyncCounter(TorchDispatchMode):
    """Counts the operations that make the host wait for a GPU: data-dependent shapes (boolean-mask
    indexing, nonzero, masked_select) and scalar reads (item). Works on any device, CPU included."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.by_op: dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        syncs = name in SYNC_OPS
        if name in INDEX_OPS and len(args) > 1:
            syncs = any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                for i in (args[1] if isinstance(args[1], list | tuple) else [args[1]])
            )
        if syncs:
            self.count += 1
            self.by_op[name] = self.by_op.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def cuda_reported_syncs(fn: Callable[[], None]) -> int | None:
    """Synchronisations torch's CUDA sync debug mode reports while `fn` runs; None without CUDA."""
    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Yields a dict that gets "peak_mib" on exit: on CUDA the peak allocated by torch; on CPU the peak
    resident set size above what it was on entry, sampled every 2 ms (no psutil needed)."""
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield result
        torch.cuda.synchronize()
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        return
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["peak_mib"] = (max(peak[0], _rss_bytes()) - base) / 2**20


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work before reading a clock (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
