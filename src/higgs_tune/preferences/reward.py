"""One number per candidate clip: the words it says, the voice it keeps, and whether it stops well.

reward = - cer_weight * CER + similarity_weight * speaker similarity - flag_weight * (speech-check flags)

A silent candidate (no audio, or no speech in it) or a cut one (it never emitted its stream EOS) is always
the worst: its reward is minus infinity, whatever its other scores, because those are exactly the
failures preference tuning is meant to remove and an ASR may still find words in a clip that never ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from higgs_tune.inference.speech_checks import CUT, SILENT, TOO_SHORT

# Flags that make a candidate unusable, however well the rest scores.
ALWAYS_WORST = frozenset({SILENT, CUT, TOO_SHORT})


@dataclass(frozen=True)
class RewardWeights:
    """How the scores of a candidate combine; the defaults weigh one CER point like 0.5 similarity."""

    cer: float = 1.0
    similarity: float = 0.5
    flag: float = 0.25


def candidate_reward(cer: float, similarity: float | None, flags: list[str], weights: RewardWeights) -> float:
    """The reward of one scored candidate (minus infinity for a silent or cut one)."""
    if ALWAYS_WORST.intersection(flags):
        return -math.inf
    return -weights.cer * cer + weights.similarity * (similarity or 0.0) - weights.flag * len(flags)
