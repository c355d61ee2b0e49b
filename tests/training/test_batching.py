"""Batch plans: exact lengths, token budgets kept, disjoint equal shards, seeded, over-length skipped."""

import json
import logging
import random

import pytest
import torch

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.config_files import load_config
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.training.batching import FixedBatches, TokenBudgetBatches, padded_size, padding_fraction
from higgs_tune.training.collate import Collator
from higgs_tune.training.examples import ExampleDataset, build_example, example_lengths, prepared_lengths
from higgs_tune.training.trainer import Trainer


def _realistic_lengths(n: int, seed: int = 0) -> list[int]:
    """Cloning examples of 1 to 20 s reference and target clips at 25 frames/s, plus ~60 text tokens."""
    rng = random.Random(seed)
    return [rng.randint(40, 90) + 2 * 9 + rng.randint(25, 500) + rng.randint(25, 500) for _ in range(n)]


def _plans(lengths, budget, world, seed=0):
    return [TokenBudgetBatches(lengths, budget, seed, rank, world) for rank in range(world)]


@pytest.mark.parametrize(
    "prompt",
    [
        PromptSettings(),
        PromptSettings(system_prompt="  Clone   this voice, please.\n", scene="A small room."),
    ],
)
def test_lengths_are_exact_without_building_examples(processor, prepared_dir, prompt):
    data = PreparedData(prepared_dir)
    dataset = ExampleDataset(data, processor, prompt, learn_text=True)
    built = [dataset[i].num_tokens for i in range(len(dataset))]
    assert dataset.lengths() == built
    assert prepared_lengths(processor, data, prompt, [3, 1]) == [built[3], built[1]]


VARIED_TEXTS = [
    "Hello there.",
    "  leading and trailing spaces  ",
    "\nnew lines\n\nin the middle\n",
    "<|eot_id|> looks like a control token <|AUDIO_OUT|>",
    "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ ١٥",
    "numbers 12,345.6 and punctuation!?",
    "x",
]


@pytest.mark.parametrize(
    "prompt",
    [
        PromptSettings(),
        PromptSettings(system_prompt="", scene=None, text_normalisation="arabic_no_diacritics"),
        PromptSettings(
            system_prompt="  Clone\n this voice.  ", scene="A hall.", text_normalisation="whitespace"
        ),
    ],
)
def test_lengths_without_a_render_per_sample_are_those_built(processor, prepared_dir, prompt, monkeypatch):
    """Texts that trim, hold new lines, look like control tokens, change under normalisation, and samples
    with and without their own scene: the planned length is the built example's, and the chat template is
    rendered once per layout (which texts are given), not once per sample."""
    data = PreparedData(prepared_dir)
    sample = data[0]
    records = [
        {
            "ref_text": VARIED_TEXTS[i % 7],
            "text": VARIED_TEXTS[(3 * i + 1) % 7],
            "scene": [None, "", "Rain."][i % 3],
        }
        for i in range(21)
    ]
    built = [
        build_example(
            processor,
            "s",
            r["ref_text"],
            torch.from_numpy(sample.ref_codes),
            r["text"],
            torch.from_numpy(sample.target_codes),
            prompt,
            scene=r["scene"],
        ).num_tokens
        for r in records
    ]
    renders = []
    render = type(processor).apply_chat_template
    monkeypatch.setattr(
        type(processor),
        "apply_chat_template",
        lambda self, *a, **k: renders.append(1) or render(self, *a, **k),
    )
    frames = [sample.ref_codes.shape[1] + sample.target_codes.shape[1]] * len(records)
    assert example_lengths(processor, records, frames, prompt) == built
    assert len(renders) <= 2  # a layout with the sample's own scene and one without


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("budget", [1200, 5000])
def test_token_budget_shards_are_disjoint_equal_and_cover_the_epoch(world, budget):
    lengths = _realistic_lengths(500)
    plans = _plans(lengths, budget, world)
    for epoch in range(3):
        shards = [p.batches(epoch) for p in plans]
        assert len({len(s) for s in shards}) == 1, "every rank must take the same number of steps"
        seen = [i for s in shards for b in s for i in b]
        assert len(seen) == len(set(seen)), "ranks must not share samples"
        left_out = plans[0].left_out(epoch)
        assert all(p.left_out(epoch) == left_out for p in plans)
        assert left_out < world and len(seen) + left_out == len(lengths)
        assert all(padded_size(b, lengths) <= budget for s in shards for b in s)


def test_token_budget_left_out_is_reported_when_too_few_remain():
    # 9 examples of 100 tokens, budget 200: batches of 2, 2, 2, 2 and 1. Four ranks take one of two
    # each; the last example cannot be split four ways, so it sits this epoch out.
    plans = _plans([100] * 9, 200, 4)
    shards = [p.batches(0) for p in plans]
    assert [len(s) for s in shards] == [1, 1, 1, 1]
    assert plans[0].left_out(0) == 9 - sum(len(b) for s in shards for b in s) == 1
    # 7 of them: batches of 2, 2, 2, 1 are dealt to 4 ranks with nothing left over.
    assert _plans([100] * 7, 200, 4)[0].left_out(0) == 0
    # 5 of them over 4 ranks: 2, 2, 1 leave one batch short; splitting one of 2 makes four.
    plans = _plans([100] * 5, 200, 4)
    assert [len(p.batches(0)) for p in plans] == [1, 1, 1, 1] and plans[0].left_out(0) == 0


def test_token_budget_plan_is_seeded_and_changes_every_epoch():
    lengths = _realistic_lengths(300)
    a, b = TokenBudgetBatches(lengths, 4000, seed=7), TokenBudgetBatches(lengths, 4000, seed=7)
    assert a.batches(0) == b.batches(0) and a.batches(3) == b.batches(3)
    assert a.batches(0) != a.batches(1)
    assert a.batches(0) != TokenBudgetBatches(lengths, 4000, seed=8).batches(0)
    # Not only the order: which examples share a batch changes too.
    assert {tuple(sorted(x)) for x in a.batches(0)} != {tuple(sorted(x)) for x in a.batches(1)}


def test_token_budget_pads_little_where_fixed_batches_pad_a_lot():
    lengths = _realistic_lengths(2000)
    budget = 8192
    token_batches = TokenBudgetBatches(lengths, budget, seed=0).batches(0)
    fixed_batches = FixedBatches(len(lengths), 8, seed=0).batches(0)
    assert padding_fraction(token_batches, lengths) < 0.05
    assert padding_fraction(fixed_batches, lengths) > 0.2
    # The budget is also well used, not just respected.
    assert sum(lengths) / (len(token_batches) * budget) > 0.85


def test_token_budget_rejects_examples_over_the_budget():
    with pytest.raises(ValueError, match="longer than max_tokens_per_batch=100"):
        TokenBudgetBatches([50, 101], 100, seed=0)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_fixed_batches_shards_are_disjoint_and_equal(world):
    plans = [FixedBatches(23, 2, 0, rank, world) for rank in range(world)]
    shards = [p.batches(0) for p in plans]
    assert len({len(s) for s in shards}) == 1
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen)) and len(seen) + plans[0].left_out(0) == 23
    assert plans[0].left_out(0) < world, "only a remainder smaller than one sample per rank sits out"
    assert all(len(b) <= 2 for s in shards for b in s)


def test_fixed_batches_keep_the_remainder_as_a_smaller_last_batch():
    batches = FixedBatches(22, 4, seed=0).batches(0)
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(22))
    two = [FixedBatches(9, 4, seed=0, rank=r, world_size=2).batches(0) for r in range(2)]
    assert [len(b) for b in two[0]] == [4] and [len(b) for b in two[1]] == [4]
    assert FixedBatches(9, 4, seed=0, world_size=2).left_out(0) == 1


def test_collated_batches_stay_within_the_budget(processor, prepared_dir):
    data = PreparedData(prepared_dir)
    dataset = ExampleDataset(data, processor, PromptSettings(), learn_text=False)
    lengths = dataset.lengths()
    budget = 2 * max(lengths) + 40
    collate = Collator(processor)
    plans = _plans(lengths, budget, world=2)
    for plan in plans:
        for batch in plan.batches(0):
            collated = collate([dataset[i] for i in batch])
            assert collated["num_padded_tokens"] == padded_size(batch, lengths) <= budget
            assert collated["num_tokens"] == sum(lengths[i] for i in batch)


def test_trainer_skips_and_reports_over_length_examples(tiny_model_dir, prepared_dir, tmp_path, caplog):
    cfg = load_config(
        TrainSettings,
        None,
        [
            f"model={tiny_model_dir}",
            f"data={prepared_dir}",
            f"output_dir={tmp_path / 'run'}",
            "max_seq_len=160",
            "max_tokens_per_batch=400",
            "eval_fraction=0",
        ],
    )
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        trainer = Trainer(cfg)
    over = [i for i, n in enumerate(trainer.data.lengths) if n > 160]
    assert 0 < len(over) < len(trainer.data.lengths)
    assert isinstance(trainer.data.plan, TokenBudgetBatches)
    assert not set(over) & set(trainer.data.train_set.indices)
    assert len(trainer.data.train_set) == len(trainer.data.lengths) - len(over)
    warnings = [r.getMessage() for r in caplog.records if "longer than max_seq_len" in r.getMessage()]
    assert len(warnings) == 1 and f"skipping {len(over)} of {len(trainer.data.lengths)}" in warnings[0]
    plan = json.loads((tmp_path / "run" / "data_plan.json").read_text())
    assert plan["skipped_over_max_seq_len"] == len(over)
    assert plan["padding_fraction_epoch0"] < 0.05
    # The lengths are cached in the run folder for a resumed run.
    cached = json.loads((tmp_path / "run" / "example_lengths.json").read_text())
    assert cached["lengths"] == trainer.data.lengths
