"""Stop-health figures from teacher-forced logits: hand-checked values, additivity, and what is ignored."""

import math

import pytest
import torch

from higgs_tune.training.stop_health import (
    StopHealthSums,
    stop_health_metrics,
    stop_health_sums,
    stop_health_warnings,
)

C, EOS, K = 6, 5, 2  # 4 codes, BOS 4, EOS 5; 2 codebooks


def targets_of_one_clip() -> torch.Tensor:
    """3 rows x 2 codebooks, delay-patterned: codebook 1 ends one row later than codebook 0."""
    return torch.tensor([[1, -100], [2, 3], [EOS, 0]])


def test_a_model_that_knows_the_targets_scores_perfectly() -> None:
    targets = targets_of_one_clip()
    logits = torch.full((3, K, C), -30.0)
    logits.scatter_(-1, targets.clamp(min=0)[..., None], 30.0)
    m = stop_health_metrics(stop_health_sums(logits, targets, torch.zeros(3, dtype=torch.long), EOS))
    assert m["accuracy"] == 1.0 and m["accuracy_codebook_0"] == 1.0 and m["accuracy_codebook_1"] == 1.0
    assert m["eos_prob_codebook_0"] == pytest.approx(1.0)
    assert m["eos_prob_codebook_1"] == 0.0  # codebook 1 has no labelled EOS in these rows
    assert m["early_stop_risk"] == pytest.approx(0.0, abs=1e-6)


def test_uniform_logits_give_chance_and_the_product_rule() -> None:
    targets = targets_of_one_clip()
    m = stop_health_metrics(
        stop_health_sums(torch.zeros(3, K, C), targets, torch.zeros(3, dtype=torch.long), EOS)
    )
    assert m["eos_prob_codebook_0"] == pytest.approx(1 / C)
    # 4 code positions (1, 2 in codebook 0; 3, 0 in codebook 1), each surviving with 1 - 1/C.
    assert m["early_stop_risk"] == pytest.approx(1 - (1 - 1 / C) ** 4)
    # argmax of equal logits is class 0: only the target 0 of codebook 1 is a hit.
    assert m["accuracy_codebook_0"] == 0.0 and m["accuracy_codebook_1"] == pytest.approx(1 / 2)


def test_risk_is_per_clip_and_sums_add_up_across_batches() -> None:
    g = torch.Generator().manual_seed(0)
    targets = torch.cat([targets_of_one_clip(), targets_of_one_clip()])
    logits = torch.randn(6, K, C, generator=g)
    clips = torch.tensor([0, 0, 0, 1, 1, 1])
    whole = stop_health_sums(logits, targets, clips, EOS)
    halves = stop_health_sums(logits[:3], targets[:3], clips[:3], EOS) + stop_health_sums(
        logits[3:], targets[3:], clips[3:] - 1, EOS
    )
    for a, b in zip(whole.to_vector(), halves.to_vector(), strict=True):
        assert float(a) == pytest.approx(float(b))
    p = torch.softmax(logits, -1)[..., EOS]
    codes = (targets >= 0) & (targets != EOS)
    risks = [
        1 - math.prod(1 - float(p[r, k]) for r in rows for k in range(K) if codes[r, k])
        for rows in ((0, 1, 2), (3, 4, 5))
    ]
    assert stop_health_metrics(whole)["early_stop_risk"] == pytest.approx(sum(risks) / 2)
    round_trip = StopHealthSums.from_vector(whole.to_vector(), K)
    assert stop_health_metrics(round_trip) == pytest.approx(stop_health_metrics(whole))


def test_rows_without_labels_count_for_nothing() -> None:
    targets = targets_of_one_clip()
    padded = torch.cat([targets, torch.full((2, K), -100)])
    logits = torch.randn(5, K, C, generator=torch.Generator().manual_seed(1))
    clips = torch.tensor([0, 0, 0, 1, 1])
    a = stop_health_metrics(stop_health_sums(logits[:3], targets, clips[:3], EOS))
    b = stop_health_metrics(stop_health_sums(logits, padded, clips, EOS))
    assert a == pytest.approx(b)  # clip 1 has no code target: it is not counted as a clip


def test_the_loss_model_measures_stop_health_in_eval_mode_only(tiny_model, processor, prepared_dir) -> None:
    """On the untrained tiny model the stream EOS gets about chance probability (1/1026) where it is
    labelled, so a clip's early-stop risk is what chance gives over its code positions; training mode
    computes nothing extra."""
    from higgs_tune.config import PromptSettings
    from higgs_tune.prepared.dataset import PreparedData
    from higgs_tune.training.collate import LOSS_INPUTS, Collator
    from higgs_tune.training.examples import ExampleDataset
    from higgs_tune.training.loss import CloningLossModel

    examples = ExampleDataset(PreparedData(prepared_dir), processor, PromptSettings(), learn_text=False)
    batch = Collator(processor)([examples[i] for i in range(4)])
    inputs = {k: batch[k] for k in LOSS_INPUTS}
    model = CloningLossModel(tiny_model).eval()
    with torch.no_grad():
        sums = model(**inputs)
    m = stop_health_metrics(sums.stop_health)
    assert 0.2 / 1026 < m["eos_prob"] < 5 / 1026
    per_clip = float(sums.stop_health.codes.sum()) / 4
    assert float(sums.stop_health.clips) == 4
    assert m["early_stop_risk"] == pytest.approx(1 - (1 - 1 / 1026) ** per_clip, rel=0.5)
    assert float(sums.stop_health.eos.sum()) == 4 * 8  # one labelled EOS per codebook per clip
    model.train()
    assert model(**inputs).stop_health is None
    model.eval()


@pytest.mark.parametrize(
    ("eos_prob", "risk", "said"),
    [
        (0.001, 0.01, "not learning to stop: generated audio will run to the frame limit"),
        (0.95, 0.9, "emits its EOS before the end of the clip: generation cuts speech short"),
        (0.001, 0.999, "has not learned where clips end yet"),
        (0.95, 0.01, None),
    ],
    ids=["only_late", "only_early", "both", "healthy"],
)
def test_stop_health_says_one_thing_a_user_can_act_on(eos_prob, risk, said) -> None:
    """Both figures bad at one step used to print "will run to the frame limit" and "cuts speech short"
    together; that combination is one warning saying what it means and what to do."""
    warnings = stop_health_warnings({"eval_eos_prob": eos_prob, "eval_early_stop_risk": risk}, "eval_")
    assert [said in w for w in warnings] == ([] if said is None else [True])
    if said == "has not learned where clips end yet":
        (warning,) = warnings
        assert "0.001" in warning and "0.999" in warning and "Train longer" in warning
        assert "frame limit" not in warning and "cuts speech short" not in warning
