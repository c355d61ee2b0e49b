"""Commands of the data stage: `validate` a manifest, build zero-shot `pairs`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import language_option
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS

log = logging.getLogger("higgs_tune")


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
        str | None,
        typer.Option(
            help="Target language (ar, arabic, ar-SA, ...): reads numbers in the speaking rates; Arabic also "
            "checks that targets have Arabic letters.",
            callback=language_option,
        ),
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
    seed: Annotated[int, typer.Option(help="Pairing (and held-out speaker) seed.")] = 0,
    heldout_speakers: Annotated[
        str | None,
        typer.Option(
            help="Hold out whole speakers for eval: a count (5) or a fraction of them (0.1). Their pairs go "
            "to --heldout-out, what went where to OUT's name with .split.json."
        ),
    ] = None,
    heldout_out: Annotated[
        Path | None, typer.Option(help="Held-out manifest (default: OUT's name with .heldout).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace output files that exist.")] = False,
) -> None:
    """Build zero-shot cloning pairs (reference: another utterance of the same speaker), and with
    --heldout-speakers a held-out manifest of speakers the training manifest never has."""
    from higgs_tune.data.manifests import write_manifest_jsonl
    from higgs_tune.data.pairs import build_pairs, heldout_amount, read_utterances, split_speakers
    from higgs_tune.files import check_output_file

    outputs = _pairs_outputs(out, heldout_speakers, heldout_out)
    for option, path in outputs.items():
        check_output_file(path, option, overwrite, inputs=[source])
    utterances = read_utterances(source)
    if heldout_speakers is None:
        result = build_pairs(utterances, refs_per_target=refs_per_target, seed=seed)
        write_manifest_jsonl(result.pairs, out)
        typer.echo(result.summary())
        return
    split = split_speakers(utterances, heldout_amount(heldout_speakers), seed=seed)
    log.info("pairs: %s", split.summary())
    training = build_pairs(split.training_utterances, refs_per_target=refs_per_target, seed=seed)
    heldout = build_pairs(split.heldout_utterances, refs_per_target=refs_per_target, seed=seed)
    _write_split(split, training, heldout, outputs)


def _pairs_outputs(out: Path, heldout_speakers: str | None, heldout_out: Path | None) -> dict[str, Path]:
    """The files `pairs` writes, by the option (or name) that chose each: a held-out manifest and the split
    summary only with --heldout-speakers; two options naming one file are refused."""
    from higgs_tune.data.pairs import heldout_amount
    from higgs_tune.errors import UserError

    if heldout_speakers is None and heldout_out is not None:
        raise UserError("--heldout-out needs --heldout-speakers (how many speakers to hold out)")
    outputs = {"--out": out}
    if heldout_speakers is not None:
        heldout_amount(heldout_speakers)  # a bad count is refused before any file is looked at
        outputs["--heldout-out"] = heldout_out or out.with_name(f"{out.stem}.heldout{out.suffix}")
        outputs["the split summary"] = out.with_name(f"{out.stem}.split.json")
    if len({p.absolute() for p in outputs.values()}) < len(outputs):
        raise UserError(f"--out and --heldout-out must be different files, got {out} for both")
    return outputs


def _write_split(split, training, heldout, outputs: dict[str, Path]) -> None:
    """Write the training and held-out manifests and what went where, and say so."""
    from higgs_tune.data.manifests import write_manifest_jsonl
    from higgs_tune.files import write_json

    out, heldout_out, summary = outputs["--out"], outputs["--heldout-out"], outputs["the split summary"]
    write_manifest_jsonl(training.pairs, out)
    write_manifest_jsonl(heldout.pairs, heldout_out)
    write_json(
        summary,
        {
            **split.record(),
            "training_manifest": str(out),
            "training_pairs": len(training.pairs),
            "heldout_manifest": str(heldout_out),
            "heldout_pairs": len(heldout.pairs),
        },
    )
    typer.echo(f"training: {training.summary()}")
    typer.echo(f"held out: {heldout.summary()}")
    typer.echo(f"{split.summary()}; what went where: {summary}")


@app.command()
def normalise(
    text: Annotated[
        str | None, typer.Argument(help="Text to normalise; without it, every line of stdin.")
    ] = None,
    text_normalisation: Annotated[
        str | None,
        typer.Option(
            help="none, whitespace, arabic, arabic_no_diacritics or arabic_spoken (docs: text normalisation)."
        ),
    ] = None,
    language: Annotated[
        str | None,
        typer.Option(
            help="Use the language's recommended normalisation (ar: arabic_spoken).", callback=language_option
        ),
    ] = None,
) -> None:
    """Print TEXT (or each line of stdin, one line out per line in) normalised as a fine-tune's prompt
    normalises it: what a client of a server that normalises nothing (vLLM-Omni) sends."""
    import sys

    from higgs_tune.data.text_normalisation import (
        TEXT_NORMALISATIONS,
        normalise_text,
        recommended_normalisation,
    )

    if text_normalisation is not None and language is not None:
        raise typer.BadParameter("give --text-normalisation or --language, not both")
    how = text_normalisation or recommended_normalisation(language)
    if how not in TEXT_NORMALISATIONS:
        raise typer.BadParameter(
            f"--text-normalisation {how!r}: choose from {', '.join(TEXT_NORMALISATIONS)}"
        )
    lines = [text] if text is not None else sys.stdin.read().splitlines()
    for line in lines:
        typer.echo(normalise_text(line, how))
