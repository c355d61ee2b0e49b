"""Model cards: every checkpoint's weights folder carries a card that huggingface_hub's own parser reads,
with the base model, the training data summary and the prompt settings; `eval` puts its latest figures in.
(The merged model's card is checked in tests/inference/test_merge.py, eval's hook in
tests/evaluation/test_evaluate.py.)"""

import json
import shutil

import pytest
from conftest import train_config
from huggingface_hub import ModelCard

from higgs_tune import checkpoint
from higgs_tune.card import (
    base_model_license,
    data_summary,
    read_facts,
    record_evaluation,
    render,
    write_merged_card,
)
from higgs_tune.training.trainer import Trainer


@pytest.fixture(scope="module")
def saved(tiny_model_dir, prepared_dir, tmp_path_factory):
    """The checkpoint of a one-step LoRA run with a held-out evaluation."""
    run = tmp_path_factory.mktemp("card") / "run"
    cfg = train_config(
        tiny_model_dir, prepared_dir, run, "max_steps=1", "eval_fraction=0.1", "report_to=[none]"
    )
    Trainer(cfg).run()
    return checkpoint.last_checkpoint(run)


def test_a_checkpoint_carries_a_hub_model_card(saved, tiny_model_dir, prepared_dir):
    card = ModelCard.load(saved / "adapter" / "README.md")
    meta = card.data.to_dict()
    assert meta["library_name"] == "peft" and meta["higgs_tune"]["base_model"] == str(tiny_model_dir)
    assert "base_model" not in meta and "add its Hub id" in card.text  # a local folder is no Hub id
    assert meta["pipeline_tag"] == "text-to-speech" and meta["base_model_relation"] == "adapter"
    assert meta["license"] == "other" and "license was not found" in card.text  # the tiny model has no card
    assert meta["language"] == ["ar"]  # half the synthetic targets are Arabic, the rest English
    assert {"higgs-audio", "voice-cloning", "lora"} <= set(meta["tags"])
    index = json.loads((prepared_dir / "index.json").read_text())
    data = meta["higgs_tune"]["data"]
    assert (data["samples"], data["speakers"], data["audio_hours"]) == (
        index["num_samples"],
        4,
        index["audio_hours"],
    )
    assert f"| {index['num_samples']} | 4 | {index['audio_hours']:.3f} | ar |" in card.text
    assert "system prompt: `Generate audio following instruction.`" in card.text
    assert "scene, for samples without their own: `Audio is recorded from a quiet room.`" in card.text
    assert "held-out loss at this step" in card.text and "Not evaluated yet" in card.text


def _report(tuned_wer: float, base_wer: float) -> dict:
    def summary(wer):
        figures = {"samples": 3, "wer": wer, "cer": wer / 2, "similarity": 0.5}
        return {**figures, "stopped_by_eos": 1.0, "right_length": 2 / 3, "flags": {}, "clean": 2}

    return {
        "manifest": "/data/heldout.jsonl",
        "language": "ar",
        "summary": {"finetuned": summary(tuned_wer), "base": summary(base_wer)},
        "comparison": {"better": ["a", "b"], "worse": ["c"]},
    }


def test_eval_figures_go_into_the_card_and_the_latest_replace_older(saved, tmp_path):
    before = read_facts(saved)
    record_evaluation(saved, _report(0.4, 0.6))
    record_evaluation(saved, _report(0.25, 0.5))
    card = ModelCard.load(saved / "adapter" / "README.md")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"wer": 0.25, "cer": 0.125, "similarity": 0.5, "right_length": pytest.approx(2 / 3)}
    assert {r.dataset_name for r in card.data.eval_results} == {"heldout.jsonl"}
    assert "| WER | 50.0% | 25.0% |" in card.text and "better with fine-tuning: 2, worse: 1" in card.text
    assert "Not evaluated yet" not in card.text and "40.0%" not in card.text
    merged = ModelCard.load(write_merged_card(tmp_path / "merged", saved))
    assert merged.data.library_name == "transformers" and merged.data.eval_results == card.data.eval_results
    after = read_facts(saved)
    assert {k: v for k, v in after.items() if k != "evaluation"} == {
        k: v for k, v in before.items() if k != "evaluation"
    }


def test_a_hub_base_model_is_named_in_the_metadata(saved):
    facts = {**read_facts(saved), "base_model": "bosonai/higgs-audio-v2-generation-3B-base"}
    card = ModelCard(render(facts))
    assert card.data.base_model == "bosonai/higgs-audio-v2-generation-3B-base" and "Hub id" not in card.text


def test_the_license_is_read_from_the_base_models_own_card(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: other\nlicense_name: base-license\n---\n# Base\n")
    assert base_model_license(str(tmp_path)) == {"license": "other", "license_name": "base-license"}
    assert base_model_license(str(tmp_path / "no-such-folder")) == {}
    assert base_model_license("nobody/not-in-the-cache") == {}


def test_the_card_reads_its_data_summary_from_the_index_not_the_samples(prepared_dir, tmp_path):
    """At a million pairs re-reading samples.jsonl cost the training process 1.2 GB: `prepare` records
    the speakers and the scripts' shares in the index and the card reads them there; a dataset prepared
    before they were recorded gives the same summary from its samples."""
    data = tmp_path / "data"
    shutil.copytree(prepared_dir, data)
    older = tmp_path / "older"
    shutil.copytree(prepared_dir, older)
    index = json.loads((older / "index.json").read_text())
    del index["num_speakers"], index["script_shares"]
    (older / "index.json").write_text(json.dumps(index))
    (data / "samples.jsonl").write_text("not read\n")
    summary = data_summary(str(data))
    assert summary == data_summary(str(older))
    assert summary["speakers"] >= 2 and summary["samples"] == index["num_samples"]
