"""`higgs-tune push`: upload a fine-tune's weights folder, with its model card, to the Hugging Face Hub.

What goes up is one folder of weights (a checkpoint's `adapter/` or `model/`, or a merged model), never a
checkpoint's training state: given a checkpoint folder, its weights folder is uploaded. A folder without a
card or without weights is refused before anything is sent, since a repo without either is of no use to
whoever finds it. The upload is huggingface_hub's (`create_repo`, then one `upload_folder` commit), so
`HF_TOKEN` / `hf auth login` and `HF_ENDPOINT` apply as everywhere else.
"""

from __future__ import annotations

import logging
from pathlib import Path

from higgs_tune import checkpoint
from higgs_tune.training.card import CARD, weights_folder

log = logging.getLogger(__name__)

# A folder holds weights when it has one of these (peft's adapter, transformers' model, sharded or not).
WEIGHT_FILES = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
)


class PushError(ValueError):
    """A folder that must not be pushed; the message names it and the fix."""


def folder_to_push(folder: Path) -> Path:
    """The weights folder that `folder` names (a checkpoint's own, or `folder` itself), checked to hold a
    model card and weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder}: no such folder")
    if (folder / checkpoint.TRAINER_STATE).is_file():
        folder = weights_folder(folder)
    if not (folder / CARD).is_file():
        raise PushError(
            f"{folder}: no model card ({CARD}); push a checkpoint or its adapter/ or model/ folder, or a "
            "`higgs-tune merge` output (they get one when saved), not a run folder or a folder of your own"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise PushError(f"{folder}: no weights ({', '.join(WEIGHT_FILES)}); nothing to push")
    return folder


def push(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create `repo_id` (a model repo; kept if it exists) and upload the weights folder in one commit;
    returns the commit's URL."""
    from huggingface_hub import HfApi

    folder = folder_to_push(folder)
    api = HfApi()
    # Not private: the namespace's default visibility, as on the Hub's own pages.
    api.create_repo(repo_id, private=private or None, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message=f"Upload {folder.name} with higgs-tune"
    )
    log.info("pushed %s to %s: %s", folder, repo_id, commit.commit_url)
    return commit.commit_url
