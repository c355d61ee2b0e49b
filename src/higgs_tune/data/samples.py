"""The one sample type every data source produces, and the error that names a bad sample.

A cloning sample is a (reference clip, reference transcript, target text, target clip) tuple. The target
clip is optional so the same type serves inference-only manifests (batch cloning, evaluation prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from higgs_tune.errors import UserError


class SampleError(UserError):
    """A problem with one input sample or file; the message always names the sample (or file) and the fix."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Sample:
    """One zero-shot cloning pair, with paths already resolved relative to its manifest."""

    id: str
    ref_audio: Path
    ref_text: str
    text: str
    audio: Path | None = None
    speaker: str | None = None
    scene: str | None = None
