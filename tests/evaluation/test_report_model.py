"""The typed report (`evaluation.report`): `report.json` keeps exactly the keys, nesting and order it had
when `evaluate` built an untyped dict, and reading it back into the model loses nothing."""

from __future__ import annotations

import json

from higgs_tune.evaluation.report import BASELINE, SYSTEMS, TUNED, Report

# Taken from `report.json` as the code before the typed report wrote it (`eval_dir`: a fine-tune against
# the base model, 3 samples with target audio). A key dropped, renamed or moved fails here.
GOLDEN_TOP = [
    "manifest",
    "model",
    "adapter",
    "baseline_adapter",
    "asr_model",
    "speaker_model",
    "language",
    "prompts",
    "summary",
    "stop_health",
    "samples",
    "skipped",
    "comparison",
]
GOLDEN_SUMMARY = [
    "samples",
    "wer",
    "cer",
    "similarity",
    "similarity_samples",
    "similarity_missing",
    "stopped_by_eos",
    "right_length",
    "flags",
    "clean",
]
GOLDEN_COMPARISON = ["better", "worse", "reasons"]
# `preset` added with the vLLM-Omni prompt preset (docs/vllm-omni.md): each system's prompt settings whole.
GOLDEN_PROMPT = ["system_prompt", "scene", "text_normalisation", "preset"]
GOLDEN_STOP_HEALTH = sorted(
    ["accuracy", "early_stop_risk", "eos_prob"]
    + [f"{k}_codebook_{i}" for k in ("accuracy", "eos_prob") for i in range(8)]
)
GOLDEN_ROW = sorted(
    ["cer", "char_errors", "checks", "codes", "flags", "frame_limit", "id", "ref_audio", "ref_chars"]
    + ["ref_words", "reference", "seconds", "similarity", "similarity_missing", "spoken_text"]
    + ["stopped_by_eos", "text", "transcript", "wav", "wer", "word_errors"]
)
GOLDEN_SYSTEM_ORDER = ["finetuned", "base"]  # the order the systems ran in


def structure(report: dict) -> dict:
    """The keys of a `report.json` at every level, in order where the file has an order."""
    return {
        "top": list(report),
        "systems": {k: list(report[k]) for k in ("prompts", "summary", "stop_health", "samples")},
        "summary": {n: list(s) for n, s in report["summary"].items()},
        "comparison": list(report["comparison"]),
        "prompts": {n: list(p) for n, p in report["prompts"].items()},
        "stop_health": {n: sorted(h) for n, h in report["stop_health"].items()},
        "rows": {n: sorted({k for r in rows for k in r}) for n, rows in report["samples"].items()},
        "skipped": type(report["skipped"]).__name__,
    }


GOLDEN = {
    "top": GOLDEN_TOP,
    "systems": dict.fromkeys(("prompts", "summary", "stop_health", "samples"), GOLDEN_SYSTEM_ORDER),
    "summary": dict.fromkeys(GOLDEN_SYSTEM_ORDER, GOLDEN_SUMMARY),
    "comparison": GOLDEN_COMPARISON,
    "prompts": dict.fromkeys(GOLDEN_SYSTEM_ORDER, GOLDEN_PROMPT),
    "stop_health": dict.fromkeys(GOLDEN_SYSTEM_ORDER, GOLDEN_STOP_HEALTH),
    "rows": dict.fromkeys(GOLDEN_SYSTEM_ORDER, GOLDEN_ROW),
    "skipped": "list",
}


def test_report_json_keeps_the_keys_the_untyped_report_had(eval_dir):
    """`eval` writes report.json from the typed report: the same keys, nesting and order as before."""
    written = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    assert structure(written) == GOLDEN


def test_the_golden_structure_catches_a_dropped_or_renamed_key(eval_dir):
    """The check above is not vacuous: a report.json with one key renamed, or one dropped, at the top, in a
    summary or in the comparison, fails it."""
    written = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    renamed = {("finetuned_adapter" if k == "adapter" else k): v for k, v in written.items()}
    dropped = json.loads(json.dumps(written))
    del dropped["summary"][BASELINE]["similarity_samples"]
    no_reasons = json.loads(json.dumps(written))
    del no_reasons["comparison"]["reasons"]
    for changed in (renamed, dropped, no_reasons):
        assert structure(changed) != GOLDEN


def test_report_json_reads_back_into_the_typed_report_unchanged(eval_dir):
    """`Report.from_dict` then `to_dict` gives report.json back, value for value; the roles are the keys."""
    written = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    report = Report.from_dict(written)
    assert report.to_dict() == written
    assert json.dumps(report.to_dict()) == json.dumps(written)  # the same order too
    assert report.systems == [BASELINE, TUNED] == list(SYSTEMS)
    assert report.summary[TUNED].samples == len(report.samples[TUNED]) == 3
    assert report.titles == {BASELINE: "base model", TUNED: "fine-tuned"}


def test_a_report_written_before_a_field_was_recorded_still_renders():
    """An older report.json (no manifest, prompts, stop health, skipped list or similarity counts) reads
    into the typed report with those empty, and its summary shows the bare figure."""
    from higgs_tune.evaluation.report import summary_table
    from higgs_tune.evaluation.report_markdown import render_markdown

    summary = {
        "samples": 2,
        "wer": 0.5,
        "cer": 0.25,
        "similarity": 0.75,
        "stopped_by_eos": 1.0,
        "right_length": 1.0,
        "flags": {},
        "clean": 2,
    }
    row = {
        "id": "a",
        "wav": "0.wav",
        "text": "t",
        "wer": 0.5,
        "similarity": 0.75,
        "seconds": 1.0,
        "flags": [],
    }
    old = {
        "model": "m",
        "adapter": None,
        "asr_model": "asr",
        "speaker_model": "spk",
        "language": None,
        "summary": {BASELINE: summary},
        "samples": {BASELINE: [row, {**row, "id": "b"}]},
    }
    report = Report.from_dict(old)
    assert report.comparison is None and report.prompts == {} and report.skipped == []
    assert summary_table(report)[2] == ["speaker similarity (higher is better)", "0.750"]
    assert "| b | t | 50.0% | 0.750 | 1.00 | - |" in render_markdown(report)
