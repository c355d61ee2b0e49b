"""Where a model named on the command line comes from, checked before anything is loaded.

A name is a local folder or a hub repo id. transformers treats anything else as a hub id and, offline or
with a typo, retries the hub for minutes before failing with a traceback. `check_model_reference` answers
at once, in one line: a folder that does not exist, a hub id that is neither cached nor reachable. It
serves every model we load: the one being tuned (`--model`) and the measuring models (`--asr-model`,
`--speaker-model`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from higgs_tune.errors import UserError

# How long the one reachability probe of the hub may take (a TCP connection, no HTTP retries).
PROBE_TIMEOUT_S = 3.0


class ModelNotFoundError(UserError, FileNotFoundError):
    """A model name that is neither a local folder nor a hub repo that can be reached."""


def check_model_reference(name: str | os.PathLike, option: str = "--model") -> bool:
    """Whether `name` loads without the hub (a folder, or a cached repo); raise `ModelNotFoundError` when
    it is neither and the hub cannot be asked (offline, unreachable), or when it can only be a path."""
    from huggingface_hub import constants, try_to_load_from_cache

    name = str(name)
    fix = f"pass a local folder or a reachable hub id with {option}"
    path = Path(name).expanduser()
    if path.is_dir():
        return True
    if path.exists():
        raise ModelNotFoundError(f"{option} {name}: is a file, not a model folder (with config.json); {fix}")
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(f"{option} {name}: no such folder ({path.absolute()}); {fix}")
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError as e:  # not a valid repo id
        raise ModelNotFoundError(f"{option} {name}: not a folder nor a valid hub id ({e}); {fix}") from None
    if isinstance(cached, str):
        return True
    if constants.is_offline_mode():
        raise ModelNotFoundError(
            f"{option} {name}: no local folder {path.absolute()}, and not in the hub cache while offline "
            f"(HF_HUB_OFFLINE); {fix}"
        )
    if not _hub_reachable(constants.ENDPOINT):
        raise ModelNotFoundError(
            f"{option} {name}: no local folder {path.absolute()}, and the hub ({constants.ENDPOINT}) cannot "
            f"be reached; {fix}"
        )
    return False


def _hub_reachable(endpoint: str) -> bool:
    """A TCP connection to the hub within a few seconds (no HTTP retries)."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False
