"""Merging: the merged model computes what the adapter model computes, and plain transformers loads it."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from conftest import train_config
from huggingface_hub import ModelCard
from transformers import HiggsAudioV2ForConditionalGeneration, HiggsAudioV2Processor

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.config_files import load_config
from higgs_tune.inference.merge import PROMPT_FILE, merge_adapter
from higgs_tune.model.loading import load_model
from higgs_tune.training.collate import MODEL_INPUTS, Collator
from higgs_tune.training.examples import build_example
from higgs_tune.training.trainer import Trainer


def test_merged_logits_equal_adapter_logits(tiny_model_dir, prepared_dir, processor, tmp_path):
    run = tmp_path / "run"
    cfg = load_config(
        TrainSettings,
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
        torch.randint(0, 1024, (8, 5), generator=g), PromptSettings(),
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
        TrainSettings,
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


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, prepared_dir, tmp_path_factory) -> Path:
    """A 1-step LoRA run: a real adapter, so that only the checks under test stand between it and a merge."""
    run = tmp_path_factory.mktemp("merge-run") / "run"
    Trainer(train_config(tiny_model_dir, prepared_dir, run, "max_steps=1", "eval_fraction=0")).run()
    return run


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: equal before and after means nothing was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(run_cli, *args) -> str:
    """Run `merge ARGS`, expecting a one-line refusal (exit 2); returns the log."""
    code, _, err = run_cli("merge", *args)
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    return err


def test_merge_refuses_a_folder_of_the_users_leaving_it_byte_identical(
    tiny_model_dir, lora_run, tmp_path, run_cli
):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    (mine / "model.safetensors").write_bytes(b"my weights")
    (mine / "model-00002-of-00002.safetensors").write_bytes(b"my second shard")
    (mine / "README.md").write_text("# my model\n")
    before = _files(mine)
    err = _refused(run_cli, "--model", tiny_model_dir, "--adapter", lora_run, "--out", mine)
    assert f"--out {mine} is not empty" in err
    assert _files(mine) == before


@pytest.mark.parametrize("where", ["base", "run", "checkpoint"])
def test_merge_never_writes_into_the_base_model_or_the_adapter(
    tiny_model_dir, lora_run, tmp_path, run_cli, where
):
    """Over the base model's own folder a merge would replace its weights, and a later merge onto it would
    apply the adapter twice; the base is a copy here, so the session's tiny model stays as it is."""
    base = Path(shutil.copytree(tiny_model_dir, tmp_path / "base"))
    checkpoint = lora_run / "checkpoint-1"
    out = {"base": base, "run": lora_run, "checkpoint": checkpoint}[where]
    before = {base: _files(base), lora_run: _files(lora_run)}
    err = _refused(
        run_cli, "--model", base, "--adapter", checkpoint if where == "checkpoint" else lora_run, "--out", out
    )
    assert f"--out {out} is" in err and "which this command reads" in err
    assert {base: _files(base), lora_run: _files(lora_run)} == before
    assert not (base / "merged").exists()


def test_merge_says_what_went_onto_what_and_where_it_was_written(
    tiny_model_dir, lora_run, tmp_path, run_cli, caplog
):
    """ "merged RUN into MODEL -> OUT" read as if the base folder had changed: the log names the adapter's
    checkpoint, the base it went onto (unchanged), and the folder written."""
    caplog.set_level(logging.INFO, logger="higgs_tune")
    code, _, err = run_cli("merge", "--model", tiny_model_dir, "--adapter", lora_run, "--out", tmp_path / "m")
    assert code == 0, err[-3000:]
    said = (
        f"merged the LoRA adapter of {lora_run / 'checkpoint-1'} onto the base {tiny_model_dir} (unchanged); "
        f"wrote {tmp_path / 'm'}"
    )
    assert said in err and " into " not in err


def _damage(checkpoint: Path, case: str) -> Path:
    """Damage one file of a checkpoint as a full disk, a partial copy or a hand edit would; returns it."""
    adapter = checkpoint / "adapter"
    file, how = {
        "truncated_weights": (adapter / "adapter_model.safetensors", "half"),
        "empty_weights": (adapter / "adapter_model.safetensors", "empty"),
        "no_weights": (adapter / "adapter_model.safetensors", "delete"),
        "truncated_adapter_config": (adapter / "adapter_config.json", "half"),
        "adapter_config_a_list": (adapter / "adapter_config.json", "[1, 2]"),
        "adapter_config_not_peft": (adapter / "adapter_config.json", '{"r": 8}'),
        "truncated_trainer_state": (checkpoint / "trainer_state.json", "half"),
        "trainer_state_without_mode": (checkpoint / "trainer_state.json", '{"step": 1, "prompt": {}}'),
        "trainer_state_bad_prompt": (
            checkpoint / "trainer_state.json",
            '{"step": 1, "mode": "lora", "prompt": {"voice": "x"}}',
        ),
    }[case]
    data = file.read_bytes()
    if how == "delete":
        file.unlink()
    else:
        file.write_bytes({"half": data[: len(data) // 2], "empty": b""}.get(how, how.encode()))
    return file


@pytest.mark.parametrize(
    "case",
    [
        "truncated_weights",
        "empty_weights",
        "no_weights",
        "truncated_adapter_config",
        "adapter_config_a_list",
        "adapter_config_not_peft",
        "truncated_trainer_state",
        "trainer_state_without_mode",
        "trainer_state_bad_prompt",
    ],
)
@pytest.mark.parametrize("given", ["checkpoint", "run"])
def test_a_damaged_adapter_is_one_line_naming_the_file(
    tiny_model_dir, lora_run, tmp_path, run_cli, case, given
):
    run = Path(shutil.copytree(lora_run, tmp_path / "run"))
    damaged = _damage(run / "checkpoint-1", case)
    out = tmp_path / "merged"
    err = _refused(
        run_cli,
        "--model",
        tiny_model_dir,
        "--adapter",
        run if given == "run" else run / "checkpoint-1",
        "--out",
        out,
    )
    (line,) = [x for x in err.splitlines() if str(damaged.parent if case == "no_weights" else damaged) in x]
    assert not out.exists()


def test_a_merged_model_is_prompted_as_its_adapter(tiny_model_dir, processor, sample_data_dir, tmp_path):
    """A run trained on texts without diacritics clones a diacritised text as its plain form; its merged
    folder, what users publish and serve, must too: the merged folder's recorded prompt settings are read
    by every command that loads it, so merged and adapter give the same greedy codes."""
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.inference.generate import generate_codes, load_for_cloning
    from higgs_tune.inference.settings import SamplingSettings
    from higgs_tune.prepared.prepare import prepare_dataset
    from higgs_tune.prepared.settings import PrepareSettings

    prepared = tmp_path / "prepared"
    samples = read_manifest(sample_data_dir["manifest_jsonl"])[:4]
    prepare_dataset(
        samples,
        processor,
        prepared,
        model_id=str(tiny_model_dir),
        settings=PrepareSettings(text_normalisation="arabic_no_diacritics"),
    )
    run = tmp_path / "run"
    Trainer(train_config(tiny_model_dir, prepared, run, "max_steps=1", "eval_fraction=0")).run()
    merged = merge_adapter(str(tiny_model_dir), run, tmp_path / "merged")
    ref_codes = torch.randint(0, 1024, (8, 12), generator=torch.Generator().manual_seed(0))
    diacritised, plain = "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ", "ذهب الولد الى المدرسة"

    def clone(model_id: Path, adapter: Path | None, text: str):
        model, proc, settings = load_for_cloning(str(model_id), adapter)
        item = {"ref_text": "مرحبا", "ref_codes": ref_codes, "text": text}
        return generate_codes(model, proc, [item], settings, SamplingSettings(greedy=True), [15])[0].codes

    from_adapter = clone(tiny_model_dir, run, diacritised)
    assert from_adapter.shape[1] > 0
    assert (from_adapter == clone(tiny_model_dir, run, plain)).all()
    assert from_adapter.shape == clone(merged, None, diacritised).shape
    assert (clone(merged, None, diacritised) == from_adapter).all()


def _tensor_names(folder: Path) -> set[str]:
    from safetensors import safe_open

    names = set()
    for shard in folder.glob("*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            names |= set(f.keys())
    return names


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_the_merged_folder_is_laid_out_as_the_base_and_warns_of_the_vllm_omni_prompt(
    tiny_model_dir, prepared_dir, tmp_path, caplog
):
    """vLLM-Omni loads no adapter: it serves `merge`'s folder as it serves the base, so the folder has the
    base's config keys, tensor names and processor files (plus only the card and the saved prompt); merging
    a run trained with the default prompt (a scene block) warns that vLLM-Omni prompts it otherwise."""
    Trainer(train_config(tiny_model_dir, prepared_dir, tmp_path / "run", "max_steps=1")).run()
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        out = merge_adapter(str(tiny_model_dir), tmp_path / "run", tmp_path / "merged")
    base_config = json.loads((tiny_model_dir / "config.json").read_text())
    merged_config = json.loads((out / "config.json").read_text())
    assert set(merged_config) == set(base_config)
    assert _tensor_names(out) == _tensor_names(tiny_model_dir)
    assert _files(out) - _files(tiny_model_dir) == {"README.md", PROMPT_FILE}
    assert _files(tiny_model_dir) <= _files(out)
    # (tokenizer_config.json gains transformers' loading flags is_local and local_files_only when saved)
    for name in ("processor_config.json", "audio_tokenizer/config.json"):
        assert set(json.loads((out / name).read_text())) == set(
            json.loads((tiny_model_dir / name).read_text())
        )
    assert "served on vLLM-Omni it meets another prompt" in caplog.text
    assert "meets another prompt than it was trained with" in (out / "README.md").read_text()


def test_a_vllm_omni_run_merges_without_the_prompt_warning(tiny_model_dir, prepared_dir, tmp_path, caplog):
    cfg = train_config(
        tiny_model_dir, prepared_dir, tmp_path / "run", "max_steps=1", "prompt.preset=vllm-omni"
    )
    Trainer(cfg).run()
    with caplog.at_level(logging.WARNING, logger="higgs_tune"):
        out = merge_adapter(str(tiny_model_dir), tmp_path / "run", tmp_path / "merged")
    assert "vLLM-Omni" not in caplog.text
    assert json.loads((out / PROMPT_FILE).read_text())["preset"] == "vllm-omni"
    assert "meets the prompt it was trained with" in (out / "README.md").read_text()
