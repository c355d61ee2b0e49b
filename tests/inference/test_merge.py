"""Merging: the merged model computes what the adapter model computes, and plain transformers loads it."""

import json

import torch
from huggingface_hub import ModelCard
from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor

from higgs_tune.config import PromptConfig, TrainConfig
from higgs_tune.inference.merge import PROMPT_FILE, merge_adapter
from higgs_tune.model.loading import load_model
from higgs_tune.training.collate import MODEL_INPUTS, Collator
from higgs_tune.training.examples import build_example
from higgs_tune.training.trainer import Trainer
from higgs_tune.typed_config import load_config


def test_merged_logits_equal_adapter_logits(tiny_model_dir, prepared_dir, processor, tmp_path):
    run = tmp_path / "run"
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"model={tiny_model_dir}", f"data={prepared_dir}", f"output_dir={run}", "max_steps=3",
            "warmup_steps=0", "learning_rate=1e-2", "lora.train_audio_head=true", "prompt.scene=Quiet room.",
        ],
    )  # fmt: skip
    trainer = Trainer(cfg)
    trainer.run()
    peft_model = trainer.model.model.eval()

    g = torch.Generator().manual_seed(0)
    example = build_example(
        processor, "x", "ref", torch.randint(0, 1024, (8, 9), generator=g), "text",
        torch.randint(0, 1024, (8, 5), generator=g), PromptConfig(),
    )  # fmt: skip
    batch = {k: v for k, v in Collator(processor)([example]).items() if k in MODEL_INPUTS}
    with torch.no_grad():
        adapter_logits = peft_model(**batch).logits
        base_logits = load_model(tiny_model_dir).eval()(**batch).logits

    out = merge_adapter(str(tiny_model_dir), run, tmp_path / "merged")
    merged = HiggsAudioV2ForConditionalGeneration.from_pretrained(out).eval()
    HiggsAudioV2Processor.from_pretrained(out)  # loads with no higgs-tune code
    with torch.no_grad():
        merged_logits = merged(**batch).logits
    torch.testing.assert_close(merged_logits, adapter_logits, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3), (
        "the adapter must have changed something"
    )
    assert json.loads((out / PROMPT_FILE).read_text())["scene"] == "Quiet room."
    card = ModelCard.load(out / "README.md")  # the merged model's card, as huggingface_hub reads it
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-to-speech"
    assert card.data.to_dict()["higgs_tune"]["kind"] == "merged" and "`Quiet room.`" in card.text


def test_merge_takes_the_best_checkpoint_of_a_run_unless_told_last(tiny_model_dir, prepared_dir, tmp_path):
    """With greater_is_better on a falling held-out loss the best checkpoint is the first (step 1), the
    last is step 3: a run folder merges its best, `which="last"` its newest, a checkpoint folder itself."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"model={tiny_model_dir}", f"data={prepared_dir}", f"output_dir={run}", "max_steps=3",
            "warmup_steps=0", "learning_rate=1e-2", "lora.train_audio_head=true", "eval_fraction=0.1",
            "eval_steps=1", "greater_is_better=true", "save_total_limit=1",
        ],
    )  # fmt: skip
    Trainer(cfg).run()

    def merged(name, adapter, *which):
        out = merge_adapter(str(tiny_model_dir), adapter, tmp_path / name, *which)
        return load_file(str(out / "model.safetensors"))

    best, last = merged("best", run), merged("last", run, "last")
    for expected, got in (
        (merged("c1", run / "checkpoint-1"), best),
        (merged("c3", run / "checkpoint-3"), last),
    ):
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert not all(torch.equal(best[k], last[k]) for k in best)
