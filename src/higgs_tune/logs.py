"""Logging set-up: one format, rank 0 only, so multi-process runs do not print everything N times."""

from __future__ import annotations

import logging
import os
import sys


def rank() -> int:
    """The global rank of this process under torchrun or accelerate launch (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr on rank 0; other ranks log warnings and errors only."""
    logging.basicConfig(
        level=level if rank() == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "urllib3", "filelock", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    quiet_transformers()


def quiet_transformers() -> None:
    """transformers' weight-loading progress bars and its deprecation notices about its own internals
    (not about anything a user can change) would bury our logs; errors and warnings still show.

    Without importing transformers (a second of start-up that `--help` and `validate` do not need): where
    it is not imported yet, its settings are given as the environment variables it reads when it is.
    """
    import warnings

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        return
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # what `disable_progress_bar` also turns off
    if "huggingface_hub" in sys.modules:  # it reads the variable when imported
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
