"""Which candidates of one prompt become (chosen, rejected) pairs, and which prompts give none.

`best_vs_worst` keeps one pair a prompt, the highest reward against the lowest; `margin` keeps every pair
whose rewards differ by at least the margin (more pairs, all of them clearly ordered). A prompt whose
candidates are all alike (the best within the margin of the worst, or all unusable) teaches nothing and is
skipped; the run counts and reports those.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

Strategy = Literal["best_vs_worst", "margin"]


def choose_pairs(rewards: list[float], strategy: Strategy, margin: float) -> list[tuple[int, int]]:
    """(chosen, rejected) candidate indices of one prompt; empty when its candidates are all alike."""
    usable = [i for i, r in enumerate(rewards) if math.isfinite(r)]
    if not usable:
        return []
    if strategy == "best_vs_worst":
        best = max(usable, key=lambda i: rewards[i])
        worst = min(range(len(rewards)), key=lambda i: rewards[i])
        # all equal: max and min pick the same candidate, which is no pair
        return [(best, worst)] if best != worst and _apart(rewards[best], rewards[worst], margin) else []
    return [
        (a, b) if rewards[a] > rewards[b] else (b, a)
        for a, b in itertools.combinations(range(len(rewards)), 2)
        if _apart(max(rewards[a], rewards[b]), min(rewards[a], rewards[b]), margin)
        and math.isfinite(max(rewards[a], rewards[b]))
    ]


def _apart(high: float, low: float, margin: float) -> bool:
    """Whether `high` beats `low` by at least `margin` (any usable candidate beats an unusable one)."""
    return low == -math.inf or high - low >= margin
