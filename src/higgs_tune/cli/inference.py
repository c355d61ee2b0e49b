"""Commands that use a fine-tune: `clone` a voice, `merge` an adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from higgs_tune.cli.app import (
    LENGTH_LIMIT,
    SAMPLING,
    CharsPerSecondOpt,
    CheckpointOpt,
    GreedyOpt,
    LengthLimitOpt,
    ModelOpt,
    RasWindowOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    app,
    checkpoint_of,
    sampling_config,
)
from higgs_tune.inference.settings import LengthLimit

if TYPE_CHECKING:
    from higgs_tune.inference.clone import Clone

log = logging.getLogger("higgs_tune")


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
    max_seconds: LengthLimitOpt = LENGTH_LIMIT.max_seconds,
    chars_per_second: CharsPerSecondOpt = LENGTH_LIMIT.chars_per_second,
    batch_size: Annotated[int, typer.Option(help="With --manifest: samples per generation batch.")] = 8,
    system_prompt: Annotated[
        str | None, typer.Option(help="Override the checkpoint's system prompt.")
    ] = None,
    scene: Annotated[str | None, typer.Option(help="Override the checkpoint's scene description.")] = None,
    seed: SeedOpt = SAMPLING.seed,
    checkpoint: CheckpointOpt = "best",
) -> None:
    """Clone a voice: speak TEXT in the voice of REF_AUDIO, or every sample of a --manifest."""
    _check_texts({"--ref-text": ref_text, "--text": text, "--system-prompt": system_prompt, "--scene": scene})
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.inference.clone import check_reference, clone_manifest, clone_one
    from higgs_tune.inference.generate import load_for_cloning

    given = [v is not None for v in (ref_audio, ref_text, text)]
    one_sample, batch = manifest is None and all(given), manifest is not None and not any(given)
    if not (one_sample or batch):
        raise typer.BadParameter("give either --manifest, or all of --ref-audio, --ref-text and --text")
    # Bad input is refused before the model loads (minutes for the real one), not after.
    if ref_audio is not None:
        check_reference(ref_audio)
    samples = None if manifest is None else read_manifest(manifest, require_target=False)
    adapter = checkpoint_of(adapter, checkpoint)
    lm, processor, settings = load_for_cloning(model, adapter, system_prompt=system_prompt, scene=scene)
    sampling = sampling_config(greedy, temperature, top_p, top_k, ras_window, seed)
    if samples is not None:
        limit = LengthLimit(chars_per_second=chars_per_second, max_seconds=max_seconds)
        clone_manifest(lm, processor, samples, out, settings, sampling, limit, batch_size=batch_size)
        return
    result = clone_one(lm, processor, ref_audio, ref_text, text, settings, sampling, max_seconds=max_seconds)
    _write_clone(result, out, codes_out, processor, max_seconds)


def _check_texts(texts: dict[str, str | None]) -> None:
    """Refuse a control token in a text given on the command line, as `validate` refuses it in a manifest
    (`data.problems.special_token_problem`), before any model is loaded."""
    from higgs_tune.data.problems import raise_for_errors, text_problems

    raise_for_errors(text_problems(texts, "clone", None))


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
