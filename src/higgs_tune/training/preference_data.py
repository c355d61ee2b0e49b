"""A DPO run's data: the pairs of a preference folder, split, length-filtered and planned into micro-batches.

`PreferenceData` is `TrainingData` for `objective: dpo`: the trainer takes this rank's micro-batches
(`micro_batches`, inherited: the same resumable plan) and its share of the held-out set from it alike. A
micro-batch holds `per_device_train_batch_size` pairs, so 2x that many clips (`dpo.PairCollator`).

Every example is built by `build_example` with the prompt settings the candidates were cloned with
(`prefs` records them), so DPO scores each clip under exactly the prompt that drew it. Pairs of one prompt
stay on one side of the train / held-out split. The reference model's log-probabilities of every pair come
from the reference pass (`DpoTrainer`), cached in the run folder under a key of everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from accelerate import Accelerator

from higgs_tune.checkpoint import resolve_checkpoint
from higgs_tune.config import PromptConfig, TrainConfig
from higgs_tune.errors import UserError
from higgs_tune.files import content_hash, read_jsonl, write_json, write_text_atomic
from higgs_tune.prepared.dataset import PreparedSample
from higgs_tune.training.batching import FixedBatches
from higgs_tune.training.data import TooFewSamplesError, TrainingData
from higgs_tune.training.dpo import PairCollator, PreferencePair
from higgs_tune.training.examples import build_example, example_lengths

log = logging.getLogger(__name__)

Reference = dict[int, tuple[float, float]]
"""The reference model's log-probabilities (chosen, rejected) of each pair, by pair index."""


def read_pairs(prefs: Path) -> list[dict]:
    """The pairs of a preference folder, codes paths made absolute; a clear error when it is not one."""
    path = Path(prefs) / "prefs.jsonl"
    if not path.is_file():
        raise UserError(
            f"{prefs}: not a preference folder (no prefs.jsonl); make one with `higgs-tune prefs`"
        )
    pairs = read_jsonl(path)
    if not pairs:
        raise UserError(f"{path}: no pairs (every prompt's candidates were alike); see summary.json")
    return pairs


def read_prompt(prefs: Path) -> dict:
    """The prompt settings a preference folder's candidates were cloned with."""
    path = Path(prefs) / "prompt.json"
    if not path.is_file():
        raise UserError(
            f"{prefs}: no prompt.json; make the folder again with this version of `higgs-tune prefs`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def split_pairs(pairs: list[dict], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train / held-out split of pairs by a hash of their prompt's id: a prompt's pairs share
    a side, so no held-out pair has a training twin. At least one prompt is held out when `fraction` > 0
    and two or more prompts exist."""
    ids = sorted({p["id"] for p in pairs}, key=lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())
    n_eval = max(1, round(len(ids) * fraction))
    if fraction <= 0 or n_eval >= len(ids):
        return list(range(len(pairs))), []
    held_out = set(ids[:n_eval])
    return (
        [i for i, p in enumerate(pairs) if p["id"] not in held_out],
        [i for i, p in enumerate(pairs) if p["id"] in held_out],
    )


class PairDataset(torch.utils.data.Dataset):
    """Preference pairs built on the fly from a preference folder's codes (no audio is decoded)."""

    def __init__(self, root: Path, pairs: list[dict], processor, settings: PromptConfig, indices) -> None:
        self.root, self.pairs, self.processor, self.settings = root, pairs, processor, settings
        self.indices = list(indices)
        self.reference: Reference | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def pair(self, i: int) -> dict:
        """The pair record behind item `i`."""
        return self.pairs[self.indices[i]]

    def codes(self, path: str) -> torch.Tensor:
        return torch.from_numpy(np.load(self.root / path).astype(np.int64))

    def __getitem__(self, i: int) -> PreferencePair:
        r = self.pair(i)
        ref = self.codes(r["ref_codes"])

        def example(side: dict):
            # A candidate cut at its length limit never chose to stop: its EOS is not scored.
            return build_example(
                self.processor,
                r["id"],
                r["ref_text"],
                ref,
                r["text"],
                self.codes(side["codes"]),
                self.settings,
                scene=r.get("scene"),
                ended=side.get("stopped_by_eos", True),
            )

        reference = None if self.reference is None else self.reference[self.indices[i]]
        return PreferencePair(example(r["chosen"]), example(r["rejected"]), reference)


class PreferenceData(TrainingData):
    """The pairs of one DPO run, split, length-filtered and planned into this rank's micro-batches."""

    def __init__(self, cfg: TrainConfig, processor, accelerator: Accelerator, run_dir: Path) -> None:
        self.processor, self.accelerator, self.run_dir = processor, accelerator, run_dir
        self.root = Path(cfg.prefs)
        self.pairs = read_pairs(self.root)
        self.cfg = cfg = replace(cfg, prompt=self._prompt_of_candidates(cfg))
        self._check_source(cfg)
        frames = self._check_codes()
        train_idx, eval_idx = split_pairs(self.pairs, cfg.eval_fraction, cfg.seed)
        if cfg.eval_fraction > 0 and not eval_idx and accelerator.is_main_process:
            log.warning("pairs of a single prompt: no held-out pairs, so no held-out DPO metrics")
        self.lengths = self._pair_lengths(frames)
        train_idx, eval_idx = self._skip_over_length(train_idx, eval_idx)
        self.train_set = PairDataset(self.root, self.pairs, processor, cfg.prompt, train_idx)
        self.eval_set = PairDataset(self.root, self.pairs, processor, cfg.prompt, eval_idx)
        self.collator = PairCollator(processor)
        self.plan = self._batch_plan()

    def sample_id(self, i: int) -> str:
        return self.pairs[i]["id"]

    def _prompt_of_candidates(self, cfg: TrainConfig) -> PromptConfig:
        """The prompt settings the candidates were cloned with: the only ones under which their
        log-probabilities mean what DPO needs (the run's own `prompt` section gives way, with a note)."""
        prompt = PromptConfig(**read_prompt(self.root))
        if prompt != cfg.prompt and self.accelerator.is_main_process:
            log.info("prompting as the candidates in %s were cloned: %s", self.root, asdict(prompt))
        return prompt

    def _check_source(self, cfg: TrainConfig) -> None:
        """Warn when the model trained is not the one that drew the candidates: DPO's reference is the
        starting model, and its log-probabilities are only on-policy for the model that sampled them."""
        made = json.loads((self.root / "settings.json").read_text(encoding="utf-8"))
        drew = (made.get("model"), None if made.get("adapter") in (None, "None") else made.get("adapter"))
        starts = (cfg.model, cfg.init_adapter)
        if _norm(drew) != _norm(starts) and self.accelerator.is_main_process:
            log.warning(
                "the candidates in %s were drawn from model %s, adapter %s, but this run starts from model "
                "%s, adapter %s: set model= and init_adapter= to the model that drew them, unless training "
                "off-policy is meant",
                self.root,
                *drew,
                *starts,
            )

    def _check_codes(self) -> dict[str, int]:
        """Every codes file exists with this codec's codebooks and code range (all problems at once);
        returns each file's length in frames."""
        codec = self.processor.audio_tokenizer.config
        k, size = codec.num_quantizers, codec.codebook_size
        problems, frames = [], {}
        paths = sorted(
            {p for r in self.pairs for p in (r["ref_codes"], r["chosen"]["codes"], r["rejected"]["codes"])}
        )
        for path in paths:
            file = self.root / path
            if not file.is_file():
                problems.append(f"{file}: missing")
                continue
            codes = np.load(file, mmap_mode="r")
            if (
                codes.ndim != 2
                or codes.shape[0] != k
                or codes.size == 0
                or codes.min() < 0
                or codes.max() >= size
            ):
                problems.append(f"{file}: not [{k}, frames] codes in 0..{size - 1} (shape {codes.shape})")
            frames[path] = codes.shape[-1]
        if problems:
            raise UserError(
                f"{self.root}: {len(problems)} codes files unusable for this model's codec (made with "
                "another model, or damaged); make the folder again with `higgs-tune prefs`: "
                + "; ".join(problems[:10])
            )
        return frames

    def _pair_lengths(self, frames: dict[str, int]) -> list[int]:
        """Each pair's sequence length: that of its longer clip's example (`examples.example_lengths`),
        from the codes files' lengths in frames (`_check_codes`)."""
        records = []
        for r in self.pairs:
            longer = max(r["chosen"]["codes"], r["rejected"]["codes"], key=frames.__getitem__)
            records.append({**r, "ref_clip": r["ref_codes"], "target_clip": longer})
        view = SimpleNamespace(records=records, clip_frames=frames.__getitem__)
        return example_lengths(self.processor, view, self.cfg.prompt, range(len(records)))

    def _batch_plan(self) -> FixedBatches:
        """Micro-batches of pairs; every process needs at least one pair."""
        acc = self.accelerator
        if len(self.train_set) < acc.num_processes:
            raise TooFewSamplesError(
                f"{self.root}: {len(self.train_set)} training pairs ({len(self.eval_set)} held out, "
                f"{len(self.skipped_ids)} longer than max_seq_len={self.cfg.max_seq_len}) cannot give each "
                f"of {acc.num_processes} processes a micro-batch; make more pairs (`prefs --candidates`, "
                "more prompts), lower eval_fraction or use fewer processes"
            )
        return FixedBatches(
            len(self.train_set), self._micro_batch_size(), self.cfg.seed, acc.process_index, acc.num_processes
        )

    def held_out_share(self) -> Iterator[tuple[float, dict, dict]]:
        """This rank's held-out pairs as (weight, chosen batch, rejected batch), each batch with its rows'
        reference log-probabilities; every rank yields as many (`TrainingData.rank_share`)."""
        collate = self.collator.collate
        for weight, indices in self.rank_share(self._eval_batches()):
            pairs = [self.eval_set[i] for i in indices]
            chosen, rejected = collate([p.chosen for p in pairs]), collate([p.rejected for p in pairs])
            chosen["reference_logp"] = torch.tensor([p.reference[0] for p in pairs])
            rejected["reference_logp"] = torch.tensor([p.reference[1] for p in pairs])
            yield weight, chosen, rejected

    def reference_share(self) -> Iterator[tuple[float, list[int], dict]]:
        """This rank's share of every pair (training and held-out) for the reference pass, as (weight,
        pair indices, pair batch); every rank yields as many batches."""
        every = PairDataset(self.root, self.pairs, self.processor, self.cfg.prompt, range(len(self.pairs)))
        size = self.cfg.per_device_train_batch_size
        batches = [list(range(i, min(i + size, len(every)))) for i in range(0, len(every), size)]
        for weight, indices in self.rank_share(batches):
            yield weight, indices, self.collator([every[i] for i in indices])

    def reference_key(self, model_fingerprint: dict) -> str:
        """What the reference log-probabilities depend on: the pairs, the prompt and the starting model."""
        cfg = self.cfg
        parts = [
            content_hash(self.root / "prefs.jsonl"),
            asdict(cfg.prompt),
            model_fingerprint,
            cfg.init_adapter,
            cfg.quantization,
            cfg.bf16,
            cfg.full,
        ]
        return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def cached_reference(self, key: str) -> Reference | None:
        """The reference log-probabilities this run folder holds for `key`, if any."""
        path = self.run_dir / "reference_logps.json"
        cached = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if cached.get("key") != key or len(cached.get("chosen", ())) != len(self.pairs):
            return None
        return {i: (c, r) for i, (c, r) in enumerate(zip(cached["chosen"], cached["rejected"], strict=True))}

    def use_reference(self, reference: Reference, key: str) -> None:
        """Attach the reference log-probabilities to every pair; the main process caches them."""
        self.train_set.reference = self.eval_set.reference = reference
        if self.accelerator.is_main_process:
            order = range(len(self.pairs))
            write_text_atomic(
                self.run_dir / "reference_logps.json",
                json.dumps(
                    {
                        "key": key,
                        "chosen": [reference[i][0] for i in order],
                        "rejected": [reference[i][1] for i in order],
                    }
                ),
            )

    def preview_prompts(self, n: int) -> list[PreparedSample]:
        """The first `n` held-out prompts (training ones if none are held out), chosen clip as target."""
        dataset = self.eval_set if len(self.eval_set) else self.train_set
        samples = []
        for i in range(min(n, len(dataset))):
            r = dataset.pair(i)
            samples.append(
                PreparedSample(
                    id=r["id"],
                    ref_text=r["ref_text"],
                    text=r["text"],
                    ref_codes=dataset.codes(r["ref_codes"]).numpy(),
                    target_codes=dataset.codes(r["chosen"]["codes"]).numpy(),
                    scene=r.get("scene"),
                )
            )
        return samples

    def report_plan(self) -> None:
        """Log the pairs' split and batch plan and write it to `data_plan.json`."""
        report = {
            "pairs": len(self.pairs),
            "prompts": len({p["id"] for p in self.pairs}),
            "train_pairs": len(self.train_set),
            "eval_pairs": len(self.eval_set),
            "skipped_over_max_seq_len": len(self.skipped_ids),
            "skipped_ids": self.skipped_ids,
            "max_seq_len": self.cfg.max_seq_len,
            "pairs_per_micro_batch": self.plan.batch_size,
            "micro_batches_per_rank_epoch0": len(self.plan.batches(0)),
            "pairs_left_out_epoch0": self.plan.left_out(0),
        }
        log.info(
            "DPO data: %d pairs of %d prompts (%d held out); %d micro-batches of %d pairs per process "
            "per epoch",
            report["pairs"],
            report["prompts"],
            report["eval_pairs"],
            report["micro_batches_per_rank_epoch0"],
            report["pairs_per_micro_batch"],
        )
        write_json(self.run_dir / "data_plan.json", report)


def _norm(source: tuple[str | None, str | None]) -> tuple[str | None, str | None]:
    """A (model, adapter) pair with local paths resolved and a run folder resolved to the checkpoint it
    loads (`prefs --adapter RUN` records the checkpoint), for comparing where candidates came from."""
    model, adapter = source
    if model is not None and Path(model).exists():
        model = str(Path(model).resolve())
    if adapter is not None and Path(adapter).exists():
        try:
            adapter = str(resolve_checkpoint(Path(adapter)).resolve())
        except FileNotFoundError:  # not a run: compared as given
            adapter = str(Path(adapter).resolve())
    return model, adapter
