"""`prefs` on the tiny model: candidates sampled, scored by the tiny eval models, written whole, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fast_tiny_eval_models

from higgs_tune.data.manifests import read_manifest
from higgs_tune.errors import UserError
from higgs_tune.inference.settings import LengthLimit
from higgs_tune.preferences import store
from higgs_tune.preferences.run import PrefsSettings, make_preferences
from higgs_tune.training.preference_data import read_pairs, read_prompt


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> PrefsSettings:
    asr, speaker = fast_tiny_eval_models(tmp_path_factory.mktemp("eval-models"))
    return PrefsSettings(
        candidates=2,
        limit=LengthLimit(min_seconds=0.5, max_seconds=1.0),
        asr_model=str(asr),
        speaker_model=str(speaker),
    )


def test_prefs_writes_every_prompt_whole_and_a_rerun_does_nothing_new(
    tiny_model_dir, sample_data_dir, settings, tmp_path
) -> None:
    samples = read_manifest(sample_data_dir["manifest_jsonl"], require_target=False)[:2]
    out = tmp_path / "prefs"
    summary = make_preferences(str(tiny_model_dir), None, samples, out, settings)
    assert summary["prompts"] == 2
    assert read_prompt(out)["system_prompt"] == "Generate audio following instruction."
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


def test_prefs_refuses_to_continue_with_other_settings(tmp_path) -> None:
    store.check_settings(tmp_path, {"candidates": 3, "margin": 0.05})
    with pytest.raises(UserError, match="other settings \\(margin\\)"):
        store.check_settings(tmp_path, {"candidates": 3, "margin": 0.1})


def test_pairs_file_lists_chosen_and_rejected_codes_in_manifest_order(tmp_path: Path) -> None:
    codes = {i: np.full((8, 5 + i), i, dtype=np.int64) for i in range(3)}
    for sample_id, pairs in (("b", [[2, 0]]), ("a", []), ("c", [[1, 0], [2, 0]])):
        record = {
            "key": store.prompt_key(sample_id),
            "id": sample_id,
            "ref_text": "r",
            "text": "t",
            "candidates": [{"reward": float(i)} for i in range(3)],
            "pairs": pairs,
            "spread": 2.0,
        }
        store.write_prompt(tmp_path, record, codes[0], {i: codes[i] for p in pairs for i in p})
    summary = store.finish(tmp_path, [store.prompt_key(x) for x in ("a", "b", "c")])
    pairs = read_pairs(tmp_path)
    assert [(p["id"], p["chosen"]["reward"], p["rejected"]["reward"]) for p in pairs] == [
        ("b", 2.0, 0.0),
        ("c", 1.0, 0.0),
        ("c", 2.0, 0.0),
    ]
    assert np.array_equal(np.load(tmp_path / pairs[0]["chosen"]["codes"]), codes[2])
    assert summary["skipped_all_alike"] == ["a"] and summary["pairs"] == 3
