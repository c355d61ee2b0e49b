"""Cloning: the memorise-and-clone contract through the real commands, and clips cut at their frame limit."""

import json
import subprocess
import sys

import numpy as np

from higgs_tune.config import PromptSettings
from higgs_tune.inference.settings import SamplingSettings
from higgs_tune.prepared.dataset import PreparedData


def higgs_tune(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "higgs_tune", *map(str, args)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_memorise_then_clone_reproduces_target_and_stops(tiny_model_dir, sample_data_dir, tmp_path):
    """Train on one sample until memorised, clone greedily with the same prompt: the exact target codes,
    ended by the stream EOS."""
    manifest = sample_data_dir["manifest_jsonl"]
    first = json.loads(manifest.read_text().splitlines()[0])
    one = manifest.parent / "one_sample.jsonl"
    one.write_text(json.dumps(first) + "\n")
    data, run = tmp_path / "data", tmp_path / "run"
    higgs_tune("prepare", one, "--model", tiny_model_dir, "--out", data)
    higgs_tune(
        "train", "--model", tiny_model_dir, "--data", data, "--out", run, "--full",
        "max_steps=120", "learning_rate=3e-3", "warmup_steps=0", "lr_scheduler_type=constant",
        "per_device_train_batch_size=1", "eval_fraction=0", "logging_steps=20", "save_steps=1000",
    )  # fmt: skip
    losses = [json.loads(line)["audio_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.05 * losses[0], losses

    codes_out = tmp_path / "clone.npy"
    proc = higgs_tune(
        "clone", "--model", tiny_model_dir, "--adapter", run, "--greedy",
        "--ref-audio", manifest.parent / first["ref_audio"], "--ref-text", first["ref_text"],
        "--text", first["text"], "--out", tmp_path / "clone.wav", "--codes-out", codes_out,
    )  # fmt: skip
    target = PreparedData(data)[0].target_codes
    generated = np.load(codes_out)
    assert generated.shape == target.shape
    assert np.array_equal(generated, target)
    assert "ended by stream EOS" in proc.stderr
    assert (tmp_path / "clone.wav").stat().st_size > 44


def test_clone_manifest_writes_every_sample_and_flags_cuts(
    tiny_model, processor, sample_data_dir, tmp_path, caplog
):
    """Cut clips are flagged and counted in one warning that says what to do, not one warning per sample."""
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.inference.clone import clone_manifest
    from higgs_tune.inference.settings import LengthLimit

    samples = read_manifest(sample_data_dir["manifest_jsonl"])[:5]
    limit = LengthLimit(chars_per_second=40.0, slack_seconds=0.0, min_seconds=0.2, max_seconds=0.5)
    steps = []  # one audio-head call per generated position
    hook = tiny_model.audio_lm_head.register_forward_hook(lambda *_: steps.append(1))
    try:
        rows = clone_manifest(
            tiny_model,
            processor,
            samples,
            tmp_path / "out",
            PromptSettings(),
            SamplingSettings(seed=1),
            limit,
            2,
        )
    finally:
        hook.remove()
    rate = processor.audio_tokenizer.config.frame_rate
    assert [r["frame_limit"] for r in rows] == [
        int(min(max(len(s.text) / 40, 0.2), 0.5) * rate) for s in samples
    ]
    # Each batch of 2 ends by its longest limit at the latest: stream BOS, the frames, the EOS cascade.
    batch_limits = [max(r["frame_limit"] for r in rows[i : i + 2]) for i in range(0, len(rows), 2)]
    assert len(steps) <= sum(lim + 1 + 8 for lim in batch_limits)
    written = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == [s.id for s in samples] == [r["id"] for r in rows]
    for row in written:
        assert (tmp_path / "out" / row["wav"]).is_file()
        codes = np.load(tmp_path / "out" / row["codes"])
        assert codes.shape[0] == 8 and codes.shape[1] <= row["frame_limit"]
        if not row["stopped_by_eos"]:
            assert codes.shape[1] == row["frame_limit"]
    assert any(not r["stopped_by_eos"] for r in written)
    cut = sum(not r["stopped_by_eos"] for r in written)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{cut} of 5 clones never emitted their stream EOS")


def test_a_clone_without_frames_is_recorded_and_flagged_not_written(
    tiny_model, processor, sample_data_dir, tmp_path
):
    """A frame limit of 0 gives clones with no audio at all (as a model that stops at once does): each is
    still a row of results.jsonl, with its codes but no wav, flagged silent and cut."""
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.inference.clone import clone_manifest
    from higgs_tune.inference.settings import LengthLimit

    samples = read_manifest(sample_data_dir["manifest_jsonl"])[:2]
    nothing = LengthLimit(slack_seconds=0.0, min_seconds=0.0, max_seconds=0.0)
    rows = clone_manifest(
        tiny_model, processor, samples, tmp_path / "out", PromptSettings(), SamplingSettings(), nothing, 2
    )
    assert [r["id"] for r in rows] == [s.id for s in samples]
    for row in rows:
        assert row["wav"] is None and row["seconds"] == 0 and row["flags"] == ["silent", "cut"]
        assert np.load(tmp_path / "out" / row["codes"]).shape == (8, 0)
    assert not list((tmp_path / "out").glob("*.wav"))


def test_missing_references_are_named_before_any_cloning(tiny_model, processor, sample_data_dir, tmp_path):
    from dataclasses import replace

    import pytest

    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.data.samples import SampleError
    from higgs_tune.inference.clone import clone_manifest
    from higgs_tune.inference.settings import LengthLimit

    samples = read_manifest(sample_data_dir["manifest_jsonl"])[:3]
    samples[2] = replace(samples[2], ref_audio=tmp_path / "gone.wav")
    with pytest.raises(
        SampleError, match=f"sample '{samples[2].id}': reference audio .*gone.wav: file not found"
    ):
        clone_manifest(
            tiny_model,
            processor,
            samples,
            tmp_path / "out",
            PromptSettings(),
            SamplingSettings(),
            LengthLimit(),
            1,
        )
    assert not (tmp_path / "out").exists()
