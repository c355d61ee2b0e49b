"""The `higgs-tune` command line: one command per pipeline stage, each a thin call into its module.

Every command takes `--model PATH_OR_HUB_ID` and works the same on the built-in tiny model folder and on
`bosonai/...` hub ids. Errors about user input are printed as one clear message (no traceback) and exit
with status 2; `validate` exits 1 when it finds errors in the data.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.logs import setup_logging

log = logging.getLogger("higgs_tune")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.",
)

ModelOpt = Annotated[str, typer.Option("--model", help="Model folder or hub id (e.g. bosonai/...).")]


@app.command("tiny-model")
def tiny_model(
    out: Annotated[Path, typer.Argument(help="Folder to write the tiny model into.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Write a tiny random Higgs Audio v2 model folder (model, codec, tokenizer, processor) for tests."""
    from higgs_tune.tiny_model import build_tiny_model

    build_tiny_model(out, seed=seed)
    log.info("tiny model written to %s", out)


@app.command()
def encode(
    audio: Annotated[list[Path], typer.Argument(help="Audio files to encode.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for the codes, one NAME.npy [8, T] per clip.")],
) -> None:
    """Encode audio files into codec codes."""
    import numpy as np

    from higgs_tune.codes import encode_file
    from higgs_tune.models import load_processor

    processor = load_processor(model)
    out.mkdir(parents=True, exist_ok=True)
    for path in audio:
        codes = encode_file(processor, path)
        np.save(out / f"{path.stem}.npy", codes)
        log.info("%s -> %s %s", path, out / f"{path.stem}.npy", tuple(codes.shape))


@app.command()
def prepare(
    manifest: Annotated[Path, typer.Argument(help="Manifest (ChatML JSON or JSON Lines).")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder of the prepared dataset.")],
) -> None:
    """Encode every distinct clip of a manifest once into a prepared dataset for training."""
    from higgs_tune.models import load_processor
    from higgs_tune.prepare import prepare_dataset
    from higgs_tune.sources import read_manifest

    samples = read_manifest(manifest)
    prepare_dataset(samples, load_processor(model), out, model_id=model)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def train(
    model: Annotated[str | None, typer.Option("--model", help="Model folder or hub id.")] = None,
    data: Annotated[Path | None, typer.Option(help="Prepared dataset folder.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (checkpoints, logs).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Full fine-tuning instead of LoRA.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")
    ] = False,
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value config overrides.")] = None,
) -> None:
    """Fine-tune on a prepared dataset (LoRA by default)."""
    from higgs_tune.config import TrainConfig, load_config
    from higgs_tune.train import train as run_training

    items = list(overrides or [])
    items += [f"{k}={v}" for k, v in (("model", model), ("data", data), ("output_dir", out)) if v is not None]
    if full:
        items.append("full=true")
    cfg = load_config(TrainConfig, config, items)
    final = run_training(cfg, resume=resume)
    log.info("training done; last checkpoint: %s", final)


@app.command()
def clone(
    model: ModelOpt,
    ref_audio: Annotated[Path, typer.Option(help="Reference clip of the voice to clone.")],
    ref_text: Annotated[str, typer.Option(help="Transcript of the reference clip.")],
    text: Annotated[str, typer.Option(help="Text to speak.")],
    out: Annotated[Path, typer.Option(help="Output wav (24 kHz).")],
    adapter: Annotated[Path | None, typer.Option(help="Run or checkpoint folder (LoRA or full).")] = None,
    codes_out: Annotated[Path | None, typer.Option(help="Also save the generated codes [8, T].")] = None,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding (deterministic).")] = False,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 0.95,
    top_k: Annotated[int, typer.Option(help="Top-k sampling.")] = 50,
    max_seconds: Annotated[float, typer.Option(help="Cut generation after this much audio.")] = 30.0,
    system_prompt: Annotated[
        str | None, typer.Option(help="Override the checkpoint's system prompt.")
    ] = None,
    scene: Annotated[str | None, typer.Option(help="Override the checkpoint's scene description.")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
) -> None:
    """Clone a voice: speak TEXT in the voice of REF_AUDIO."""
    import numpy as np

    from higgs_tune.audio import write_wav
    from higgs_tune.codes import decode_codes, encode_file
    from higgs_tune.generate import SamplingConfig, clone_batch, load_for_cloning

    lm, processor, settings = load_for_cloning(model, adapter, system_prompt=system_prompt, scene=scene)
    rate = processor.audio_tokenizer.config.frame_rate
    sampling = SamplingConfig(greedy=greedy, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
    item = {"ref_text": ref_text, "ref_codes": encode_file(processor, ref_audio), "text": text}
    result = clone_batch(lm, processor, [item], settings, sampling, [int(max_seconds * rate)])[0]
    if codes_out is not None:
        codes_out.parent.mkdir(parents=True, exist_ok=True)
        np.save(codes_out, result.codes)
    write_wav(out, decode_codes(processor, result.codes), processor.feature_extractor.sampling_rate)
    how = "stream EOS" if result.stopped_by_eos else f"the {max_seconds:g} s limit (no EOS: cut)"
    log.info("wrote %s: %.2f s of audio, ended by %s", out, result.codes.shape[1] / rate, how)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path(
        "higgs_tune_demo"
    ),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 60,
) -> None:
    """Run the whole loop on the built-in default: tiny model, synthetic voices, prepare, train, clone."""
    from higgs_tune.demo import run_demo

    run_demo(out, steps=steps)


def main() -> None:
    """Entry point: logging set-up, then the command; user-input errors become one clear line."""
    from higgs_tune.config import ConfigError
    from higgs_tune.samples import SampleError

    setup_logging()
    try:
        app(standalone_mode=False)
    except (ConfigError, SampleError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click's usage errors carry their own exit code and message
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":  # `python -m higgs_tune.cli`, as `torchrun` and `accelerate launch -m` run it
    main()
