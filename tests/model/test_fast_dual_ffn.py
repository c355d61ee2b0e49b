"""The sync-free DualFFN routing computes exactly what transformers' decoder layer computes.

Two tiny models with the same random weights, one with transformers' layer and one with
`fast_dual_ffn.install`, get the same batch: a padded row mixing text and audio, a text-only row and an
audio-only row. Logits, loss and every gradient must agree in float32, under LoRA and full fine-tuning,
with and without gradient checkpointing; so must cached single-token steps and greedy generation.
"""

import pytest
import torch

from higgs_tune.config import LoraSettings, PromptSettings, TrainSettings
from higgs_tune.inference.generate import generate_codes
from higgs_tune.inference.settings import SamplingSettings
from higgs_tune.model import fast_dual_ffn
from higgs_tune.model.loading import build_model_from_config, load_model
from higgs_tune.tiny.model import build_tiny_tokenizer, tiny_lm_config
from higgs_tune.training.build import prepare_for_training

EXACT = {"rtol": 1e-6, "atol": 1e-6}


@pytest.fixture(scope="module")
def config():
    return tiny_lm_config(build_tiny_tokenizer())


@pytest.fixture
def routed_calls(monkeypatch) -> list[int]:
    """Counts calls of the routed layer, so a test cannot pass by running the stock layer twice."""
    calls = []
    routed = fast_dual_ffn._routed_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return routed(*args, **kwargs)

    monkeypatch.setattr(fast_dual_ffn, "_routed_forward", counting)
    return calls


def mixed_batch(config, length: int = 40) -> dict[str, torch.Tensor]:
    """Row 0: left padding, text, a reference clip with its delay positions, text; row 1: text only;
    row 2: audio placeholders only. Audio frames are right-padded, as the processor pads them."""
    g = torch.Generator().manual_seed(0)
    k = config.num_codebooks
    ids = torch.randint(0, 100, (3, length), generator=g)
    ids[0, 10:25] = config.audio_token_id
    ids[0, 25 : 25 + k - 1] = config.audio_delay_token_id
    ids[2] = config.audio_token_id
    attention = torch.ones_like(ids)
    attention[0, :3] = 0
    per_row = ((ids == config.audio_token_id) | (ids == config.audio_delay_token_id)).sum(1)
    frames = int(per_row.max())
    audio = torch.randint(0, 1024, (3, frames, k), generator=g)
    audio_mask = torch.arange(frames)[None] < per_row[:, None]
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "audio_input_ids": audio,
        "audio_input_ids_mask": audio_mask,
        "audio_labels": audio,
    }


def pair(config, full: bool, checkpointing: bool):
    """(stock, sync-free) models with the same weights, prepared for training as the trainer does."""
    cfg = TrainSettings(full=full, gradient_checkpointing=checkpointing, lora=LoraSettings(dropout=0.0))
    models = []
    for fast in (False, True):
        model = build_model_from_config(config, seed=0, fast_dual_ffn=fast)
        models.append(prepare_for_training(model, cfg).train().model)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        for name, p in models[0].named_parameters():
            if "lora_B" in name:  # nonzero adapters, so every gradient is non-trivial
                p.normal_(0, 0.02)
    models[1].load_state_dict(models[0].state_dict())  # the same adapters (peft draws lora_A at random)
    assert not fast_dual_ffn.is_installed(models[0]) and fast_dual_ffn.is_installed(models[1])
    return models


@pytest.mark.parametrize(("full", "checkpointing"), [(False, False), (False, True), (True, True)])
def test_logits_loss_and_every_gradient_equal_the_stock_layer(config, routed_calls, full, checkpointing):
    stock, fast = pair(config, full, checkpointing)
    batch = mixed_batch(config)
    out_stock, out_fast = stock(**batch), fast(**batch)
    out_stock.loss.backward()
    out_fast.loss.backward()
    layers = config.num_hidden_layers
    assert len(routed_calls) == layers * (2 if checkpointing else 1)  # the replay runs it again
    torch.testing.assert_close(out_fast.logits, out_stock.logits, **EXACT)
    torch.testing.assert_close(out_fast.loss, out_stock.loss, **EXACT)
    grads = dict(stock.named_parameters())
    trained = 0
    for name, p in fast.named_parameters():
        assert (p.grad is None) == (grads[name].grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name].grad, **EXACT, msg=name)
            trained += 1
    assert trained == sum(p.requires_grad for p in fast.parameters()) > 0
    assert stock.state_dict().keys() == fast.state_dict().keys()


def test_cached_single_token_steps_equal_the_stock_layer(config, routed_calls):
    """Prefill into a KV cache, then one text step and one audio-placeholder step, batched."""
    stock, fast = (build_model_from_config(config, seed=0, fast_dual_ffn=f).eval() for f in (False, True))
    batch = mixed_batch(config)
    del batch["audio_labels"]
    steps = [torch.tensor([[5], [7], [9]]), torch.full((3, 1), config.audio_token_id)]
    logits = []
    with torch.no_grad():
        for model in (stock, fast):
            out = model(**batch, use_cache=True)
            cache, attention, seen = out.cache, batch["attention_mask"], [out.logits]
            for ids in steps:
                attention = torch.cat([attention, torch.ones_like(ids)], 1)
                audio = torch.randint(0, 1024, (3, 1, config.num_codebooks), generator=torch.Generator())
                kwargs = {"audio_input_ids": audio} if ids[0, 0] == config.audio_token_id else {}
                out = model(input_ids=ids, attention_mask=attention, cache=cache, use_cache=True, **kwargs)
                cache = out.cache
                seen.append(out.logits)
            logits.append(seen)
    assert len(routed_calls) == 3 * config.num_hidden_layers
    for a, b in zip(*logits, strict=True):
        torch.testing.assert_close(b, a, **EXACT)


def test_greedy_generation_gives_the_same_codes(tiny_model_dir, processor, routed_calls):
    g = torch.Generator().manual_seed(0)
    items = [
        {"ref_text": "a b c", "ref_codes": torch.randint(0, 1024, (8, 10 + 3 * i), generator=g), "text": "hi"}
        for i in range(2)
    ]
    codes = []
    for fast in (False, True):
        model = load_model(tiny_model_dir, fast_dual_ffn=fast).eval()
        results = generate_codes(
            model, processor, items, PromptSettings(), SamplingSettings(greedy=True), [12, 12]
        )
        codes.append([r.codes for r in results])
    assert routed_calls, "generation's prefill must run the routed layer"
    for a, b in zip(*codes, strict=True):
        assert a.shape[1] > 0 and (a == b).all()
