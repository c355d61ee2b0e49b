"""`higgs-tune prefs`: preference pairs made from a model's own clones, scored like `eval` scores.

The measuring models load first (a wrong name fails before any cloning); then prompts go in batches: each
is cloned N times with sampling, every candidate is scored and given a reward, pairs are chosen, and the
prompt is written whole (`preference_folder.write_prompt`). A rerun continues where a killed one stopped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from higgs_tune.command_settings import CommandSettings
from higgs_tune.data import preference_folder
from higgs_tune.data.audio import load_audio
from higgs_tune.inference.settings import LengthLimit, SamplingSettings
from higgs_tune.logs import Progress
from higgs_tune.model.codes import encode_file
from higgs_tune.preferences.candidates import sample_candidates, score_candidates
from higgs_tune.preferences.pairs import Strategy, choose_pairs
from higgs_tune.preferences.reward import RewardWeights, candidate_reward
from higgs_tune.scoring.asr import DEFAULT_ASR_MODEL
from higgs_tune.scoring.measuring import MeasuringModels, load_measuring_models
from higgs_tune.scoring.speaker import DEFAULT_SPEAKER_MODEL

log = logging.getLogger(__name__)


class PrefsSettings(CommandSettings):
    """How candidates are drawn, measured, rewarded and paired. Pairs need at least two candidates drawn
    by sampling: greedy choice would draw the same clip every time."""

    flags: ClassVar[dict[str, str]] = {
        "cer": "--cer-weight",
        "similarity": "--similarity-weight",
        "flag": "--flag-weight",
    }

    candidates: int = Field(4, ge=2)
    sampling: SamplingSettings = SamplingSettings()
    limit: LengthLimit = LengthLimit()
    weights: RewardWeights = RewardWeights()
    strategy: Strategy = "best_vs_worst"
    margin: float = Field(0.05, ge=0)
    asr_model: str = DEFAULT_ASR_MODEL
    speaker_model: str = DEFAULT_SPEAKER_MODEL
    language: str | None = None
    device: str = "cpu"
    batch_size: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _sampled(self) -> PrefsSettings:
        if self.sampling.greedy:
            raise ValueError(
                "preference candidates need sampling (greedy=False): greedy choice draws one clip every time"
            )
        return self


def make_preferences(model_id: str, adapter: Path | None, samples: list, out: Path, s: PrefsSettings) -> dict:
    """Write the preference folder `out` for `samples` (a manifest's samples); returns its summary."""
    from higgs_tune.inference.generate import load_for_cloning

    out = Path(out)
    preference_folder.check_settings(
        out, {"model": model_id, "adapter": None if adapter is None else str(adapter), **s.model_dump()}
    )
    measuring = load_measuring_models(s.asr_model, s.speaker_model, s.language, s.device, s.batch_size)
    model, processor, prompt = load_for_cloning(model_id, adapter)
    preference_folder.record_prompt(out, asdict(prompt))
    model.to(s.device)
    keys = [preference_folder.prompt_key(x.id) for x in samples]
    digests = preference_folder.prompt_digests(samples)
    done = preference_folder.done_prompts(out)
    todo = [(x, d) for x, k, d in zip(samples, keys, digests, strict=True) if done.get(k) != d]
    log.info(
        "%d prompts, %d already done; %d candidates each",
        len(samples),
        len(samples) - len(todo),
        s.candidates,
    )
    changed = sum(k in done and done[k] != d for k, d in zip(keys, digests, strict=True))
    if changed:
        log.warning(
            "%d prompts of %s changed since they were done (text, scene or reference audio): made again, "
            "their old candidates replaced",
            changed,
            out,
        )
    rate = processor.audio_tokenizer.config.frame_rate
    for start in Progress(range(0, len(todo), s.batch_size), desc="prefs", unit="batch"):
        part = todo[start : start + s.batch_size]
        batch = [x for x, _ in part]
        refs = [encode_file(processor, x.ref_audio) for x in batch]
        items = [
            {"ref_text": x.ref_text, "ref_codes": r, "text": x.text, "scene": x.scene, "id": x.id}
            for x, r in zip(batch, refs, strict=True)
        ]
        limits = [s.limit.frames(x.text, rate) for x in batch]
        candidates = sample_candidates(model, processor, items, prompt, s.sampling, limits, s.candidates)
        for (sample, digest), ref, clones in zip(part, refs, candidates, strict=True):
            _finish_prompt(out, sample, digest, ref, clones, measuring, s)
    summary = preference_folder.finish(out, keys)
    log.info(
        "%d prompts -> %d pairs in %s; %d skipped as all alike",
        summary["prompts"],
        summary["pairs"],
        out / "prefs.jsonl",
        len(summary["skipped_all_alike"]),
    )
    return summary


def _finish_prompt(
    out: Path,
    sample,
    digest: str,
    ref_codes: np.ndarray,
    clones: list,
    measuring: MeasuringModels,
    s: PrefsSettings,
) -> None:
    """Score one prompt's candidates, pair them, and write the prompt whole, with the `digest` of what it
    was cloned from (`preference_folder.prompt_digests`)."""
    speaker = measuring.speaker
    reference = speaker.embed([load_audio(sample.ref_audio)])[0]
    scores = score_candidates(clones, sample.text, reference, measuring, s.language)
    for score in scores:
        score["reward"] = candidate_reward(score["cer"], score["similarity"], score["flags"], s.weights)
    rewards = [score["reward"] for score in scores]
    pairs = choose_pairs(rewards, s.strategy, s.margin)
    finite = [r for r in rewards if math.isfinite(r)]
    record = {
        "key": preference_folder.prompt_key(sample.id),
        "digest": digest,
        "id": sample.id,
        "ref_text": sample.ref_text,
        "text": sample.text,
        "scene": sample.scene,
        "candidates": [{**score, "reward": _json_number(score["reward"])} for score in scores],
        "pairs": pairs,
        "spread": (max(finite) - min(finite)) if len(finite) > 1 else 0.0,
    }
    used = {i for pair in pairs for i in pair}
    preference_folder.write_prompt(out, record, ref_codes, {i: clones[i].codes for i in sorted(used)})


def _json_number(x: float) -> float | None:
    """JSON has no infinity: an unusable candidate's reward is written as null."""
    return x if math.isfinite(x) else None
