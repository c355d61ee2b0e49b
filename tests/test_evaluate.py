"""`eval --baseline` on the tiny models: a report whose rows cover every sample, for both systems."""

import json
import subprocess
import sys

import pytest

from higgs_tune.config import TrainConfig, load_config
from higgs_tune.evaluate import render_markdown
from higgs_tune.train import Trainer


@pytest.mark.cli
def test_eval_baseline_report_covers_every_sample(tiny_model_dir, prepared_dir, sample_data_dir, tmp_path):
    from higgs_tune.tiny_eval_models import build_tiny_eval_models

    asr, speaker = build_tiny_eval_models(tmp_path / "eval-models")
    run = tmp_path / "run"
    overrides = [f"model={tiny_model_dir}", f"data={prepared_dir}", f"output_dir={run}", "max_steps=2"]
    Trainer(load_config(TrainConfig, None, [*overrides, "warmup_steps=0"])).run()
    lines = sample_data_dir["manifest_jsonl"].read_text().splitlines()[:3]
    # Paths in the copied lines are relative to the original manifest's folder.
    heldout = sample_data_dir["manifest_jsonl"].parent / "heldout_test.jsonl"
    heldout.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable, "-m", "higgs_tune", "eval", "--manifest", str(heldout),
            "--model", str(tiny_model_dir), "--adapter", str(run), "--baseline", "--out", str(out),
            "--asr-model", str(asr), "--speaker-model", str(speaker), "--language", "ar",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    ids = [json.loads(line)["id"] for line in lines]
    for system in ("base", "finetuned"):
        rows = report["samples"][system]
        assert [r["id"] for r in rows] == ids
        assert all(
            {"wer", "cer", "similarity", "flags", "stopped_by_eos", "transcript"} <= r.keys() for r in rows
        )
        assert report["summary"][system]["samples"] == len(ids)
    assert set(report["comparison"]) == {"better", "worse"}
    markdown = (out / "report.md").read_text()
    assert "Fine-tuning" in markdown.splitlines()[2]
    assert all(i in markdown for i in ids)
    assert (out / "wer.png").stat().st_size > 0 and (out / "similarity.png").stat().st_size > 0


def _summary(wer, sim, eos):
    return {
        "samples": 1,
        "wer": wer,
        "cer": wer,
        "similarity": sim,
        "stopped_by_eos": eos,
        "flags": {},
        "clean": 1,
    }


@pytest.mark.parametrize(
    "tuned,base,word",
    [
        (_summary(0.1, 0.8, 1.0), _summary(0.5, 0.6, 0.5), "helped"),
        (_summary(0.6, 0.5, 0.5), _summary(0.2, 0.7, 1.0), "hurt"),
        (_summary(0.2, 0.7, 1.0), _summary(0.2, 0.7, 1.0), "made no clear difference"),
        (_summary(0.2, None, 1.0), _summary(0.2, 0.7, 1.0), "hurt"),  # too short to embed counts against
    ],
)
def test_verdict_line_tells_at_a_glance(tuned, base, word):
    for summary in (tuned, base):
        summary.update(flags={}, clean=1)
    row = {"id": "a", "wer": 0.1, "similarity": 0.5, "seconds": 1.0, "flags": []}
    report = {
        "model": "m",
        "adapter": "r",
        "asr_model": "asr",
        "speaker_model": "spk",
        "language": "ar",
        "summary": {"finetuned": tuned, "base": base},
        "samples": {"finetuned": [row], "base": [row]},
        "comparison": {"better": [], "worse": []},
    }
    assert f"**Fine-tuning {word}**" in render_markdown(report)
