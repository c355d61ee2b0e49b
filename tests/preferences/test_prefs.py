"""`prefs` on the tiny model: candidates sampled, scored by the tiny eval models, written whole, resumable."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import fast_tiny_eval_models

from higgs_tune.data import preference_folder
from higgs_tune.data.manifests import read_manifest
from higgs_tune.errors import UserError
from higgs_tune.inference.settings import LengthLimit
from higgs_tune.preferences.run import PrefsSettings, make_preferences


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> PrefsSettings:
    asr, speaker = fast_tiny_eval_models(tmp_path_factory.mktemp("eval-models"))
    return PrefsSettings(
        candidates=2,
        limit=LengthLimit(min_seconds=0.5, max_seconds=1.0),
        asr_model=str(asr),
        speaker_model=str(speaker),
    )


@pytest.fixture(scope="module")
def made(tiny_model_dir, sample_data_dir, settings, tmp_path_factory) -> tuple[list, Path, dict]:
    """A preference folder of the first 2 samples: (samples, folder, summary). Tests copy it to change it."""
    samples = read_manifest(sample_data_dir["manifest_jsonl"], require_target=False)[:2]
    out = tmp_path_factory.mktemp("made") / "prefs"
    return samples, out, make_preferences(str(tiny_model_dir), None, samples, out, settings)


def test_prefs_writes_every_prompt_whole_and_a_rerun_does_nothing_new(tiny_model_dir, settings, made) -> None:
    samples, out, summary = made
    assert summary["prompts"] == 2
    assert preference_folder.read_prompt(out)["system_prompt"] == "Generate audio following instruction."
    assert json.loads((out / "settings.json").read_text())["adapter"] is None  # null, not the string "None"
    records = [json.loads(p.read_text()) for p in sorted((out / "prompts").glob("*.json"))]
    assert sorted(r["id"] for r in records) == sorted(s.id for s in samples)
    for r in records:
        assert len(r["candidates"]) == 2
        assert all({"cer", "similarity", "flags", "reward"} <= set(c) for c in r["candidates"])
        assert (out / "codes" / f"{r['key']}-ref.npy").is_file()
    lines = [json.loads(x) for x in (out / "prefs.jsonl").read_text().splitlines()]
    assert len(lines) == summary["pairs"] == sum(len(r["pairs"]) for r in records)
    paired = [r["id"] for r in records if r["pairs"]]
    assert sorted(paired + summary["skipped_all_alike"]) == sorted(s.id for s in samples)
    for line in lines:
        assert np.load(out / line["chosen"]["codes"]).shape[0] == 8
    before = {p: p.stat().st_mtime_ns for p in (out / "prompts").glob("*.json")}
    make_preferences(str(tiny_model_dir), None, samples, out, settings)
    assert {p: p.stat().st_mtime_ns for p in (out / "prompts").glob("*.json")} == before


def test_a_rerun_after_the_manifest_changed_makes_the_changed_prompt_again(
    tiny_model_dir, settings, made, tmp_path, caplog
) -> None:
    """Same ids, but one text changed: that prompt is made again, its record and codes replaced (not
    added); the other, whose reference clip merely moved (same bytes), is kept as it was."""
    (a, b), made_out, _ = made
    out = shutil.copytree(made_out, tmp_path / "prefs")
    before = {p.name: p.stat().st_mtime_ns for p in (out / "prompts").glob("*.json")}
    changed = [
        replace(a, text=a.text + " جديد"),
        replace(b, ref_audio=Path(shutil.copy(b.ref_audio, tmp_path))),
    ]
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        summary = make_preferences(str(tiny_model_dir), None, changed, out, settings)
    assert "2 prompts, 1 already done" in caplog.text and "1 prompts of" in caplog.text
    records = {r["id"]: r for r in (json.loads(p.read_text()) for p in (out / "prompts").glob("*.json"))}
    assert sorted(records) == sorted([a.id, b.id]) and summary["prompts"] == 2
    assert records[a.id]["text"] == changed[0].text
    after = {p.name: p.stat().st_mtime_ns for p in (out / "prompts").glob("*.json")}
    assert {n for n in after if after[n] != before[n]} == {f"{preference_folder.prompt_key(a.id)}.json"}
    lines = [json.loads(x) for x in (out / "prefs.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines if x["id"] == a.id] == [changed[0].text] * len(records[a.id]["pairs"])
    kept = {
        f"{r['key']}-{name}.npy"
        for r in records.values()
        for name in ["ref", *{i for p in r["pairs"] for i in p}]
    }
    assert {p.name for p in (out / "codes").glob("*.npy")} == kept  # no old candidate's codes left


def test_a_prompt_digest_changes_with_its_texts_and_reference_bytes_not_its_reference_path(
    sample_data_dir, tmp_path
) -> None:
    x = read_manifest(sample_data_dir["manifest_jsonl"], require_target=False)[0]
    moved = Path(shutil.copy(x.ref_audio, tmp_path / "moved.wav"))
    other = tmp_path / "other.wav"
    other.write_bytes(x.ref_audio.read_bytes()[:-2] + b"\x01\x00")  # its last audio sample changed
    variants = [
        replace(x, text=x.text + "!"),
        replace(x, ref_text=x.ref_text + "!"),
        replace(x, scene="A hall."),
        replace(x, ref_audio=other),
    ]
    digest, same, *different = preference_folder.prompt_digests([x, replace(x, ref_audio=moved), *variants])
    assert same == digest and len({digest, *different}) == 1 + len(variants)


def test_prefs_refuses_to_continue_with_other_settings(tmp_path) -> None:
    preference_folder.check_settings(tmp_path, {"candidates": 3, "margin": 0.05})
    with pytest.raises(UserError, match="other settings \\(margin\\)"):
        preference_folder.check_settings(tmp_path, {"candidates": 3, "margin": 0.1})


def test_pairs_file_lists_chosen_and_rejected_codes_in_manifest_order(tmp_path: Path) -> None:
    codes = {i: np.full((8, 5 + i), i, dtype=np.int64) for i in range(3)}
    for sample_id, pairs in (("b", [[2, 0]]), ("a", []), ("c", [[1, 0], [2, 0]])):
        record = {
            "key": preference_folder.prompt_key(sample_id),
            "id": sample_id,
            "ref_text": "r",
            "text": "t",
            "candidates": [{"reward": float(i)} for i in range(3)],
            "pairs": pairs,
            "spread": 2.0,
        }
        preference_folder.write_prompt(tmp_path, record, codes[0], {i: codes[i] for p in pairs for i in p})
    summary = preference_folder.finish(tmp_path, [preference_folder.prompt_key(x) for x in ("a", "b", "c")])
    pairs = preference_folder.read_pairs(tmp_path)
    assert [(p["id"], p["chosen"]["reward"], p["rejected"]["reward"]) for p in pairs] == [
        ("b", 2.0, 0.0),
        ("c", 1.0, 0.0),
        ("c", 2.0, 0.0),
    ]
    assert np.array_equal(np.load(tmp_path / pairs[0]["chosen"]["codes"]), codes[2])
    assert summary["skipped_all_alike"] == ["a"] and summary["pairs"] == 3
