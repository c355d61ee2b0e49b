"""The `push` command: upload a fine-tune with its model card to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="Checkpoint, adapter/ or model/ folder, or merged model.")],
    repo: Annotated[str, typer.Option("--repo", help="Hub repo id, e.g. user/higgs-voice-ar.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
) -> None:
    """Upload a fine-tune's weights and model card to the Hugging Face Hub (HF_TOKEN or `hf auth login`)."""
    from higgs_tune.inference.push import push as push_folder

    # A folder that must not go up, a bad repo id, no network or the Hub's refusal: a `PushError`, which
    # `cli.main` prints as one line (exit 2).
    typer.echo(f"pushed: {push_folder(folder, repo, private)}")
