from __future__ import annotations

import json
from collections import defaultdict

import pytest
from conftest import entry, write_jsonl

import higgs_tune.data.validate as validate_module
from higgs_tune.data.manifests import read_manifest
from higgs_tune.data.samples import SampleError
from higgs_tune.data.validate import validate_manifest, write_clean_manifest
from higgs_tune.errors import UserError


def found(report) -> dict[str | None, set[str]]:
    """sample id -> problem codes, from the report's examples (tests use a high max_examples)."""
    by_id: dict[str | None, set[str]] = defaultdict(set)
    for problems in report.examples.values():
        for p in problems:
            by_id[p.sample_id].add(p.code)
    return dict(by_id)


def test_each_malformed_input_gets_the_right_code_for_the_right_sample(malformed_corpus):
    path, expected = malformed_corpus
    report = validate_manifest(path, language="ar", max_examples=100)
    assert found(report) == expected
    assert len(expected) >= 15
    assert not report.ok


def test_duplicate_id_names_the_first_use(malformed_corpus):
    path, _ = malformed_corpus
    report = validate_manifest(path, max_examples=100)
    [dup] = report.examples["duplicate_id"]
    assert (
        dup.where == f"{path} line 16"
        and "already used at" in dup.message
        and dup.message.endswith("skipped")
    )


def test_errors_reject_samples_and_warnings_do_not(malformed_corpus):
    path, _ = malformed_corpus
    report = validate_manifest(path, language="ar")
    kept = [s.id for s in report.clean_samples()]
    assert kept == ["ok", "silent", "clipped", "stereo", "too_fast", "same_pair", "english"]
    assert report.rejected == {
        "missing_file",
        "truncated",
        "zero_len",
        "nan",
        "absurd",
        "tiny",
        "self",
        "via_link",
        "garbage",
        "folder",
        "copy",
    }
    assert report.entries == 26 and len(report.samples) == 18


def test_clean_manifest_leaves_input_untouched(malformed_corpus, tmp_path):
    path, _ = malformed_corpus
    before = path.read_bytes()
    report = validate_manifest(path)
    out = write_clean_manifest(report, tmp_path / "clean" / "m.clean.jsonl")
    assert path.read_bytes() == before
    clean = read_manifest(out)
    assert [s.id for s in clean] == [s.id for s in report.clean_samples()]
    assert clean[0].audio == tmp_path / "clips/tgt.wav"
    assert validate_manifest(out).ok
    with pytest.raises(ValueError, match="manifest being validated"):
        write_clean_manifest(report, path)


def test_messages_say_what_and_where(malformed_corpus):
    path, _ = malformed_corpus
    report = validate_manifest(path, max_examples=100)
    get = {(p.sample_id, p.code): p for problems in report.examples.values() for p in problems}
    truncated = get["truncated", "audio_truncated"]
    assert truncated.describe().startswith(
        f"[truncated] {path} line 6: {truncated.path}: target clip truncated"
    )
    assert "the WAV header promises 48000 bytes of audio but only" in truncated.message
    assert get["absurd", "too_long"].message == "target clip is 45.00 s, longer than --max-seconds 30.0"
    assert get["absurd", "sample_rate"].message == "target clip is 8000 Hz; it will be resampled to 24000 Hz"
    assert get["tiny", "too_short"].path.name == "short.wav"
    assert "digital silence" in get["silent", "near_silent"].message


def test_report_json_and_table(malformed_corpus):
    path, _ = malformed_corpus
    report = validate_manifest(path, max_examples=2)
    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert data["errors"] == report.n_errors and data["warnings"] == report.n_warnings
    assert data["problems"]["audio_missing"]["count"] == 2
    assert data["problems"]["audio_missing"]["files"] == 2
    assert len(data["problems"]["audio_missing"]["examples"]) == 2
    seconds = data["distributions"]["target_seconds"]  # over usable samples: the 45 s clip is rejected
    assert seconds == {"count": 7, "min": 1.0, "p50": 1.0, "p95": 1.0, "max": 1.0}
    assert data["samples_usable"] == 7 and data["usable_target_hours"] == round(7 / 3600, 4)
    table = report.table()
    for code in data["problems"]:
        assert code in table
    assert "target letters/second" in table and "First 2 examples per problem" in table
    assert "Usable target audio: 6.0 s distinct (7.0 s with repeats)" in table  # "ok" repeats a target
    assert report.examples["audio_missing"][0].describe() in table


def test_sample_rates_other_than_24k_are_warnings_not_errors(tmp_path, make_wav):
    records = []
    for i, sr in enumerate([22_050, 44_100, 48_000]):
        make_wav(f"c/ref{i}.wav", seconds=1.2, sr=sr, seed=i)
        make_wav(f"c/tgt{i}.wav", seconds=1.0, sr=sr, seed=10 + i)
        records.append(entry(f"s{i}", ref=f"c/ref{i}.wav", audio=f"c/tgt{i}.wav"))
    report = validate_manifest(write_jsonl(tmp_path / "m.jsonl", records), max_examples=100)
    assert report.ok and report.n_errors == 0
    assert report.counts == {"sample_rate": 6}
    assert {p.message for p in report.examples["sample_rate"]} >= {
        "target clip is 22050 Hz; it will be resampled to 24000 Hz",
        "reference clip is 48000 Hz; it will be resampled to 24000 Hz",
    }


def test_each_clip_is_decoded_once(tmp_path, make_wav, monkeypatch):
    make_wav("shared_ref.wav", seed=100)  # not the bytes of any target
    records = []
    for i in range(8):
        make_wav(f"t{i}.wav", seed=i)
        records.append(
            entry(f"s{i}", ref="shared_ref.wav" if i % 2 else "./shared_ref.wav", audio=f"t{i}.wav")
        )
    calls = []
    real = validate_module.scan_audio
    monkeypatch.setattr(validate_module, "scan_audio", lambda p: calls.append(p) or real(p))
    report = validate_manifest(write_jsonl(tmp_path / "m.jsonl", records))
    assert report.ok
    assert len(calls) == len(set(calls)) == 9
    assert report.clip_count == 9


def test_each_path_is_resolved_and_paired_once_and_distinct_audio_comes_first(
    tmp_path, make_wav, monkeypatch
):
    """A million pairs over a thousand clips: each distinct path is resolved once and the files are looked
    at as often for 40 samples as for 20 (per clip, not per sample); the usable audio is said first
    without repeats (each target used 5 times here)."""
    for i in range(4):
        make_wav(f"c{i}.wav", seconds=1.0 + i, seed=i)
    resolved, stats = [], []
    realpath, stat = validate_module.os.path.realpath, validate_module.os.stat
    monkeypatch.setattr(validate_module.os.path, "realpath", lambda p: resolved.append(p) or realpath(p))
    monkeypatch.setattr(validate_module.os, "stat", lambda p, **k: stats.append(p) or stat(p, **k))
    monkeypatch.setattr(validate_module.os.path, "samefile", lambda a, b: stats.extend([a, b]) or True)
    looked_at = []
    for n in (20, 40):
        records = [entry(f"s{k}", ref=f"c{k % 4}.wav", audio=f"c{(k + 1) % 4}.wav") for k in range(n)]
        resolved.clear(), stats.clear()
        report = validate_manifest(write_jsonl(tmp_path / f"m{n}.jsonl", records))
        assert len(resolved) == 4
        looked_at.append(len(stats))
    assert looked_at[0] == looked_at[1]
    assert report.usable_distinct_hours * 3600 == pytest.approx(10.0, abs=0.01)  # 1 + 2 + 3 + 4 s
    assert report.usable_hours * 3600 == pytest.approx(100.0, abs=0.01)
    assert "Usable target audio: 10.0 s distinct (100.0 s with repeats)" in report.table()
    assert json.loads(report.to_json())["usable_distinct_target_hours"] == round(10 / 3600, 4)


def test_speaking_rate_outlier_by_robust_z(tmp_path, make_wav):
    make_wav("clips/ref.wav")
    records = []
    for i in range(24):
        make_wav(f"t{i}.wav", seed=i)
        letters = 12 + i % 3 if i != 5 else 26  # 26 letters/s: inside the fixed bounds, odd for this corpus
        records.append(entry(f"s{i}", audio=f"t{i}.wav", text="ب" * letters))
    report = validate_manifest(write_jsonl(tmp_path / "m.jsonl", records), max_examples=100)
    [outlier] = report.examples["chars_per_second"]
    assert outlier.sample_id == "s5"
    assert "robust z" in outlier.message and "corpus median of 13.0" in outlier.message


def test_inference_manifest_without_targets(tmp_path, make_wav):
    make_wav("r.wav")
    path = write_jsonl(tmp_path / "m.jsonl", [entry("a", ref="r.wav", audio=None)])
    assert validate_manifest(path, require_target=False).ok
    assert found(validate_manifest(path)) == {"a": {"missing_field"}}


def test_unreadable_manifest_report(tmp_path):
    report = validate_manifest(tmp_path / "absent.jsonl")
    assert report.counts == {"manifest_unreadable": 1} and not report.ok
    assert "manifest_unreadable" in report.table()
    with pytest.raises(SampleError, match="no usable samples"):
        write_clean_manifest(report, tmp_path / "clean.jsonl")


def test_settings_are_checked(tmp_path):
    with pytest.raises(UserError, match="language 'xx' is not a language we know"):
        validate_manifest(tmp_path / "m.jsonl", language="xx")
    with pytest.raises(ValueError, match="min_seconds < max_seconds"):
        validate_manifest(tmp_path / "m.jsonl", min_seconds=5, max_seconds=1)


def test_only_arabic_letters_make_a_text_arabic(tmp_path, make_wav):
    # Transliterated targets with an Arabic comma, digits, diacritics or tatweel in them are not Arabic.
    make_wav("clips/ref.wav", seed=1)
    make_wav("clips/tgt.wav", seed=2)
    transliterated = ["marhaban، kayfa halak", "fi ٢٠٢٤ kana", "salam \u064e", "ya\u0640\u0640 habibi"]
    arabic = ["مرحبا، كيف حالك", "عام ١٥", "\ufefb بأس"]  # a presentation form is an Arabic letter too
    texts = transliterated + arabic
    records = [entry(f"s{i}", audio=f"clips/t{i}.wav", text=t) for i, t in enumerate(texts)]
    for i in range(len(texts)):
        make_wav(f"clips/t{i}.wav", seconds=2.0, seed=3 + i)
    report = validate_manifest(
        write_jsonl(tmp_path / "m.jsonl", records), language="Arabic", max_examples=100
    )
    flagged = {p.sample_id for p in report.examples.get("no_arabic_script", [])}
    assert flagged == {f"s{i}" for i in range(len(transliterated))}
    assert report.settings["language"] == "ar"
    # The speaking rate counts the number as spoken: "عام خمسة عشر" is 10 letters in the 2 s clip.
    assert report.chars_per_second["s5"] == pytest.approx(10 / 2.0)
