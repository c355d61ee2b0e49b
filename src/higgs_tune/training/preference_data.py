"""A DPO run's data: the pairs of a preference folder, split, length-filtered and planned into micro-batches.

`PreferenceData` is the `run_data.RunData` of `objective: dpo`, as `data.TrainingData` is SFT's: the
trainer takes this rank's micro-batches (`micro_batches`: the same resumable plan) and its share of the
held-out set from it alike. A micro-batch holds `per_device_train_batch_size` pairs, so 2x that many clips
(`dpo.PairCollator`). The folder is read through `data.preference_folder`, beside its writer.

Every example is built by `build_example` with the prompt settings the candidates were cloned with
(`prefs` records them; `run_data.resolve_prompt` reads them), so DPO scores each clip under exactly the
prompt that drew it. Pairs of one prompt stay on one side of the train / held-out split. The reference
model's log-probabilities of every pair come from the reference pass (`DpoTrainer`), cached in the run
folder under a key of everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from higgs_tune.checkpoint import resolve_checkpoint
from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.data import preference_folder
from higgs_tune.errors import UserError
from higgs_tune.files import content_hash, write_json, write_text_atomic
from higgs_tune.prepared.dataset import PreparedSample
from higgs_tune.training.dpo import PairCollator, PreferencePair
from higgs_tune.training.examples import build_example, example_lengths
from higgs_tune.training.run_data import RunData

log = logging.getLogger(__name__)

Reference = dict[int, tuple[float, float]]
"""The reference model's log-probabilities (chosen, rejected) of each pair, by pair index."""


class PairDataset(torch.utils.data.Dataset):
    """Preference pairs built on the fly from a preference folder's codes (no audio is decoded)."""

    def __init__(self, root: Path, pairs: list[dict], processor, prompt: PromptSettings, indices) -> None:
        self.root, self.pairs, self.processor, self.prompt = root, pairs, processor, prompt
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
                self.prompt,
                scene=r.get("scene"),
                ended=side.get("stopped_by_eos", True),
            )

        reference = None if self.reference is None else self.reference[self.indices[i]]
        return PreferencePair(example(r["chosen"]), example(r["rejected"]), reference)


class PreferenceData(RunData):
    """The pairs of one DPO run, split, length-filtered and planned into this rank's micro-batches.

    `prompt` is the run's resolved prompt settings (`run_data.resolve_prompt`): those the candidates were
    cloned with. A pair's id is its prompt's, so a prompt's pairs share a side of the split.
    """

    ITEMS = "pairs"
    MORE = "make more pairs (`prefs --candidates`, more prompts)"

    def __init__(
        self, cfg: TrainSettings, prompt: PromptSettings, processor, accelerator: Accelerator, run_dir: Path
    ) -> None:
        self.root = Path(cfg.prefs)
        self.pairs = preference_folder.read_pairs(self.root)
        if accelerator.is_main_process:
            _check_source(self.root, cfg.model, cfg.init_adapter)
        self.frames = self._check_codes(processor)
        super().__init__(
            cfg, prompt, processor, accelerator, run_dir, self.root, [p["id"] for p in self.pairs]
        )

    def _warn_no_held_out(self) -> None:
        log.warning("pairs of a single prompt: no held-out pairs, so no held-out DPO metrics")

    def _dataset(self, indices: list[int]) -> PairDataset:
        return PairDataset(self.root, self.pairs, self.processor, self.prompt, indices)

    def _collator(self) -> PairCollator:
        return PairCollator(self.processor)

    def _check_codes(self, processor) -> dict[str, int]:
        """Every codes file exists with the codebooks and code range of `processor`'s codec (all problems
        at once); returns each file's length in frames."""
        codec = processor.audio_tokenizer.config
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

    def _example_lengths(self) -> list[int]:
        """Each pair's sequence length: that of its longer clip's example (`examples.example_lengths`),
        from the codes files' lengths in frames (`_check_codes`)."""
        frames = self.frames
        clips = [
            frames[r["ref_codes"]] + max(frames[r["chosen"]["codes"]], frames[r["rejected"]["codes"]])
            for r in self.pairs
        ]
        return example_lengths(self.processor, self.pairs, clips, self.prompt)

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
        every = self._dataset(list(range(len(self.pairs))))
        size = self.cfg.per_device_train_batch_size
        batches = [list(range(i, min(i + size, len(every)))) for i in range(0, len(every), size)]
        for weight, indices in self.rank_share(batches):
            yield weight, indices, self.collator([every[i] for i in indices])

    def reference_key(self, model_fingerprint: dict) -> str:
        """What the reference log-probabilities depend on: the pairs, the prompt and the starting model."""
        cfg = self.cfg
        parts = [
            content_hash(self.root / "prefs.jsonl"),
            asdict(self.prompt),
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


def _check_source(root: Path, model: str, init_adapter: str | None) -> None:
    """Warn when the model trained is not the one that drew the candidates: DPO's reference is the
    starting model, and its log-probabilities are only on-policy for the model that sampled them."""
    made = preference_folder.read_settings(root)
    drew, starts = (made.get("model"), made.get("adapter")), (model, init_adapter)
    if _norm(drew) != _norm(starts):
        log.warning(
            "the candidates in %s were drawn from model %s, adapter %s, but this run starts from model "
            "%s, adapter %s: set model= and init_adapter= to the model that drew them, unless training "
            "off-policy is meant",
            root,
            *drew,
            *starts,
        )


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
