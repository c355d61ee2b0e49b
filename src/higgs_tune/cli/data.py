"""Commands of the data stage: `validate` a manifest, build zero-shot `pairs`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS


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
