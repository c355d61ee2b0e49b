"""Logging set-up: one format, rank 0 only, so multi-process runs do not print everything N times."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized

from tqdm import tqdm

progress_log = logging.getLogger("higgs_tune.progress")


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


PROGRESS_EVERY = float(os.environ.get("HIGGS_TUNE_PROGRESS_EVERY", "10"))
"""Seconds between two progress lines in a log without a terminal (nohup, Slurm); the environment
variable HIGGS_TUNE_PROGRESS_EVERY sets another (0: a line per item)."""


class Progress:
    """Progress of a stage that may take a while: a tqdm bar on a terminal, and otherwise (no TTY: nohup,
    Slurm) a log line every `PROGRESS_EVERY` seconds and one at the end, each with items per second.

    The one home of progress reporting: every stage uses it (`with Progress(...) as bar: bar.update()`, or
    `for x in Progress(items, ...)`). `enabled=False` (another rank than 0) shows and logs nothing. A stage
    shorter than `PROGRESS_EVERY` logs no line at all: it did not keep anyone waiting.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        desc: str,
        unit: str,
        total: int | None = None,
        initial: int = 0,
        enabled: bool = True,
    ) -> None:
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = len(iterable) if total is None and isinstance(iterable, Sized) else total
        self.enabled = enabled and rank() == 0
        terminal = self.enabled and sys.stderr.isatty()
        self.bar = tqdm(total=self.total, initial=initial, desc=desc, unit=unit) if terminal else None
        self.n, self.initial, self.postfix = initial, initial, ""
        self.started = self.last = time.monotonic()

    def __iter__(self) -> Iterator:
        with self:
            for item in self.iterable or ():
                yield item
                self.update()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """`n` more items done."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.monotonic() - self.last >= PROGRESS_EVERY:
            self.last = time.monotonic()
            progress_log.info("%s", self.line())

    def set_postfix_str(self, text: str) -> None:
        """A figure shown after the rate (tqdm's name, so a bar and this read alike)."""
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def set_postfix(self, **figures: object) -> None:
        """Figures shown after the rate, by name (`loss=0.41`)."""
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in figures.items()))

    def line(self) -> str:
        """What a log line says: done of total, rate, what is left."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.n - self.initial) / elapsed
        done = f"{_count(self.n)}/{_count(self.total)}" if self.total else _count(self.n)
        left = ""
        if self.total and rate > 0 and self.n < self.total:
            left = f", about {(self.total - self.n) / rate:.0f} s left"
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} in {elapsed:.0f} s, {rate:,.2f} {self.unit}/s{extra}{left}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.last != self.started:  # it logged on the way: say that it ended
            progress_log.info("%s", self.line())
            self.last = self.started


def _count(n: float) -> str:
    return f"{n:,}" if float(n).is_integer() else f"{n:,.3f}"
