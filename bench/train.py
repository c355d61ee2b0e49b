"""Training throughput: our data path and step against the path a newcomer writes, on the same data.

    PYTHONPATH=src python bench/train.py                # tiny model, CPU (or --device cuda), ~2 minutes
    PYTHONPATH=src python bench/train.py --full-size    # full-size architecture, random bf16, CUDA only
    PYTHONPATH=src python bench/train.py --dual-ffn --steps 20    # stock vs sync-free DualFFN layer

Default mode. One run builds the tiny model (`higgs_tune.tiny.model`), a pool of synthetic clips of 1 to
20 s (`higgs_tune.tiny.synth.synth_speech`) and cloning pairs drawn from it, then trains the same LoRA on the
same samples two ways (`train_paths.py`: naive, and ours with codes prepared once by `higgs-tune prepare`,
timed separately as a one-time cost), each in its own process (so peak memory is its own).

Each path's first batch is a warm-up and is not timed. The naive path runs on the first
`--naive-samples` samples only (its codec calls are what make it slow); every figure is a rate or a
fraction, and the naive padding over the whole epoch is printed too, computed from the same lengths.
Each path also reports its GPU-syncing operations per forward + backward (`measure.py`).

`--dual-ffn`: transformers' DualFFN layer against the sync-free one (`dual_ffn.py`): step time, tokens/s
and GPU-syncing operations per micro-batch, with ratios; tiny model on CPU by default, real one with
`--full-size --device cuda`.

`--full-size` (CUDA): the real architecture with random weights, LoRA and full fine-tuning, tokens/s,
MFU and peak GPU memory (`full_size.py`, which also gives the FLOPs formula).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from dual_ffn import run_dual_ffn
from full_size import run_full_size
from train_paths import run_naive, run_ours

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

    from higgs_tune.config import PromptSettings
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.dataset import PreparedData
    from higgs_tune.training.examples import prepared_lengths

    lengths = prepared_lengths(
        load_processor(spec["model"]), PreparedData(Path(spec["data"])), PromptSettings()
    )
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
    p.add_argument(
        "--dual-ffn",
        action="store_true",
        help="stock vs sync-free DualFFN layer (tiny model unless --full-size)",
    )
    p.add_argument("--checkpointing", action="store_true", help="--dual-ffn with gradient checkpointing")
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
    elif args.dual_ffn:
        run_dual_ffn(args)
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
