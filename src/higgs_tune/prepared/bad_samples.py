"""Which samples a prepare run cannot use, and why: clips that are unreadable, refused or their own target.

The encoder checks as it goes (without --skip-bad the first bad sample stops the run, naming it), and the
finishing step lists every skipped sample; both go through `clip_problems`, so they always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from higgs_tune.data.problems import same_clip_problem
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.prepared.assignment import Assignment


@dataclass(frozen=True)
class Skipped:
    """A sample left out of the dataset (only with --skip-bad), and why; one line of skipped.jsonl."""

    id: str
    code: str
    problem: str


def clip_problems(
    s: Sample,
    assignment: Assignment,
    failed: dict[str, tuple[str, str]],
    shown: Callable[[Path], str] = str,
) -> list[tuple[str, str]]:
    """(code, message) for each clip of a sample that cannot be used, naming the sample's own file as
    `shown` writes it (as given for the console; without its folders for skipped.jsonl).

    `failed` maps the clips that could not be encoded to their (code, message). Prepare knows the clips'
    content hashes, not whether two names are one file: the same bytes are the same clip.
    """
    ref, target = assignment.clip_of.get(s.ref_audio), assignment.clip_of.get(s.audio)
    same = same_clip_problem(ref, target)
    if same is not None:
        return [same]
    problems = []
    for role, path in (("reference audio", s.ref_audio), ("target audio", s.audio)):
        if path in assignment.unreadable:
            error = assignment.unreadable[path]
            problems.append((error.code, f"{role} {shown(path)}: {error.problem}"))
        elif assignment.clip_of[path] in failed:
            code, problem = failed[assignment.clip_of[path]]
            problems.append((code, f"{role} {shown(path)}: {problem}"))
    return problems


def raise_for_bad(
    samples: Iterable[Sample], assignment: Assignment, failed: dict[str, tuple[str, str]]
) -> None:
    """Stop on the first sample (in manifest order) with an unusable clip, naming it and the problem."""
    for s in samples:
        problems = clip_problems(s, assignment, failed)
        if problems:
            raise SampleError(f"sample {s.id!r}", "; ".join(message for _, message in problems))


def shard_failures(lines: list[dict]) -> dict[str, tuple[str, str]]:
    """clip -> (problem code, message) of the clips a shard's lines record as unusable."""
    return {line["clip"]: (line["code"], line["problem"]) for line in lines if "problem" in line}
