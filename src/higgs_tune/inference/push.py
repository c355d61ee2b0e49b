"""`higgs-tune push`: upload a fine-tune's weights folder, with its model card, to the Hugging Face Hub.

What goes up is one folder of weights (a checkpoint's `adapter/` or `model/`, or a merged model), never a
checkpoint's training state: given a checkpoint folder, its weights folder is uploaded. A folder without a
card or without weights is refused before anything is sent, since a repo without either is of no use to
whoever finds it. The upload is huggingface_hub's (`create_repo`, then one `upload_folder` commit), so
`HF_TOKEN` / `hf auth login` and `HF_ENDPOINT` apply as everywhere else. A repo id the Hub would refuse
is refused before any request; no network (offline mode, no DNS, a refused connection) and the Hub's own
refusals are one `PushError` line naming the cause.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from higgs_tune import checkpoint
from higgs_tune.card import CARD
from higgs_tune.checkpoint import WEIGHT_FILES
from higgs_tune.errors import UserError

log = logging.getLogger(__name__)


class PushError(UserError):
    """A folder that must not be pushed; the message names it and the fix."""


def folder_to_push(folder: Path) -> Path:
    """The weights folder that `folder` names (a checkpoint's own, or `folder` itself), checked to hold a
    model card and weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder}: no such folder")
    if (folder / checkpoint.TRAINER_STATE).is_file():
        folder = checkpoint.weights_dir(folder)
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
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PushError(f"--repo {repo_id!r} is not a Hub repo id ({e}); give it as user/name") from None
    folder = folder_to_push(folder)
    api = HfApi()
    try:
        # Not private: the namespace's default visibility, as on the Hub's own pages.
        api.create_repo(repo_id, private=private or None, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, commit_message=f"Upload {folder.name} with higgs-tune"
        )
    except HfHubHTTPError as e:  # the Hub answered and refused (no token, no write access, ...)
        raise PushError(f"the Hub refused to push {folder} to {repo_id}: {_one_line(e)}") from None
    except (ConnectionError, *_transport_errors()) as e:
        raise PushError(
            f"cannot reach the Hub at {constants.ENDPOINT} to push {repo_id} ({_one_line(e)}): nothing was "
            "uploaded; check the network, HF_HUB_OFFLINE and HF_ENDPOINT, then run the same command again"
        ) from None
    log.info("pushed %s to %s: %s", folder, repo_id, commit.commit_url)
    return commit.commit_url


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's failures to reach a server at all (no DNS, refused, timed out): `TransportError`
    of httpx (huggingface_hub 1) or httpx2 (huggingface_hub 2), whichever is installed. Offline mode is
    huggingface_hub's `OfflineModeIsEnabled`, a `ConnectionError`."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except ImportError:
            continue
    return tuple(found)


def _one_line(error: Exception) -> str:
    """An error's message on one line (the Hub's carry the server's reply on lines of their own)."""
    return " ".join(str(error).split()) or type(error).__name__
