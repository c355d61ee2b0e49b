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
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from higgs_tune.data.samples import SampleError
from higgs_tune.evaluation.listening import CHOICES, QUESTIONS
from higgs_tune.evaluation.page_text import BIDI_CONTROLS
from higgs_tune.evaluation.report import BASELINE, SYSTEMS, TUNED, system_titles
from higgs_tune.files import content_hash

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
    names (as they typed them, or the file name) and what the key calls the two systems.

    Each file is checked whole as it is read (`read_key`, `read_answers`), so a bad one ends the run in one
    line, before any result; an answer file given twice (by the same path, or a copy) is refused: counted
    twice, it would narrow the interval as a second listener would.
    """
    key = read_key(key_path)
    blind = {t["trial"]: t for t in key["trials"]}
    counts = {q: {TUNED: 0, BASELINE: 0, "same": 0, "unanswered": 0} for q in QUESTIONS}
    listeners = []
    seen: dict[str, Path] = {}
    for path in answer_paths:
        answers = read_answers(path, key)
        digest = content_hash(path)
        if digest in seen:
            raise SampleError(
                str(path),
                f"holds the same answers as {seen[digest]}, given before it: each answer file counts once, "
                "so pass it once",
            )
        seen[digest] = Path(path)
        listeners.append(answers.get("listener") or Path(path).name)
        for trial, entry in blind.items():
            given = answers["answers"].get(trial, {})
            for question in QUESTIONS:
                choice = given.get(question)
                side = "unanswered" if choice is None else "same" if choice == "same" else entry[choice]
                counts[question][side] += 1
    systems = key.get("systems") or system_titles()  # keys written before the names were recorded
    return [Preference(q, **c) for q, c in counts.items()], listeners, systems


def _read_json(path: Path, what: str) -> dict:
    """The JSON object in `path`; anything else (no such file, a folder, not UTF-8, not JSON, a number too
    long or nesting too deep for the parser, not an object) is refused naming the file and `what` it should
    be."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
        data = json.loads(text)
    except OSError as e:
        raise SampleError(str(path), f"cannot be read ({e.strerror or e}): pass {what}") from None
    except UnicodeDecodeError:
        raise SampleError(str(path), f"is not UTF-8 text: pass {what}") from None
    except (ValueError, RecursionError) as e:  # a JSON error, a 5,000-digit number, 100,000 open brackets
        raise SampleError(
            str(path), f"is not valid JSON ({_shown(str(e), 120)[1:-1]}): pass {what}"
        ) from None
    if not isinstance(data, dict):
        raise SampleError(str(path), f"is not a JSON object: pass {what}")
    return data


def read_key(path: Path) -> dict:
    """A listening test's `key.json`, checked whole: its test id, and trials that each name a distinct
    trial and play the two systems as A and B; `systems`, when there, names both systems."""
    what = "the key.json that `higgs-tune listen` wrote"
    key = _read_json(path, what)

    def refuse(problem: str) -> SampleError:
        return SampleError(str(path), f"is not a listening test's key.json ({problem}): pass {what}")

    if not {"test_id", "trials"} <= key.keys():
        raise refuse("no test_id or trials")
    if not isinstance(key["test_id"], str) or not isinstance(key["trials"], list):
        raise refuse("test_id is not text or trials is not a list")
    names = set()
    for number, trial in enumerate(key["trials"], start=1):
        if not (
            isinstance(trial, dict)
            and isinstance(trial.get("trial"), str)
            and sorted([str(trial.get("A")), str(trial.get("B"))]) == sorted(SYSTEMS)
        ):
            raise refuse(
                f"trial {number} is not a trial name with the two systems as A and B: {_shown(trial)}"
            )
        if trial["trial"] in names:
            raise refuse(f"trial {_shown(trial['trial'])} is listed twice")
        names.add(trial["trial"])
    systems = key.get("systems")
    if systems is not None and not (
        isinstance(systems, dict) and all(isinstance(systems.get(n), str) for n in SYSTEMS)
    ):
        raise refuse(f"systems does not name {' and '.join(SYSTEMS)}: {_shown(systems)}")
    return key


def read_answers(path: Path, key: dict) -> dict:
    """One listener's exported answers, checked whole against the key (`read_key`): the same test, a name
    that is text (or none), and answers only to known trials and questions, each A, B or same."""
    answers = _read_json(path, "an answer file exported from the listening page")
    if answers.get("test_id") != key["test_id"]:
        raise SampleError(
            str(path),
            f"answers test {_shown(answers.get('test_id'))}, but the key is for test {key['test_id']!r}: "
            "pass the key.json written with the page these answers were exported from",
        )
    if not isinstance(answers.get("listener", ""), str | None):
        raise SampleError(
            str(path), f"listener {_shown(answers['listener'])} is not a name: is the file edited?"
        )
    if not isinstance(answers.get("answers"), dict):
        raise SampleError(str(path), "has no answers: export them with the page's button")
    trials = {t["trial"] for t in key["trials"]}
    for trial, given in answers["answers"].items():
        if trial not in trials or not isinstance(given, dict):
            raise SampleError(str(path), f"answers an unknown sample {_shown(trial)}: is the file edited?")
        for question, choice in given.items():
            if question not in QUESTIONS or choice not in CHOICES:
                raise SampleError(
                    str(path),
                    f"sample {_shown(trial)}: {_shown(question)} = {_shown(choice)} is not one of the "
                    f"questions {', '.join(QUESTIONS)} with an answer among {', '.join(CHOICES)}",
                )
    return answers


def _shown(value: object, limit: int = 60) -> str:
    """`value` for a one-line message: its repr (control characters escaped), cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(name: str) -> str:
    """A name as typed on the page, safe to print to a terminal: control characters (escape sequences,
    carriage returns, C1 codes), line breaks and the bidi overrides that reorder a line are shown escaped."""
    return "".join(
        repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in BIDI_CONTROLS else c
        for c in name
    )


def render_preferences(
    preferences: list[Preference], listeners: list[str], systems: dict[str, str] | None = None
) -> str:
    """The un-blinded result, one line per question, the systems named as the eval report names them."""
    systems = systems or system_titles()
    tuned, base = systems[TUNED], systems[BASELINE]
    lines = [f"{len(listeners)} listener(s): {', '.join(printable(n) for n in listeners)}"]
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
