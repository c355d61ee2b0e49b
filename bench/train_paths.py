"""The two training paths `bench/train.py` compares, each run in its own process and timed the same way.

* naive: what a newcomer writes. The processor on raw audio inside the dataset's `__getitem__`
  (`processor.apply_chat_template` with audio arrays and `output_labels=True`, so the codec encodes both
  clips of every sample at every step), a collator padding to the longest sample, a fixed batch size,
  and the model's own `forward(..., audio_labels=...)` loss over the full [batch, length, 8 x 1026] logits.
* ours: codes prepared once, token-budget micro-batches from length-sorted buckets, and
  `Trainer.train_step`, whose loss applies the audio head only at labelled positions.

Both train the same LoRA: the model and the optimizer come from the trainer's own functions with the
same config (`bench_config`), so the paths differ in their data and their loss only.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from measure import SyncCounter, cuda_reported_syncs, peak_memory, synchronize

FRAME_RATE = 25.0


def bench_config(spec: dict, args: argparse.Namespace, device: torch.device):
    """The training config both paths share: LoRA without dropout, no warm-up, our token budget."""
    from higgs_tune.config import TrainSettings
    from higgs_tune.config_files import load_config

    return load_config(
        TrainSettings,
        None,
        [
            f"model={spec['model']}",
            f"data={spec['data']}",
            f"output_dir={spec['work']}/run-ours",
            f"max_tokens_per_batch={args.max_tokens}",
            f"max_seq_len={args.max_tokens}",
            "eval_fraction=0",
            "lora.dropout=0",
            "warmup_steps=0",
            "max_steps=1000",
            f"bf16={'true' if device.type == 'cuda' else 'false'}",
        ],
    )


# --- the naive path ----------------------------------------------------------------------------------


class NaiveDataset(torch.utils.data.Dataset):
    """The processor on raw audio in `__getitem__`, labels from `output_labels=True`."""

    def __init__(self, spec: dict, processor, indices: list[int]) -> None:
        from higgs_tune.config import PromptSettings

        self.spec, self.processor, self.indices = spec, processor, indices
        self.system = PromptSettings().system_prompt

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        from higgs_tune.data.audio import load_audio

        s = self.spec["samples"][self.indices[i]]
        ref, target = self.spec["clips"][s["ref"]], self.spec["clips"][s["target"]]
        conversation = [
            {"role": "system", "content": [{"type": "text", "text": self.system}]},
            {"role": "user", "content": [{"type": "text", "text": ref["text"]}]},
            {"role": "assistant", "content": [{"type": "audio", "audio": load_audio(ref["path"])}]},
            {"role": "user", "content": [{"type": "text", "text": target["text"]}]},
            {"role": "assistant", "content": [{"type": "audio", "audio": load_audio(target["path"])}]},
        ]
        out = self.processor.apply_chat_template(
            conversation,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"output_labels": True, "sampling_rate": 24000},
        )
        item = {k: v[0] for k, v in out.items()}
        item["audio_seconds"] = ref["seconds"] + target["seconds"]
        return item


def naive_collate(items: list[dict], pad_id: int, audio_pad_id: int) -> dict:
    """Right-pad everything to the longest sample."""
    from torch.nn.utils.rnn import pad_sequence

    from higgs_tune.training.examples import IGNORE

    return {
        "input_ids": pad_sequence([x["input_ids"] for x in items], batch_first=True, padding_value=pad_id),
        "attention_mask": pad_sequence([x["attention_mask"] for x in items], batch_first=True),
        "audio_input_ids": pad_sequence(
            [x["audio_input_ids"] for x in items], batch_first=True, padding_value=audio_pad_id
        ),
        "audio_input_ids_mask": pad_sequence([x["audio_input_ids_mask"] for x in items], batch_first=True),
        "audio_labels": pad_sequence(
            [x["audio_labels"] for x in items], batch_first=True, padding_value=IGNORE
        ),
        "audio_seconds": sum(x["audio_seconds"] for x in items),
    }


def run_naive(spec: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """The naive path over the first `--naive-samples` samples, in fixed batches of `--batch-size`."""
    from higgs_tune.model.loading import load_processor
    from higgs_tune.training.build import build_model, build_optimizer
    from higgs_tune.training.distributed import uses_bf16

    torch.manual_seed(0)
    cfg = bench_config(spec, args, device)
    processor = load_processor(spec["model"])
    wrapped = build_model(cfg, uses_bf16(cfg.bf16)).to(device)
    model = wrapped.model.train()  # the peft model: its own forward and loss, not our loss wrapper
    optimizer = build_optimizer(cfg, wrapped)
    order = list(range(len(spec["samples"])))
    random.Random(spec["seed"]).shuffle(order)
    dataset = NaiveDataset(spec, processor, order[: args.naive_samples])
    batches = [list(range(i, i + args.batch_size)) for i in range(0, len(dataset), args.batch_size)]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=lambda items: naive_collate(
            items, processor.tokenizer.pad_token_id, processor.audio_stream_eos_id
        ),
    )
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def forward_backward(batch: dict) -> None:
        inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        with autocast:
            loss = model(**inputs).loss  # full logits, every position
        loss.backward()

    def step(batch: dict) -> None:
        forward_backward(batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return timed_loop(iter(loader), step, forward_backward, device, _naive_counts)


def _naive_counts(batch: dict) -> tuple[int, int, float, int]:
    return (
        int(batch["attention_mask"].sum()),
        batch["input_ids"].numel(),
        batch["audio_seconds"],
        batch["input_ids"].shape[0],
    )


# --- our path ----------------------------------------------------------------------------------------


def run_ours(spec: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Our path over one whole epoch of the token-budget plan, through the trainer's public API."""
    from higgs_tune.training.loss import combine
    from higgs_tune.training.trainer import Trainer

    torch.manual_seed(0)
    cfg = bench_config(spec, args, device)
    started = time.perf_counter()
    trainer = Trainer(cfg, overwrite=True)  # each repeat starts afresh, its length pass included
    setup_s = time.perf_counter() - started
    trainer.model.train()
    prepared = trainer.data.prepared
    seconds = {r["id"]: _record_seconds(prepared, r) for r in prepared.records}
    loader = trainer.data.micro_batches(0)
    n_batches = len(trainer.data.plan.batches(0))
    batches = (next(loader) for _ in range(n_batches))  # exactly one epoch

    def counts(batch: dict) -> tuple[int, int, float, int]:
        audio = sum(seconds[i] for i in batch["sample_ids"])
        return batch["num_tokens"], batch["num_padded_tokens"], audio, len(batch["sample_ids"])

    def forward_backward(batch: dict) -> None:
        sums = trainer.model(**trainer.to_device(batch))
        loss, _ = combine(
            sums, batch["num_audio_frames"], batch["num_text_tokens"], trainer.codebook_weights, 0.0
        )
        loss.backward()

    result = timed_loop(batches, lambda b: trainer.train_step([b]), forward_backward, device, counts)
    result["setup_s"] = setup_s
    return result


def _record_seconds(data, record: dict) -> float:
    return (data.clip_frames(record["ref_clip"]) + data.clip_frames(record["target_clip"])) / FRAME_RATE


# --- shared loop -------------------------------------------------------------------------------------


def timed_loop(batches, step, forward_backward, device, counts) -> dict:
    """First batch untimed (warm-up), then data loading and the step timed apart; then GPU syncs are
    counted on the first batch: syncing ops in one forward + backward (any device), and with CUDA the
    synchronisations torch reports over one whole step."""
    totals = {
        "tokens": 0,
        "padded": 0,
        "audio_s": 0.0,
        "samples": 0,
        "batches": 0,
        "data_s": 0.0,
        "step_s": 0.0,
    }
    with peak_memory(device) as memory:
        first = next(batches)
        step(first)
        synchronize(device)
        while True:
            started = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            loaded = time.perf_counter()
            step(batch)
            synchronize(device)
            done = time.perf_counter()
            tokens, padded, audio, samples = counts(batch)
            totals["tokens"] += tokens
            totals["padded"] += padded
            totals["audio_s"] += audio
            totals["samples"] += samples
            totals["batches"] += 1
            totals["data_s"] += loaded - started
            totals["step_s"] += done - loaded
    counter = SyncCounter()
    with counter:
        forward_backward(first)
    totals.update(
        peak_mib=memory["peak_mib"],
        sync_ops=counter.count,
        sync_ops_by_op=counter.by_op,
        cuda_syncs=cuda_reported_syncs(lambda: step(first)),
    )
    return totals
