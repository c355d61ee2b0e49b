"""Commands of the blind listening test: `listen` writes the page, `listen-score` un-blinds the answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app


@app.command("listen")
def listen(
    eval_dir: Annotated[Path, typer.Argument(help="Folder written by `eval --adapter RUN --baseline`.")],
    out: Annotated[
        Path, typer.Option(help="New or empty folder for the page, its clips and key.json.")
    ] = Path("ab"),
    seed: Annotated[int, typer.Option(help="Seed of the sample order and of each A/B order.")] = 0,
) -> None:
    """Write a blind A/B listening test of the fine-tune against the base model: a static page (open
    OUT/index.html in a browser, or send the folder without key.json) and OUT/key.json, the hidden order.
    The page carries only clips from inside EVAL_DIR; an OUT that holds anything is refused, never emptied."""
    from higgs_tune.evaluation.listening import write_listening_test

    page = write_listening_test(eval_dir, out, seed)
    typer.echo(f"listening test: {page}\nkey (keep it from the listeners): {out / 'key.json'}")


@app.command("listen-score")
def listen_score(
    key: Annotated[Path, typer.Argument(help="The key.json that `listen` wrote.")],
    answers: Annotated[list[Path], typer.Argument(help="Answer files exported from the page.")],
) -> None:
    """Un-blind listeners' answers: the preference for the fine-tune per question, with a 95% confidence
    interval on the answers that chose a side ("same" is counted apart). Each answer file counts once."""
    from higgs_tune.evaluation.listening_score import render_preferences, score_listening_test

    typer.echo(render_preferences(*score_listening_test(key, answers)))
