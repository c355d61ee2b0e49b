"""`higgs-tune prefs`: preference pairs made from a model's own clones, scored like `eval` scores.

The measuring models load first (a wrong name fails before any cloning); then prompts go in batches: each
is cloned N times with sampling, every candidate is scored and given a reward, pairs are chosen, and the
prompt is written whole (`preference_folder.write_prompt`). A rerun continues where a killed one stopped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from higgs_tune.data import preference_folder
from higgs_tune.data.audio import load_audio
from higgs_tune.errors import UserError
from higgs_tune.evaluation.asr import DEFAULT_ASR_MODEL
from higgs_tune.evaluation.measuring import load_measuring_models
from higgs_tune.evaluation.speaker import DEFAULT_SPEAKER_MODEL
from higgs_tune.inference.settings import LengthLimit, SamplingConfig
from higgs_tune.model.codes import encode_file
from higgs_tune.preferences.candidates import sample_candidates, score_candidates
from higgs_tune.preferences.pairs import Strategy, choose_pairs
from higgs_tune.preferences.reward import RewardWeights, candidate_reward

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrefsSettings:
    """How candidates are drawn, measured, rewarded and paired."""

    candidates: int = 4
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    limit: LengthLimit = field(default_factory=LengthLimit)
    weights: RewardWeights = field(default_factory=RewardWeights)
    strategy: Strategy = "best_vs_worst"
    margin: float = 0.05
    asr_model: str = DEFAULT_ASR_MODEL
    speaker_model: str = DEFAULT_SPEAKER_MODEL
    language: str | None = None
    device: str = "cpu"
    batch_size: int = 8


def make_preferences(model_id: str, adapter: Path | None, samples: list, out: Path, s: PrefsSettings) -> dict:
    """Write the preference folder `out` for `samples` (a manifest's samples); returns its summary."""
    from higgs_tune.inference.generate import load_for_cloning

    if s.sampling.greedy or s.candidates < 2 or s.margin < 0:
        raise UserError(
            "preference candidates need sampling (not greedy), --candidates of 2 or more and a --margin of "
            f"0 or more (got {s.candidates} candidates, margin {s.margin:g})"
        )
    out = Path(out)
    preference_folder.check_settings(
        out, {"model": model_id, "adapter": None if adapter is None else str(adapter), **asdict(s)}
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
    for start in tqdm(range(0, len(todo), s.batch_size), desc="prefs", unit="batch"):
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
    out: Path, sample, digest: str, ref_codes: np.ndarray, clones: list, measuring: tuple, s: PrefsSettings
) -> None:
    """Score one prompt's candidates, pair them, and write the prompt whole, with the `digest` of what it
    was cloned from (`preference_folder.prompt_digests`)."""
    speaker = measuring[1]
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
