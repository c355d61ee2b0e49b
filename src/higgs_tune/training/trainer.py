"""Training: LoRA (peft) or full fine-tuning on a prepared dataset, on 1 to N processes via accelerate.

One optimizer step takes `gradient_accumulation_steps` micro-batches. The label counts of all of them
(on all ranks) are known before the first backward, because the collator computes them on CPU, so the
loss is normalised by the number of labelled positions of the whole step: micro-batch 4 x 1 and 1 x 4
give the same update, and so do 1 process and N with the same global batch, and so do micro-batches of
varying sizes (token budgets, `max_tokens_per_batch`).

The same code runs on one process and under `accelerate launch` / `torchrun` with DDP (default), FSDP
or DeepSpeed, as the accelerate config says (`configs/accelerate_*.yaml`, docs/many-gpus.md).
DDP needs no `find_unused_parameters`: every trainable parameter is in the graph of every step (the
text head runs even on an empty selection, and the one part of the model that can never reach the loss
without a text head, the last layer's text MLP, is frozen; see `freeze_unreachable`).

Host-device synchronisation: two per optimizer step (the step-wide label counts, summed over ranks
before the first forward; the finite-loss check, before the last backward so that no engine, DeepSpeed
included, applies a non-finite update) and one per logging step; none per micro-batch in our code. The
model's DualFFN routes text and audio positions with boolean-mask indexing
(`hidden_states[audio_token_mask]`), which syncs once per use on GPU: 18 times per decoder layer per
forward and backward, as `bench/train.py` counts; large (token-budget) micro-batches amortise them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from accelerate.utils import DistributedType, set_seed

from higgs_tune import checkpoint
from higgs_tune.card import write_checkpoint_card
from higgs_tune.config import TrainSettings, metric_greater_is_better, resolve_codebook_weights
from higgs_tune.config_files import config_to_dict, require, save_config
from higgs_tune.errors import UserError
from higgs_tune.files import full_disk_named
from higgs_tune.logs import Progress
from higgs_tune.model.loading import load_processor
from higgs_tune.training.best import BestCheckpoint
from higgs_tune.training.build import build_model, build_optimizer, lr_lambda, parameter_counts
from higgs_tune.training.collate import LOSS_INPUTS
from higgs_tune.training.data import TrainingData
from higgs_tune.training.distributed import check_backends, make_accelerator, sum_over_ranks, uses_bf16
from higgs_tune.training.loss import LossSums, combine
from higgs_tune.training.preview_hook import Previews, PreviewsFactory
from higgs_tune.training.resume import restore, resume_point, trim_metrics
from higgs_tune.training.run_data import RunData, resolve_prompt
from higgs_tune.training.run_folder import prepare_run_folder
from higgs_tune.training.stop_health import StopHealthSums, stop_health_metrics, stop_health_warnings
from higgs_tune.training.trackers import Trackers, log_with

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; the message names the step, the batch and the last good save."""


class Trainer:
    """Holds one run's state; `run()` trains to `max_steps` (or early stopping), saving and measuring the
    held-out set on the way.

    Set-up is a sequence of named steps, in an order that matters: the run folder is checked (and the
    resumed run's config compared) before anything is loaded or written, the seed is set before the model
    is built (LoRA initialisation draws from it), the batch plan exists before the schedule (its length in
    epochs), and the optimizer state is restored (`--resume`) before anything is written to the run folder.

    `resume` continues the run in the folder (`training.resume`; `force` accepts settings that change what
    it trains); `overwrite` deletes an earlier run's checkpoints and logs first (`training.run_folder`);
    `previews` builds the clones made every `preview_steps` (`inference.previews.TrainingPreviews`).
    """

    def __init__(
        self,
        cfg: TrainSettings,
        resume: bool = False,
        overwrite: bool = False,
        force: bool = False,
        previews: PreviewsFactory | None = None,
    ) -> None:
        require(cfg, "model", "prefs" if cfg.objective == "dpo" else "data", "output_dir")
        check_backends(cfg.attn_implementation, cfg.optim)
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir)
        self.step = 0
        self.bf16 = uses_bf16(cfg.bf16)
        self.best = BestCheckpoint(
            cfg.metric_for_best_model,
            metric_greater_is_better(cfg),
            cfg.early_stopping_patience,
            cfg.early_stopping_threshold,
        )
        self.last_eval: dict[str, float] = {}
        trackers = log_with(cfg.report_to, self.run_dir)
        self.accelerator = make_accelerator(cfg.gradient_accumulation_steps, self.bf16, trackers)
        prepare_run_folder(self.accelerator, self.run_dir, resume, overwrite)
        set_seed(cfg.seed)
        self._setup_data()
        # Compared once the run's prompt settings are resolved (the text normalisation they prompt with).
        resume_from = resume_point(self.run_dir, self.cfg, force) if resume else None
        self._setup_model_and_optimizer()
        if resume_from is not None:
            self.step = restore(self.accelerator, resume_from, self.scheduler, self.best)
        if resume and self.accelerator.is_main_process:
            trim_metrics(self.run_dir, self.step)
        self._setup_run_dir()
        self.previews = self._setup_previews(previews)
        self.trackers = Trackers(self.accelerator, config_to_dict(self.cfg), self.run_dir)
        if resume:  # the interrupted run's events after the checkpoint are logged again
            self.trackers.purge_from(self.step + 1)

    DATA: type[RunData] = TrainingData
    """The kind of data the trainer steps on (`run_data.RunData`)."""

    def _setup_data(self) -> None:
        """The processor, the run's prompt settings (resolved once, `run_data.resolve_prompt`), its data
        and batch plan, and the run's length in optimizer steps."""
        self.processor = load_processor(self.cfg.model)
        self.frame_rate = float(self.processor.audio_tokenizer.config.frame_rate)
        prompt = resolve_prompt(self.cfg, announce=self.accelerator.is_main_process)
        self.cfg = replace(self.cfg, prompt=prompt)
        self.data = self.DATA(self.cfg, prompt, self.processor, self.accelerator, self.run_dir)
        self.max_steps = self.cfg.max_steps or self.data.steps_for_epochs(self.cfg.num_train_epochs)

    def _setup_model_and_optimizer(self) -> None:
        """Model, optimizer and schedule, prepared by accelerate for this process's engine."""
        cfg, acc = self.cfg, self.accelerator
        model = build_model(cfg, self.bf16, uniform_dtype=acc.distributed_type == DistributedType.FSDP)
        n_trainable, n_total = parameter_counts(model)
        self.codebook_weights = torch.tensor(
            resolve_codebook_weights(cfg.codebook_weights, model.higgs.config.num_codebooks)
        )
        self.best.check_metric(model.higgs.config.num_codebooks)
        optimizer = build_optimizer(cfg, model)
        if acc.distributed_type == DistributedType.DEEPSPEED:
            self._fill_deepspeed_config()
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.max_steps))
        checkpoint.keep_trainable_weights(acc, acc.unwrap_model(self.model))
        if acc.is_main_process:
            log.info(
                "%s fine-tuning: %d / %d parameters trainable (%.2f%%); %d train, %d held-out samples; "
                "%d processes (%s); bf16=%s",
                checkpoint.training_mode(cfg),
                n_trainable,
                n_total,
                100 * n_trainable / n_total,
                len(self.data.train_set),
                len(self.data.eval_set),
                acc.num_processes,
                acc.distributed_type.value,
                self.bf16,
            )

    def _fill_deepspeed_config(self) -> None:
        """DeepSpeed wants a micro-batch size and a clipping threshold in its config; take them from ours.

        We pass no DataLoader to `prepare` (batches come from our plan), so accelerate cannot infer the
        micro-batch size; with token budgets it varies, and DeepSpeed only uses it for bookkeeping.
        """
        ds = self.accelerator.state.deepspeed_plugin.deepspeed_config
        if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            ds["train_micro_batch_size_per_gpu"] = (
                1 if self.cfg.max_tokens_per_batch is not None else self.data.plan.batch_size
            )
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = self.cfg.max_grad_norm

    def _setup_run_dir(self) -> None:
        """The run folder, with the run's config and its batch plan (main process)."""
        if self.accelerator.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.cfg, self.run_dir / "train_config.yaml")
            self.data.report_plan()

    def _setup_previews(self, make: PreviewsFactory | None) -> Previews | None:
        """Held-out prompts to clone every `preview_steps` (main process, unsharded weights only)."""
        cfg, acc = self.cfg, self.accelerator
        if cfg.preview_steps == 0 or not acc.is_main_process:
            return None
        if make is None:
            log.warning(
                "preview_steps=%d: no previews are made, since the trainer was not given a way to clone "
                "(pass previews=TrainingPreviews, from higgs_tune.inference.previews)",
                cfg.preview_steps,
            )
            return None
        if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            log.warning("preview_steps: previews are not generated under FSDP / DeepSpeed (sharded weights)")
            return None
        prompts = self.data.preview_prompts(cfg.num_preview_prompts)
        return make(self.processor, prompts, cfg.prompt)

    def to_device(self, batch: dict) -> dict:
        """A micro-batch's loss inputs on this process's device, copied without blocking the host."""
        return {k: batch[k].to(self.accelerator.device, non_blocking=True) for k in LOSS_INPUTS}

    STEP_COUNTS = ("num_audio_frames", "num_text_tokens")
    """The batch counts a step's loss is normalised by (`_loss`), summed over the step's micro-batches."""

    def _step_counts(self, group: list[dict]) -> tuple[float, ...]:
        """The `STEP_COUNTS` of the whole step, summed over micro-batches and ranks."""
        local = torch.tensor(
            [sum(b[name] for b in group) for name in self.STEP_COUNTS],
            dtype=torch.float64,
            device=self.accelerator.device,
        )
        return tuple(sum_over_ranks(self.accelerator, local).tolist())

    def train_step(self, group: list[dict]) -> dict[str, torch.Tensor]:
        """One optimizer step over a group of micro-batches; returns detached metrics on device."""
        acc, cfg = self.accelerator, self.cfg
        counts = self._step_counts(group)
        # Each rank's share of sum/N; DDP (and FSDP, DeepSpeed) average gradients over ranks and
        # accelerate (DeepSpeed) divides by the accumulation steps, so scale back up to get exactly
        # d(sum over the step / N).
        scale = acc.num_processes * cfg.gradient_accumulation_steps
        totals: dict[str, torch.Tensor] = {}
        for j, batch in enumerate(group):
            with acc.accumulate(self.model), acc.autocast():
                loss, parts = self._loss(batch, counts)
                parts["loss"] = loss.detach()
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0) + v
                if j == len(group) - 1:
                    # Before the last backward: DeepSpeed steps inside it, so this is the last moment
                    # at which a non-finite step can still be stopped on every engine.
                    totals = {k: sum_over_ranks(acc, v) for k, v in totals.items()}
                    self._check_finite(totals["loss"], group)
                acc.backward(loss * scale)
        if cfg.max_grad_norm > 0:
            norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        else:
            norm = torch.zeros(())
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        totals["grad_norm"] = (
            norm.detach() if isinstance(norm, torch.Tensor) else torch.tensor(float(norm or 0))
        )
        return totals

    def _loss(self, batch: dict, counts: tuple[float, ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A micro-batch's share of the step's loss (normalised by the step's `counts`), and its parts."""
        sums = self.model(**self.to_device(batch))
        return combine(sums, *counts, self.codebook_weights, self.cfg.text_loss_weight)

    def _check_finite(self, loss: torch.Tensor, group: list[dict]) -> None:
        if bool(torch.isfinite(loss)):
            return
        last = checkpoint.last_checkpoint(self.run_dir)
        ids = [i for b in group for i in b["sample_ids"]]
        raise NonFiniteLossError(
            f"non-finite loss {float(loss)} at step {self.step + 1} on samples {ids}; "
            f"last good checkpoint: {last or 'none (no checkpoint saved yet)'}. Lower learning_rate, "
            "check these samples with `higgs-tune validate`, and resume with --resume"
        )

    @torch.no_grad()
    def held_out_metrics(self) -> dict[str, float] | None:
        """The held-out loss and stop health (`eval_*` keys); None without a held-out set.

        The loss sums, label counts and stop-health sums of every held-out micro-batch, on every rank, are
        added up in one vector and reduced once; `loss.combine` turns them into the loss exactly as a
        training step does (the whole held-out set as if it were one step's batch), and
        `stop_health_metrics` into the stop-health figures.
        """
        if len(self.data.eval_set) == 0:
            return None
        acc, k = self.accelerator, self.codebook_weights.shape[0]
        self.model.eval()
        # Per-codebook audio sums, the text sum, labelled frames and text tokens, then stop health.
        totals = torch.zeros(k + 3, device=acc.device, dtype=torch.float64)
        health = torch.zeros((), device=acc.device, dtype=torch.float64)  # grows to the stop-health vector
        for weight, batch in self.data.held_out_share():
            with acc.autocast():
                sums = self.model(**self.to_device(batch))
            totals[:k] += weight * sums.audio_per_codebook.double()
            totals[k] += weight * sums.text.double()
            totals[k + 1] += weight * batch["num_audio_frames"]
            totals[k + 2] += weight * batch["num_text_tokens"]
            health = health + weight * sums.stop_health.to_vector()
        totals = sum_over_ranks(acc, torch.cat([totals, health]))
        self.model.train()
        sums = LossSums(audio_per_codebook=totals[:k], text=totals[k])
        loss, _ = combine(
            sums, totals[k + 1], totals[k + 2], self.codebook_weights, self.cfg.text_loss_weight
        )
        stop = stop_health_metrics(StopHealthSums.from_vector(totals[k + 3 :], k))
        return {"eval_loss": float(loss), **{f"eval_{name}": v for name, v in stop.items()}}

    def evaluate(self) -> bool:
        """Measure the held-out set, log it and any stop-health warning, and update the best checkpoint.

        Returns whether this evaluation is the best so far, so that its checkpoint is saved now.
        """
        metrics = self.held_out_metrics()
        if metrics is None:
            return False
        self._log({"step": self.step, **metrics})
        if self.accelerator.is_main_process:
            log.info(
                "step %d: held-out loss %.4f, EOS probability %.3f, early-stop risk %.3f",
                self.step,
                metrics["eval_loss"],
                metrics["eval_eos_prob"],
                metrics["eval_early_stop_risk"],
            )
            if self.step > self.cfg.warmup_steps:
                for warning in stop_health_warnings(metrics, prefix="eval_"):
                    log.warning("step %d: %s", self.step, warning)
        self.last_eval = {"step": self.step, **metrics}
        return self.best.update(metrics, self.step)

    def save(self, metrics: dict | None = None) -> Path:
        """Write a complete checkpoint atomically (all ranks take part; rank 0 renames it into place)."""
        acc = self.accelerator
        tmp = checkpoint.temporary_dir(self.run_dir, self.step)
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        with full_disk_named(tmp):
            acc.save_state(str(tmp / "state"))
            checkpoint.write_plain_state(tmp / "state", self.scheduler, acc)
        acc.wait_for_everyone()  # every process's state is in the folder before it is renamed
        state_dict = acc.get_state_dict(self.model)
        final = None
        if acc.is_main_process:
            wrapper = acc.unwrap_model(self.model)
            with full_disk_named(tmp):
                checkpoint.write_weights(tmp, wrapper.model, state_dict, self.cfg)
                save_config(self.cfg, tmp / "train_config.yaml")
                base = wrapper.base_fingerprint
                state = checkpoint.trainer_state(self.cfg, self.step, metrics, self.best.state(), base)
                write_checkpoint_card(tmp, state)
                final = checkpoint.finalize(self.run_dir, self.step, state, self.cfg.save_total_limit)
        acc.wait_for_everyone()
        return final or self.run_dir / f"checkpoint-{self.step}"

    def _log(self, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        path = self.run_dir / "metrics.jsonl"
        with full_disk_named(path), open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        self.trackers.log(metrics)

    def run(self) -> Path:
        """Train to `max_steps`, or until early stopping ends the run; returns the final checkpoint folder."""
        acc, cfg = self.accelerator, self.cfg
        self.model.train()
        batches = self.data.micro_batches(self.step * cfg.gradient_accumulation_steps)
        bar = Progress(
            total=self.max_steps, initial=self.step, desc="train", unit="step", enabled=acc.is_main_process
        )
        window: dict[str, torch.Tensor] = {}
        tokens, audio_seconds, started, logged_steps = 0, 0.0, time.perf_counter(), 0
        final = None
        try:
            while self.step < self.max_steps:
                group = [next(batches) for _ in range(cfg.gradient_accumulation_steps)]
                totals = self.train_step(group)
                self.step += 1
                logged_steps += 1
                tokens += sum(b["num_tokens"] for b in group)
                audio_seconds += sum(b["num_audio_frames"] for b in group) / self.frame_rate
                for k, v in totals.items():
                    window[k] = window.get(k, 0) + v
                bar.update(1)
                if self.step % cfg.logging_steps == 0 or self.step == self.max_steps:
                    elapsed = time.perf_counter() - started
                    # Every rank's own counts (token budgets differ per rank).
                    counted = torch.tensor([tokens, audio_seconds], dtype=torch.float64, device=acc.device)
                    tokens, audio_seconds = sum_over_ranks(acc, counted).tolist()
                    metrics = self._metrics(
                        window, logged_steps, tokens / elapsed, audio_seconds / elapsed, group
                    )
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
                    self._log(metrics)
                    window, tokens, audio_seconds, started, logged_steps = {}, 0, 0.0, time.perf_counter(), 0
                final = self._evaluate_and_save() or final
                if self.best.should_stop():
                    break
        finally:  # also when a non-finite loss or an interrupt stops the run
            bar.close()
            self.trackers.finish()
        return final or checkpoint.last_checkpoint(self.run_dir)

    def _evaluate_and_save(self) -> Path | None:
        """What follows an optimizer step: held-out evaluation, samples, and a save when one is due; returns
        the checkpoint saved, if any.

        Besides every `save_steps` and the last step, a checkpoint is saved at each evaluation that is the
        best so far, so the best checkpoint always exists, and when early stopping ends the run.
        """
        cfg, last = self.cfg, self.step == self.max_steps
        is_best = (self.step % cfg.eval_steps == 0 or last) and self.evaluate()
        if self.previews is not None and self.step % cfg.preview_steps == 0:
            higgs = self.accelerator.unwrap_model(self.model).higgs
            self._log(self.previews.run(higgs, self.step, self.trackers))
        stop = self.best.should_stop()
        if stop and self.accelerator.is_main_process:
            log.info(
                "early stopping at step %d: %s has not improved by more than %g for %d evaluations "
                "(best %.4g at step %d)",
                self.step,
                cfg.metric_for_best_model,
                cfg.early_stopping_threshold,
                self.best.evaluations_without_improvement,
                self.best.best_value,
                self.best.best_step,
            )
        if is_best or stop or last or self.step % cfg.save_steps == 0:
            return self.save({"step": self.step, "last_evaluation": self.last_eval})
        return None

    def _metrics(self, window: dict, steps: int, tok_s: float, audio_s: float, group: list[dict]) -> dict:
        per_codebook = (window["per_codebook"] / steps).tolist()
        metrics = {
            "step": self.step,
            "epoch": group[-1]["epoch"],
            "loss": float(window["loss"]) / steps,
            "audio_loss": float(window["audio_loss"]) / steps,
            "text_loss": float(window["text_loss"]) / steps,
            "grad_norm": float(window["grad_norm"]) / steps,
            "lr": self.scheduler.get_last_lr()[0],
            "tokens_per_sec": tok_s,
            "audio_seconds_per_sec": audio_s,
        }
        metrics.update({f"loss_codebook_{k}": v for k, v in enumerate(per_codebook)})
        return metrics
