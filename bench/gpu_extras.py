"""What `bench/gpu.sh` measures beyond training steps: cloning speed, and FSDP on one GPU.

    PYTHONPATH=src python bench/gpu_extras.py rtf --work DIR [--full-size] [--frames 250]
    PYTHONPATH=src python bench/gpu_extras.py fsdp --work DIR

`rtf`: the real-time factor of batched cloning, audio seconds generated per wall second, at batch 1 and 8,
through `inference.generate.generate_codes` (prompt, `model.generate`, delay pattern), sampling as users
do; codec decoding not included. With `--full-size` the LM has the released architecture (random bf16
weights) and the tiny model's tokenizer and token ids, which changes nothing but the text vocabulary
(an embedding lookup). Random weights rarely emit the stream EOS, so each clip runs to `--frames`; the
audio counted is what was generated.

`fsdp`: a few FSDP steps of the tiny model with one process on the GPU (`configs/accelerate_fsdp.yaml`,
LoRA with `use_orig_params`, bf16 mixed precision), through `accelerate launch ... higgs_tune.cli train`:
one run of 4 steps saving at step 2, and one stopped at step 2 and resumed; the resumed run's losses at
steps 3 and 4 must equal the uninterrupted run's exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def tiny_assets(work: Path, with_data: bool = True) -> tuple[Path, Path]:
    """The tiny model folder and the synthetic sample data prepared with its codec (each built once in
    `work`; the data only `with_data`)."""
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.prepare import prepare_dataset
    from higgs_tune.tiny.dataset import write_synthetic_dataset
    from higgs_tune.tiny.model import build_tiny_model

    model_dir, prepared = work / "tiny-model", work / "tiny-prepared"
    if not (model_dir / "config.json").is_file():
        build_tiny_model(model_dir, seed=0)
    if with_data and not prepared.is_dir():
        manifest = write_synthetic_dataset(work / "tiny-data")["manifest_jsonl"]
        prepare_dataset(read_manifest(manifest), load_processor(model_dir), prepared, model_id=str(model_dir))
    return model_dir, prepared


def cloning_model(model_dir: Path, full_size: bool, device: torch.device):
    """The tiny model, or the released architecture with the tiny model's token ids (random weights)."""
    from transformers import GenerationConfig, HiggsAudioV2Config

    from higgs_tune.model.loading import build_model_from_config, load_model

    if not full_size:
        return load_model(model_dir, device=device).eval()
    tiny = HiggsAudioV2Config.from_pretrained(model_dir).to_dict()
    sizes = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    sizes += ("num_key_value_heads", "head_dim")
    released = HiggsAudioV2Config()
    config = HiggsAudioV2Config(**{**tiny, **{k: getattr(released, k) for k in sizes}})
    with torch.device(device):
        model = build_model_from_config(config)
    model.generation_config = GenerationConfig.from_pretrained(model_dir)
    return model.to(torch.bfloat16 if device.type == "cuda" else torch.float32).eval()


def run_rtf(args: argparse.Namespace) -> list[dict]:
    """Audio seconds generated per wall second at each batch size; prints and returns one row per size."""
    from higgs_tune.config import PromptSettings
    from higgs_tune.inference.generate import generate_codes
    from higgs_tune.inference.settings import SamplingSettings
    from higgs_tune.model.loading import load_processor

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model_dir, _ = tiny_assets(Path(args.work), with_data=False)
    processor = load_processor(model_dir)
    model = cloning_model(model_dir, args.full_size, device)
    frame_rate = float(processor.audio_tokenizer.config.frame_rate)
    g = torch.Generator().manual_seed(0)
    ref_frames = int(5 * frame_rate)  # a 5 s reference clip
    k = model.config.num_codebooks

    def clone(batch: int, frames: int) -> tuple[float, float]:
        items = [
            {"ref_text": "a reference", "ref_codes": torch.randint(0, 1000, (k, ref_frames), generator=g),
             "text": "the sentence to say in the cloned voice"}
            for _ in range(batch)
        ]  # fmt: skip
        sampling = SamplingSettings(seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        results = generate_codes(model, processor, items, PromptSettings(), sampling, [frames] * batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return sum(r.codes.shape[1] for r in results) / frame_rate, time.perf_counter() - started

    clone(1, 4)  # warm-up
    rows = []
    for batch in args.batch_sizes:
        audio_s, wall_s = clone(batch, args.frames)
        rows.append({"batch": batch, "audio_s": audio_s, "wall_s": wall_s, "rtf": audio_s / wall_s})
    arch = "released architecture, random bf16 weights" if args.full_size else "tiny model"
    print(f"\ncloning speed ({arch}, {device.type}, up to {args.frames} frames per clip, sampling):")
    print(f"{'batch':>6}{'audio s':>10}{'wall s':>10}{'audio s / wall s':>18}")
    for r in rows:
        print(f"{r['batch']:>6}{r['audio_s']:>10.1f}{r['wall_s']:>10.2f}{r['rtf']:>18.2f}")
    return rows


def _train(model_dir: Path, prepared: Path, out: Path, *overrides: str, resume: bool = False) -> None:
    """`higgs-tune train` on one process under FSDP, as `accelerate launch` runs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), "src"])))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
    cmd += [str(ROOT / "configs" / "accelerate_fsdp.yaml"), "--num_processes", "1"]
    cmd += ["-m", "higgs_tune.cli", "train", "--model", str(model_dir), "--data", str(prepared)]
    cmd += ["--out", str(out), *(["--resume"] if resume else []), *overrides]
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def _losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def run_fsdp(args: argparse.Namespace) -> bool:
    """Uninterrupted 4 steps against 2 steps + resume to 4; prints both and whether they match exactly."""
    work = Path(args.work)
    model_dir, prepared = tiny_assets(work)
    common = ["save_steps=2", "save_total_limit=null", "eval_steps=100", "logging_steps=1"]
    common += ["warmup_steps=0", "learning_rate=1e-3", "lora.dropout=0", "seed=3", "bf16=true"]
    straight, resumed = work / "fsdp-straight", work / "fsdp-resumed"
    for run in (straight, resumed):
        shutil.rmtree(run, ignore_errors=True)
    _train(model_dir, prepared, straight, *common, "max_steps=4")
    _train(model_dir, prepared, resumed, *common, "max_steps=2")
    _train(model_dir, prepared, resumed, *common, "max_steps=4", resume=True)
    a, b = _losses(straight), _losses(resumed)
    same = all(a.get(step) == b.get(step) for step in (3, 4)) and 4 in a
    print(f"\nFSDP, one process on the GPU, tiny model, LoRA: losses {a}")
    print(f"stopped at step 2 and resumed: {b}")
    print(f"resumed losses at steps 3-4 equal the uninterrupted run's exactly: {'yes' if same else 'NO'}")
    return same


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("rtf", "fsdp"))
    p.add_argument("--work", required=True, help="folder for the tiny model, data and runs")
    p.add_argument("--full-size", action="store_true", help="rtf: the released architecture")
    p.add_argument("--frames", type=int, default=250, help="rtf: frames per clip (25 per second)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    args = p.parse_args(argv)
    from higgs_tune.logs import quiet_transformers

    quiet_transformers()
    if args.what == "rtf":
        run_rtf(args)
    elif not run_fsdp(args):
        sys.exit(1)


if __name__ == "__main__":
    main()
