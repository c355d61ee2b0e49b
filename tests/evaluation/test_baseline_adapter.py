"""`eval --baseline-adapter`: two fine-tunes compared like the base model and one (an SFT run against the DPO
run started from it), the baseline cloning exactly as `eval --adapter` alone clones it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import train_config

from higgs_tune.checkpoint import resolve_checkpoint
from higgs_tune.evaluation.evaluate import EvalSettings, evaluate
from higgs_tune.evaluation.listening import write_listening_test
from higgs_tune.evaluation.listening_score import Preference, render_preferences
from higgs_tune.inference.settings import LengthLimit
from higgs_tune.training.trainer import Trainer


@pytest.fixture(scope="module")
def other_run(tmp_path_factory, tiny_model_dir, prepared_dir) -> Path:
    """A second LoRA run, 2 steps at a learning rate far above the `eval_dir` run's, with another seed:
    an adapter whose clones differ from that run's."""
    run = tmp_path_factory.mktemp("other") / "run"
    overrides = ("max_steps=2", "learning_rate=5e-2", "seed=7")
    Trainer(train_config(tiny_model_dir, prepared_dir, run, *overrides)).run()
    return run


def _codes(eval_dir: Path, system: str, rows: list[dict]) -> list[np.ndarray]:
    return [np.load(eval_dir / system / r["codes"]) for r in rows]


def test_two_adapters_are_compared_and_the_baseline_clones_as_eval_adapter_alone(
    eval_dir, other_run, tiny_model_dir, tmp_path
):
    """`eval_dir` is `eval --adapter A --baseline`; here A is the baseline of the other run B, with the same
    sampling seed and settings, so A's clones must be `eval_dir`'s fine-tuned clones code for code."""
    alone = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    run_a = resolve_checkpoint(eval_dir.parent / "run")
    run_b = resolve_checkpoint(other_run)
    settings = EvalSettings(
        asr_model=alone["asr_model"],
        speaker_model=alone["speaker_model"],
        language=alone["language"],
        limit=LengthLimit(min_seconds=0.5, max_seconds=0.5),  # as `eval_dir` clones
    )
    out = tmp_path / "eval"
    report = evaluate(
        Path(alone["manifest"]), str(tiny_model_dir), run_b, out, False, settings, baseline_adapter=run_a
    ).to_dict()  # as report.json holds it

    assert report["adapter"] == str(run_b) and report["baseline_adapter"] == str(run_a)
    ids = [r["id"] for r in alone["samples"]["finetuned"]]
    for system in ("base", "finetuned"):
        assert [r["id"] for r in report["samples"][system]] == ids
        assert report["summary"][system]["samples"] == len(ids)
    assert set(report["comparison"]) == {"better", "worse", "reasons"}
    baseline = _codes(out, "base", report["samples"]["base"])
    tuned = _codes(out, "finetuned", report["samples"]["finetuned"])
    expected = _codes(eval_dir, "finetuned", alone["samples"]["finetuned"])
    assert all(np.array_equal(a, b) for a, b in zip(baseline, expected, strict=True))
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(baseline, tuned, strict=True))
    assert report["prompts"]["base"] == alone["prompts"]["finetuned"]

    # The reports name both adapters and call the systems baseline and tuned, not base and fine-tuned.
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert markdown.splitlines()[2].startswith("**The tuned adapter ")
    assert f"tuned: adapter {run_b}; baseline: adapter {run_a}" in markdown
    assert "| metric | baseline | tuned |" in markdown and "base model" not in markdown
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<th>baseline</th><th>tuned</th>" in page and "WER change (tuned - baseline)" in page
    # The tuned checkpoint's card gets its own figures, never the baseline adapter's as "base".
    card = (run_b / "adapter" / "README.md").read_text(encoding="utf-8")
    assert "| measure | finetuned |" in card
    # The blind listening test keeps those names for its un-blinded result.
    write_listening_test(out, tmp_path / "ab")
    key = json.loads((tmp_path / "ab" / "key.json").read_text(encoding="utf-8"))
    assert key["systems"] == {"base": "baseline", "finetuned": "tuned"}
    said = render_preferences([Preference("similar", 2, 1, 0, 0)], ["ana"], key["systems"])
    assert "tuned preferred in 2 of 3" in said and "baseline 1" in said


def test_eval_cli_takes_a_baseline_adapter_and_refuses_it_beside_baseline(
    eval_dir, other_run, tiny_model_dir, tmp_path, run_cli
):
    alone = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    first = json.loads(Path(alone["manifest"]).read_text(encoding="utf-8").splitlines()[0])
    # One sample with a one-word text: the shortest clip `eval`'s length limit allows (2 s), so it is quick.
    manifest = Path(alone["manifest"]).parent / "heldout_baseline_adapter.jsonl"  # its paths are relative
    manifest.write_text(json.dumps({**first, "text": "نعم"}, ensure_ascii=False) + "\n", encoding="utf-8")
    common = ["eval", "--manifest", manifest, "--model", tiny_model_dir, "--adapter", other_run, "--greedy"]
    common += ["--asr-model", alone["asr_model"], "--speaker-model", alone["speaker_model"]]
    common += ["--language", "ar"]
    run_a = eval_dir.parent / "run"

    refused = tmp_path / "refused"
    no_adapter = [a for a in common if a not in ("--adapter", other_run)]
    for args, why in (
        ([*common, "--baseline", "--baseline-adapter", run_a], "pass one of them"),
        ([*no_adapter, "--baseline-adapter", run_a], "needs --adapter"),
        ([*common, "--baseline-adapter", other_run], "the same checkpoint"),
    ):
        code, _, err = run_cli(*args, "--out", refused)
        assert code == 2 and "Traceback" not in err
        lines = [line for line in err.splitlines() if "--baseline-adapter" in line]
        assert len(lines) == 1 and why in lines[0], err
        assert not refused.exists()  # refused before anything was loaded or written

    out = tmp_path / "eval"
    code, stdout, err = run_cli(*common, "--baseline-adapter", run_a, "--checkpoint", "last", "--out", out)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["baseline_adapter"] == str(resolve_checkpoint(run_a, "last"))
    assert report["adapter"] == str(resolve_checkpoint(other_run, "last"))
    assert set(report["samples"]) == {"base", "finetuned"} and "comparison" in report
    assert "baseline: WER" in stdout and "tuned: WER" in stdout
