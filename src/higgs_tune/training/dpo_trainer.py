"""`objective: dpo`: the trainer of `trainer.Trainer`, stepping on preference pairs with the DPO loss.

Everything but the data, the loss and the held-out figures is the SFT trainer's: run folder, resume,
checkpoints, best checkpoint, early stopping, trackers, launchers (DDP, FSDP, DeepSpeed). Set-up adds one
named step, the reference pass: before the first step (and before `--resume` restores any weights) the
starting model scores every pair in eval mode; those log-probabilities are the reference of the DPO loss
(`training.dpo`), cached in the run folder.

A step's loss is normalised by the step's pair count (summed over micro-batches and processes before the
first forward), so micro-batch 2 x 1 and 1 x 2, and 1 process and N, give the same update, as in SFT.
"""

from __future__ import annotations

import logging

import torch

from higgs_tune.training.distributed import gather_from_ranks, sum_over_ranks
from higgs_tune.training.dpo import chosen_and_rejected, clip_logprobs, dpo_loss, dpo_step_loss
from higgs_tune.training.preference_data import PreferenceData, Reference
from higgs_tune.training.stop_health import StopHealthSums, stop_health_metrics
from higgs_tune.training.trainer import Trainer

log = logging.getLogger(__name__)

PAIR_FIGURES = ("reward_accuracy", "reward_margin", "chosen_logp", "rejected_logp")
"""The `dpo.dpo_loss` figures held-out evaluation reports (as `eval_<name>`, means over pairs)."""

HELD_OUT = ("dpo_loss", *PAIR_FIGURES, "sft", "frames", "pairs")
"""The held-out sums, in this order; the chosen clips' stop-health sums follow them in one vector."""


class DpoTrainer(Trainer):
    """DPO on the pairs of `cfg.prefs`, from the starting model (`cfg.model`, plus `cfg.init_adapter`)."""

    STEP_COUNTS = ("num_pairs", "num_chosen_frames")
    DATA = PreferenceData
    data: PreferenceData

    def _setup_model_and_optimizer(self) -> None:
        super()._setup_model_and_optimizer()
        if self.cfg.dpo.disable_dropout:
            n = disable_dropout(self.model)
            if n and self.accelerator.is_main_process:
                log.info("dropout off in %d modules, as in the reference pass (dpo.disable_dropout)", n)
        self._setup_reference()

    @torch.no_grad()
    def _setup_reference(self) -> None:
        """The starting model's log-probabilities of every pair: from the run folder's cache, else scored
        now, each process a share, in eval mode (no dropout) and the run's precision."""
        acc = self.accelerator
        key = self.data.reference_key(acc.unwrap_model(self.model).base_fingerprint)
        cached = self.data.cached_reference(key)
        if all(gather_from_ranks(acc, cached is not None)):  # every rank takes the same branch
            self.data.use_reference(cached, key)
            return
        self.model.eval()
        mine: list[tuple[int, float, float]] = []
        for weight, indices, batch in self.data.reference_share():
            with acc.autocast():
                logp = clip_logprobs(self.model, self.to_device(batch)).double().cpu()
            if weight:
                chosen, rejected = chosen_and_rejected(logp, len(indices))
                mine += zip(indices, chosen.tolist(), rejected.tolist(), strict=True)
        self.model.train()
        reference: Reference = {i: (c, r) for share in gather_from_ranks(acc, mine) for i, c, r in share}
        if acc.is_main_process:
            log.info("reference pass: %d pairs scored by the starting model", len(reference))
        self.data.use_reference(reference, key)

    def _loss(self, batch: dict, counts: tuple[float, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A micro-batch's share of the step's DPO loss (`dpo.dpo_step_loss`)."""
        dpo = self.cfg.dpo
        inputs = {**batch, **self.to_device(batch)}
        return dpo_step_loss(self.model, inputs, dpo.beta, dpo.sft_weight, *counts)

    @torch.no_grad()
    def held_out_metrics(self) -> dict[str, float] | None:
        """Held-out DPO figures (`eval_loss` is the DPO loss, so best checkpoint and early stopping work
        as in SFT) and the stop health of the chosen clips, summed over ranks once."""
        if len(self.data.eval_set) == 0:
            return None
        acc, k = self.accelerator, self.codebook_weights.shape[0]
        self.model.eval()
        totals = torch.zeros(len(HELD_OUT), device=acc.device, dtype=torch.float64)
        health = torch.zeros((), device=acc.device, dtype=torch.float64)
        for weight, chosen, rejected in self.data.held_out_share():
            with acc.autocast():
                c = self.model(**self.to_device(chosen), per_row=True)
                r = self.model(**self.to_device(rejected), per_row=True)
            ref = [b["reference_logp"].to(acc.device) for b in (chosen, rejected)]
            losses, figures = dpo_loss(-c.audio_per_row, -r.audio_per_row, *ref, self.cfg.dpo.beta)
            sums = [losses.sum(), *(figures[name].sum() for name in PAIR_FIGURES)]
            sums += [c.audio_per_row.sum(), chosen["num_audio_frames"], len(losses)]
            totals += weight * torch.stack([torch.as_tensor(x, device=acc.device).double() for x in sums])
            health = health + weight * c.stop_health.to_vector()
        totals = sum_over_ranks(acc, torch.cat([totals, health]))
        self.model.train()
        held_out, stop_health = totals[: len(HELD_OUT)], totals[len(HELD_OUT) :]
        named = dict(zip(HELD_OUT, held_out.tolist(), strict=True))
        pairs = named["pairs"]
        metrics = {"eval_loss": named["dpo_loss"] / pairs}
        metrics.update({f"eval_{name}": named[name] / pairs for name in PAIR_FIGURES})
        metrics["eval_sft_loss"] = named["sft"] / max(named["frames"], 1.0)
        stop = stop_health_metrics(StopHealthSums.from_vector(stop_health, k))
        return {**metrics, **{f"eval_{name}": v for name, v in stop.items()}}

    def _metrics(self, window: dict, steps: int, tok_s: float, audio_s: float, group: list[dict]) -> dict:
        """The logged DPO figures: loss, reward accuracy and margin, both rewards and log-probabilities."""
        metrics = {"step": self.step, "epoch": group[-1]["epoch"]}
        metrics.update({k: float(v) / steps for k, v in window.items()})
        metrics.update(
            lr=self.scheduler.get_last_lr()[0], tokens_per_sec=tok_s, audio_seconds_per_sec=audio_s
        )
        return metrics


def disable_dropout(model: torch.nn.Module) -> int:
    """Set every dropout of `model` to 0 (an adapter's LoRA dropout included, and the attention dropout the
    decoder reads from its layers), as trl does for DPO; returns how many were on. The reference pass scores
    in eval mode, without dropout: a policy trained with it would start off the reference (loss above ln 2,
    a nonzero margin before any step) and its rewards would carry dropout noise."""
    on = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout) and m.p > 0:
            m.p, on = 0.0, on + 1
        rate = getattr(m, "attention_dropout", None)
        if isinstance(rate, float) and rate > 0:
            m.attention_dropout, on = 0.0, on + 1
    return on
