"""Training: LoRA (peft) or full fine-tuning on a prepared dataset, on 1 to N processes via accelerate.

One optimizer step takes `gradient_accumulation_steps` micro-batches. The label counts of all of them
(on all ranks) are known before the first backward, because the collator computes them on CPU, so the
loss is normalised by the number of labelled positions of the whole step: micro-batch 4 x 1 and 1 x 4
give the same update, and so do 1 process and N with the same global batch, and so do micro-batches of
varying sizes (token budgets, `max_tokens_per_batch`).

The same code runs on one process and under `accelerate launch` / `torchrun` with DDP (default), FSDP
or DeepSpeed, as the accelerate config says (`configs/accelerate_*.yaml`, README "Training on many GPUs").
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

import hashlib
import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object, set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm

from higgs_tune import checkpoint
from higgs_tune.config import TrainConfig, resolve_codebook_weights
from higgs_tune.model.loading import load_model, load_processor
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.training.batching import FixedBatches, TokenBudgetBatches, pack, padding_fraction
from higgs_tune.training.collate import LOSS_INPUTS, Collator
from higgs_tune.training.examples import ExampleDataset, example_lengths
from higgs_tune.training.loss import CloningLossModel, combine
from higgs_tune.training.train_samples import TrainingSamples
from higgs_tune.typed_config import config_to_dict, require, save_config

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step, the batch and the last good save."""


def split_indices(data: PreparedData, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train / held-out split by a hash of each sample id (stable if the data is reordered)."""
    if fraction <= 0:
        return list(range(len(data))), []
    keyed = sorted(
        range(len(data)),
        key=lambda i: hashlib.sha1(f"{seed}:{data.records[i]['id']}".encode()).hexdigest(),
    )
    n_eval = max(1, round(len(data) * fraction))
    if n_eval >= len(data):
        raise ValueError(f"eval_fraction={fraction} leaves no training data out of {len(data)} samples")
    held_out = sorted(keyed[:n_eval])
    return sorted(keyed[n_eval:]), held_out


def lr_lambda(cfg: TrainConfig, total_steps: int):
    """Linear warm-up to the peak, then cosine / linear decay to `min_lr_ratio` of it (or constant)."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        if cfg.lr_scheduler_type == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        if cfg.lr_scheduler_type == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape

    return factor


def check_backends(cfg: TrainConfig) -> None:
    """Fail before loading anything when the config or the launcher asks for a package that is missing."""
    needs = []
    if cfg.attn_implementation == "flash_attention_2":
        needs.append(("flash_attn", "attn_implementation=flash_attention_2", "flash-attn"))
    if cfg.optim == "adamw_8bit":
        needs.append(("bitsandbytes", "optim=adamw_8bit", "bitsandbytes"))
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        needs.append(("deepspeed", "the accelerate config (distributed_type: DEEPSPEED)", "deepspeed"))
    missing = [(what, pip) for module, what, pip in needs if importlib.util.find_spec(module) is None]
    if missing:
        raise RuntimeError(
            "; ".join(f"{what} needs the {pip} package: pip install {pip}" for what, pip in missing)
        )


def freeze_unreachable(model: torch.nn.Module, text_head: bool) -> list[str]:
    """Freeze the trainable parameters whose output can never reach the loss; returns their names.

    Without a text head only audio positions are scored, and in the last decoder layer the text MLP (and
    its norm) update only text positions, which nothing after them reads. Their gradient is exactly zero
    every step, so freezing them changes no update (Adam moves a parameter with zero gradient by zero),
    saves their gradients and optimizer state (about 75M parameters' worth in full fine-tuning of the 3B
    model), keeps weight decay from shrinking them for nothing, and means DDP never waits on them.
    """
    if text_head:
        return []
    last = len(model.higgs.model.layers) - 1
    prefixes = (f"layers.{last}.mlp.", f"layers.{last}.post_attention_layernorm.")
    frozen = []
    for name, p in model.named_parameters():
        if p.requires_grad and any(prefix in name for prefix in prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def build_model(cfg: TrainConfig, use_bf16: bool, uniform_dtype: bool = False) -> CloningLossModel:
    """The base model, wrapped with LoRA adapters unless `full`, inside the loss wrapper.

    LoRA keeps the frozen base in bf16 when training in bf16 (peft keeps the adapters in float32), except
    with `uniform_dtype` (FSDP: a flat parameter holds one dtype; FSDP's mixed precision then computes
    in bf16). Full fine-tuning keeps float32 master weights under autocast.
    """
    dtype = torch.bfloat16 if use_bf16 and not cfg.full and not uniform_dtype else torch.float32
    model = load_model(
        cfg.model,
        use_text_head=cfg.text_loss_weight > 0,
        dtype=dtype,
        attn_implementation=cfg.attn_implementation,
    )
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input gradients, so it works with frozen embeddings (LoRA).
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if not cfg.full:
        import peft

        lora = peft.LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
            modules_to_save=["audio_lm_head"] if cfg.lora.train_audio_head else None,
        )
        model = peft.get_peft_model(model, lora)
    wrapped = CloningLossModel(model)
    frozen = freeze_unreachable(wrapped, text_head=cfg.text_loss_weight > 0)
    if frozen:
        log.info("froze %d tensors that cannot reach an audio-only loss (last layer's text MLP)", len(frozen))
    return wrapped


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and norms."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {"lr": cfg.learning_rate, "betas": (cfg.adam_beta1, cfg.adam_beta2)}
    if cfg.optim == "adamw_8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise RuntimeError("optim=adamw_8bit needs bitsandbytes: pip install bitsandbytes") from e
        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


class Trainer:
    """Holds one run's state; `run()` trains to `max_steps`, saving and evaluating on the way."""

    def __init__(self, cfg: TrainConfig, resume: bool = False) -> None:
        require(cfg, "model", "data", "output_dir")
        check_backends(cfg)
        self.cfg = cfg
        self.run_dir = Path(cfg.output_dir)
        use_bf16 = cfg.bf16 is True or (
            cfg.bf16 == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        )
        self.accelerator = Accelerator(
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            mixed_precision="bf16" if use_bf16 else "no",
            # Without an accelerator, accelerate only runs distributed (gloo) when told it is on CPU;
            # otherwise `torchrun` on a CPU machine would start N independent single-process runs.
            cpu=not torch.accelerator.is_available(),
        )
        acc = self.accelerator
        for engine, wanted in (("FSDP", DistributedType.FSDP), ("DEEPSPEED", DistributedType.DEEPSPEED)):
            asked = os.environ.get(f"ACCELERATE_USE_{engine}", "false").lower() == "true"
            if asked and acc.distributed_type != wanted:
                raise RuntimeError(
                    f"the accelerate config asks for {wanted.value} but accelerate set up "
                    f"{acc.distributed_type.value}: accelerate runs FSDP and DeepSpeed on GPUs only; "
                    "use configs/accelerate_ddp.yaml (or plain torchrun) without GPUs"
                )
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched != acc.num_processes:
            raise RuntimeError(
                f"launched as {launched} processes (WORLD_SIZE) but accelerate set up {acc.num_processes}; "
                "check the accelerate config and the launcher"
            )
        set_seed(cfg.seed)
        self.processor = load_processor(cfg.model)
        self.data = PreparedData(Path(cfg.data))
        train_idx, eval_idx = split_indices(self.data, cfg.eval_fraction, cfg.seed)
        train_idx, eval_idx = self._skip_over_length(train_idx, eval_idx)
        learn_text = cfg.text_loss_weight > 0
        self.train_set = ExampleDataset(self.data, self.processor, cfg.prompt, learn_text, train_idx)
        self.eval_set = ExampleDataset(self.data, self.processor, cfg.prompt, learn_text, eval_idx)
        self.collator = Collator(self.processor)
        if cfg.max_tokens_per_batch is not None:
            self.plan = TokenBudgetBatches(
                [self.lengths[i] for i in train_idx],
                cfg.max_tokens_per_batch,
                cfg.seed,
                acc.process_index,
                acc.num_processes,
            )
        else:
            self.plan = FixedBatches(
                len(self.train_set),
                cfg.per_device_train_batch_size,
                cfg.seed,
                acc.process_index,
                acc.num_processes,
            )
        self.max_steps = cfg.max_steps or self._steps_for_epochs(cfg.num_train_epochs)

        model = build_model(cfg, use_bf16, uniform_dtype=acc.distributed_type == DistributedType.FSDP)
        # ZeRO-3 creates parameters already partitioned; ds_numel is their full size.
        n_trainable = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
        n_total = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())
        self.mode = "full" if cfg.full else "lora"
        self.codebook_weights = torch.tensor(
            resolve_codebook_weights(cfg.codebook_weights, model.higgs.config.num_codebooks)
        )
        optimizer = build_optimizer(cfg, model)
        if acc.distributed_type == DistributedType.DEEPSPEED:
            self._fill_deepspeed_config()
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg, self.max_steps))
        acc.register_for_checkpointing(self.scheduler)
        acc.register_save_state_pre_hook(self._trainable_weights_only)
        self.frame_rate = float(self.processor.audio_tokenizer.config.frame_rate)
        self.step = 0
        if resume:
            self._resume()
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "train_config.yaml")
            log.info(
                "%s fine-tuning: %d / %d parameters trainable (%.2f%%); %d train, %d held-out samples; "
                "%d processes (%s); bf16=%s",
                self.mode,
                n_trainable,
                n_total,
                100 * n_trainable / n_total,
                len(self.train_set),
                len(self.eval_set),
                acc.num_processes,
                acc.distributed_type.value,
                use_bf16,
            )
            self._report_plan()
        self.samples = self._training_samples(eval_idx or train_idx)
        self.writer = None
        if acc.is_main_process:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _training_samples(self, indices: list[int]) -> TrainingSamples | None:
        """Held-out prompts to clone every `sample_steps` (main process, unsharded weights only)."""
        cfg, acc = self.cfg, self.accelerator
        if cfg.sample_steps == 0 or not acc.is_main_process:
            return None
        if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            log.warning("sample_steps: samples are not generated under FSDP / DeepSpeed (sharded weights)")
            return None
        prompts = [self.data[i] for i in indices[: cfg.num_sample_prompts]]
        return TrainingSamples(self.processor, prompts, cfg.prompt)

    def _skip_over_length(self, train_idx: list[int], eval_idx: list[int]) -> tuple[list[int], list[int]]:
        """Drop examples longer than `max_seq_len` from both splits, and say so once, with their ids."""
        self.lengths = self._example_lengths()
        limit = self.cfg.max_seq_len
        over = sorted(i for i in (*train_idx, *eval_idx) if self.lengths[i] > limit)
        self.skipped_ids = [self.data.records[i]["id"] for i in over]
        if over and self.accelerator.is_main_process:
            shown = ", ".join(self.skipped_ids[:10]) + (", ..." if len(over) > 10 else "")
            log.warning(
                "skipping %d of %d examples longer than max_seq_len=%d tokens (longest %d): %s",
                len(over),
                len(train_idx) + len(eval_idx),
                limit,
                max(self.lengths[i] for i in over),
                shown,
            )
        keep = set(over)
        return [i for i in train_idx if i not in keep], [i for i in eval_idx if i not in keep]

    def _example_lengths(self) -> list[int]:
        """Every sample's sequence length under this run's prompt settings (`examples.example_lengths`).

        Each rank computes a strided share and the shares are exchanged; the result is cached in the run
        folder, keyed by everything it depends on, so a resumed run does not compute it again.
        """
        acc, cfg = self.accelerator, self.cfg
        key = hashlib.sha1(
            json.dumps(
                [
                    asdict(cfg.prompt),
                    self.processor.chat_template,
                    len(self.processor.tokenizer),
                    self.processor.audio_tokenizer.config.num_quantizers,
                    (self.data.root / "samples.jsonl").stat().st_size,
                    self.data.index,
                ],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        cache = self.run_dir / "example_lengths.json"
        cached = json.loads(cache.read_text()) if cache.is_file() else {}
        hit = cached.get("key") == key and len(cached.get("lengths", ())) == len(self.data)
        # All ranks must take the same branch (the other one is collective), whatever each one sees.
        if all(gather_object([hit]) if acc.num_processes > 1 else [hit]):
            return cached["lengths"]
        started = time.perf_counter()
        mine = list(range(acc.process_index, len(self.data), acc.num_processes))
        share = example_lengths(self.processor, self.data, cfg.prompt, mine)
        shares = gather_object([share]) if acc.num_processes > 1 else [share]
        lengths = [0] * len(self.data)
        for rank, part in enumerate(shares):
            lengths[rank :: acc.num_processes] = part
        if acc.is_main_process:
            log.info("example lengths of %d samples in %.1f s", len(lengths), time.perf_counter() - started)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key, "lengths": lengths}))
            tmp.replace(cache)
        return lengths

    def _steps_for_epochs(self, epochs: float) -> int:
        """Optimizer steps in `epochs` passes (token-budget epochs differ a little in batch count)."""
        whole = int(epochs)
        micro = sum(len(self.plan.batches(e)) for e in range(whole))
        micro += (epochs - whole) * len(self.plan.batches(whole))
        return max(1, math.ceil(micro / self.cfg.gradient_accumulation_steps))

    def _report_plan(self) -> None:
        """Log what one epoch of the batch plan looks like and write it to `data_plan.json`."""
        cfg, plan = self.cfg, self.plan
        train_lengths = [self.lengths[i] for i in self.train_set.indices]
        if isinstance(plan, TokenBudgetBatches):
            batches, left_out = plan.global_batches(0)
        else:
            ranks = [
                FixedBatches(plan.num_samples, plan.batch_size, plan.seed, r, plan.world_size)
                for r in range(plan.world_size)
            ]
            batches = [b for r in ranks for b in r.batches(0)]
            left_out = plan.left_out(0)
        report = {
            "train_samples": len(self.train_set),
            "eval_samples": len(self.eval_set),
            "skipped_over_max_seq_len": len(self.skipped_ids),
            "skipped_ids": self.skipped_ids,
            "max_seq_len": cfg.max_seq_len,
            "max_tokens_per_batch": cfg.max_tokens_per_batch,
            "micro_batches_per_rank_epoch0": len(plan.batches(0)),
            "samples_left_out_epoch0": left_out,
            "padding_fraction_epoch0": padding_fraction(batches, train_lengths),
            "mean_examples_per_micro_batch": sum(len(b) for b in batches) / max(1, len(batches)),
        }
        log.info(
            "batch plan: %d micro-batches per process per epoch, %.1f examples each on average, "
            "%.1f%% padding%s",
            report["micro_batches_per_rank_epoch0"],
            report["mean_examples_per_micro_batch"],
            100 * report["padding_fraction_epoch0"],
            f"; {left_out} samples of epoch 0 left out to keep processes in step" if left_out else "",
        )
        (self.run_dir / "data_plan.json").write_text(json.dumps(report, indent=2))

    def _fill_deepspeed_config(self) -> None:
        """DeepSpeed wants a micro-batch size and a clipping threshold in its config; take them from ours.

        We pass no DataLoader to `prepare` (batches come from our plan), so accelerate cannot infer the
        micro-batch size; with token budgets it varies, and DeepSpeed only uses it for bookkeeping.
        """
        ds = self.accelerator.state.deepspeed_plugin.deepspeed_config
        if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            ds["train_micro_batch_size_per_gpu"] = (
                1 if self.cfg.max_tokens_per_batch is not None else self.cfg.per_device_train_batch_size
            )
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = self.cfg.max_grad_norm

    def _trainable_weights_only(self, models: list, weights: list[dict], output_dir: str) -> None:
        """accelerate's save-state hook: keep only trainable weights in the training state. A LoRA
        checkpoint of the 5.4B model would otherwise carry an 11 GB copy of the frozen base each time.
        (FSDP and DeepSpeed save through their own paths and pass no weights here.)"""
        model = self.accelerator.unwrap_model(self.model)  # state-dict keys carry no DDP "module." prefix
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        weights[:] = [{k: v for k, v in w.items() if k in trainable} for w in weights]
        if weights and len(weights[0]) != len(trainable):
            raise RuntimeError(
                f"training state would hold {len(weights[0])} of {len(trainable)} trainable weights; "
                "the state-dict keys do not match the parameter names"
            )

    def _resume(self) -> None:
        acc = self.accelerator
        if acc.is_main_process:
            checkpoint.remove_stale_temporaries(self.run_dir)
        acc.wait_for_everyone()
        last = checkpoint.last_checkpoint(self.run_dir)
        if last is None:
            log.warning("--resume: no complete checkpoint in %s, starting from step 0", self.run_dir)
            return
        # The training state holds the trainable weights only (see `_trainable_weights_only`); the frozen
        # base weights were just loaded from the model itself.
        acc.load_state(str(last / "state"), strict=False)
        self.step = checkpoint.read_trainer_state(last)["step"]
        log.info("resumed from %s at step %d", last, self.step)

    def micro_batches(self, start: int) -> Iterator[dict]:
        """This rank's micro-batches from the `start`-th on, epoch after epoch, in a resumable order."""
        epoch, skip = 0, start
        while True:
            batches = self.plan.batches(epoch)
            left_out = self.plan.left_out(epoch)
            if left_out and skip < len(batches) and self.accelerator.is_main_process:
                log.info("epoch %d: %d samples left out to keep processes in step", epoch, left_out)
            if skip < len(batches):
                loader = DataLoader(
                    self.train_set,
                    batch_sampler=batches[skip:],
                    collate_fn=self.collator,
                    num_workers=self.cfg.dataloader_num_workers,
                    # Pinned batches make the non-blocking copies in `_to_device` truly asynchronous.
                    pin_memory=self.accelerator.device.type == "cuda",
                )
                for batch in loader:
                    batch["epoch"] = epoch
                    yield batch
                skip = 0
            else:
                skip -= len(batches)
            epoch += 1

    def _to_device(self, batch: dict) -> dict:
        return {k: batch[k].to(self.accelerator.device, non_blocking=True) for k in LOSS_INPUTS}

    def _global_counts(self, group: list[dict]) -> tuple[float, float]:
        """Labelled audio frames and text tokens of the whole step, summed over micro-batches and ranks."""
        local = torch.tensor(
            [sum(b["num_audio_frames"] for b in group), sum(b["num_text_tokens"] for b in group)],
            dtype=torch.float64,
            device=self.accelerator.device,
        )
        total = (
            self.accelerator.reduce(local, reduction="sum") if self.accelerator.num_processes > 1 else local
        )
        frames, text = total.tolist()
        return frames, text

    def train_step(self, group: list[dict]) -> dict[str, torch.Tensor]:
        """One optimizer step over a group of micro-batches; returns detached metrics on device."""
        acc, cfg = self.accelerator, self.cfg
        frames, text = self._global_counts(group)
        # Each rank's share of sum/N; DDP (and FSDP, DeepSpeed) average gradients over ranks and
        # accelerate (DeepSpeed) divides by the accumulation steps, so scale back up to get exactly
        # d(sum over the step / N).
        scale = acc.num_processes * cfg.gradient_accumulation_steps
        totals: dict[str, torch.Tensor] = {}
        for j, batch in enumerate(group):
            with acc.accumulate(self.model), acc.autocast():
                sums = self.model(**self._to_device(batch))
                loss, parts = combine(sums, frames, text, self.codebook_weights, cfg.text_loss_weight)
                parts["loss"] = loss.detach()
                for k, v in parts.items():
                    totals[k] = totals.get(k, 0) + v
                if j == len(group) - 1:
                    # Before the last backward: DeepSpeed steps inside it, so this is the last moment
                    # at which a non-finite step can still be stopped on every engine.
                    totals = {
                        k: acc.reduce(v, reduction="sum") if acc.num_processes > 1 else v
                        for k, v in totals.items()
                    }
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
    def evaluate(self) -> float | None:
        """Held-out loss (audio and weighted text, normalised over the whole held-out set)."""
        if len(self.eval_set) == 0:
            return None
        acc, cfg = self.accelerator, self.cfg
        self.model.eval()
        batches = self._eval_batches()
        per_rank = math.ceil(len(batches) / acc.num_processes)
        mine = batches[acc.process_index :: acc.num_processes]
        # Every rank runs the same number of forwards (FSDP gathers weights collectively); a rank short of
        # batches repeats its last one with weight 0.
        weights = [1.0] * len(mine) + [0.0] * (per_rank - len(mine))
        mine = mine + [mine[-1] if mine else batches[0]] * (per_rank - len(mine))
        audio = torch.zeros(self.codebook_weights.shape[0], device=acc.device, dtype=torch.float64)
        counts = torch.zeros(3, device=acc.device, dtype=torch.float64)
        for w, idx in zip(weights, mine, strict=True):
            batch = self.collator([self.eval_set[i] for i in idx])
            with acc.autocast():
                sums = self.model(**self._to_device(batch))
            audio += w * sums.audio_per_codebook.double()
            counts += torch.tensor(
                [w * batch["num_audio_frames"], w * batch["num_text_tokens"], 0.0], device=acc.device
            ).double()
            counts[2] += w * sums.text.double()
        if acc.num_processes > 1:
            audio, counts = acc.reduce(audio, reduction="sum"), acc.reduce(counts, reduction="sum")
        self.model.train()
        per_codebook = audio / counts[0].clamp(min=1)
        loss = (per_codebook * self.codebook_weights.to(per_codebook)).sum()
        if cfg.text_loss_weight > 0:
            loss = loss + cfg.text_loss_weight * counts[2] / counts[1].clamp(min=1)
        return float(loss)

    def _eval_batches(self) -> list[list[int]]:
        """Held-out batches: by length within the token budget, or of the micro-batch size."""
        n = len(self.eval_set)
        if self.cfg.max_tokens_per_batch is not None:
            lengths = [self.lengths[i] for i in self.eval_set.indices]
            return pack(sorted(range(n), key=lambda i: lengths[i]), lengths, self.cfg.max_tokens_per_batch)
        bs = self.cfg.per_device_train_batch_size
        return [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]

    def save(self, metrics: dict | None = None) -> Path:
        """Write a complete checkpoint atomically (all ranks take part; rank 0 renames it into place)."""
        acc = self.accelerator
        tmp = checkpoint.temporary_dir(self.run_dir, self.step)
        if acc.is_main_process and tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp / "state"))
        state_dict = acc.get_state_dict(self.model)
        final = None
        if acc.is_main_process:
            inner = acc.unwrap_model(self.model).model
            weights = {k.removeprefix("model."): v for k, v in state_dict.items()}
            if self.mode == "lora":
                inner.save_pretrained(str(tmp / "adapter"), state_dict=weights)
            else:
                inner.save_pretrained(str(tmp / "model"), state_dict=weights)
            save_config(self.cfg, tmp / "train_config.yaml")
            trainer_state = {
                "step": self.step,
                "mode": self.mode,
                "model": self.cfg.model,
                "text_head": self.cfg.text_loss_weight > 0,
                "prompt": asdict(self.cfg.prompt),
                "config": config_to_dict(self.cfg),
                "metrics": metrics or {},
            }
            final = checkpoint.finalize(self.run_dir, self.step, trainer_state, self.cfg.save_total_limit)
        acc.wait_for_everyone()
        return final or self.run_dir / f"checkpoint-{self.step}"

    def _log(self, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        for k, v in metrics.items():
            if k != "step" and isinstance(v, int | float):
                self.writer.add_scalar(f"train/{k}" if not k.startswith("eval") else k, v, metrics["step"])
        self.writer.flush()

    def run(self) -> Path:
        """Train to `max_steps`; returns the final checkpoint folder."""
        acc, cfg = self.accelerator, self.cfg
        self.model.train()
        batches = self.micro_batches(self.step * cfg.gradient_accumulation_steps)
        bar = tqdm(
            total=self.max_steps,
            initial=self.step,
            desc="train",
            unit="step",
            disable=not acc.is_main_process,
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
                    if acc.num_processes > 1:  # every rank's own counts (token budgets differ per rank)
                        counted = torch.tensor(
                            [tokens, audio_seconds], dtype=torch.float64, device=acc.device
                        )
                        tokens, audio_seconds = acc.reduce(counted, reduction="sum").tolist()
                    metrics = self._metrics(
                        window, logged_steps, tokens / elapsed, audio_seconds / elapsed, group
                    )
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
                    self._log(metrics)
                    window, tokens, audio_seconds, started, logged_steps = {}, 0, 0.0, time.perf_counter(), 0
                if self.step % cfg.eval_steps == 0 or self.step == self.max_steps:
                    eval_loss = self.evaluate()
                    if eval_loss is not None:
                        self._log({"step": self.step, "eval_loss": eval_loss})
                        log.info("step %d: held-out loss %.4f", self.step, eval_loss)
                if self.samples is not None and self.step % cfg.sample_steps == 0:
                    higgs = acc.unwrap_model(self.model).higgs
                    self._log(self.samples.run(higgs, self.step, self.writer))
                if self.step % cfg.save_steps == 0 or self.step == self.max_steps:
                    final = self.save({"step": self.step})
        finally:  # also when a non-finite loss or an interrupt stops the run
            bar.close()
            if self.writer is not None:
                self.writer.close()
        return final or checkpoint.last_checkpoint(self.run_dir)

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


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run a fine-tune described by `cfg`; returns the final checkpoint folder."""
    return Trainer(cfg, resume=resume).run()
