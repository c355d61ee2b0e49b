"""Commands that use a fine-tune: `clone` a voice, `merge` an adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import (
    LENGTH_LIMIT,
    LONG_TEXT,
    SAMPLING,
    CharsPerSecondOpt,
    CheckpointOpt,
    ContextChunksOpt,
    GreedyOpt,
    LengthLimitOpt,
    MaxCharsPerChunkOpt,
    ModelOpt,
    RasWindowOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    checkpoint_of,
    sampling_config,
)
from higgs_tune.inference.settings import LengthLimit, LongTextSettings

if TYPE_CHECKING:
    from higgs_tune.inference.clone import Clone
    from higgs_tune.inference.long_text import LongClone

log = logging.getLogger("higgs_tune")

CloneOverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace an existing --out (--codes-out) file, or with --manifest this command's files in a "
        "folder that holds others; never the reference clips or the manifest.",
    ),
]


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
    max_chars_per_chunk: MaxCharsPerChunkOpt = LONG_TEXT.max_chars_per_chunk,
    context_chunks: ContextChunksOpt = LONG_TEXT.context_chunks,
    checkpoint: CheckpointOpt = "best",
    overwrite: CloneOverwriteOpt = False,
) -> None:
    """Clone a voice: speak TEXT in the voice of REF_AUDIO, or every sample of a --manifest."""
    _check_texts({"--ref-text": ref_text, "--text": text, "--system-prompt": system_prompt, "--scene": scene})
    long_text = LongTextSettings(max_chars_per_chunk=max_chars_per_chunk, context_chunks=context_chunks)
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.inference.clone import check_manifest_output, check_reference, clone_manifest
    from higgs_tune.inference.generate import load_for_cloning
    from higgs_tune.inference.long_text import clone_file

    given = [v is not None for v in (ref_audio, ref_text, text)]
    one_sample, batch = manifest is None and all(given), manifest is not None and not any(given)
    if not (one_sample or batch):
        raise typer.BadParameter("give either --manifest, or all of --ref-audio, --ref-text and --text")
    # Bad input and an output that would overwrite something are refused before the model loads (minutes
    # for the real one), not after.
    if ref_audio is not None:
        check_reference(ref_audio)
        _check_clone_outputs(out, codes_out, ref_audio, overwrite)
    samples = None if manifest is None else read_manifest(manifest, require_target=False)
    if samples is not None:
        inputs = [manifest, *{s.ref_audio for s in samples}, *{s.audio for s in samples if s.audio}]
        check_manifest_output(out, samples, inputs, overwrite)
    adapter = checkpoint_of(adapter, checkpoint)
    lm, processor, settings = load_for_cloning(model, adapter, system_prompt=system_prompt, scene=scene)
    sampling = sampling_config(greedy, temperature, top_p, top_k, ras_window, seed)
    limit = LengthLimit(chars_per_second=chars_per_second, max_seconds=max_seconds)
    if samples is not None:
        clone_manifest(lm, processor, samples, out, settings, sampling, limit, batch_size=batch_size)
        return
    result = clone_file(lm, processor, ref_audio, ref_text, text, settings, sampling, limit, long_text)
    _write_clone(result, out, codes_out, processor, max_seconds)


def _check_texts(texts: dict[str, str | None]) -> None:
    """Refuse, before any model is loaded, what `validate` refuses in a manifest: a control token in a text
    given on the command line (`data.problems.special_token_problem`), and a reference transcript or text
    to speak with no words (`data.problems.empty_text_problem`)."""
    from higgs_tune.data.problems import Problem, empty_text_problem, raise_for_errors, text_problems

    spoken = {k: v for k, v in texts.items() if k in ("--ref-text", "--text") and v is not None}
    empty = [found for field, text in spoken.items() if (found := empty_text_problem(text, field))]
    raise_for_errors([Problem(code, "clone", message) for code, message in empty])
    raise_for_errors(text_problems(texts, "clone", None))


def _check_clone_outputs(out: Path, codes_out: Path | None, ref_audio: Path, overwrite: bool) -> None:
    """Refuse a --out or --codes-out that is a folder, the reference clip, or (without --overwrite) a file
    that exists (`files.check_output_file`), and the two naming one file."""
    from higgs_tune.files import OutputInUseError, check_output_file

    check_output_file(out, "--out", overwrite, inputs=[ref_audio])
    if codes_out is not None:
        check_output_file(codes_out, "--codes-out", overwrite, inputs=[ref_audio, out])
        if codes_out.absolute() == out.absolute():
            raise OutputInUseError(f"--codes-out {codes_out} is --out too; give each its own file name")


def _write_clone(
    result: Clone | LongClone, out: Path, codes_out: Path | None, processor, max_seconds: float
) -> None:
    """Save one clone's codes (if asked, to exactly that path) and its wav, and say what its speech checks
    flagged; exit 1 when the model gave no audio frames at all."""
    import numpy as np

    from higgs_tune.data.audio import write_wav
    from higgs_tune.files import write_atomic

    if codes_out is not None:
        write_atomic(codes_out, lambda f: np.save(f, result.codes))
    if result.codes.shape[1] == 0:
        log.error("the model emitted its stream EOS at once: no audio frames, so %s was not written", out)
        raise typer.Exit(1)
    write_wav(out, result.audio, processor.feature_extractor.sampling_rate)
    if hasattr(result, "chunk_flags"):
        _say_chunks(result, out, processor.feature_extractor.sampling_rate)
        return
    rate = processor.audio_tokenizer.config.frame_rate
    how = "stream EOS" if result.stopped_by_eos else f"the {max_seconds:g} s limit (no EOS: cut)"
    log.info("wrote %s: %.2f s of audio, ended by %s", out, result.codes.shape[1] / rate, how)
    if result.flags:
        log.warning("speech checks of %s: %s", out, ", ".join(result.flags))
    else:
        log.info("speech checks of %s: no flags", out)


def _say_chunks(result: LongClone, out: Path, sr: int) -> None:
    """Say what a long text's clone wrote and which chunks its speech checks flagged, by number."""
    log.info("wrote %s: %.2f s of audio in %d chunks", out, result.audio.size / sr, len(result.chunks))
    flagged = [f"chunk {i + 1}: {', '.join(f)}" for i, f in enumerate(result.chunk_flags) if f]
    if flagged:
        log.warning("speech checks of %s: %s", out, "; ".join(flagged))
    else:
        log.info("speech checks of %s: no flags in any chunk", out)


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
