"""The models that measure the clones (ASR and speaker), found and loaded before any cloning.

`eval` clones a whole held-out set, with one or two systems, before it measures anything; an ASR or speaker
model that cannot be loaded (a typo, no network) must end the run at once with one line that names the
model and the option to pass, not after the cloning, and not after minutes of hub retries
(`model.reference.check_model_reference`, as for the model being tuned).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NamedTuple

from higgs_tune.errors import UserError
from higgs_tune.model.reference import ModelNotFoundError, check_model_reference

log = logging.getLogger(__name__)

# Where a model folder keeps the ASR and speaker models `eval` should use by default (`tiny-model` writes
# its tiny ones there).
EVAL_MODELS_ASR = "eval-models/asr"
EVAL_MODELS_SPEAKER = "eval-models/speaker"


class MeasuringModels(NamedTuple):
    """The loaded ASR (`scoring.asr.Transcriber`) and speaker encoder
    (`scoring.speaker.SpeakerEncoder`), by name: the scorers take both, the reference embeddings only the
    speaker encoder."""

    transcriber: Any
    speaker: Any


class MeasuringModelError(UserError):
    """An ASR or speaker model that cannot be loaded; the message names it and the option to use."""


def measuring_models(model_id: str, asr_model: str = "", speaker_model: str = "") -> tuple[str, str]:
    """The ASR and speaker models to measure with: those given (`--asr-model`, `--speaker-model`), else
    those a model folder carries in `eval-models/` (the tiny model does), else the released defaults.

    One taken from `eval-models/` is said at WARNING: its WER, CER and similarity are not comparable with
    figures measured with the released defaults the README names, and nothing on the command line says so.
    """
    from higgs_tune.scoring.asr import DEFAULT_ASR_MODEL
    from higgs_tune.scoring.speaker import DEFAULT_SPEAKER_MODEL

    folder = Path(model_id)
    chosen, carried = [], []
    for given, sub, default, option in (
        (asr_model, EVAL_MODELS_ASR, DEFAULT_ASR_MODEL, "--asr-model"),
        (speaker_model, EVAL_MODELS_SPEAKER, DEFAULT_SPEAKER_MODEL, "--speaker-model"),
    ):
        if not given and (folder / sub).is_dir():
            given = str(folder / sub)
            carried.append(f"{given} instead of the default {default} ({option} to choose)")
        chosen.append(given or default)
    if carried:
        log.warning(
            "measuring with the model folder's own eval-models/: %s; figures are not comparable with "
            "those measured with the defaults",
            ", ".join(carried),
        )
    return chosen[0], chosen[1]


def load_measuring_models(
    asr_model: str, speaker_model: str, language: str | None, device: str, batch_size: int
) -> MeasuringModels:
    """The transcriber and the speaker encoder, or a `MeasuringModelError` naming the one that failed."""
    from higgs_tune.scoring.asr import Transcriber
    from higgs_tune.scoring.ctc import CtcTranscriber, is_ctc_model
    from higgs_tune.scoring.speaker import SpeakerEncoder

    what, option = "ASR model", "--asr-model"
    try:
        local = check_model_reference(asr_model, option)
        if is_ctc_model(asr_model, local):  # Habibi's WER-S models (`ctc`)
            transcriber = CtcTranscriber(asr_model, device=device, local_files_only=local)
        else:
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
    return MeasuringModels(transcriber, speaker)
