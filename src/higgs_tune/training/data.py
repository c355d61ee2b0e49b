"""A run's data: the train / held-out split, example lengths, the length filter, and the batch plan.

`TrainingData` turns a prepared dataset into what the trainer consumes: this rank's micro-batches in a
resumable order (`micro_batches`) and its share of the held-out set (`held_out_share`). Lengths come
from `examples.example_lengths` without building any example, are computed once per run (each rank a
strided share) and cached in the run folder, and decide which examples are too long and, with a token
budget, how examples are grouped into micro-batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from higgs_tune.config import TrainConfig
from higgs_tune.data.text_normalisation import training_normalisation
from higgs_tune.errors import UserError
from higgs_tune.files import write_json, write_text_atomic
from higgs_tune.model.fingerprint import codec_digest
from higgs_tune.prepared.dataset import PreparedData, PreparedSample
from higgs_tune.training.batching import FixedBatches, TokenBudgetBatches, pack, padding_fraction
from higgs_tune.training.collate import Collator
from higgs_tune.training.distributed import gather_from_ranks
from higgs_tune.training.examples import ExampleDataset, example_lengths

log = logging.getLogger(__name__)


class CodecMismatchError(UserError):
    """Prepared codes made with another codec than the one of the model being trained."""


def check_codec(data: PreparedData, processor, model_id: str) -> None:
    """Refuse prepared codes of another codec: they would train the model on noise, silently.

    Datasets prepared before the codec digest was recorded are checked on codebooks and frame rate.
    """
    codec = processor.audio_tokenizer
    recorded = data.index.get("codec")
    same = (
        recorded == codec_digest(codec)
        if recorded is not None
        else (data.index.get("num_codebooks"), data.index.get("frame_rate"))
        == (codec.config.num_quantizers, codec.config.frame_rate)
    )
    if not same:
        raise CodecMismatchError(
            f"{data.root} was prepared with the codec of {data.index.get('model')}, not that of {model_id}: "
            f"prepare the manifest again with --model {model_id}, or train the model it was prepared for"
        )


def split_indices(data: PreparedData, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train / held-out split by a hash of each sample id (stable if the data is reordered).

    At least one sample is held out when `fraction` > 0; a dataset too small to keep any training data
    after that (a single sample) is all training data, with no held-out set (`TrainingData` says so).
    """
    n_eval = max(1, round(len(data) * fraction))
    if fraction <= 0 or n_eval >= len(data):
        return list(range(len(data))), []
    keyed = sorted(
        range(len(data)),
        key=lambda i: hashlib.sha1(f"{seed}:{data.records[i]['id']}".encode()).hexdigest(),
    )
    held_out = sorted(keyed[:n_eval])
    return sorted(keyed[n_eval:]), held_out


class TooFewSamplesError(UserError):
    """The training set is too small for the run (after the held-out split and the length filter)."""


class TrainingData:
    """The examples of one run, split, length-filtered and planned into this rank's micro-batches."""

    def __init__(self, cfg: TrainConfig, processor, accelerator: Accelerator, run_dir: Path) -> None:
        self.processor = processor
        self.accelerator = accelerator
        self.run_dir = run_dir
        self.prepared = PreparedData(Path(cfg.data))
        check_codec(self.prepared, processor, cfg.model)
        # The run prompts with the text normalisation its data was prepared with (the trainer takes this cfg).
        recorded = self.prepared.index.get("text_normalisation", "none")
        how = training_normalisation(cfg.prompt.text_normalisation, recorded, cfg.data)
        self.cfg = cfg = replace(cfg, prompt=replace(cfg.prompt, text_normalisation=how))
        train_idx, eval_idx = split_indices(self.prepared, cfg.eval_fraction, cfg.seed)
        if cfg.eval_fraction > 0 and not eval_idx and accelerator.is_main_process:
            log.warning(
                "eval_fraction=%g of %d samples would leave no training data: training on all of them "
                "without a held-out set, so without held-out loss, stop health, best checkpoint%s",
                cfg.eval_fraction,
                len(self.prepared),
                " or early stopping (early_stopping_patience is ignored)"
                if cfg.early_stopping_patience is not None
                else "",
            )
        self.lengths = self._example_lengths()
        train_idx, eval_idx = self._skip_over_length(train_idx, eval_idx)
        learn_text = cfg.text_loss_weight > 0
        self.train_set = ExampleDataset(self.prepared, processor, cfg.prompt, learn_text, train_idx)
        self.eval_set = ExampleDataset(self.prepared, processor, cfg.prompt, learn_text, eval_idx)
        self.collator = Collator(processor)
        self.plan = self._batch_plan()

    def _example_lengths(self) -> list[int]:
        """Every sample's sequence length under this run's prompt settings (`examples.example_lengths`).

        Each rank computes a strided share and the shares are exchanged; the result is cached in the run
        folder, keyed by everything it depends on, so a resumed run does not compute it again.
        """
        acc, data = self.accelerator, self.prepared
        key = hashlib.sha1(
            json.dumps(
                [
                    asdict(self.cfg.prompt),
                    self.processor.chat_template,
                    len(self.processor.tokenizer),
                    self.processor.audio_tokenizer.config.num_quantizers,
                    (data.root / "samples.jsonl").stat().st_size,
                    data.index,
                ],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        cache = self.run_dir / "example_lengths.json"
        cached = json.loads(cache.read_text()) if cache.is_file() else {}
        hit = cached.get("key") == key and len(cached.get("lengths", ())) == len(data)
        # All ranks must take the same branch (the other one is collective), whatever each one sees.
        if all(gather_from_ranks(acc, hit)):
            return cached["lengths"]
        started = time.perf_counter()
        mine = list(range(acc.process_index, len(data), acc.num_processes))
        shares = gather_from_ranks(acc, example_lengths(self.processor, data, self.cfg.prompt, mine))
        lengths = [0] * len(data)
        for rank, part in enumerate(shares):
            lengths[rank :: acc.num_processes] = part
        if acc.is_main_process:
            log.info("example lengths of %d samples in %.1f s", len(lengths), time.perf_counter() - started)
            write_text_atomic(cache, json.dumps({"key": key, "lengths": lengths}))
        return lengths

    def sample_id(self, i: int) -> str:
        """The id of the `i`-th sample, as errors and reports name it."""
        return self.prepared.records[i]["id"]

    def _skip_over_length(self, train_idx: list[int], eval_idx: list[int]) -> tuple[list[int], list[int]]:
        """Drop examples longer than `max_seq_len` from both splits, and say so once, with their ids."""
        limit = self.cfg.max_seq_len
        over = sorted(i for i in (*train_idx, *eval_idx) if self.lengths[i] > limit)
        self.skipped_ids = [self.sample_id(i) for i in over]
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

    def _batch_plan(self) -> FixedBatches | TokenBudgetBatches:
        """This rank's batch plan: by length within the token budget, or of the micro-batch size."""
        cfg, acc = self.cfg, self.accelerator
        if len(self.train_set) < acc.num_processes:
            raise TooFewSamplesError(
                f"{cfg.data or cfg.prefs}: {len(self.train_set)} training samples (of {len(self.lengths)}, "
                f"{len(self.eval_set)} held out, {len(self.skipped_ids)} longer than max_seq_len="
                f"{cfg.max_seq_len}) cannot give each of {acc.num_processes} processes a micro-batch; "
                "add data, raise max_seq_len, lower eval_fraction or use fewer processes"
            )
        if cfg.max_tokens_per_batch is not None:
            return TokenBudgetBatches(
                [self.lengths[i] for i in self.train_set.indices],
                cfg.max_tokens_per_batch,
                cfg.seed,
                acc.process_index,
                acc.num_processes,
            )
        return FixedBatches(
            len(self.train_set), self._micro_batch_size(), cfg.seed, acc.process_index, acc.num_processes
        )

    def _micro_batch_size(self) -> int:
        """`per_device_train_batch_size`, or fewer when the training set cannot fill one micro-batch on
        every process (a voice from a handful of clips): the loss is normalised by labelled frames, so a
        smaller batch changes no update's meaning, only its noise."""
        asked, n, ranks = (
            self.cfg.per_device_train_batch_size,
            len(self.train_set),
            self.accelerator.num_processes,
        )
        if n >= asked * ranks or n < ranks:  # enough; or too few for one each (FixedBatches says so)
            return asked
        size = n // ranks
        if self.accelerator.is_main_process:
            log.warning(
                "%d training samples cannot fill one micro-batch of %d on each of %d processes: training "
                "with micro-batches of %d (per_device_train_batch_size=%d to silence this)",
                n,
                asked,
                ranks,
                size,
                size,
            )
        return size

    def steps_for_epochs(self, epochs: float) -> int:
        """Optimizer steps in `epochs` passes (token-budget epochs differ a little in batch count)."""
        whole = int(epochs)
        micro = sum(len(self.plan.batches(e)) for e in range(whole))
        micro += (epochs - whole) * len(self.plan.batches(whole))
        return max(1, math.ceil(micro / self.cfg.gradient_accumulation_steps))

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
                    # Pinned batches make the trainer's non-blocking copies to the GPU truly asynchronous.
                    pin_memory=self.accelerator.device.type == "cuda",
                    # Its own generator: a loader otherwise draws its workers' base seed from the global
                    # one, which LoRA dropout draws from too, and a resumed run builds one more loader
                    # (at the resumed step) than the interrupted run did.
                    generator=torch.Generator().manual_seed(self.cfg.seed + epoch),
                )
                for batch in loader:
                    batch["epoch"] = epoch
                    yield batch
                skip = 0
            else:
                skip -= len(batches)
            epoch += 1

    def held_out_share(self) -> Iterator[tuple[float, dict]]:
        """This rank's held-out micro-batches, each with its weight in the held-out sums (1 or 0).

        Every rank yields the same number of batches (FSDP gathers weights collectively in each forward);
        a rank short of batches repeats its last one with weight 0.
        """
        for weight, idx in self.rank_share(self._eval_batches()):
            yield weight, self.collator([self.eval_set[i] for i in idx])

    def rank_share(self, batches: list[list[int]]) -> Iterator[tuple[float, list[int]]]:
        """This rank's strided share of `batches`, as (weight, batch); a rank short of batches repeats its
        last one with weight 0, so every rank yields as many (FSDP gathers weights in each forward)."""
        acc = self.accelerator
        per_rank = math.ceil(len(batches) / acc.num_processes)
        mine = batches[acc.process_index :: acc.num_processes]
        weights = [1.0] * len(mine) + [0.0] * (per_rank - len(mine))
        mine = mine + [mine[-1] if mine else batches[0]] * (per_rank - len(mine))
        yield from zip(weights, mine, strict=True)

    def _eval_batches(self) -> list[list[int]]:
        """Held-out batches: by length within the token budget, or of the micro-batch size."""
        n = len(self.eval_set)
        if self.cfg.max_tokens_per_batch is not None:
            lengths = [self.lengths[i] for i in self.eval_set.indices]
            return pack(sorted(range(n), key=lambda i: lengths[i]), lengths, self.cfg.max_tokens_per_batch)
        bs = self.cfg.per_device_train_batch_size
        return [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]

    def preview_prompts(self, n: int) -> list[PreparedSample]:
        """The first `n` held-out samples to clone while training (training samples if none are held out)."""
        indices = self.eval_set.indices or self.train_set.indices
        return [self.prepared[i] for i in indices[:n]]

    def report_plan(self) -> None:
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
        write_json(self.run_dir / "data_plan.json", report)
