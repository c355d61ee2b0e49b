"""What `higgs-tune validate` found: counts per problem, the first examples of each, the rejected samples and
corpus statistics, as a table for people and as JSON for scripts.

The report keeps counts plus the first few examples per problem, so that it stays small for millions of
samples. The checks that fill it are in `higgs_tune.data.validate`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from higgs_tune.data.problems import CODES, ERROR, WARNING, Problem
from higgs_tune.data.samples import Sample


@dataclass(frozen=True)
class Distribution:
    """min / median / 95th percentile / max of some measurement, for the report."""

    count: int
    min: float
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Distribution | None:
        if not values:
            return None
        a = np.asarray(values, dtype=np.float64)
        p50, p95 = np.percentile(a, [50, 95])
        return cls(len(a), float(a.min()), float(p50), float(p95), float(a.max()))


@dataclass
class ValidationReport:
    """Counts per problem, the first examples of each, which samples are rejected, and corpus statistics."""

    manifest: Path
    settings: dict[str, Any]
    max_examples: int = 5
    entries: int = 0
    samples: list[Sample] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    files: dict[str, set[Path]] = field(default_factory=dict)
    examples: dict[str, list[Problem]] = field(default_factory=dict)
    # sample id -> measurement, for every sample whose clip could be read
    target_seconds: dict[str, float] = field(default_factory=dict)
    target_clips: dict[str, Path] = field(default_factory=dict)  # sample id -> its target file, resolved
    reference_seconds: dict[str, float] = field(default_factory=dict)
    chars_per_second: dict[str, float] = field(default_factory=dict)  # target letters per second
    clip_count: int = 0
    clip_seconds: float = 0.0

    def add(self, problem: Problem, *, reject: bool = False) -> None:
        """Count a problem; `reject` marks its sample as unusable (only for samples that were read)."""
        self.counts[problem.code] += 1
        if problem.path is not None:
            self.files.setdefault(problem.code, set()).add(problem.path)
        examples = self.examples.setdefault(problem.code, [])
        if len(examples) < self.max_examples:
            examples.append(problem)
        if reject and problem.sample_id is not None:
            self.rejected.add(problem.sample_id)

    def _total(self, severity: str) -> int:
        return sum(n for code, n in self.counts.items() if CODES[code][0] == severity)

    @property
    def n_errors(self) -> int:
        return self._total(ERROR)

    @property
    def n_warnings(self) -> int:
        return self._total(WARNING)

    @property
    def ok(self) -> bool:
        """True when there is no error at all (warnings allowed): what `higgs-tune validate` exits 0 on."""
        return self.n_errors == 0

    def clean_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.id not in self.rejected]

    @property
    def usable_hours(self) -> float:
        """Hours of target audio in samples without errors: what training will actually see per epoch."""
        return sum(self._usable(self.target_seconds)) / 3600.0

    @property
    def usable_distinct_hours(self) -> float:
        """Hours of the distinct target clips of samples without errors, each counted once however many
        samples repeat it: the audio there is to learn from."""
        clips = {
            self.target_clips[i]: self.target_seconds[i] for i in self.target_clips if i not in self.rejected
        }
        return sum(clips.values()) / 3600.0

    def _usable(self, values: dict[str, float]) -> list[float]:
        return [v for sample_id, v in values.items() if sample_id not in self.rejected]

    def distributions(self) -> dict[str, Distribution | None]:
        """Over usable samples: what training will see (rejected ones are listed as errors instead)."""
        return {
            "target_seconds": Distribution.of(self._usable(self.target_seconds)),
            "reference_seconds": Distribution.of(self._usable(self.reference_seconds)),
            "target_chars_per_second": Distribution.of(self._usable(self.chars_per_second)),
        }

    def _codes(self) -> list[str]:
        return [code for code in CODES if self.counts[code]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "ok": self.ok,
            "settings": self.settings,
            "entries": self.entries,
            "samples_read": len(self.samples),
            "samples_rejected": len(self.rejected),
            "samples_usable": len(self.samples) - len(self.rejected),
            "errors": self.n_errors,
            "warnings": self.n_warnings,
            "usable_target_hours": round(self.usable_hours, 4),
            "usable_distinct_target_hours": round(self.usable_distinct_hours, 4),
            "distinct_clips": self.clip_count,
            "distinct_clip_hours": round(self.clip_seconds / 3600.0, 4),
            "distributions": {k: None if d is None else vars(d) for k, d in self.distributions().items()},
            "problems": {
                code: {
                    "severity": CODES[code][0],
                    "meaning": CODES[code][1],
                    "count": self.counts[code],
                    "files": len(self.files.get(code, ())),
                    "examples": [
                        {
                            "sample_id": p.sample_id,
                            "where": p.where,
                            "path": None if p.path is None else str(p.path),
                            "message": p.message,
                        }
                        for p in self.examples[code]
                    ],
                }
                for code in self._codes()
            },
        }

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)

    def table(self) -> str:
        """The human-readable report (returned, not printed, so the CLI decides where it goes)."""
        usable = len(self.samples) - len(self.rejected)
        lines = [
            f"Manifest {self.manifest}: {self.entries} entries, {len(self.samples)} samples read, "
            f"{len(self.rejected)} rejected, {usable} usable",
            f"{self.n_errors} errors, {self.n_warnings} warnings",
            f"Usable target audio: {_span(self.usable_distinct_hours * 3600)} distinct "
            f"({_span(self.usable_hours * 3600)} with repeats); {self.clip_count} distinct readable "
            f"clips: {_span(self.clip_seconds)}",
            "",
            f"{'usable samples':22}{'n':>7}{'min':>9}{'p50':>9}{'p95':>9}{'max':>9}",
        ]
        labels = {
            "target_seconds": "target seconds",
            "reference_seconds": "reference seconds",
            "target_chars_per_second": "target letters/second",
        }
        for key, d in self.distributions().items():
            if d is not None:
                row = f"{d.count:>7}{d.min:>9.2f}{d.p50:>9.2f}{d.p95:>9.2f}{d.max:>9.2f}"
                lines.append(f"{labels[key]:22}{row}")
        codes = self._codes()
        if not codes:
            lines += ["", "No problems found."]
            return "\n".join(lines)
        lines += ["", f"{'severity':9}{'problem':22}{'count':>8}{'files':>7}  meaning"]
        for code in codes:
            severity, meaning = CODES[code]
            files = len(self.files[code]) if code in self.files else "-"
            lines.append(f"{severity:9}{code:22}{self.counts[code]:>8}{files:>7}  {meaning}")
        lines += ["", f"First {self.max_examples} examples per problem:"]
        for code in codes:
            lines.append(f"{code}:")
            lines += [f"  {p.describe()}" for p in self.examples[code]]
        return "\n".join(lines)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"
