"""The `higgs-tune` command line: one command per pipeline stage, each a thin call into its module.

Every command takes `--model PATH_OR_HUB_ID` and works the same on the built-in tiny model folder and on
`bosonai/...` hub ids. Errors about user input are printed as one clear message (no traceback) and exit
with status 2; `validate` exits 1 when it finds errors in the data.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS
from higgs_tune.inference.settings import LengthLimit, SamplingConfig
from higgs_tune.logs import setup_logging

if TYPE_CHECKING:
    from higgs_tune.inference.clone import Clone

log = logging.getLogger("higgs_tune")

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Fine-tune Higgs Audio v2 for zero-shot voice cloning, then use and measure the result.",
)

ModelOpt = Annotated[str, typer.Option("--model", help="Model folder or hub id (e.g. bosonai/...).")]
# Sampling options, the same for `clone` and `eval`; their defaults are `SamplingConfig`'s.
SAMPLING = SamplingConfig()
LENGTH_LIMIT = LengthLimit()
GreedyOpt = Annotated[bool, typer.Option("--greedy", help="Greedy generation (deterministic).")]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling mass.")]
TopKOpt = Annotated[int, typer.Option(help="Top-k sampling (0: off).")]
RasWindowOpt = Annotated[int, typer.Option(help="Repetition-aware sampling window (0: off).")]
SeedOpt = Annotated[int, typer.Option(help="Sampling seed (the same for every system and sample batch).")]
CheckpointOpt = Annotated[
    Literal["best", "last"],
    typer.Option(
        help="With a run folder as --adapter: its best checkpoint (the last if none was tracked), or last."
    ),
]


def _checkpoint_of(adapter: Path | None, which: Literal["best", "last"]) -> Path | None:
    """The checkpoint folder that `--adapter` and `--checkpoint` name (a checkpoint folder as is)."""
    from higgs_tune.checkpoint import resolve_checkpoint

    return None if adapter is None else resolve_checkpoint(adapter, which)


def _sampling(
    greedy: bool, temperature: float, top_p: float, top_k: int, ras_window: int, seed: int
) -> SamplingConfig:
    """The sampling settings of the command line."""
    return SamplingConfig(
        greedy=greedy,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        ras_window=ras_window or None,
        seed=seed,
    )


@app.command("tiny-model")
def tiny_model(
    out: Annotated[Path, typer.Argument(help="Folder to write the tiny model into.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Write a tiny random Higgs Audio v2 model folder, with tiny ASR and speaker models, for tests.

    The folder holds the model, codec, tokenizer and processor in the standard layout, plus a tiny
    Whisper and a tiny WavLM x-vector model in eval-models/ so evaluation runs for real.
    """
    from higgs_tune.tiny.eval_models import build_tiny_eval_models
    from higgs_tune.tiny.model import build_tiny_model

    build_tiny_model(out, seed=seed)
    asr, speaker = build_tiny_eval_models(out, seed=seed)
    log.info("tiny model written to %s (evaluation models: %s, %s)", out, asr, speaker)


@app.command("sample-data")
def synthetic_dataset(
    out: Annotated[Path, typer.Argument(help="Folder for the synthetic dataset.")],
    seed: Annotated[int, typer.Option(help="Seed of the synthetic voices.")] = 0,
) -> None:
    """Write a small cloning dataset of synthetic voices with a manifest in each supported format."""
    from higgs_tune.tiny.dataset import write_synthetic_dataset

    for name, path in write_synthetic_dataset(out, seed=seed).items():
        typer.echo(f"{name}: {path}")


@app.command()
def validate(
    manifest: Annotated[Path, typer.Argument(help="Manifest (ChatML JSON or JSON Lines).")],
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
    write_clean: Annotated[
        Path | None, typer.Option(help="Write a manifest without the error samples.")
    ] = None,
    min_seconds: Annotated[float, typer.Option(help="Shortest clip accepted.")] = MIN_SECONDS,
    max_seconds: Annotated[float, typer.Option(help="Longest clip accepted.")] = MAX_SECONDS,
    language: Annotated[
        str | None, typer.Option(help="Target language; 'ar' checks for Arabic script.")
    ] = None,
    allow_missing_target: Annotated[
        bool, typer.Option(help="Inference-only manifest: no target audio required.")
    ] = False,
) -> None:
    """Check every sample of a manifest before a GPU hour is spent; exit 1 if any error is found."""
    from higgs_tune.data.validate import validate_manifest, write_clean_manifest

    result = validate_manifest(
        manifest,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        language=language,
        require_target=not allow_missing_target,
    )
    typer.echo(result.table())
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(result.to_json(), encoding="utf-8")
    if write_clean is not None:
        write_clean_manifest(result, write_clean)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def pairs(
    source: Annotated[
        Path, typer.Argument(help="Utterances: JSON Lines (audio, text, speaker) or a folder.")
    ],
    out: Annotated[Path, typer.Option(help="Manifest (JSON Lines) of zero-shot pairs to write.")],
    refs_per_target: Annotated[int, typer.Option(help="References paired with each target.")] = 1,
    seed: Annotated[int, typer.Option(help="Pairing seed.")] = 0,
) -> None:
    """Build zero-shot cloning pairs (reference: another utterance of the same speaker)."""
    from higgs_tune.data.manifests import write_manifest_jsonl
    from higgs_tune.data.pairs import build_pairs

    if out.resolve() == source.resolve():
        raise typer.BadParameter("--out must differ from the input; inputs are never overwritten")
    result = build_pairs(source, refs_per_target=refs_per_target, seed=seed)
    write_manifest_jsonl(result.pairs, out)
    typer.echo(result.summary())


@app.command()
def encode(
    audio: Annotated[list[Path], typer.Argument(help="Audio files to encode.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for the codes, one NAME.npy [8, T] per clip.")],
) -> None:
    """Encode audio files into codec codes."""
    import numpy as np

    from higgs_tune.model.codes import encode_file
    from higgs_tune.model.loading import load_processor

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
    workers: Annotated[
        int | None, typer.Option(help="Audio-reading processes (default min(4, CPUs); 0 reads in-process).")
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip bad samples (listed in OUT/skipped.jsonl), don't stop.")
    ] = False,
    shard_size: Annotated[int, typer.Option(help="Clips per shard file.")] = 2000,
    min_seconds: Annotated[
        float, typer.Option(help="Shortest clip accepted (as in validate).")
    ] = MIN_SECONDS,
    max_seconds: Annotated[float, typer.Option(help="Longest clip accepted (as in validate).")] = MAX_SECONDS,
    device: Annotated[
        str | None, typer.Option(help="Where the codec runs: cuda or cpu (default: cuda if any).")
    ] = None,
) -> None:
    """Encode every distinct clip of a manifest once into a prepared dataset for training.

    Resumes an interrupted run. Under torchrun or accelerate launch the processes split the clips.
    """
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.prepare import codec_device, prepare_dataset, read_samples

    samples, skipped = read_samples(manifest, skip_bad=skip_bad)
    prepare_dataset(
        samples,
        load_processor(model, device=codec_device(device)),
        out,
        model_id=model,
        workers=workers,
        skip_bad=skip_bad,
        shard_size=shard_size,
        skipped=skipped,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
    )


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
    from higgs_tune.config import TrainConfig
    from higgs_tune.training.trainer import train as run_training
    from higgs_tune.typed_config import load_config

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
    out: Annotated[Path, typer.Option(help="Output wav (24 kHz), or a folder with --manifest.")],
    ref_audio: Annotated[Path | None, typer.Option(help="Reference clip of the voice to clone.")] = None,
    ref_text: Annotated[str | None, typer.Option(help="Transcript of the reference clip.")] = None,
    text: Annotated[str | None, typer.Option(help="Text to speak.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Clone every sample of a manifest (batched).")] = None,
    adapter: Annotated[Path | None, typer.Option(help="Run or checkpoint folder (LoRA or full).")] = None,
    codes_out: Annotated[Path | None, typer.Option(help="Also save the generated codes [8, T].")] = None,
    greedy: GreedyOpt = SAMPLING.greedy,
    temperature: TemperatureOpt = SAMPLING.temperature,
    top_p: TopPOpt = SAMPLING.top_p,
    top_k: TopKOpt = SAMPLING.top_k,
    ras_window: RasWindowOpt = SAMPLING.ras_window,
    max_seconds: Annotated[
        float, typer.Option(help="Cut generation after this much audio.")
    ] = LENGTH_LIMIT.max_seconds,
    chars_per_second: Annotated[
        float, typer.Option(help="With --manifest: per-sample limit from the text at this slow rate.")
    ] = LENGTH_LIMIT.chars_per_second,
    batch_size: Annotated[int, typer.Option(help="With --manifest: samples per generation batch.")] = 8,
    system_prompt: Annotated[
        str | None, typer.Option(help="Override the checkpoint's system prompt.")
    ] = None,
    scene: Annotated[str | None, typer.Option(help="Override the checkpoint's scene description.")] = None,
    seed: SeedOpt = SAMPLING.seed,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Clone a voice: speak TEXT in the voice of REF_AUDIO, or every sample of a --manifest."""
    from higgs_tune.inference.clone import clone_manifest, clone_one
    from higgs_tune.inference.generate import load_for_cloning

    given = [v is not None for v in (ref_audio, ref_text, text)]
    one_sample, batch = manifest is None and all(given), manifest is not None and not any(given)
    if not (one_sample or batch):
        raise typer.BadParameter("give either --manifest, or all of --ref-audio, --ref-text and --text")
    if ref_audio is not None and not ref_audio.is_file():
        raise FileNotFoundError(f"{ref_audio}: reference audio not found")
    adapter = _checkpoint_of(adapter, checkpoint)
    lm, processor, settings = load_for_cloning(model, adapter, system_prompt=system_prompt, scene=scene)
    sampling = _sampling(greedy, temperature, top_p, top_k, ras_window, seed)
    if manifest is not None:
        from higgs_tune.data.manifests import read_manifest

        samples = read_manifest(manifest, require_target=False)
        limit = LengthLimit(chars_per_second=chars_per_second, max_seconds=max_seconds)
        clone_manifest(lm, processor, samples, out, settings, sampling, limit, batch_size=batch_size)
        return
    result = clone_one(lm, processor, ref_audio, ref_text, text, settings, sampling, max_seconds=max_seconds)
    _write_clone(result, out, codes_out, processor, max_seconds)


def _write_clone(result: Clone, out: Path, codes_out: Path | None, processor, max_seconds: float) -> None:
    """Save one clone's codes (if asked) and its wav; exit 1 when the model gave no audio frames at all."""
    import numpy as np

    from higgs_tune.data.audio import write_wav

    if codes_out is not None:
        codes_out.parent.mkdir(parents=True, exist_ok=True)
        np.save(codes_out, result.codes)
    if result.codes.shape[1] == 0:
        log.error("the model emitted its stream EOS at once: no audio frames, so %s was not written", out)
        raise typer.Exit(1)
    write_wav(out, result.audio, processor.feature_extractor.sampling_rate)
    rate = processor.audio_tokenizer.config.frame_rate
    how = "stream EOS" if result.stopped_by_eos else f"the {max_seconds:g} s limit (no EOS: cut)"
    log.info("wrote %s: %.2f s of audio, ended by %s", out, result.codes.shape[1] / rate, how)


@app.command("eval")
def evaluate_command(
    manifest: Annotated[Path, typer.Option(help="Held-out manifest (target audio optional).")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for clones, report.json, report.md and plots.")],
    adapter: Annotated[Path | None, typer.Option(help="Run or checkpoint folder to evaluate.")] = None,
    baseline: Annotated[bool, typer.Option("--baseline", help="Also clone with the base model.")] = False,
    asr_model: Annotated[
        str, typer.Option(help="Whisper model id or folder for WER/CER (default: see below).")
    ] = "",
    speaker_model: Annotated[
        str, typer.Option(help="WavLM x-vector model id or folder (default: see below).")
    ] = "",
    language: Annotated[str | None, typer.Option(help="Language of the texts (e.g. ar).")] = None,
    device: Annotated[str, typer.Option(help="Device for generation and measuring models.")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Samples per generation / ASR batch.")] = 8,
    greedy: GreedyOpt = SAMPLING.greedy,
    temperature: TemperatureOpt = SAMPLING.temperature,
    top_p: TopPOpt = SAMPLING.top_p,
    top_k: TopKOpt = SAMPLING.top_k,
    ras_window: RasWindowOpt = SAMPLING.ras_window,
    seed: SeedOpt = SAMPLING.seed,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Clone a held-out set and report WER/CER, speaker similarity, speech checks and stop health.

    The ASR and speaker models default to those the --model folder carries in eval-models/ (the tiny
    model does), else the released ones; they are loaded before any cloning.
    """
    from higgs_tune.evaluation.evaluate import EvalSettings, evaluate
    from higgs_tune.evaluation.measuring import MeasuringModelError, default_measuring_models

    default_asr, default_speaker = default_measuring_models(model)
    settings = EvalSettings(
        asr_model=asr_model or default_asr,
        speaker_model=speaker_model or default_speaker,
        language=language,
        device=device,
        batch_size=batch_size,
        sampling=_sampling(greedy, temperature, top_p, top_k, ras_window, seed),
    )
    try:
        report = evaluate(manifest, model, _checkpoint_of(adapter, checkpoint), out, baseline, settings)
    except MeasuringModelError as e:
        log.error("%s", e)
        raise typer.Exit(2) from None
    for name, summary in report["summary"].items():
        typer.echo(
            f"{name}: WER {summary['wer']:.3f}, CER {summary['cer']:.3f}, similarity "
            f"{summary['similarity'] if summary['similarity'] is None else round(summary['similarity'], 3)}, "
            f"ended by EOS {summary['stopped_by_eos']:.0%}, right length {summary['right_length']:.0%}"
        )
    typer.echo(f"report: {out / 'report.md'}")


@app.command()
def merge(
    model: ModelOpt,
    adapter: Annotated[Path, typer.Option(help="Run or checkpoint folder of a LoRA (or full) fine-tune.")],
    out: Annotated[Path, typer.Option(help="Folder for the merged model (standard HF layout).")],
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Merge a LoRA adapter into the base weights and save a model folder plain transformers loads."""
    from higgs_tune.inference.merge import merge_adapter

    merge_adapter(model, adapter, out, checkpoint)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path(
        "higgs_tune_demo"
    ),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 150,
    speakers: Annotated[int, typer.Option(help="Synthetic voices in the dataset.")] = 8,
    utterances: Annotated[int, typer.Option(help="Utterances per voice.")] = 20,
) -> None:
    """Run the whole loop on the built-in default: tiny model, synthetic voices, train, clone, evaluate."""
    from higgs_tune.tiny.demo import run_demo

    run_demo(out, steps=steps, speakers=speakers, utterances=utterances)


def main() -> None:
    """Entry point: logging set-up, then the command; user-input errors become one clear line."""
    from higgs_tune.data.samples import SampleError
    from higgs_tune.typed_config import ConfigError

    setup_logging()
    try:
        # Without standalone mode click returns the exit code of `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
    except (ConfigError, SampleError, FileNotFoundError) as e:
        log.error("%s", e)
        sys.exit(2)
    except Exception as e:  # click's usage errors carry their own exit code and message
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # `python -m higgs_tune.cli`, as `torchrun` and `accelerate launch -m` run it
    main()
