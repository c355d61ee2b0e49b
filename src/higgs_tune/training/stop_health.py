"""Stop health: is the model learning to end a clip where its target ends, and not before?

A fine-tune that never stops runs to the frame limit and pads its speech with silence or noise; one that
stops too early cuts speech short. Both show in teacher-forced outputs long before anyone listens, so the
held-out evaluation measures, from the audio logits at the labelled positions (no generation):

* `accuracy_codebook_k`: top-1 accuracy of the codes of codebook k (the stream EOS excluded);
* `eos_prob_codebook_k`, `eos_prob`: the probability codebook k gives the stream EOS at the position where
  its EOS is labelled, and the mean over codebooks (chance is 1 / 1026);
* `early_stop_risk`: the probability that some codebook emits the stream EOS before its labelled position
  in a clip, mean over clips. At generation a single codebook's EOS starts the end of the clip (in
  transformers' delay-pattern processor and in the original implementation alike), so this is the chance
  that teacher-forced generation would cut the clip short: 1 - prod over (frame, codebook) of the code
  positions of (1 - p(EOS)).

Everything is kept as sums (`StopHealthSums`) so micro-batches, held-out batches and ranks add up exactly
before the figures are taken once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class StopHealthSums:
    """Sums over labelled positions and clips; add them up, then call `stop_health_metrics` once."""

    correct: torch.Tensor  # [K] top-1 hits on code targets
    codes: torch.Tensor  # [K] code targets
    eos_prob: torch.Tensor  # [K] summed p(EOS) at the labelled EOS position
    eos: torch.Tensor  # [K] labelled EOS positions
    early_stop_risk: torch.Tensor  # [] summed over clips
    clips: torch.Tensor  # [] clips with at least one code target

    def __add__(self, other: StopHealthSums) -> StopHealthSums:
        return StopHealthSums(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def to_vector(self) -> torch.Tensor:
        """One float64 vector (for a single all-reduce over ranks)."""
        return torch.cat([getattr(self, f.name).double().reshape(-1) for f in fields(self)])

    @classmethod
    def from_vector(cls, vector: torch.Tensor, num_codebooks: int) -> StopHealthSums:
        k = num_codebooks
        return cls(
            vector[:k],
            vector[k : 2 * k],
            vector[2 * k : 3 * k],
            vector[3 * k : 4 * k],
            vector[-2],
            vector[-1],
        )


@torch.no_grad()
def stop_health_sums(
    audio_logits: torch.Tensor, audio_targets: torch.Tensor, clip_of_row: torch.Tensor, eos_id: int
) -> StopHealthSums:
    """Sums for one batch.

    `audio_logits` [N, K, C] and `audio_targets` [N, K] are the rows the loss scores (already shifted:
    row n is the output that predicts a labelled next position; targets are codes, the stream EOS or
    -100); `clip_of_row` [N] says which clip (batch row) each row belongs to.
    """
    logits = audio_logits.float()
    targets = audio_targets
    is_eos = targets == eos_id
    is_code = (targets >= 0) & ~is_eos
    p_eos = torch.softmax(logits, dim=-1)[..., eos_id]  # [N, K]
    hits = (logits.argmax(-1) == targets) & is_code
    # log P(no codebook stops here) over code positions only; clamp keeps log finite when p(EOS) -> 1.
    log_survive = torch.where(is_code, torch.log1p(-p_eos.clamp(max=1 - 1e-7)), torch.zeros_like(p_eos))
    num_clips = int(clip_of_row.max()) + 1 if clip_of_row.numel() else 0
    per_clip = torch.zeros(num_clips, dtype=torch.float64, device=logits.device)
    per_clip.index_add_(0, clip_of_row, log_survive.sum(-1).double())
    has_codes = torch.zeros(num_clips, dtype=torch.bool, device=logits.device)
    has_codes[clip_of_row[is_code.any(-1)]] = True
    risk = (1 - per_clip.exp()) * has_codes
    return StopHealthSums(
        correct=hits.sum(0).double(),
        codes=is_code.sum(0).double(),
        eos_prob=(p_eos * is_eos).sum(0).double(),
        eos=is_eos.sum(0).double(),
        early_stop_risk=risk.sum(),
        clips=has_codes.sum().double(),
    )


def stop_health_metrics(sums: StopHealthSums) -> dict[str, float]:
    """The figures (see the module docstring) from summed counts."""
    accuracy = (sums.correct / sums.codes.clamp(min=1)).tolist()
    eos_prob = (sums.eos_prob / sums.eos.clamp(min=1)).tolist()
    metrics = {
        "accuracy": float(sums.correct.sum() / sums.codes.sum().clamp(min=1)),
        "eos_prob": sum(eos_prob) / len(eos_prob),
        "early_stop_risk": float(sums.early_stop_risk / sums.clips.clamp(min=1)),
    }
    metrics.update({f"accuracy_codebook_{k}": v for k, v in enumerate(accuracy)})
    metrics.update({f"eos_prob_codebook_{k}": v for k, v in enumerate(eos_prob)})
    return metrics


LOW_EOS_PROB = 0.5
"""Below this mean probability of the stream EOS where a clip ends, after warm-up, the model is not learning
to stop. Generation ends a clip when a codebook samples its EOS, so a model that gives it less than even odds
at the right frame keeps talking past it on most clips. An untrained head gives it about 1 / 1026 (chance);
a fine-tune that learns its data goes well above 0.9."""
HIGH_EARLY_STOP_RISK = 0.5
"""Above this chance per clip that some codebook stops before the clip's end, generation cuts speech short
on more clips than not; a healthy fine-tune drives it towards 0."""


def stop_health_warnings(metrics: dict[str, float], prefix: str = "") -> list[str]:
    """What is wrong with stopping, in the user's words, from `stop_health_metrics` (keys under `prefix`):
    at most one warning, since the two figures together mean something neither means alone.

    A low EOS probability where clips end alone: the model keeps talking past the end. A high early-stop
    risk alone: it says EOS before the end. Both at once (a model early in training, typically): the model
    spreads some EOS probability over every frame but not much at the last, so it has not learned where
    clips end, and "runs to the frame limit" and "cuts speech short" would each be half the story.
    """
    eos_prob, risk = metrics[f"{prefix}eos_prob"], metrics[f"{prefix}early_stop_risk"]
    late, early = eos_prob < LOW_EOS_PROB, risk > HIGH_EARLY_STOP_RISK
    eos_figure = f"EOS probability at the end of the clip is {eos_prob:.3f} (< {LOW_EOS_PROB})"
    risk_figure = f"early-stop risk is {risk:.3f} (> {HIGH_EARLY_STOP_RISK})"
    if late and early:
        return [
            f"{eos_figure} and {risk_figure}: the model puts EOS probability on every frame except where "
            "the clip ends: it has not learned where clips end yet, so generated clips stop at random "
            "points. Train longer; if this stays after the loss has levelled off, check that each target "
            "clip ends where its speech ends (the EOS is labelled at the last frame)"
        ]
    if late:
        return [
            f"{eos_figure}: the model is not learning to stop: generated audio will run to the frame limit "
            "and pad speech with silence"
        ]
    if early:
        return [
            f"{risk_figure}: the model emits its EOS before the end of the clip: generation cuts speech short"
        ]
    return []
