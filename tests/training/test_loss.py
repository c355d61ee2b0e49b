"""Exactly one next-token shift, and masking that is real."""

import torch
import torch.nn.functional as F

from higgs_tune.config import PromptSettings
from higgs_tune.training.collate import LOSS_INPUTS, MODEL_INPUTS, Collator
from higgs_tune.training.examples import IGNORE, build_example
from higgs_tune.training.loss import CloningLossModel, combine


def _batch(processor, learn_text=False, ref_seed=1):
    g = torch.Generator().manual_seed(ref_seed)
    examples = [
        build_example(
            processor,
            f"s{i}",
            f"reference {i}",
            torch.randint(0, 1024, (8, n_ref), generator=g),
            f"target text {i}",
            torch.randint(0, 1024, (8, n_tgt), generator=torch.Generator().manual_seed(100 + i)),
            PromptSettings(),
            learn_text=learn_text,
        )
        for i, (n_ref, n_tgt) in enumerate([(12, 7), (5, 15), (20, 3)])
    ]
    return Collator(processor)(examples)


def _hand_loss(processor, logits, batch, num_codebooks=8):
    """Per-codebook CE computed position by position: the logit at t is scored against the label at t+1."""
    codebook_size = logits.shape[-1] // num_codebooks
    per_codebook = torch.zeros(num_codebooks)
    counts = torch.zeros(num_codebooks)
    for b in range(batch["input_ids"].shape[0]):
        ids = batch["input_ids"][b]
        positions = ((ids == processor.audio_token_id) | (ids == processor.audio_delay_token_id)).nonzero()
        frame_labels = batch["audio_labels"][b][batch["audio_input_ids_mask"][b]]
        label_at = {int(p): frame_labels[i] for i, p in enumerate(positions.flatten())}
        for t in range(ids.shape[0] - 1):
            if t + 1 not in label_at:
                continue
            for k in range(num_codebooks):
                target = int(label_at[t + 1][k])
                if target == IGNORE:
                    continue
                row = logits[b, t, k * codebook_size : (k + 1) * codebook_size]
                per_codebook[k] += F.cross_entropy(row[None], torch.tensor([target]))
                counts[k] += 1
    return per_codebook, counts


def test_loss_equals_hand_computed_and_model_loss(tiny_model, processor):
    batch = _batch(processor)
    wrapper = CloningLossModel(tiny_model)
    sums = wrapper(**{k: batch[k] for k in LOSS_INPUTS})
    loss, parts = combine(sums, batch["num_audio_frames"], batch["num_text_tokens"], torch.ones(8), 0.0)

    out = tiny_model(**{k: batch[k] for k in MODEL_INPUTS})
    hand_sums, counts = _hand_loss(processor, out.logits, batch)
    assert (counts == batch["num_audio_frames"]).all()
    torch.testing.assert_close(sums.audio_per_codebook, hand_sums, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss, (hand_sums / counts).sum(), rtol=1e-4, atol=1e-4)

    # transformers' own loss shifts internally: fed our unshifted labels it must agree with ours.
    model_loss = tiny_model(**{k: batch[k] for k in MODEL_INPUTS}, audio_labels=batch["audio_labels"]).loss
    torch.testing.assert_close(loss, model_loss, rtol=1e-4, atol=1e-4)
    assert loss > 0


def test_text_loss_is_shifted_once(tiny_model_with_text_head, processor):
    """Checked against transformers' own text loss (`labels=`: it shifts internally and averages over the
    labelled tokens) and against a cross-entropy over the full text logits, shifted here by hand."""
    model = tiny_model_with_text_head
    batch = _batch(processor, learn_text=True)
    sums = CloningLossModel(model)(**{k: batch[k] for k in LOSS_INPUTS})
    _, parts = combine(sums, batch["num_audio_frames"], batch["num_text_tokens"], torch.ones(8), 1.0)
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    transformers_text_loss = model(**inputs, labels=batch["labels"]).loss
    torch.testing.assert_close(parts["text_loss"], transformers_text_loss, rtol=1e-4, atol=1e-4)

    text_logits = model.text_lm_head(model.model(**inputs).last_hidden_state)  # [B, L, V]: every position
    by_hand = [
        F.cross_entropy(text_logits[b, t], batch["labels"][b, t + 1], reduction="sum")
        for b in range(text_logits.shape[0])
        for t in range(text_logits.shape[1] - 1)
        if batch["labels"][b, t + 1] != IGNORE
    ]
    torch.testing.assert_close(sums.text, torch.stack(by_hand).sum(), rtol=1e-4, atol=1e-4)
    assert batch["num_text_tokens"] == len(by_hand) == 6  # <|audio_eos|><|eot_id|> of each of the three


def test_reference_changes_logits_but_not_labelled_positions(tiny_model, processor):
    a, b = _batch(processor, ref_seed=1), _batch(processor, ref_seed=2)
    assert not torch.equal(a["audio_input_ids"], b["audio_input_ids"])
    for key in ("audio_index", "audio_targets", "labels", "audio_labels"):
        assert torch.equal(a[key], b[key]), key
    logits_a = tiny_model(**{k: a[k] for k in MODEL_INPUTS}).logits
    logits_b = tiny_model(**{k: b[k] for k in MODEL_INPUTS}).logits
    assert not torch.allclose(logits_a, logits_b)


def test_padding_is_never_labelled(processor):
    batch = _batch(processor)
    pad = batch["attention_mask"] == 0
    assert pad.any()
    assert (batch["labels"][pad] == IGNORE).all()
    assert (batch["audio_labels"][~batch["audio_input_ids_mask"]] == IGNORE).all()
    predicted = torch.zeros(batch["input_ids"].numel(), dtype=torch.bool)
    predicted[batch["audio_index"]] = True
    # Scored outputs are real positions whose next position is real too.
    assert not pad.flatten()[predicted].any()
