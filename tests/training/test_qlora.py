"""QLoRA: LoRA adapters trained on a bitsandbytes-quantised base load and merge onto the unquantised base.

bitsandbytes 0.50 runs NF4 and int8 Linear layers and its 8-bit AdamW on CPU; where its CPU backend does
not (an older or a CUDA-only build), the training tests skip and say why, and `bench/gpu.sh` runs QLoRA.
"""

from pathlib import Path

import pytest
import torch
from conftest import train_config

from higgs_tune.config import TrainSettings
from higgs_tune.config_files import ConfigError, load_config
from higgs_tune.model.loading import load_finetuned, load_model
from higgs_tune.training.collate import MODEL_INPUTS, Collator
from higgs_tune.training.examples import build_example
from higgs_tune.training.trainer import Trainer


def bitsandbytes_cpu_problem() -> str | None:
    """Why bitsandbytes cannot run an NF4 Linear forward and backward on this machine's CPU, or None."""
    try:
        import bitsandbytes as bnb

        layer = bnb.nn.Linear4bit(16, 8, compute_dtype=torch.float32, quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(torch.randn(8, 16), requires_grad=False, quant_type="nf4")
        x = torch.randn(2, 16, requires_grad=True)
        layer.to("cpu")(x).sum().backward()
    except Exception as e:  # any failure means: not on this CPU
        return f"bitsandbytes cannot run NF4 on CPU here ({type(e).__name__}: {e}); bench/gpu.sh runs QLoRA"
    return None


CONFIGS = Path(__file__).parents[2] / "configs"
PROBLEM = bitsandbytes_cpu_problem()
if PROBLEM:
    print(PROBLEM)
needs_bnb_cpu = pytest.mark.skipif(PROBLEM is not None, reason=PROBLEM or "")


def test_qlora_example_config_loads():
    cfg = load_config(TrainSettings, CONFIGS / "qlora.yaml", ["data=some/data"])
    assert (cfg.quantization, cfg.optim, cfg.full, cfg.gradient_checkpointing) == (
        "nf4",
        "paged_adamw_8bit",
        False,
        True,
    )


def test_quantised_full_fine_tuning_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="set full=false or quantization=none"):
        load_config(TrainSettings, None, ["full=true", "quantization=nf4"])


@needs_bnb_cpu
def test_qlora_trains_then_merges_onto_the_unquantised_base(
    tiny_model_dir, prepared_dir, processor, tmp_path
):
    import bitsandbytes as bnb

    run = tmp_path / "run"
    overrides = ("max_steps=2", "save_steps=100", "eval_steps=100", "learning_rate=1e-2")
    cfg = train_config(tiny_model_dir, prepared_dir, run, *overrides, "quantization=nf4", "optim=adamw_8bit")
    trainer = Trainer(cfg)
    qlora = trainer.model.model
    gate = qlora.base_model.model.model.layers[0].audio_mlp.gate_proj
    assert isinstance(gate.base_layer, bnb.nn.Linear4bit) and "default" in gate.lora_A
    # peft's own LoRA layer for bitsandbytes' 4-bit Linear: on a quantised base peft is left to import
    # bitsandbytes (`model.lora.lora_without_bitsandbytes` keeps it away from unquantised bases only)
    assert type(gate).__module__ == "peft.tuners.lora.bnb" and type(gate).__name__ == "Linear4bit"
    assert isinstance(trainer.optimizer.optimizer, bnb.optim.AdamW8bit)
    trainer.run()

    g = torch.Generator().manual_seed(0)
    example = build_example(
        processor, "x", "ref", torch.randint(0, 1024, (8, 9), generator=g), "text",
        torch.randint(0, 1024, (8, 5), generator=g), cfg.prompt,
    )  # fmt: skip
    batch = {k: v for k, v in Collator(processor)([example]).items() if k in MODEL_INPUTS}
    merged, _ = load_finetuned(str(tiny_model_dir), run)
    with torch.no_grad():
        on_quantised = qlora.eval()(**batch).logits
        with qlora.disable_adapter():
            quantised_base = qlora(**batch).logits
        on_merged = merged.eval()(**batch).logits
        base = load_model(tiny_model_dir).eval()(**batch).logits
    # The adapter changes the unquantised base as it changes the quantised one; what is left is the NF4
    # rounding of the base, which the adapter does not undo.
    learned = on_quantised - quantised_base
    transferred = on_merged - base
    assert learned.abs().max() > 1e-2, "the adapter must have learned something"
    torch.testing.assert_close(transferred, learned, rtol=0, atol=0.25 * float(learned.abs().max()))
    assert (on_merged - on_quantised).abs().max() < 0.2 * base.abs().max()
