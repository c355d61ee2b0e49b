"""`bench/train.py --dual-ffn`: transformers' DualFFN layer against the sync-free one, in one run.

Two LoRA models with the same random weights, one per layer (`higgs_tune.model.fast_dual_ffn`), prepared
by the trainer's own functions, train on the same synthetic cloning example (`full_size.synthetic_example`).
Steps alternate between the two so a burst of other work on a shared machine slows both alike; each
layer's median step counts. For each it prints seconds per step, tokens/s and the GPU-syncing operations of
one micro-batch's forward + backward (`measure.SyncCounter`, any device), with the ratios.

Default: the tiny model's architecture on CPU (`--device cuda` and `--full-size` for the real one).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from full_size import full_size_config, full_size_model, synthetic_example
from measure import SyncCounter, synchronize


def run_dual_ffn(args: argparse.Namespace, config=None, device: torch.device | None = None) -> dict:
    """Time and count both layers; returns {"stock": row, "fast": row}."""
    from higgs_tune.training.loss import combine

    device = device or torch.device(args.device)
    if config is None:
        config = full_size_config() if args.full_size else _tiny_config()
    example = {k: v.to(device) for k, v in synthetic_example(config, args.seq_len).items()}
    weights = torch.ones(config.num_codebooks, device=device)
    frames = example["audio_index"].numel()
    runs = {}
    for layer in ("stock", "fast"):
        model, optimizer, _ = full_size_model(
            config, device, "lora", args.checkpointing, fast_dual_ffn=layer == "fast"
        )
        runs[layer] = {"model": model, "optimizer": optimizer, "seconds": []}

    def forward_backward(model) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = combine(model(**example), frames, 0, weights, 0.0)
        loss.backward()

    for step in range(args.warmup_steps + args.steps):
        for layer in ("stock", "fast") if step % 2 == 0 else ("fast", "stock"):
            run = runs[layer]
            synchronize(device)
            started = time.perf_counter()
            forward_backward(run["model"])
            run["optimizer"].step()
            run["optimizer"].zero_grad(set_to_none=True)
            synchronize(device)
            if step >= args.warmup_steps:
                run["seconds"].append(time.perf_counter() - started)
    rows = {}
    for layer, run in runs.items():
        counter = SyncCounter()
        with counter:
            forward_backward(run["model"])
        seconds = statistics.median(run["seconds"])
        rows[layer] = {"step_s": seconds, "tokens_per_s": args.seq_len / seconds, "sync_ops": counter.count}
        rows[layer]["sync_ops_by_op"] = counter.by_op
    print_dual_ffn(rows, config, args, device)
    return rows


def _tiny_config():
    from higgs_tune.tiny.model import build_tiny_tokenizer, tiny_lm_config

    return tiny_lm_config(build_tiny_tokenizer())


def print_dual_ffn(rows: dict, config, args: argparse.Namespace, device: torch.device) -> None:
    stock, fast = rows["stock"], rows["fast"]
    checkpointing = "on" if args.checkpointing else "off"
    print(
        f"\nDualFFN layers, LoRA, {config.num_hidden_layers} layers x hidden {config.hidden_size}, "
        f"seq len {args.seq_len}, micro-batch 1, gradient checkpointing {checkpointing}, "
        f"{device.type}, torch threads {torch.get_num_threads()}; median of {args.steps} alternating steps"
    )
    head = f"{'':34}{'stock':>12}{'sync-free':>12}{'ratio':>10}"
    print(head + "\n" + "-" * len(head))
    for name, key, fmt in (
        ("step s (fwd + bwd + optimizer)", "step_s", "{:.4f}"),
        ("tokens/s", "tokens_per_s", "{:,.0f}"),
        ("GPU-syncing ops / micro-batch", "sync_ops", "{:.0f}"),
    ):
        ratio = f"{fast[key] / stock[key]:.2f}x" if stock[key] else ""
        print(f"{name:34}{fmt.format(stock[key]):>12}{fmt.format(fast[key]):>12}{ratio:>10}")
    for layer in ("stock", "fast"):
        ops = ", ".join(f"{k} {v}" for k, v in sorted(rows[layer]["sync_ops_by_op"].items()))
        print(f"  {layer}: {ops}")
