"""clone against hostile input: ids that would share a file name, references far too short or too long."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from higgs_tune.config import PromptSettings
from higgs_tune.data.manifests import read_manifest
from higgs_tune.data.samples import SampleError
from higgs_tune.inference.clone import check_reference, clip_file_name, clone_manifest
from higgs_tune.inference.settings import LengthLimit, SamplingSettings


def _wav(path: Path, seconds: float) -> Path:
    sf.write(str(path), tone(seconds), 24_000, subtype="PCM_16")
    return path


def test_clip_file_names_are_distinct_stable_and_readable():
    ids = ["spk/1", "spk_1", "spk:1", "Spk_1", "spk 1", ".", "..", ".hidden", "a" * 300, "a" * 301, "café"]
    names = [clip_file_name(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert len({n.lower() for n in names}) == len(ids)  # distinct on case-insensitive file systems too
    assert names == [clip_file_name(i) for i in ids]
    assert clip_file_name("spk_1") == "spk_1" and clip_file_name("café") == "café"  # plain ids stay
    assert clip_file_name("spk/1") == "spk_1~91c5c666ad"  # the same name on every run and machine
    assert all("/" not in n and not n.startswith(".") and len(n) < 120 for n in names)


def test_colliding_ids_get_their_own_files_and_bad_references_are_skipped_and_counted(
    tiny_model, processor, sample_data_dir, tmp_path, caplog
):
    base = read_manifest(sample_data_dir["manifest_jsonl"])[0]
    long_ref = _wav(tmp_path / "long.wav", 31.0)
    samples = [replace(base, id=i) for i in ("spk/1", "spk_1", "spk:1")]
    samples.append(replace(base, id="long", ref_audio=long_ref))
    limit = LengthLimit(slack_seconds=0.0, min_seconds=0.1, max_seconds=0.1)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="higgs_tune.inference.clone"):
        rows = clone_manifest(
            tiny_model, processor, samples, out, PromptSettings(), SamplingSettings(), limit, 4
        )
    assert [r["id"] for r in rows] == ["spk/1", "spk_1", "spk:1"]
    assert len({r["codes"] for r in rows}) == 3 and len(list(out.glob("*.npy"))) == 3
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(k["id"], k["code"]) for k in skipped] == [("long", "too_long")]
    assert "sample 'long' skipped: reference audio" in caplog.text and "31.00 s" in caplog.text
    assert "skipped 1 of 4 samples" in caplog.text


def test_a_reference_outside_the_accepted_durations_is_one_clear_error(tmp_path):
    assert check_reference(_wav(tmp_path / "ok.wav", 1.0)) == pytest.approx(1.0)
    with pytest.raises(SampleError, match=r"reference audio is 0.20 s; a reference must be 0.5-30 s"):
        check_reference(_wav(tmp_path / "short.wav", 0.2))


def test_clone_refuses_a_ten_minute_reference_before_loading_the_model(tmp_path):
    """In process (the CLI's one-line exit 2 for a `SampleError` is `cli.main`'s): the model named does not
    exist, so any error but the reference's would mean the model was loaded first."""
    from typer.testing import CliRunner

    from higgs_tune.cli import app

    ref = tmp_path / "ten_minutes.wav"
    sf.write(str(ref), np.zeros(600 * 4_000, dtype=np.int16), 4_000, subtype="PCM_16")
    args = ["clone", "--model", str(tmp_path / "no-such-model"), "--ref-audio", str(ref)]
    result = CliRunner().invoke(
        app, [*args, "--ref-text", "a", "--text", "b", "--out", str(tmp_path / "o.wav")]
    )
    assert isinstance(result.exception, SampleError), result.exception
    message = str(result.exception)
    assert "\n" not in message
    assert "ten_minutes.wav: reference audio is 600.00 s; a reference must be 0.5-30 s" in message
