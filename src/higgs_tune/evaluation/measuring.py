"""The models that measure the clones (ASR and speaker), found and loaded before any cloning.

`eval` clones a whole held-out set, with one or two systems, before it measures anything; an ASR or speaker
model that cannot be loaded (a typo, no network) must end the run at once with one line that names the
model and the option to pass, not after the cloning, and not after minutes of hub retries
(`model.reference.check_model_reference`, as for the model being tuned).
"""

from __future__ import annotations

import logging
from pathlib import Path

from higgs_tune.errors import UserError
from higgs_tune.model.reference import ModelNotFoundError, check_model_reference

log = logging.getLogger(__name__)

# Where a model folder keeps the ASR and speaker models `eval` should use by default (`tiny-model` writes
# its tiny ones there).
EVAL_MODELS_ASR = "eval-models/asr"
EVAL_MODELS_SPEAKER = "eval-models/speaker"


class MeasuringModelError(UserError):
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


def load_measuring_models(
    asr_model: str, speaker_model: str, language: str | None, device: str, batch_size: int
):
    """The transcriber and the speaker encoder, or a `MeasuringModelError` naming the one that failed."""
    from higgs_tune.evaluation.asr import Transcriber
    from higgs_tune.evaluation.speaker import SpeakerEncoder

    what, option = "ASR model", "--asr-model"
    try:
        local = check_model_reference(asr_model, option)
        transcriber = Transcriber(
            asr_model, language=language, device=device, batch_size=batch_size, local_files_only=local
        )
        what, option = "speaker model", "--speaker-model"
        local = check_model_reference(speaker_model, option)
        speaker = SpeakerEncoder(speaker_model, device=device, local_files_only=local)
    except ModelNotFoundError as e:
        raise MeasuringModelError(str(e)) from None
    except (OSError, ValueError) as e:  # transformers' "can't load", missing files, a wrong model family
        name = asr_model if option == "--asr-model" else speaker_model
        reason = str(e).strip().split(". ")[0].splitlines()[0] if str(e).strip() else type(e).__name__
        raise MeasuringModelError(
            f"cannot load the {what} {name!r} ({reason}); pass another with {option}"
        ) from e
    return transcriber, speaker
