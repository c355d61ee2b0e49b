"""Candidates: each prompt cloned N times with sampling, then every clip scored by the eval models.

Candidate i of every prompt is drawn with sampling seed `seed + i`, so a rerun draws the same candidates.
Scoring is `eval`'s own (`evaluation.clip_scores`): WER and CER against the target text with the language's
normalisation, cosine similarity of speaker embeddings to the reference clip; and the speech checks of the
clip (`inference.speech_checks`), made when it was cloned, as for `eval`'s clones.
"""

from __future__ import annotations

import numpy as np

from higgs_tune.config import PromptSettings
from higgs_tune.evaluation.clip_scores import score_clips
from higgs_tune.inference.clone import Clone, clone_samples
from higgs_tune.inference.settings import SamplingSettings


def sample_candidates(
    model,
    processor,
    items: list[dict],
    prompt: PromptSettings,
    sampling: SamplingSettings,
    frame_limits: list[int],
    n: int,
) -> list[list[Clone]]:
    """`n` sampled clones of every item (`clone.clone_samples` items), as one list per item."""
    per_item: list[list[Clone]] = [[] for _ in items]
    for i in range(n):
        draw = sampling.model_copy(update={"seed": (sampling.seed or 0) + i})
        for clones, clone in zip(
            per_item, clone_samples(model, processor, items, prompt, draw, frame_limits), strict=True
        ):
            clones.append(clone)
    return per_item


def score_candidates(
    clones: list[Clone], text: str, reference_embedding: np.ndarray, measuring: tuple, language: str | None
) -> list[dict]:
    """The scores `eval` gives each candidate of one prompt (`clip_scores.score_clips`: transcript, WER,
    CER, similarity), with its flags, how it ended and its length in frames."""
    audios, n = [c.audio for c in clones], len(clones)
    scores = score_clips(audios, [text] * n, [reference_embedding] * n, measuring, language)
    return [
        {
            **score,
            "flags": clone.flags,
            "stopped_by_eos": clone.stopped_by_eos,
            "frames": int(clone.codes.shape[1]),
        }
        for score, clone in zip(scores, clones, strict=True)
    ]
