"""Candidates: each prompt cloned N times with sampling, then every clip scored by the eval models.

Candidate i of every prompt is drawn with sampling seed `seed + i`, so a rerun draws the same candidates.
Scoring is `eval`'s: CER against the target text with the language's normalisation, cosine similarity of
speaker embeddings to the reference clip, and the speech checks of the clip (`inference.speech_checks`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from higgs_tune.config import PromptConfig
from higgs_tune.data.audio import TARGET_SR
from higgs_tune.evaluation.text_metrics import char_errors
from higgs_tune.inference.clone import Clone, clone_samples
from higgs_tune.inference.settings import SamplingConfig


def sample_candidates(
    model,
    processor,
    items: list[dict],
    settings: PromptConfig,
    sampling: SamplingConfig,
    frame_limits: list[int],
    n: int,
) -> list[list[Clone]]:
    """`n` sampled clones of every item (`clone.clone_samples` items), as one list per item."""
    per_item: list[list[Clone]] = [[] for _ in items]
    for i in range(n):
        draw = dataclasses.replace(sampling, seed=(sampling.seed or 0) + i)
        for clones, clone in zip(
            per_item, clone_samples(model, processor, items, settings, draw, frame_limits), strict=True
        ):
            clones.append(clone)
    return per_item


def score_candidates(
    clones: list[Clone], text: str, reference_embedding: np.ndarray, measuring: tuple, language: str | None
) -> list[dict]:
    """CER, similarity and flags of each candidate of one prompt (a clip without audio: CER 1, no
    similarity)."""
    from higgs_tune.evaluation.speaker import cosine_similarity

    transcriber, speaker = measuring
    spoken = [i for i, c in enumerate(clones) if c.audio.size]
    transcripts = dict(zip(spoken, transcriber.transcribe([clones[i].audio for i in spoken]), strict=True))
    scores = []
    for i, clone in enumerate(clones):
        long_enough = clone.audio.size / TARGET_SR >= speaker.min_seconds
        similarity = (
            float(cosine_similarity(speaker.embed([clone.audio])[0], reference_embedding))
            if long_enough
            else None
        )
        scores.append(
            {
                "transcript": transcripts.get(i, ""),
                "cer": char_errors(text, transcripts[i], language).rate if i in spoken else 1.0,
                "similarity": similarity,
                "flags": clone.flags,
                "stopped_by_eos": clone.stopped_by_eos,
                "frames": int(clone.codes.shape[1]),
            }
        )
    return scores
