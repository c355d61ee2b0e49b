"""Rewards order candidates as promised, and pairs are only made where candidates really differ."""

from __future__ import annotations

import math

from higgs_tune.preferences.pairs import choose_pairs
from higgs_tune.preferences.reward import RewardWeights, candidate_reward

W = RewardWeights()


def test_silent_or_cut_is_always_worst() -> None:
    perfect_but_cut = candidate_reward(0.0, 1.0, ["cut"], W)
    poor_but_whole = candidate_reward(3.0, 0.0, ["long_pause", "trailing_silence"], W)
    assert perfect_but_cut == -math.inf < poor_but_whole
    assert candidate_reward(0.0, None, ["silent"], W) == -math.inf


def test_reward_rises_with_fewer_errors_and_closer_voice() -> None:
    assert candidate_reward(0.1, 0.8, [], W) > candidate_reward(0.3, 0.8, [], W)
    assert candidate_reward(0.1, 0.9, [], W) > candidate_reward(0.1, 0.5, [], W)
    assert candidate_reward(0.1, 0.9, [], W) > candidate_reward(0.1, 0.9, ["long_pause"], W)


def test_best_vs_worst_and_margin_strategies() -> None:
    rewards = [0.2, -0.5, 0.25, -math.inf]
    assert choose_pairs(rewards, "best_vs_worst", 0.05) == [(2, 3)]
    assert sorted(choose_pairs(rewards, "margin", 0.1)) == [(0, 1), (0, 3), (1, 3), (2, 1), (2, 3)]


def test_prompts_whose_candidates_are_alike_give_no_pair() -> None:
    assert choose_pairs([0.30, 0.31, 0.29], "best_vs_worst", 0.05) == []
    assert choose_pairs([0.30, 0.31, 0.29], "margin", 0.05) == []
    assert choose_pairs([-math.inf, -math.inf], "best_vs_worst", 0.05) == []
    assert choose_pairs([0.3, 0.3], "best_vs_worst", 0.0) == []  # never a candidate against itself
