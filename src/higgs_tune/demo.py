"""`higgs-tune demo`: the whole loop on the built-in default, on CPU in a few minutes.

tiny model -> synthetic voices -> validate -> prepare -> LoRA training -> clone, each step through the same
functions the individual commands call, printing where everything went.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from higgs_tune.config import TrainConfig, load_config

log = logging.getLogger(__name__)


def demo_config(model: Path, data: Path, run: Path, steps: int) -> TrainConfig:
    """A short LoRA run sized for a 2-core CPU. The audio head is trained too: a random tiny model's
    frozen head would cap what the adapters alone can show in a few minutes."""
    return load_config(
        TrainConfig,
        None,
        [
            f"model={model}",
            f"data={data}",
            f"output_dir={run}",
            f"max_steps={steps}",
            "per_device_train_batch_size=4",
            "learning_rate=3e-3",
            f"warmup_steps={min(10, steps // 10)}",
            "logging_steps=10",
            f"save_steps={steps}",
            f"eval_steps={max(1, steps // 3)}",
            "eval_fraction=0.1",
            "lora.train_audio_head=true",
        ],
    )


def run_demo(out: Path, steps: int = 150) -> dict[str, Path]:
    """Run the demo into `out`; returns the paths it wrote."""
    from higgs_tune.audio import write_wav
    from higgs_tune.codes import decode_codes, encode_file
    from higgs_tune.generate import SamplingConfig, clone_batch, load_for_cloning
    from higgs_tune.models import load_processor
    from higgs_tune.prepare import prepare_dataset
    from higgs_tune.sample_data import write_sample_data
    from higgs_tune.sources import read_manifest
    from higgs_tune.tiny_model import build_tiny_model
    from higgs_tune.train import train
    from higgs_tune.validate import validate_manifest

    started = time.perf_counter()
    out = Path(out)
    paths = {
        "model": out / "tiny-model",
        "data": out / "data",
        "prepared": out / "prepared",
        "run": out / "run",
    }
    log.info("1/6 tiny model -> %s", paths["model"])
    build_tiny_model(paths["model"], seed=0)
    log.info("2/6 synthetic voices -> %s", paths["data"])
    manifest = write_sample_data(paths["data"])["manifest_jsonl"]
    log.info("3/6 validate %s", manifest)
    report = validate_manifest(manifest)
    log.info("%d samples, %d errors, %d warnings", len(report.samples), report.n_errors, report.n_warnings)
    log.info("4/6 prepare -> %s", paths["prepared"])
    samples = read_manifest(manifest)
    prepare_dataset(samples, load_processor(paths["model"]), paths["prepared"], model_id=str(paths["model"]))
    log.info("5/6 train (LoRA, %d steps) -> %s", steps, paths["run"])
    checkpoint = train(demo_config(paths["model"], paths["prepared"], paths["run"], steps))
    losses = [json.loads(line) for line in (paths["run"] / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in losses if "loss" in r]

    log.info("6/6 clone with %s", checkpoint)
    model, processor, settings = load_for_cloning(str(paths["model"]), checkpoint)
    sample = samples[0]
    item = {
        "ref_text": sample.ref_text,
        "ref_codes": encode_file(processor, sample.ref_audio),
        "text": sample.text,
    }
    rate = processor.audio_tokenizer.config.frame_rate
    result = clone_batch(model, processor, [item], settings, SamplingConfig(seed=0), [10 * rate])[0]
    paths["clone"] = write_wav(out / "clone.wav", decode_codes(processor, result.codes))
    summary = {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "first_loss": train_losses[0],
        "last_loss": train_losses[-1],
        "eval_losses": [r["eval_loss"] for r in losses if "eval_loss" in r],
        "clone_seconds": result.codes.shape[1] / rate,
        "clone_stopped_by_eos": result.stopped_by_eos,
        "paths": {k: str(v) for k, v in paths.items()},
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"\nDemo finished in {summary['wall_seconds']} s.\n"
        f"  training loss  {train_losses[0]:.3f} -> {train_losses[-1]:.3f} over {steps} steps "
        f"(metrics: {paths['run'] / 'metrics.jsonl'}, TensorBoard: {paths['run'] / 'tensorboard'})\n"
        f"  checkpoint     {checkpoint}\n"
        f"  cloned speech  {paths['clone']} ({summary['clone_seconds']:.2f} s, "
        f"{'ended by EOS' if result.stopped_by_eos else 'cut at the limit'}); "
        f"voice of {sample.ref_audio.name}, text: {sample.text!r}\n"
        f"  summary        {out / 'demo_summary.json'}"
    )
    return paths
