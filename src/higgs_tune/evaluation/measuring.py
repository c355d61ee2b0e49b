"""The models that measure the clones (ASR and speaker), found and loaded before any cloning.

`eval` clones a whole held-out set, with one or two systems, before it measures anything; an ASR or speaker
model that cannot be loaded (a typo, no network) must end the run at once with one line that names the
model and the option to pass, not after the cloning, and not after minutes of hub retries. So a name that
is neither a local folder nor in the local Hugging Face cache is only fetched from the hub when the hub
answers a quick probe and `HF_HUB_OFFLINE` is not set.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


# Where a model folder keeps the ASR and speaker models `eval` should use by default (`tiny-model` writes
# its tiny ones there).
EVAL_MODELS_ASR = "eval-models/asr"
EVAL_MODELS_SPEAKER = "eval-models/speaker"


class MeasuringModelError(Exception):
    """An ASR or speaker model that cannot be loaded; the message names it and the option to use."""


def default_measuring_models(model_id: str) -> tuple[str, str]:
    """The ASR and speaker models `eval` uses unless told otherwise: those a model folder carries in
    `eval-models/` (the tiny model does), else the released defaults."""
    from higgs_tune.evaluation.asr import DEFAULT_ASR_MODEL
    from higgs_tune.evaluation.speaker import DEFAULT_SPEAKER_MODEL

    folder = Path(model_id)
    asr, speaker = folder / EVAL_MODELS_ASR, folder / EVAL_MODELS_SPEAKER
    return (
        str(asr) if asr.is_dir() else DEFAULT_ASR_MODEL,
        str(speaker) if speaker.is_dir() else DEFAULT_SPEAKER_MODEL,
    )


def local_files_only(name: str, what: str, option: str) -> bool:
    """Whether `name` loads without the hub (a folder, or cached); raises `MeasuringModelError` when it is
    neither and the hub cannot be asked (offline, unreachable), instead of letting loading retry."""
    from huggingface_hub import constants, try_to_load_from_cache

    fix = f"pass a local folder or a reachable hub id with {option}"
    if Path(name).is_dir():
        return True
    if Path(name).is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise MeasuringModelError(f"{what} {name!r}: no such folder; {fix}")
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError as e:  # not a valid repo id
        raise MeasuringModelError(f"{what} {name!r}: not a folder nor a valid hub id ({e}); {fix}") from None
    if isinstance(cached, str):
        return True
    if constants.HF_HUB_OFFLINE:
        raise MeasuringModelError(f"{what} {name!r}: not in the local cache and HF_HUB_OFFLINE is set; {fix}")
    if not _hub_reachable(constants.ENDPOINT):
        raise MeasuringModelError(
            f"{what} {name!r}: not in the local cache and the hub ({constants.ENDPOINT}) cannot be "
            f"reached; {fix}"
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


def load_measuring_models(
    asr_model: str, speaker_model: str, language: str | None, device: str, batch_size: int
):
    """The transcriber and the speaker encoder, or a `MeasuringModelError` naming the one that failed."""
    from higgs_tune.evaluation.asr import Transcriber
    from higgs_tune.evaluation.speaker import SpeakerEncoder

    what, option = "ASR model", "--asr-model"
    try:
        local = local_files_only(asr_model, what, option)
        transcriber = Transcriber(
            asr_model, language=language, device=device, batch_size=batch_size, local_files_only=local
        )
        what, option = "speaker model", "--speaker-model"
        local = local_files_only(speaker_model, what, option)
        speaker = SpeakerEncoder(speaker_model, device=device, local_files_only=local)
    except MeasuringModelError:
        raise
    except (OSError, ValueError) as e:  # transformers' "can't load", missing files, a wrong model family
        name = asr_model if option == "--asr-model" else speaker_model
        reason = str(e).strip().split(". ")[0].splitlines()[0] if str(e).strip() else type(e).__name__
        raise MeasuringModelError(
            f"cannot load the {what} {name!r} ({reason}); pass another with {option}"
        ) from e
    return transcriber, speaker
