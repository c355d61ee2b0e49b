"""Trainer at scale: a static graph for DDP, checkpointing with LoRA, clear errors for missing packages."""

import importlib.util
import json

import pytest
import torch
from conftest import train_config

from higgs_tune.training.build import build_model
from higgs_tune.training.trainer import Trainer


def _cfg(tiny_model_dir, prepared_dir, out, *overrides):
    return train_config(tiny_model_dir, prepared_dir, out, "max_steps=2", "eval_fraction=0", *overrides)


def _grads(trainer: Trainer) -> dict[str, torch.Tensor | None]:
    batch = next(trainer.data.micro_batches(0))
    sums = trainer.model(**trainer.to_device(batch))
    (sums.audio_per_codebook.sum() + sums.text).backward()
    return {n: p.grad for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "overrides", [(), ("full=true",), ("text_loss_weight=1",), ("full=true", "text_loss_weight=1")]
)
def test_every_trainable_parameter_is_in_the_graph(tiny_model_dir, prepared_dir, tmp_path, overrides):
    """What lets DDP run without find_unused_parameters: no trainable parameter is ever left out."""
    trainer = Trainer(_cfg(tiny_model_dir, prepared_dir, tmp_path / "run", *overrides))
    grads = _grads(trainer)
    assert grads and all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    frozen = {n for n, p in trainer.model.named_parameters() if not p.requires_grad}
    last_text_mlp = {n for n in frozen if "layers.1.mlp." in n or "layers.1.post_attention_layernorm" in n}
    if "text_loss_weight=1" in overrides:
        trainable = {n for n in last_text_mlp if "full=true" in overrides or "lora_" in n}
        assert not trainable, "with a text head the last layer's text MLP reaches the loss"
    elif "full=true" in overrides:
        assert frozen == last_text_mlp and len(frozen) == 4  # gate, up, down and the norm
    else:
        assert {n for n in last_text_mlp if "lora_" in n}, "its adapters must be frozen too"


def test_gradient_checkpointing_with_lora_gives_the_same_gradients(tiny_model_dir, prepared_dir, tmp_path):
    grads = []
    for checkpointing in ("false", "true"):
        cfg = _cfg(
            tiny_model_dir, prepared_dir, tmp_path / checkpointing, f"gradient_checkpointing={checkpointing}"
        )
        trainer = Trainer(cfg)
        assert trainer.model.higgs.model.gradient_checkpointing == (checkpointing == "true")
        # Adapter B matrices start at zero, which would leave the A matrices without gradient.
        with torch.no_grad():
            for n, p in trainer.model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(n)))
        grads.append(_grads(trainer))
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys()
    assert any(float(g.abs().sum()) > 0 for g in plain.values())
    for n, g in plain.items():
        torch.testing.assert_close(checkpointed[n], g, rtol=1e-4, atol=1e-7, msg=n)


def test_token_budget_training_runs_by_epochs(tiny_model_dir, prepared_dir, tmp_path):
    cfg = _cfg(
        tiny_model_dir,
        prepared_dir,
        tmp_path / "run",
        "max_steps=null",
        "num_train_epochs=2",
        "max_tokens_per_batch=600",
        "max_seq_len=600",
        "eval_fraction=0.1",
        "eval_steps=3",
    )
    trainer = Trainer(cfg)
    per_epoch = [len(trainer.data.plan.batches(e)) for e in range(2)]
    assert trainer.max_steps == sum(per_epoch)
    trainer.run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, trainer.max_steps + 1))
    assert train_rows[-1]["epoch"] == 1 and any("eval_loss" in r for r in rows)
    assert all(r["tokens_per_sec"] > 0 for r in train_rows)


@pytest.mark.parametrize(
    "override, module, package",
    [
        ("attn_implementation=flash_attention_2", "flash_attn", "pip install flash-attn"),
        ("optim=adamw_8bit", "bitsandbytes", "pip install bitsandbytes"),
    ],
)
def test_missing_optional_packages_fail_clearly(
    tiny_model_dir, prepared_dir, tmp_path, override, module, package
):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    with pytest.raises(RuntimeError, match=package):
        Trainer(_cfg(tiny_model_dir, prepared_dir, tmp_path / "run", override))


def test_deepspeed_config_without_deepspeed_fails_clearly(
    tiny_model_dir, prepared_dir, tmp_path, monkeypatch
):
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(RuntimeError, match="pip install deepspeed"):
        Trainer(_cfg(tiny_model_dir, prepared_dir, tmp_path / "run"))


def test_fsdp_loads_one_dtype_for_lora(tiny_model_dir, prepared_dir, tmp_path):
    """FSDP1 flattens a layer's parameters into one tensor, so a bf16 base with float32 adapters fails."""
    cfg = _cfg(tiny_model_dir, prepared_dir, tmp_path / "run")
    mixed = {p.dtype for p in build_model(cfg, use_bf16=True).parameters()}
    uniform = {p.dtype for p in build_model(cfg, use_bf16=True, uniform_dtype=True).parameters()}
    assert mixed == {torch.bfloat16, torch.float32} and uniform == {torch.float32}
