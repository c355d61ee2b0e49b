"""`higgs-tune listen-score`: un-blind the answers of a listening test (`listening`) and say, per question,
how often listeners preferred the fine-tune, with a 95% confidence interval.

A "same" answer is a tie: it is reported apart and left out of the preference, which is the fine-tune's
share of the answers that chose a side. The interval is Wilson's score interval for that binomial share
(sound at the small counts a listening test has, unlike the normal approximation, and never outside
[0, 1]). It treats every answer as independent; several listeners judging the same samples are not quite
that, so read a narrow interval from many listeners on few samples with care.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from higgs_tune.data.samples import SampleError
from higgs_tune.evaluation.evaluate import system_titles
from higgs_tune.evaluation.listening import CHOICES, QUESTIONS

Z_95 = 1.959964  # the standard normal quantile of 0.975


@dataclass(frozen=True)
class Preference:
    """One question's un-blinded answers over every listener and sample."""

    question: str
    finetuned: int
    base: int
    same: int
    unanswered: int

    @property
    def share(self) -> float | None:
        """The fine-tune's share of the answers that chose a side (None when none did)."""
        decided = self.finetuned + self.base
        return self.finetuned / decided if decided else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.finetuned, self.finetuned + self.base)


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson's score interval of a binomial proportion (None without trials)."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def score_listening_test(
    key_path: Path, answer_paths: list[Path]
) -> tuple[list[Preference], list[str], dict[str, str]]:
    """Un-blind every answer file against `key.json`; returns each question's preference, the listeners'
    names (as they typed them, or the file name) and what the key calls the two systems."""
    key = _read_json(key_path)
    if not {"test_id", "trials"} <= key.keys():
        raise SampleError(str(key_path), "is not a listening test's key.json (`higgs-tune listen` writes it)")
    blind = {t["trial"]: t for t in key["trials"]}
    counts = {q: {"finetuned": 0, "base": 0, "same": 0, "unanswered": 0} for q in QUESTIONS}
    listeners = []
    for path in answer_paths:
        answers = _read_answers(path, key, blind)
        listeners.append(answers.get("listener") or Path(path).name)
        for trial, entry in blind.items():
            given = answers["answers"].get(trial, {})
            for question in QUESTIONS:
                choice = given.get(question)
                side = "unanswered" if choice is None else "same" if choice == "same" else entry[choice]
                counts[question][side] += 1
    systems = key.get("systems") or system_titles({})  # keys written before the names were recorded
    return [Preference(q, **c) for q, c in counts.items()], listeners, systems


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SampleError(str(path), f"is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SampleError(str(path), "is not a JSON object")
    return data


def _read_answers(path: Path, key: dict, blind: dict[str, dict]) -> dict:
    """One listener's exported answers, checked against the key: the same test, known trials and
    questions, and only A, B or same."""
    answers = _read_json(path)
    if answers.get("test_id") != key["test_id"]:
        raise SampleError(
            str(path),
            f"answers test {answers.get('test_id')!r}, but the key is for test {key['test_id']!r}: "
            "pass the key.json written with the page these answers were exported from",
        )
    if not isinstance(answers.get("answers"), dict):
        raise SampleError(str(path), "has no answers: export them with the page's button")
    for trial, given in answers["answers"].items():
        if trial not in blind or not isinstance(given, dict):
            raise SampleError(str(path), f"answers an unknown sample {trial!r}: is the file edited?")
        for question, choice in given.items():
            if question not in QUESTIONS or choice not in CHOICES:
                raise SampleError(
                    str(path),
                    f"sample {trial!r}: {question!r} = {choice!r} is not one of the questions "
                    f"{', '.join(QUESTIONS)} with an answer among {', '.join(CHOICES)}",
                )
    return answers


def render_preferences(
    preferences: list[Preference], listeners: list[str], systems: dict[str, str] | None = None
) -> str:
    """The un-blinded result, one line per question, the systems named as the eval report names them."""
    systems = systems or system_titles({})
    tuned, base = systems["finetuned"], systems["base"]
    lines = [f"{len(listeners)} listener(s): {', '.join(listeners)}"]
    for p in preferences:
        counts = f"{tuned} {p.finetuned}, {base} {p.base}, same {p.same}, unanswered {p.unanswered}"
        if p.share is None:
            lines.append(f"{QUESTIONS[p.question]} no answer chose a side ({counts})")
            continue
        low, high = p.interval
        lines.append(
            f"{QUESTIONS[p.question]} {tuned} preferred in {p.finetuned} of {p.finetuned + p.base} "
            f"answers that chose a side: {100 * p.share:.0f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%, "
            f"Wilson); {counts}"
        )
    return "\n".join(lines)
