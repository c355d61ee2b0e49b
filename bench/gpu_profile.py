"""`bench/gpu_rows.py profile`: where one LoRA step's GPU time goes at 16k positions per micro-batch.

Forward hooks open a `record_function` region around every attention block, MLP (text and audio), the
audio head and each LoRA adapter's matmuls (peft's `lora_A` / `lora_B`), so the profiler adds up the GPU
time of the kernels each launches; the backward pass and the optimizer step are one region each (the
backward's kernels run on autograd's thread, outside the forward's regions). The GPU's idle share is
1 - (kernel time) / (the step's wall time): one stream, so kernels do not overlap.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity, profile

REGIONS = {"attention": ("self_attn",), "MLPs": ("mlp", "audio_mlp"), "audio head": ("audio_lm_head",)}
REGIONS["LoRA matmuls"] = ("lora_A", "lora_B")


def _label(name: str) -> str | None:
    leaf = name.rsplit(".", 1)[-1]
    if name.rsplit(".", 2)[-2:-1] in (["lora_A"], ["lora_B"]):
        return "LoRA matmuls"  # peft's ModuleDict holds one Linear per adapter name
    return next((region for region, leaves in REGIONS.items() if leaf in leaves), None)


def _hook_regions(model: torch.nn.Module) -> list:
    """A record_function region named after its category around each module of `REGIONS`."""
    handles = []
    for name, module in model.named_modules():
        region = _label(name)
        if region is None:
            continue

        def enter(mod, inputs, region=region):
            mod._bench_region = record_function(region)
            mod._bench_region.__enter__()

        def leave(mod, inputs, output):
            mod._bench_region.__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def run_profile(args: argparse.Namespace, device: torch.device, config, scale: int, out: Path) -> Path:
    """Profile one LoRA step at 16k / `scale` positions; write and print the table, return its path."""
    import time

    from full_size import full_size_model
    from gpu_rows import EXAMPLE, packed_example

    from higgs_tune.training.loss import combine

    positions, example = 16384 // scale, EXAMPLE // scale
    batch = {k: v.to(device) for k, v in packed_example(config, positions, example, 0).items()}
    model, optimizer, _ = full_size_model(config, device, "lora", False, fast_dual_ffn=True)
    weights = torch.ones(config.num_codebooks, device=device)
    frames = batch["audio_index"].numel()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = combine(model(**batch), frames, 0, weights, 0.0)
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup_steps):
        step()
    handles = _hook_regions(model)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        step()
        _sync(device)
        wall = time.perf_counter() - started
    for handle in handles:
        handle.remove()
    text = _report(prof, wall, device, positions)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "profile-lora-16k.txt"
    path.write_text(text)
    print(text + f"\nprofile written to {path}", flush=True)
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _report(prof, wall: float, device: torch.device, positions: int) -> str:
    """The top 15 by GPU time, the idle share and the time per region."""
    sort = "device_time_total" if device.type == "cuda" else "cpu_time_total"
    averages = prof.key_averages()
    kernels_us = sum(e.self_device_time_total for e in averages if e.device_type.name == "CUDA")
    lines = [f"one LoRA step, {positions} positions per micro-batch, sync-free DualFFN, {device.type}"]
    lines.append(f"step wall time {wall * 1e3:.1f} ms; GPU kernel time {kernels_us / 1e3:.1f} ms; ")
    lines[-1] += (
        f"GPU idle {max(0.0, 1 - kernels_us / 1e6 / wall):.1%}" if device.type == "cuda" else "GPU idle n/a"
    )
    lines.append(f"\n{'region':16}{'GPU ms':>10}{'CPU ms':>10}")
    by_key = {e.key: e for e in averages}
    for region in (*REGIONS, "backward", "optimizer"):
        e = by_key.get(region)
        gpu, cpu = (e.device_time_total / 1e3, e.cpu_time_total / 1e3) if e else (0.0, 0.0)
        lines.append(f"{region:16}{gpu:>10.1f}{cpu:>10.1f}")
    lines.append(
        "\ntop 15 ops and kernels:\n" + averages.table(sort_by=sort, row_limit=15, max_name_column_width=60)
    )
    return "\n".join(lines)
