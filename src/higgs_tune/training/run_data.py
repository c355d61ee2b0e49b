"""The one data contract of a run, SFT or DPO: what the trainer takes from its data, and what both share.

`RunData` is what `trainer.Trainer` consumes: this rank's micro-batches in a resumable order
(`micro_batches`), its share of the held-out set (`held_out_share`), prompts to preview, and the batch
plan's report. Its two kinds differ in what an item is, how it is read and how long its example is:
`data.TrainingData` (SFT: a prepared dataset's samples) and `preference_data.PreferenceData` (DPO: a
preference folder's pairs, one item two clips). Everything else is written once here: the train /
held-out split by a hash of each item's id, the `max_seq_len` filter, the batch plan, and each rank's
share of a list of batches.

The prompt settings a run trains with are resolved once, before any data is read (`resolve_prompt`), and
passed down; the data never changes the run's config.
"""

from __future__ import annotations

import hashlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.data import preference_folder
from higgs_tune.data.text_normalisation import training_normalisation
from higgs_tune.errors import UserError
from higgs_tune.prepared.dataset import PreparedSample, read_index
from higgs_tune.training.batching import FixedBatches, TokenBudgetBatches, pack

log = logging.getLogger(__name__)


class TooFewSamplesError(UserError):
    """The training set is too small for the run (after the held-out split and the length filter)."""


def resolve_prompt(cfg: TrainSettings, announce: bool) -> PromptSettings:
    """The prompt settings the run trains with, decided once before its data is read.

    SFT prompts with the text normalisation its prepared data was made with (`training_normalisation`
    refuses a config that names another). DPO prompts exactly as its candidates were cloned (the
    preference folder's `prompt.json`): the only prompt under which their log-probabilities mean what DPO
    needs; the run's own `prompt` section gives way, with a note when `announce` (the main process).
    """
    if cfg.objective == "dpo":
        prompt = PromptSettings(**preference_folder.read_prompt(Path(cfg.prefs)))
        if prompt != cfg.prompt and announce:
            log.info("prompting as the candidates in %s were cloned: %s", cfg.prefs, asdict(prompt))
        return prompt
    recorded = read_index(Path(cfg.data)).get("text_normalisation", "none")
    how = training_normalisation(cfg.prompt.text_normalisation, recorded, cfg.data)
    return replace(cfg.prompt, text_normalisation=how)


def held_out_split(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train / held-out split of items by a hash of their id (stable if they are reordered).

    Items sharing an id (a prompt's preference pairs) share a side, so no held-out item has a training
    twin. At least one id is held out when `fraction` > 0; too few ids to keep any training data after
    that (a single one) are all training data, with no held-out set (the run says so).
    """
    keyed = sorted(dict.fromkeys(ids), key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
    n_eval = max(1, round(len(keyed) * fraction))
    if fraction <= 0 or n_eval >= len(keyed):
        return list(range(len(ids))), []
    held_out = set(keyed[:n_eval])
    return (
        [i for i, x in enumerate(ids) if x not in held_out],
        [i for i, x in enumerate(ids) if x in held_out],
    )


class RunData(ABC):
    """The items of one run, split, length-filtered and planned into this rank's micro-batches.

    A kind reads its items, then calls `__init__` with their ids; `__init__` splits them, measures their
    examples (`_example_lengths`), drops the too long, builds both datasets (`_dataset`, each with the
    `indices` of its items), their collator and the batch plan.
    """

    ITEMS = "samples"
    """What an item is called in messages."""
    MORE = "add data"
    """The first fix named when the training set is too small."""

    def __init__(
        self,
        cfg: TrainSettings,
        prompt: PromptSettings,
        processor,
        accelerator: Accelerator,
        run_dir: Path,
        source: Path,
        ids: list[str],
    ) -> None:
        self.cfg, self.prompt, self.processor = cfg, prompt, processor
        self.accelerator, self.run_dir, self.source, self.ids = accelerator, run_dir, source, ids
        train_idx, eval_idx = held_out_split(ids, cfg.eval_fraction, cfg.seed)
        if cfg.eval_fraction > 0 and not eval_idx and accelerator.is_main_process:
            self._warn_no_held_out()
        self.lengths = self._example_lengths()
        train_idx, eval_idx = self._skip_over_length(train_idx, eval_idx)
        self.train_set, self.eval_set = self._dataset(train_idx), self._dataset(eval_idx)
        self.collator = self._collator()
        self.plan = self._batch_plan()

    @abstractmethod
    def _warn_no_held_out(self) -> None:
        """Say that `eval_fraction` left no held-out set, and what the run does without one."""

    @abstractmethod
    def _example_lengths(self) -> list[int]:
        """Every item's sequence length under `self.prompt`, in item order, without building examples."""

    @abstractmethod
    def _dataset(self, indices: list[int]) -> torch.utils.data.Dataset:
        """The dataset of the items at `indices` (it keeps them as `indices`)."""

    @abstractmethod
    def _collator(self) -> Callable[[list], dict]:
        """What turns a list of dataset items into a micro-batch."""

    @abstractmethod
    def held_out_share(self) -> Iterator[tuple]:
        """This rank's held-out micro-batches, each led by its weight in the held-out sums (1 or 0)."""

    @abstractmethod
    def preview_prompts(self, n: int) -> list[PreparedSample]:
        """The first `n` held-out prompts to clone while training (training ones if none are held out)."""

    @abstractmethod
    def report_plan(self) -> None:
        """Log the split and the batch plan and write them to `data_plan.json`."""

    def sample_id(self, i: int) -> str:
        """The id of the `i`-th item, as errors and reports name it."""
        return self.ids[i]

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
                f"{self.source}: {len(self.train_set)} training {self.ITEMS} (of {len(self.lengths)}, "
                f"{len(self.eval_set)} held out, {len(self.skipped_ids)} longer than max_seq_len="
                f"{cfg.max_seq_len}) cannot give each of {acc.num_processes} processes a micro-batch; "
                f"{self.MORE}, raise max_seq_len, lower eval_fraction or use fewer processes"
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
                "%d training %s cannot fill one micro-batch of %d on each of %d processes: training "
                "with micro-batches of %d (per_device_train_batch_size=%d to silence this)",
                n,
                self.ITEMS,
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
                log.info("epoch %d: %d %s left out to keep processes in step", epoch, left_out, self.ITEMS)
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
