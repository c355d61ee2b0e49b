"""`torch_compile: true`: the decoder layers compiled (inductor), the same training losses as eager."""

from functools import cache

import pytest
import torch

from higgs_tune.config import LoraSettings, PromptSettings, TrainSettings
from higgs_tune.model.loading import load_model
from higgs_tune.training.build import build_optimizer, prepare_for_training
from higgs_tune.training.collate import LOSS_INPUTS, Collator
from higgs_tune.training.examples import build_example
from higgs_tune.training.loss import combine


@cache
def _why_compile_cannot_run() -> str | None:
    """None when inductor can compile here (on CPU it builds C++ with the system compiler), else why not."""
    try:
        compiled = torch.compile(lambda x: torch.relu(x) * 2 + 1)
        if not torch.equal(compiled(torch.arange(-2.0, 3.0)), torch.tensor([1.0, 1.0, 1.0, 3.0, 5.0])):
            return "torch.compile gives a wrong result for relu(x) * 2 + 1 on this machine"
    except Exception as e:  # a missing C++ compiler or Python headers surface as various errors
        return f"torch.compile cannot compile on this machine: {type(e).__name__}: {str(e).splitlines()[0]}"
    return None


def _batch(processor) -> dict:
    """Two cloning examples of different lengths, padded: text and audio positions, and padding."""
    g = torch.Generator().manual_seed(0)
    examples = [
        build_example(
            processor,
            f"s{i}",
            f"reference {i}",
            torch.randint(0, 1024, (8, n_ref), generator=g),
            f"target text {i}",
            torch.randint(0, 1024, (8, n_target), generator=g),
            PromptSettings(),
        )
        for i, (n_ref, n_target) in enumerate([(12, 9), (5, 15)])
    ]
    return Collator(processor)(examples)


def _losses(tiny_model_dir, batch: dict, compile_layers: bool) -> tuple[list[float], int]:
    """Three LoRA steps on `batch`; the losses and how many modules were compiled."""
    cfg = TrainSettings(
        model=str(tiny_model_dir),
        learning_rate=1e-3,
        lora=LoraSettings(dropout=0.0),
        torch_compile=compile_layers,
    )
    torch.manual_seed(0)  # the same fresh adapters for both runs
    model = prepare_for_training(load_model(tiny_model_dir), cfg).train()
    compiled = sum(getattr(m, "_compiled_call_impl", None) is not None for m in model.modules())
    optimizer = build_optimizer(cfg, model)
    losses = []
    for _ in range(3):
        sums = model(**{k: batch[k] for k in LOSS_INPUTS})
        loss, _ = combine(sums, batch["num_audio_frames"], batch["num_text_tokens"], torch.ones(8), 0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, compiled


def test_compiled_layers_train_with_the_eager_losses(tiny_model_dir, processor):
    """Three LoRA steps, eager and with `torch_compile=true`. The compiled layers fuse elementwise work and
    may reduce the norms in another order, so float32 sums can differ in their last bits (relative 1e-7
    per operation); over a 2-layer forward, backward and two AdamW updates at lr 1e-3 that stays below
    1e-5 of the loss, while a wrong graph (a lost residual, an adapter not traced, a stale route) moves it
    by far more (the loss moves by more than that per step)."""
    reason = _why_compile_cannot_run()
    if reason:
        pytest.skip(reason)
    batch = _batch(processor)
    eager, none_compiled = _losses(tiny_model_dir, batch, False)
    graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    fused, compiled = _losses(tiny_model_dir, batch, True)
    assert none_compiled == 0 and compiled == 2  # the tiny model's 2 decoder layers
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs_before  # it really compiled
    assert abs(eager[-1] - eager[0]) > 1e-4 * eager[0]  # training moved the loss
    assert fused == pytest.approx(eager, rel=1e-5, abs=0)
