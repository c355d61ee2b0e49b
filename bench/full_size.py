"""`bench/train.py --full-size`: training steps of the full-size architecture, tokens/s, MFU, peak memory.

HiggsAudioV2Config defaults (28 layers, hidden 3072, 8 codebooks of 1026; 5.4B parameters with the
DualFFN's second MLP), random bf16 weights, one synthetic example of `--seq-len` (2048) tokens per
micro-batch, in each of `SETTINGS`: LoRA with and without gradient checkpointing with transformers'
DualFFN layer and the sync-free one, QLoRA on an NF4 base, full fine-tuning with 8-bit AdamW. The
model is made ready to train, and its optimizer built, by the trainer's own functions
(`training.build`), so the LoRA measured is the LoRA trained. It prints tokens/s, MFU and peak GPU
memory. MFU = model FLOPs per second / the GPU's dense bf16 peak (table by
device name, `--peak-tflops` overrides), with model FLOPs per token

    full: 6 * N + 12 * L * T * d          (Q)LoRA: 4 * N + 12 * L * T * d (+ 6 * N_lora)

N: the weights a token goes through (attention and ONE of the two MLPs per layer, the DualFFN routes
each position to one of them) plus the audio head counted at labelled positions only; L layers, T the
sequence length, d the attention width (heads x head_dim); 12 * L * T * d is attention's score and
value products, forward and backward (PaLM's convention, no causal discount). LoRA's 4 * N: forward 2N
and the backward's input gradients 2N, no weight gradients for the frozen base. Recomputation under
gradient checkpointing is not counted (model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

import argparse
import copy
import gc
import time

import torch
from measure import SyncCounter, cuda_reported_syncs, peak_memory, synchronize

# Dense bf16 tensor-core peaks (TFLOP/s), matched in order against torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
)


def peak_tflops(device_name: str, override: float | None) -> float | None:
    """The GPU's dense bf16 peak: `override` if given, else from the table by device name."""
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def full_size_config(**overrides):
    """The released model's architecture (HiggsAudioV2Config defaults, codebooks of 1026)."""
    from transformers import HiggsAudioV2Config

    return HiggsAudioV2Config(codebook_size=1026, **overrides)


def synthetic_example(config, seq_len: int, seed: int = 0) -> dict:
    """One cloning-shaped example of exactly `seq_len` positions with the model's token ids: text, a
    reference clip, text, a target clip whose codes and stream EOS are labelled, closing text."""
    from higgs_tune.model.prompt import audio_positions
    from higgs_tune.training.examples import IGNORE
    from higgs_tune.training.loss import next_token_targets

    g = torch.Generator().manual_seed(seed)
    k = config.num_codebooks
    text = 64
    ref_len = (seq_len - 2 * text) * 4 // 10
    target_len = seq_len - 2 * text - ref_len
    text_ids = min(config.vocab_size, config.audio_token_id, config.audio_delay_token_id)  # no audio ids
    input_ids = torch.randint(0, text_ids, (1, seq_len), generator=g)
    segments = ((text // 2, ref_len), (text + ref_len + text // 2, target_len))
    for start, length in segments:
        input_ids[0, start : start + length - (k - 1)] = config.audio_token_id
        input_ids[0, start + length - (k - 1) : start + length] = config.audio_delay_token_id
    frames = ref_len + target_len
    audio = torch.randint(0, 1024, (1, frames, k), generator=g)
    labels = torch.full_like(audio, IGNORE)
    labels[0, ref_len + 1 :] = audio[0, ref_len + 1 :]
    mask = torch.ones(1, frames, dtype=torch.bool)
    placeholder = audio_positions(config, input_ids)
    targets = next_token_targets(input_ids, torch.full_like(input_ids, IGNORE), labels, mask, placeholder)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "audio_input_ids": audio,
        "audio_input_ids_mask": mask,
        **targets,
    }


def model_flops_per_token(config, seq_len: int, labelled_fraction: float, lora: bool, n_lora: int) -> float:
    """Training FLOPs per token (see the module docstring for the formula)."""
    d, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    attn_width = config.num_attention_heads * config.head_dim
    kv_width = config.num_key_value_heads * config.head_dim
    attention_weights = d * attn_width + 2 * d * kv_width + attn_width * d
    mlp_weights = 3 * d * inter  # gate, up, down: one of the two MLPs per position
    head = d * config.num_codebooks * config.codebook_size * labelled_fraction
    n = layers * (attention_weights + mlp_weights) + head
    attention = 12 * layers * seq_len * attn_width
    return (4 * n + 6 * n_lora if lora else 6 * n) + attention


# (mode, gradient checkpointing, DualFFN layer): LoRA on a bf16 base with both layers, QLoRA on an NF4
# base, and full fine-tuning as the trainer runs it on one GPU (float32 weights, 8-bit AdamW).
SETTINGS = (
    ("lora", False, "stock"),
    ("lora", False, "fast"),
    ("lora", True, "stock"),
    ("lora", True, "fast"),
    ("qlora", True, "fast"),
    ("full", True, "fast"),
)


def run_full_size(args: argparse.Namespace, config=None, device: torch.device | None = None) -> list[dict]:
    """Training steps of the full-size architecture in each of `SETTINGS`; returns one row per setting."""
    device = device or torch.device("cuda")
    config = config or full_size_config()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    example = {k: v.to(device) for k, v in synthetic_example(config, args.seq_len).items()}
    labelled = example["audio_index"].numel() / args.seq_len
    print(
        f"\n{name}: seq len {args.seq_len}, micro-batch 1, bf16 autocast; "
        f"peak {peak or 'unknown (use --peak-tflops)'} TFLOP/s; {labelled:.0%} of positions labelled"
    )
    print_table_head()
    rows = []
    for mode, checkpointing, layer in SETTINGS:
        try:
            row = full_size_setting(args, config, device, mode, checkpointing, example, layer)
        except torch.cuda.OutOfMemoryError:
            row = {"oom": True}
        except RuntimeError as e:  # e.g. no bitsandbytes: the other rows still count
            row = {"error": str(e).splitlines()[0][:70]}
        row.update(mode=mode, checkpointing=checkpointing, layer=layer)
        if not row.get("oom") and not row.get("error"):
            lora = mode != "full"
            flops = model_flops_per_token(config, args.seq_len, labelled, lora, row["n_lora"])
            row["tflops"] = row["tokens_per_s"] * flops / 1e12
            row["mfu"] = row["tflops"] / peak if peak else None
        rows.append(row)
        print_row(row)  # row by row, so a run cut short by a time limit keeps what it measured
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print("sync ops: GPU-syncing operations in one forward + backward (boolean-mask indexing etc.);")
    print("CUDA syncs: synchronisations torch reports for one whole step, optimizer included")
    return rows


def print_table_head() -> None:
    head = (
        f"{'mode':6}{'DualFFN':>10}{'grad ckpt':>10}{'tokens/s':>11}{'TFLOP/s':>10}{'MFU':>8}{'peak GiB':>10}"
        f"{'sync ops':>10}{'CUDA syncs':>12}"
    )
    print(head + "\n" + "-" * len(head), flush=True)


def print_row(r: dict) -> None:
    ckpt = "on" if r["checkpointing"] else "off"
    layer = "sync-free" if r["layer"] == "fast" else "stock"
    if r.get("oom") or r.get("error"):
        print(f"{r['mode']:6}{layer:>10}{ckpt:>10}  {r.get('error', 'out of GPU memory')}", flush=True)
        return
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
    cuda = r["cuda_syncs"] if r["cuda_syncs"] is not None else "n/a"
    print(
        f"{r['mode']:6}{layer:>10}{ckpt:>10}{r['tokens_per_s']:>11,.0f}{r['tflops']:>10.1f}{mfu:>8}"
        f"{r['peak_gib']:>10.1f}{r['sync_ops']:>10}{cuda:>12}",
        flush=True,
    )


def full_size_model(config, device: torch.device, mode: str, checkpointing: bool, **options):
    """A freshly built full-size model prepared for training as the trainer would, and its optimizer.

    LoRA: bf16 weights under bf16 autocast, float32 adapters (peft). QLoRA: the same model saved and
    loaded back through the trainer's `build_model` with `quantization=nf4` (bitsandbytes quantises while
    loading) and `paged_adamw_8bit`. Full: float32 master weights under autocast and 8-bit AdamW (the
    trainer's full fine-tuning on one GPU; float32 AdamW state would need 86 GB). `options` are further
    TrainSettings fields (fast_dual_ffn, torch_compile, attn_implementation).
    """
    from higgs_tune.config import LoraSettings, TrainSettings
    from higgs_tune.model.loading import build_model_from_config
    from higgs_tune.training.build import build_optimizer, parameter_counts, prepare_for_training

    optim = {"lora": "adamw_torch", "qlora": "paged_adamw_8bit", "full": "adamw_8bit"}[mode]
    cfg = TrainSettings(
        full=mode == "full",
        gradient_checkpointing=checkpointing,
        learning_rate=1e-5,
        lora=LoraSettings(dropout=0.0),
        optim=optim,
        **options,
    )
    if cfg.attn_implementation != config._attn_implementation:  # as load_model passes it on
        config = copy.deepcopy(config)
        config._attn_implementation = cfg.attn_implementation
    with torch.device(device):
        model = build_model_from_config(config, fast_dual_ffn=cfg.fast_dual_ffn)
    model.to(torch.bfloat16 if device.type == "cuda" and mode != "full" else torch.float32)
    if mode == "qlora":
        wrapped = _quantised_lora(model, cfg, device)
    else:
        wrapped = prepare_for_training(model, cfg).train()
    n_lora = parameter_counts(wrapped)[0] if mode != "full" else 0
    return wrapped, build_optimizer(cfg, wrapped), n_lora


def _quantised_lora(model, cfg, device: torch.device):
    """`model` saved, then loaded by the trainer's `build_model` with its base quantised to NF4."""
    import dataclasses
    import tempfile

    from higgs_tune.training.build import build_model

    with tempfile.TemporaryDirectory(prefix="qlora-base-") as folder:
        model.save_pretrained(folder)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        cfg = dataclasses.replace(cfg, model=folder, quantization="nf4")
        return build_model(cfg, use_bf16=device.type == "cuda").train()


def full_size_setting(
    args, config, device, mode: str, checkpointing: bool, example: dict, layer: str = "fast", **options
) -> dict:
    """Time `args.steps` steps (after `args.warmup_steps`) of one setting on a freshly built model;
    `example` may hold several rows (a packed micro-batch), `options` are further TrainSettings fields."""
    from higgs_tune.training.loss import combine

    wrapped, optimizer, n_lora = full_size_model(
        config, device, mode, checkpointing, fast_dual_ffn=layer == "fast", **options
    )
    gc.collect()  # the unquantised model QLoRA was loaded from (decoder layers hold reference cycles)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    weights = torch.ones(config.num_codebooks, device=device)
    frames = example["audio_index"].numel()

    def forward_backward() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = combine(wrapped(**example), frames, 0, weights, 0.0)
        loss.backward()

    def step() -> None:
        forward_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with peak_memory(device) as memory:
        for _ in range(args.warmup_steps):
            step()
        synchronize(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize(device)
        elapsed = time.perf_counter() - started
    counter = SyncCounter()
    with counter:
        forward_backward()
    optimizer.zero_grad(set_to_none=True)
    return {
        "tokens_per_s": args.steps * example["input_ids"].numel() / elapsed,
        "peak_gib": memory["peak_mib"] / 1024,
        "sync_ops": counter.count,
        "cuda_syncs": cuda_reported_syncs(step),
        "n_lora": n_lora,
    }
