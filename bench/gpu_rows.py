"""`bench/gpu.sh`'s training rows at users' token budgets, and a profile of one LoRA step.

    PYTHONPATH=src python bench/gpu_rows.py rows [--tiny]       # the table, one row printed as measured
    PYTHONPATH=src python bench/gpu_rows.py profile --out DIR [--tiny]

A micro-batch of B positions is B / 2048 synthetic cloning examples of 2048 positions each
(`full_size.synthetic_example`, a different seed per row), as `max_tokens_per_batch` packs them. Each row
is one setting of `full_size.full_size_setting` (the trainer's own model preparation and optimizer):
LoRA bf16 at 2k, 8k, 16k and 32k positions (transformers' DualFFN and the sync-free one at 2k and 16k,
the sync-free one elsewhere; gradient checkpointing at 32k, where activations outgrow memory), QLoRA NF4
at 4k with checkpointing (its peak memory is the figure), full fine-tuning with 8-bit AdamW at 2k,
`torch_compile` against eager at 16k, and flash_attention_2 at 16k where `flash_attn` imports.

`profile`: one LoRA step at 16k under `torch.profiler` after two warm-up steps, written to
DIR/profile-lora-16k.txt: the top 15 ops and kernels by GPU time, the GPU's idle share of the step, and
the GPU time under attention, the MLPs, the audio head and LoRA's own matmuls (forward, by module
hooks), the backward pass and the optimizer. `--tiny`: the tiny architecture on CPU, one step, budgets
divided by 8 (`gpu.sh --dry-run`).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch
from full_size import (
    full_size_config,
    full_size_setting,
    model_flops_per_token,
    peak_tflops,
    synthetic_example,
)

EXAMPLE = 2048  # positions per synthetic example; a budget of B positions packs B / EXAMPLE of them

# (mode, positions per micro-batch, gradient checkpointing, DualFFN layer, extra TrainSettings)
ROWS = (
    ("lora", 2048, False, "stock", {}),
    ("lora", 2048, False, "fast", {}),
    ("lora", 8192, False, "fast", {}),
    ("lora", 16384, False, "stock", {}),
    ("lora", 16384, False, "fast", {}),
    ("lora", 16384, True, "fast", {}),
    ("lora", 32768, True, "fast", {}),
    ("lora", 32768, False, "fast", {}),
    ("qlora", 4096, True, "fast", {}),
    ("full", 2048, True, "fast", {}),
    ("lora", 16384, False, "fast", {"torch_compile": True}),
    ("lora", 16384, False, "fast", {"attn_implementation": "flash_attention_2"}),
)


def packed_example(config, positions: int, example: int, seed: int) -> dict:
    """`positions // example` synthetic examples stacked into one micro-batch [B, example], with the flat
    label indices shifted to each row's place (as the collator lays them out)."""
    parts = [synthetic_example(config, example, seed + b) for b in range(max(1, positions // example))]
    batch = {k: torch.cat([p[k] for p in parts]) for k in ("input_ids", "attention_mask")}
    batch.update({k: torch.cat([p[k] for p in parts]) for k in ("audio_input_ids", "audio_input_ids_mask")})
    for key in ("audio_index", "text_index"):
        batch[key] = torch.cat([p[key] + b * example for b, p in enumerate(parts)])
    batch.update({k: torch.cat([p[k] for p in parts]) for k in ("audio_targets", "text_targets")})
    return batch


def run_rows(args: argparse.Namespace) -> list[dict]:
    """Each of `ROWS`, printed as soon as it is measured (a run cut short keeps its rows)."""
    device, config, scale = _setting(args)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    print(f"\n{name}: bf16 autocast, examples of {EXAMPLE // scale} positions packed per micro-batch; "
          f"MFU against an assumed dense bf16 peak of {peak or 'unknown'} TFLOP/s")  # fmt: skip
    head = f"{'mode':6}{'positions':>10}{'options':>12}{'DualFFN':>10}{'grad ckpt':>10}{'tokens/s':>11}"
    print(head + f"{'TFLOP/s':>10}{'MFU':>8}{'peak GiB':>10}{'sync ops':>10}{'CUDA syncs':>12}")
    rows = []
    for seed, (mode, positions, checkpointing, layer, extra) in enumerate(ROWS):
        if extra.get("attn_implementation") == "flash_attention_2" and not importlib.util.find_spec(
            "flash_attn"
        ):
            print(f"{mode:6}{positions:>10}{'flash-attn2':>12}  skipped: flash_attn does not import here")
            continue
        row = _one_row(args, config, device, (mode, positions // scale, checkpointing, layer, extra), seed)
        label = ",".join(f"{k.split('_')[0]}" if v is True else str(v)[:11] for k, v in extra.items()) or "-"
        print(f"{mode:6}{positions:>10}{label:>12}" + _cells(row, checkpointing, layer), flush=True)
        rows.append(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _cells(r: dict, checkpointing: bool, layer: str) -> str:
    """The measured columns of one row (or why it has none)."""
    cells = f"{'sync-free' if layer == 'fast' else 'stock':>10}{'on' if checkpointing else 'off':>10}"
    if r.get("oom") or r.get("error"):
        return cells + f"  {r.get('error', 'out of GPU memory')}"
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
    cuda = r["cuda_syncs"] if r["cuda_syncs"] is not None else "n/a"
    return cells + (
        f"{r['tokens_per_s']:>11,.0f}{r['tflops']:>10.1f}{mfu:>8}{r['peak_gib']:>10.1f}{r['sync_ops']:>10}{cuda:>12}"
    )


def _setting(args: argparse.Namespace) -> tuple[torch.device, object, int]:
    """(device, model config, budget divisor): the released architecture on CUDA, or the tiny one."""
    if args.tiny:
        from higgs_tune.tiny.model import build_tiny_tokenizer, tiny_lm_config

        return torch.device("cpu"), tiny_lm_config(build_tiny_tokenizer()), 8
    return torch.device("cuda"), full_size_config(), 1


def _one_row(args, config, device, setting: tuple, seed: int) -> dict:
    """One setting measured; an out-of-memory or a missing package is the row's text, not the end."""
    mode, positions, checkpointing, layer, extra = setting
    example_len = min(positions, EXAMPLE // (8 if args.tiny else 1))
    batch = {k: v.to(device) for k, v in packed_example(config, positions, example_len, seed).items()}
    args.seq_len = example_len
    try:
        row = full_size_setting(args, config, device, mode, checkpointing, batch, layer, **extra)
    except torch.cuda.OutOfMemoryError:
        return {"oom": True}
    except (RuntimeError, ImportError, ValueError) as e:  # e.g. no bitsandbytes: the other rows still count
        return {"error": str(e).splitlines()[0][:70]}
    labelled = batch["audio_index"].numel() / batch["input_ids"].numel()
    flops = model_flops_per_token(config, example_len, labelled, mode != "full", row["n_lora"])
    row["tflops"] = row["tokens_per_s"] * flops / 1e12
    peak = peak_tflops(torch.cuda.get_device_name() if device.type == "cuda" else "cpu", args.peak_tflops)
    row["mfu"] = row["tflops"] / peak if peak else None
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("rows", "profile"))
    p.add_argument("--tiny", action="store_true", help="tiny architecture on CPU, 1 step (dry run)")
    p.add_argument("--out", default=".", help="profile: folder for profile-lora-16k.txt")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args(argv)
    args.steps = args.steps or (1 if args.tiny else 4)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (0 if args.tiny else 2)
    from higgs_tune.logs import quiet_transformers

    quiet_transformers()
    if args.what == "rows":
        run_rows(args)
    else:
        from gpu_profile import run_profile

        run_profile(args, *_setting(args), Path(args.out))


if __name__ == "__main__":
    main()
