"""What one process knows of a prepare run: its inputs, its settings and its place among the processes.

`prepare_dataset` builds one `PrepareRun`; encoding (`prepared.encode`), the coordination of processes
(`prepared.ranks`) and writing the finished dataset (`prepared.finish`) each read what they need from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from higgs_tune.data.samples import Sample
from higgs_tune.prepared.assignment import Assignment
from higgs_tune.prepared.bad_samples import Skipped


@dataclass(frozen=True)
class PrepareRun:
    """One process's part of one prepare run."""

    out: Path
    samples: list[Sample]
    skipped: list[Skipped]  # entries already dropped from the manifest (--skip-bad)
    assignment: Assignment
    processor: Any
    model_id: str
    source: str  # what the dataset is made from (`finish.source_digest`)
    skip_bad: bool
    workers: int  # clip-loading processes
    rank: int
    world: int
    shard_size: int
    bounds: tuple[float, float]  # (min_seconds, max_seconds) of an accepted clip
    digest: str  # identity of this very run (`ranks.run_digest`), checked in the markers of other ranks
    text_normalisation: str = "none"  # how the texts were normalised (`data.text_normalisation`)
    source_dir: Path | None = None  # the manifest's folder, which recorded clip paths are relative to

    def recorded(self, path: Path) -> str | None:
        """A clip's path as the dataset records it: relative to the manifest's folder (`../x.wav` included),
        or None, only the content hash, for a clip given by an absolute path elsewhere (or without a
        manifest), so a shared dataset never shows the folders its maker keeps files in."""
        if self.source_dir is None:
            return None
        try:
            return Path(path).absolute().relative_to(self.source_dir.absolute()).as_posix()
        except ValueError:
            return None

    def shown(self, path: Path) -> str:
        """A clip's path as skipped.jsonl names it: recorded, else its file name alone."""
        return self.recorded(path) or Path(path).name

    @property
    def codec(self):
        """The codec's config: codebooks, frame rate, hop length."""
        return self.processor.audio_tokenizer.config

    @property
    def codec_digest(self) -> str:
        """The codec's identity (`model.fingerprint.codec_digest`); training checks its model has it."""
        from higgs_tune.model.fingerprint import codec_digest

        return codec_digest(self.processor.audio_tokenizer)
