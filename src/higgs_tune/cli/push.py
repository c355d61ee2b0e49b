"""The `push` command: upload a fine-tune with its model card to the Hugging Face Hub."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app

log = logging.getLogger("higgs_tune")


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="Checkpoint, adapter/ or model/ folder, or merged model.")],
    repo: Annotated[str, typer.Option("--repo", help="Hub repo id, e.g. user/higgs-voice-ar.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
) -> None:
    """Upload a fine-tune's weights and model card to the Hugging Face Hub (HF_TOKEN or `hf auth login`)."""
    from huggingface_hub.errors import HfHubHTTPError

    from higgs_tune.inference.push import PushError
    from higgs_tune.inference.push import push as push_folder

    try:
        url = push_folder(folder, repo, private)
    except (PushError, HfHubHTTPError) as e:  # the Hub's refusals (no token, no write access) name the cause
        log.error("%s", e)
        raise typer.Exit(2) from None
    typer.echo(f"pushed: {url}")
