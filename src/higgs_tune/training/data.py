"""An SFT run's data: a prepared dataset's samples, split, length-filtered and planned into micro-batches.

`TrainingData` is the `run_data.RunData` of `objective: sft`: the trainer takes this rank's micro-batches
(`micro_batches`) and its share of the held-out set (`held_out_share`) from it. Lengths come from
`examples.prepared_lengths` without building any example, are computed once per run (each rank a strided
share) and cached in the run folder, and decide which examples are too long and, with a token budget, how
examples are grouped into micro-batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from accelerate import Accelerator

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.errors import UserError
from higgs_tune.files import write_json, write_text_atomic
from higgs_tune.model.fingerprint import codec_digest
from higgs_tune.prepared.dataset import PreparedData, PreparedSample
from higgs_tune.training.batching import FixedBatches, TokenBudgetBatches, padding_fraction
from higgs_tune.training.collate import Collator
from higgs_tune.training.distributed import gather_from_ranks
from higgs_tune.training.examples import ExampleDataset, prepared_lengths
from higgs_tune.training.run_data import RunData

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


class TrainingData(RunData):
    """The samples of one SFT run, split, length-filtered and planned into this rank's micro-batches.

    `prompt` is the run's resolved prompt settings (`run_data.resolve_prompt`): every example is built and
    measured with it.
    """

    def __init__(
        self, cfg: TrainSettings, prompt: PromptSettings, processor, accelerator: Accelerator, run_dir: Path
    ) -> None:
        self.prepared = PreparedData(Path(cfg.data))
        check_codec(self.prepared, processor, cfg.model)
        ids = self.prepared.records.ids
        super().__init__(cfg, prompt, processor, accelerator, run_dir, Path(cfg.data), ids)

    def _warn_no_held_out(self) -> None:
        log.warning(
            "eval_fraction=%g of %d samples would leave no training data: training on all of them "
            "without a held-out set, so without held-out loss, stop health, best checkpoint%s",
            self.cfg.eval_fraction,
            len(self.prepared),
            " or early stopping (early_stopping_patience is ignored)"
            if self.cfg.early_stopping_patience is not None
            else "",
        )

    def _dataset(self, indices: list[int]) -> ExampleDataset:
        learn_text = self.cfg.text_loss_weight > 0
        return ExampleDataset(self.prepared, self.processor, self.prompt, learn_text, indices)

    def _collator(self) -> Collator:
        return Collator(self.processor)

    def _example_lengths(self) -> list[int]:
        """Every sample's sequence length under this run's prompt settings (`examples.prepared_lengths`).

        Each rank computes a strided share and the shares are exchanged; the result is cached in the run
        folder, keyed by everything it depends on, so a resumed run does not compute it again.
        """
        acc, data = self.accelerator, self.prepared
        key = hashlib.sha1(
            json.dumps(
                [
                    asdict(self.prompt),
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
        shares = gather_from_ranks(acc, prepared_lengths(self.processor, data, self.prompt, mine))
        lengths = [0] * len(data)
        for rank, part in enumerate(shares):
            lengths[rank :: acc.num_processes] = part
        if acc.is_main_process:
            log.info("example lengths of %d samples in %.1f s", len(lengths), time.perf_counter() - started)
            write_text_atomic(cache, json.dumps({"key": key, "lengths": lengths}))
        return lengths

    def held_out_share(self) -> Iterator[tuple[float, dict]]:
        """This rank's held-out micro-batches, each with its weight in the held-out sums (1 or 0).

        Every rank yields the same number of batches (FSDP gathers weights collectively in each forward);
        a rank short of batches repeats its last one with weight 0.
        """
        for weight, idx in self.rank_share(self._eval_batches()):
            yield weight, self.collator([self.eval_set[i] for i in idx])

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
