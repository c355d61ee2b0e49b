"""Training throughput: our data path and step against the path a newcomer writes, on the same data.

    PYTHONPATH=src python bench/train.py                # tiny model, CPU (or --device cuda), ~2 minutes
    PYTHONPATH=src python bench/train.py --full-size    # full-size architecture, random bf16, CUDA only

Default mode. One run builds the tiny model (`higgs_tune.tiny.model`), a pool of synthetic clips of 1 to
20 s (`higgs_tune.tiny.synth.synth_speech`) and cloning pairs drawn from it, then trains the same LoRA on the
same samples two ways, each in its own process (so peak memory is its own):

* naive: what a newcomer writes. The processor on raw audio inside the dataset's `__getitem__`
  (`processor.apply_chat_template` with audio arrays and `output_labels=True`, so the codec encodes both
  clips of every sample at every step), a collator padding to the longest sample, a fixed batch size,
  and the model's own `forward(..., audio_labels=...)` loss over the full [batch, length, 8 x 1026] logits.
* ours: codes prepared once (`higgs-tune prepare`, timed separately as a one-time cost), token-budget
  micro-batches from length-sorted buckets, and `Trainer.train_step`, whose loss applies the audio head
  only at labelled positions.

Each path's first batch is a warm-up and is not timed. The naive path runs on the first
`--naive-samples` samples only (its codec calls are what make it slow); every figure is a rate or a
fraction, and the naive padding over the whole epoch is printed too, computed from the same lengths.

GPU host-device synchronisations: the DualFFN in transformers' decoder layer routes text and audio
positions with boolean-mask indexing (`hidden_states[audio_token_mask]`, and `+=` through the same
masks), which on a GPU waits for the mask's nonzero count every time. The bench counts, per training
step, the operations that synchronise on a GPU (boolean-mask index / index_put, nonzero, item), on any
device, with a dispatch mode; with CUDA it also counts the synchronisations torch reports
(`torch.cuda.set_sync_debug_mode`).

`--full-size` (CUDA): HiggsAudioV2Config defaults (28 layers, hidden 3072, 8 codebooks of 1026; 5.4B
parameters with the DualFFN's second MLP), random bf16 weights, one synthetic example of `--seq-len`
(2048) tokens per micro-batch, LoRA and full fine-tuning (bf16 weights and AdamW state, to fit one GPU),
each with and without gradient checkpointing. It prints tokens/s, MFU and peak GPU memory.
MFU = model FLOPs per second / the GPU's dense bf16 peak (table by device name, `--peak-tflops`
overrides), with model FLOPs per token

    full: 6 * N + 12 * L * T * d          LoRA: 4 * N + 12 * L * T * d (+ 6 * N_lora)

N: the weights a token goes through (attention and ONE of the two MLPs per layer, the DualFFN routes
each position to one of them) plus the audio head counted at labelled positions only; L layers, T the
sequence length, d the attention width (heads x head_dim); 12 * L * T * d is attention's score and
value products, forward and backward (PaLM's convention, no causal discount). LoRA's 4 * N: forward 2N
and the backward's input gradients 2N, no weight gradients for the frozen base. Recomputation under
gradient checkpointing is not counted (model FLOPs, not hardware FLOPs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

FRAME_RATE = 25.0
SYNC_OPS = {"nonzero", "_local_scalar_dense", "masked_select", "item"}
INDEX_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}

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


# --- measuring ------------------------------------------------------------------------------------


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


def cuda_reported_syncs(fn) -> int | None:
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
def peak_memory(device: torch.device):
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# --- the data ---------------------------------------------------------------------------------------


def make_data(work: Path, n_clips: int, n_samples: int, min_s: float, max_s: float, seed: int) -> dict:
    """Tiny model, a pool of synthetic clips with durations spread over [min_s, max_s], and cloning
    pairs (reference, target) drawn from the pool; returns the spec the workers read."""
    from higgs_tune.data.audio import write_wav
    from higgs_tune.tiny.corpus import ENGLISH
    from higgs_tune.tiny.model import build_tiny_model
    from higgs_tune.tiny.synth import synth_speech

    rng = random.Random(seed)
    model_dir = build_tiny_model(work / "model", seed=0)
    words = " ".join(ENGLISH).split()
    durations = [min_s + (max_s - min_s) * k / max(1, n_clips - 1) for k in range(n_clips)]
    rng.shuffle(durations)
    clips = []
    for k, seconds in enumerate(durations):
        voice = {"pitch_hz": 100.0 + 25 * (k % 5), "formant_scale": 1.0 + 0.05 * (k % 4)}
        path = write_wav(work / "clips" / f"clip{k:03d}.wav", synth_speech(seconds, seed=seed + k, **voice))
        start = rng.randrange(len(words))
        n_words = max(2, round(2.5 * seconds))
        text = " ".join((words * 2)[start : start + n_words])
        clips.append({"path": str(path), "text": text, "seconds": seconds})
    samples = []
    for s in range(n_samples):
        ref, target = rng.sample(range(n_clips), 2)
        samples.append({"id": f"s{s:04d}", "ref": ref, "target": target})
    return {"model": str(model_dir), "clips": clips, "samples": samples, "seed": seed}


def prepare(spec: dict, out: Path) -> float:
    """Encode every clip once (our path's one-time cost); returns seconds taken."""
    from higgs_tune.data.samples import Sample
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.prepare import prepare_dataset

    clips = spec["clips"]
    samples = [
        Sample(
            id=s["id"],
            ref_audio=Path(clips[s["ref"]]["path"]),
            ref_text=clips[s["ref"]]["text"],
            text=clips[s["target"]]["text"],
            audio=Path(clips[s["target"]]["path"]),
        )
        for s in spec["samples"]
    ]
    started = time.perf_counter()
    prepare_dataset(samples, load_processor(spec["model"]), out, model_id=spec["model"])
    return time.perf_counter() - started


# --- the naive path ----------------------------------------------------------------------------------


class NaiveDataset(torch.utils.data.Dataset):
    """The processor on raw audio in `__getitem__`, labels from `output_labels=True`."""

    def __init__(self, spec: dict, processor, indices: list[int]) -> None:
        from higgs_tune.config import PromptConfig

        self.spec, self.processor, self.indices = spec, processor, indices
        self.system = PromptConfig().system_prompt

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        from higgs_tune.data.audio import load_audio

        s = self.spec["samples"][self.indices[i]]
        ref, target = self.spec["clips"][s["ref"]], self.spec["clips"][s["target"]]
        conversation = [
            {"role": "system", "content": [{"type": "text", "text": self.system}]},
            {"role": "user", "content": [{"type": "text", "text": ref["text"]}]},
            {"role": "assistant", "content": [{"type": "audio", "audio": load_audio(ref["path"])}]},
            {"role": "user", "content": [{"type": "text", "text": target["text"]}]},
            {"role": "assistant", "content": [{"type": "audio", "audio": load_audio(target["path"])}]},
        ]
        out = self.processor.apply_chat_template(
            conversation,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"output_labels": True, "sampling_rate": 24000},
        )
        item = {k: v[0] for k, v in out.items()}
        item["audio_seconds"] = ref["seconds"] + target["seconds"]
        return item


def naive_collate(items: list[dict], pad_id: int, audio_pad_id: int) -> dict:
    """Right-pad everything to the longest sample."""
    from torch.nn.utils.rnn import pad_sequence

    return {
        "input_ids": pad_sequence([x["input_ids"] for x in items], batch_first=True, padding_value=pad_id),
        "attention_mask": pad_sequence([x["attention_mask"] for x in items], batch_first=True),
        "audio_input_ids": pad_sequence(
            [x["audio_input_ids"] for x in items], batch_first=True, padding_value=audio_pad_id
        ),
        "audio_input_ids_mask": pad_sequence([x["audio_input_ids_mask"] for x in items], batch_first=True),
        "audio_labels": pad_sequence(
            [x["audio_labels"] for x in items], batch_first=True, padding_value=-100
        ),
        "audio_seconds": sum(x["audio_seconds"] for x in items),
    }


def run_naive(spec: dict, args: argparse.Namespace, device: torch.device) -> dict:
    import peft

    from higgs_tune.config import LoraConfig
    from higgs_tune.model.loading import load_model, load_processor

    torch.manual_seed(0)
    processor = load_processor(spec["model"])
    lora = LoraConfig()
    model = load_model(spec["model"], dtype=torch.bfloat16 if device.type == "cuda" else None).to(device)
    model = peft.get_peft_model(
        model,
        peft.LoraConfig(
            r=lora.r, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=lora.target_modules
        ),
    )
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    order = list(range(len(spec["samples"])))
    random.Random(spec["seed"]).shuffle(order)
    dataset = NaiveDataset(spec, processor, order[: args.naive_samples])
    batches = [list(range(i, i + args.batch_size)) for i in range(0, len(dataset), args.batch_size)]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=lambda items: naive_collate(
            items, processor.tokenizer.pad_token_id, processor.audio_stream_eos_id
        ),
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def forward_backward(batch: dict) -> None:
        inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        with autocast:
            loss = model(**inputs).loss  # full logits, every position
        loss.backward()

    def step(batch: dict) -> None:
        forward_backward(batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return _timed_loop(iter(loader), step, forward_backward, device, _naive_counts)


def _naive_counts(batch: dict) -> tuple[int, int, float, int]:
    return (
        int(batch["attention_mask"].sum()),
        batch["input_ids"].numel(),
        batch["audio_seconds"],
        batch["input_ids"].shape[0],
    )


# --- our path ----------------------------------------------------------------------------------------


def run_ours(spec: dict, args: argparse.Namespace, device: torch.device) -> dict:
    from higgs_tune.config import TrainConfig
    from higgs_tune.training.loss import combine
    from higgs_tune.training.trainer import Trainer
    from higgs_tune.typed_config import load_config

    torch.manual_seed(0)
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"model={spec['model']}",
            f"data={spec['data']}",
            f"output_dir={spec['work']}/run-ours",
            f"max_tokens_per_batch={args.max_tokens}",
            f"max_seq_len={args.max_tokens}",
            "eval_fraction=0",
            "lora.dropout=0",
            "warmup_steps=0",
            "max_steps=1000",
            f"bf16={'true' if device.type == 'cuda' else 'false'}",
        ],
    )
    started = time.perf_counter()
    trainer = Trainer(cfg)
    setup_s = time.perf_counter() - started
    trainer.model.train()
    seconds = {r["id"]: _record_seconds(trainer.data, r) for r in trainer.data.records}
    loader = trainer.micro_batches(0)
    n_batches = len(trainer.plan.batches(0))
    batches = (next(loader) for _ in range(n_batches))  # exactly one epoch

    def counts(batch: dict) -> tuple[int, int, float, int]:
        audio = sum(seconds[i] for i in batch["sample_ids"])
        return batch["num_tokens"], batch["num_padded_tokens"], audio, len(batch["sample_ids"])

    def forward_backward(batch: dict) -> None:
        sums = trainer.model(**trainer._to_device(batch))
        loss, _ = combine(
            sums, batch["num_audio_frames"], batch["num_text_tokens"], trainer.codebook_weights, 0.0
        )
        loss.backward()

    result = _timed_loop(batches, lambda b: trainer.train_step([b]), forward_backward, device, counts)
    result["setup_s"] = setup_s
    return result


def _record_seconds(data, record: dict) -> float:
    return (data.clip_frames(record["ref_clip"]) + data.clip_frames(record["target_clip"])) / FRAME_RATE


# --- shared loop -------------------------------------------------------------------------------------


def _timed_loop(batches, step, forward_backward, device, counts) -> dict:
    """First batch untimed (warm-up), then data loading and the step timed apart; then GPU syncs are
    counted on the first batch: syncing ops in one forward + backward (any device), and with CUDA the
    synchronisations torch reports over one whole step."""
    totals = {
        "tokens": 0,
        "padded": 0,
        "audio_s": 0.0,
        "samples": 0,
        "batches": 0,
        "data_s": 0.0,
        "step_s": 0.0,
    }
    with peak_memory(device) as memory:
        first = next(batches)
        step(first)
        _sync(device)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            loaded = time.perf_counter()
            step(batch)
            _sync(device)
            done = time.perf_counter()
            tokens, padded, audio, samples = counts(batch)
            totals["tokens"] += tokens
            totals["padded"] += padded
            totals["audio_s"] += audio
            totals["samples"] += samples
            totals["batches"] += 1
            totals["data_s"] += loaded - started
            totals["step_s"] += done - loaded
    counter = SyncCounter()
    with counter:
        forward_backward(first)
    totals.update(
        peak_mib=memory["peak_mib"],
        sync_ops=counter.count,
        sync_ops_by_op=counter.by_op,
        cuda_syncs=cuda_reported_syncs(lambda: step(first)),
    )
    return totals


# --- the comparison ----------------------------------------------------------------------------------


def naive_epoch_padding(spec: dict, lengths: list[int], batch_size: int) -> float:
    """Padding of the naive fixed-size, pad-to-longest batches over the whole epoch (same lengths)."""
    from higgs_tune.training.batching import FixedBatches, padding_fraction

    return padding_fraction(FixedBatches(len(lengths), batch_size, spec["seed"]).batches(0), lengths)


def compare(args: argparse.Namespace) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="higgs-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    spec = make_data(work, args.clips, args.samples, args.min_seconds, args.max_seconds, args.seed)
    spec["work"] = str(work)
    spec["data"] = str(work / "prepared")
    prepare_s = prepare(spec, Path(spec["data"]))
    (work / "spec.json").write_text(json.dumps(spec))
    # Each path runs `--repeats` times, alternating, and its fastest run counts: on a shared machine a
    # burst of other work slows one run down, and it would otherwise decide the ratio.
    results: dict[str, dict] = {}
    for repeat in range(args.repeats):
        for path in ("naive", "ours") if repeat % 2 == 0 else ("ours", "naive"):
            out = work / f"{path}-{repeat}.json"
            cmd = [sys.executable, __file__, "--worker", path, "--spec", str(work / "spec.json")]
            cmd += ["--result", str(out), "--device", args.device, "--batch-size", str(args.batch_size)]
            cmd += ["--max-tokens", str(args.max_tokens), "--naive-samples", str(args.naive_samples)]
            subprocess.run(cmd, check=True)
            run = json.loads(out.read_text())
            if path not in results or _seconds(run) < _seconds(results[path]):
                results[path] = run

    from higgs_tune.config import PromptConfig
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.dataset import PreparedData
    from higgs_tune.training.examples import example_lengths

    lengths = example_lengths(load_processor(spec["model"]), PreparedData(Path(spec["data"])), PromptConfig())
    audio_total = sum(c["seconds"] for c in spec["clips"])
    print_table(results, args)
    print(
        f"\ndata: {len(spec['samples'])} cloning pairs from {len(spec['clips'])} synthetic clips of "
        f"{args.min_seconds:g}-{args.max_seconds:g} s; examples of {min(lengths)}-{max(lengths)} tokens "
        f"(mean {sum(lengths) / len(lengths):.0f}); device {args.device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"naive: fixed batches of {args.batch_size}, first {args.naive_samples} samples; its padding "
        f"over the whole epoch would be {100 * naive_epoch_padding(spec, lengths, args.batch_size):.1f}%"
    )
    print(
        f"ours: token budget {args.max_tokens}, whole epoch; one-time prepare (codec over each distinct "
        f"clip, {audio_total:.0f} s of audio): {prepare_s:.1f} s; trainer set-up incl. length pass "
        f"{results['ours']['setup_s']:.1f} s"
    )
    for path in ("naive", "ours"):
        ops = ", ".join(f"{k} {v}" for k, v in sorted(results[path]["sync_ops_by_op"].items()))
        print(f"GPU-syncing ops in one {path} forward + backward: {results[path]['sync_ops']} ({ops})")
    print(f"each path: fastest of {args.repeats} alternating runs (the machine may be shared)")
    print(f"total bench time {time.perf_counter() - started:.0f} s; files in {work}")


def _seconds(run: dict) -> float:
    """Wall time per timed token of a run (data and step)."""
    return (run["data_s"] + run["step_s"]) / max(1, run["tokens"])


def print_table(results: dict, args: argparse.Namespace) -> None:
    def rate(r: dict, key: str, time_keys=("data_s", "step_s")) -> float:
        return r[key] / max(1e-9, sum(r[k] for k in time_keys))

    rows = [
        ("batches timed", lambda r: r["batches"], "{:.0f}", False),
        ("samples timed", lambda r: r["samples"], "{:.0f}", False),
        ("tokens/s (data + step)", lambda r: rate(r, "tokens"), "{:,.0f}", True),
        ("tokens/s (step only)", lambda r: rate(r, "tokens", ("step_s",)), "{:,.0f}", True),
        ("audio-seconds/s (data + step)", lambda r: rate(r, "audio_s"), "{:,.2f}", True),
        ("padding fraction", lambda r: 1 - r["tokens"] / max(1, r["padded"]), "{:.1%}", True),
        ("data s / batch", lambda r: r["data_s"] / max(1, r["batches"]), "{:.3f}", True),
        ("step s / batch", lambda r: r["step_s"] / max(1, r["batches"]), "{:.3f}", True),
        ("samples / batch", lambda r: r["samples"] / max(1, r["batches"]), "{:.1f}", False),
        (
            "peak memory MiB" + (" (CUDA allocated)" if args.device.startswith("cuda") else " (RSS growth)"),
            lambda r: r["peak_mib"],
            "{:,.0f}",
            True,
        ),
        ("GPU-syncing ops / fwd+bwd", lambda r: r["sync_ops"], "{:.0f}", True),
    ]
    if results["naive"]["cuda_syncs"] is not None:
        rows.append(("CUDA-reported syncs / step", lambda r: r["cuda_syncs"], "{:.0f}", True))
    head = f"{'':34}{'naive':>14}{'ours':>14}{'ours/naive':>12}"
    print("\n" + head + "\n" + "-" * len(head))
    for name, get, fmt, ratio in rows:
        a, b = get(results["naive"]), get(results["ours"])
        r = f"{b / a:.2f}x" if ratio and a else ""
        print(f"{name:34}{fmt.format(a):>14}{fmt.format(b):>14}{r:>12}")


# --- full size ---------------------------------------------------------------------------------------


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def full_size_config(**overrides):
    from transformers import HiggsAudioV2Config

    return HiggsAudioV2Config(codebook_size=1026, **overrides)


def synthetic_example(config, seq_len: int, seed: int = 0) -> dict:
    """One cloning-shaped example of exactly `seq_len` positions with the model's token ids: text, a
    reference clip, text, a target clip whose codes and stream EOS are labelled, closing text."""
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
    labels = torch.full_like(audio, -100)
    labels[0, ref_len + 1 :] = audio[0, ref_len + 1 :]
    mask = torch.ones(1, frames, dtype=torch.bool)
    placeholder = (input_ids == config.audio_token_id) | (input_ids == config.audio_delay_token_id)
    targets = next_token_targets(input_ids, torch.full_like(input_ids, -100), labels, mask, placeholder)
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


def run_full_size(args: argparse.Namespace, config=None, device: torch.device | None = None) -> list[dict]:
    """LoRA and full fine-tuning steps of the full-size architecture; returns one row per setting."""
    device = device or torch.device("cuda")
    config = config or full_size_config()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    example = {k: v.to(device) for k, v in synthetic_example(config, args.seq_len).items()}
    labelled = example["audio_index"].numel() / args.seq_len
    rows = []
    for mode in ("lora", "full"):
        for checkpointing in (False, True):
            try:
                row = full_size_setting(args, config, device, mode, checkpointing, example)
            except torch.cuda.OutOfMemoryError:
                row = {"oom": True}
            row.update(mode=mode, checkpointing=checkpointing)
            if not row.get("oom"):
                flops = model_flops_per_token(config, args.seq_len, labelled, mode == "lora", row["n_lora"])
                row["tflops"] = row["tokens_per_s"] * flops / 1e12
                row["mfu"] = row["tflops"] / peak if peak else None
            rows.append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(
        f"\n{name}: seq len {args.seq_len}, micro-batch 1, bf16 autocast; "
        f"peak {peak or 'unknown (use --peak-tflops)'} TFLOP/s; {labelled:.0%} of positions labelled"
    )
    head = (
        f"{'mode':6}{'grad ckpt':>10}{'tokens/s':>11}{'TFLOP/s':>10}{'MFU':>8}{'peak GiB':>10}"
        f"{'sync ops':>10}{'CUDA syncs':>12}"
    )
    print(head + "\n" + "-" * len(head))
    for r in rows:
        ckpt = "on" if r["checkpointing"] else "off"
        if r.get("oom"):
            print(f"{r['mode']:6}{ckpt:>10}{'out of GPU memory':>30}")
            continue
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        cuda = r["cuda_syncs"] if r["cuda_syncs"] is not None else "n/a"
        print(
            f"{r['mode']:6}{ckpt:>10}{r['tokens_per_s']:>11,.0f}{r['tflops']:>10.1f}{mfu:>8}"
            f"{r['peak_gib']:>10.1f}{r['sync_ops']:>10}{cuda:>12}"
        )
    print("sync ops: GPU-syncing operations in one forward + backward (boolean-mask indexing etc.);")
    print("CUDA syncs: synchronisations torch reports for one whole step, optimizer included")
    return rows


def full_size_setting(args, config, device, mode: str, checkpointing: bool, example: dict) -> dict:
    """Time `args.steps` steps (after `args.warmup_steps`) of one setting on a freshly built model."""
    from higgs_tune.config import LoraConfig
    from higgs_tune.model.loading import build_model_from_config
    from higgs_tune.training.loss import CloningLossModel, combine
    from higgs_tune.training.trainer import freeze_unreachable

    with torch.device(device):
        model = build_model_from_config(config)
    # bf16 weights under bf16 autocast; LoRA adapters are float32 (peft). Full fine-tuning here keeps
    # weights and AdamW state in bf16 (8 bytes a parameter, 43 GB for 5.4B), because the trainer's float32
    # master weights and state (16 bytes a parameter, 86 GB) only fit once sharded (FSDP / ZeRO) or with
    # adamw_8bit. The FLOPs per step are the same either way.
    model.to(torch.bfloat16 if device.type == "cuda" else torch.float32)
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    n_lora = 0
    if mode == "lora":
        import peft

        lora = LoraConfig()
        model = peft.get_peft_model(
            model, peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=lora.target_modules)
        )
        n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    wrapped = CloningLossModel(model).train()
    freeze_unreachable(wrapped, text_head=False)
    optimizer = torch.optim.AdamW([p for p in wrapped.parameters() if p.requires_grad], lr=1e-5)
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
        _sync(device)
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        _sync(device)
        elapsed = time.perf_counter() - started
    counter = SyncCounter()
    with counter:
        forward_backward()
    optimizer.zero_grad(set_to_none=True)
    return {
        "tokens_per_s": args.steps * args.seq_len / elapsed,
        "peak_gib": memory["peak_mib"] / 1024,
        "sync_ops": counter.count,
        "cuda_syncs": cuda_reported_syncs(step),
        "n_lora": n_lora,
    }


# --- entry point -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default mode)")
    p.add_argument("--clips", type=int, default=16, help="distinct synthetic clips")
    p.add_argument("--samples", type=int, default=160, help="cloning pairs drawn from the clips")
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--batch-size", type=int, default=4, help="naive path's fixed batch size")
    p.add_argument("--naive-samples", type=int, default=16, help="samples the naive path runs on")
    p.add_argument("--max-tokens", type=int, default=4096, help="our token budget per micro-batch")
    p.add_argument("--repeats", type=int, default=2, help="runs per path; the fastest counts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None, help="where the data goes (default: a new temp folder)")
    p.add_argument("--full-size", action="store_true", help="full-size architecture on CUDA instead")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak")
    p.add_argument("--worker", choices=("naive", "ours"), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from higgs_tune.logs import quiet_transformers

    args = parse_args(argv)
    quiet_transformers()  # weight-loading bars and deprecation notices would bury the table
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        device = torch.device(args.device)
        result = (run_naive if args.worker == "naive" else run_ours)(spec, args, device)
        Path(args.result).write_text(json.dumps(result))
    elif args.full_size:
        if not torch.cuda.is_available():
            sys.exit(
                "--full-size needs a CUDA GPU (the full-size model does not train on CPU in useful time)"
            )
        run_full_size(args)
    else:
        compare(args)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=FutureWarning)
    main()
