"""prepare: each clip encoded once, resumable after a kill, split across processes, bad samples named."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import tone, write_jsonl

import higgs_tune.prepared.encode as encode_module
from higgs_tune.data.samples import SampleError
from higgs_tune.model.codes import encode_file
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.prepared.prepare import prepare_dataset, read_samples
from higgs_tune.prepared.settings import PrepareSettings

SRC = Path(__file__).resolve().parents[2] / "src"
SHARD_SIZE = 3  # 12 distinct clips: 4 shards
SHARD_FILES = sorted(f"shard-{i:05d}.{ext}" for i in range(4) for ext in ("npy", "jsonl"))

# Runs the CLI with the codec call patched to SIGKILL the process at the KILL_AT-th clip. Given with
# `python -c` so that the spawned decoding workers do not re-run it as their main module.
KILL_AT_CLIP = """
import os, signal, sys
import higgs_tune.prepared.encode as encoder
from higgs_tune.cli import main

encode, calls = encoder.encode_waveform, []

def encode_or_die(processor, audio):
    calls.append(1)
    if len(calls) == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return encode(processor, audio)

encoder.encode_waveform = encode_or_die
sys.argv = ["higgs-tune", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module", autouse=True)
def one_codec_thread():
    """The subprocesses run the codec on one thread (`_env`); so does this process while these tests run.
    One thread is also much faster than two on a shared two-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env(**extra: str) -> dict[str, str]:
    """One codec thread, as in the tests' own process, so codes compare bit for bit."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", **extra)
    return env


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "higgs_tune.cli", *map(str, args)]


def _clip(path: Path, seconds: float, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, seed=seed), 24_000, subtype="PCM_16")
    return path


def _sample(id: str, ref: str, audio: str) -> dict:
    return {
        "id": id,
        "ref_audio": ref,
        "ref_text": f"reference of {id}",
        "text": f"target {id}",
        "audio": audio,
    }


@pytest.fixture(scope="module")
def zero_shot(tmp_path_factory) -> Path:
    """3 speakers whose one reference each serves 3 targets, plus the same bytes under a second name and a
    reference reused as a target: 11 samples, 22 clip uses, 12 distinct clips."""
    root = tmp_path_factory.mktemp("zero-shot")
    records = []
    for s, speaker in enumerate("abc"):
        _clip(root / f"clips/{speaker}_ref.wav", 1.0, seed=10 * s)
        for t in range(3):
            _clip(root / f"clips/{speaker}_{t}.wav", 0.5 + 0.2 * t, seed=10 * s + t + 1)
            records.append(_sample(f"{speaker}{t}", f"clips/{speaker}_ref.wav", f"clips/{speaker}_{t}.wav"))
    shutil.copy(root / "clips/a_0.wav", root / "clips/a_0_copy.wav")
    records.append(_sample("a_copy", "clips/a_ref.wav", "clips/a_0_copy.wav"))
    records.append(_sample("a_ref_as_target", "clips/a_1.wav", "clips/a_ref.wav"))
    return write_jsonl(root / "manifest.jsonl", records)


@pytest.fixture(scope="module")
def model_id(tiny_model_dir) -> str:
    return str(tiny_model_dir)


@pytest.fixture(scope="module")
def reference(zero_shot, processor, model_id, tmp_path_factory) -> Path:
    """The zero-shot manifest prepared in one uninterrupted in-process run (4 shards of 3 clips)."""
    out = tmp_path_factory.mktemp("reference") / "data"
    samples, _ = read_samples(zero_shot)
    prepare_dataset(
        samples, processor, out, model_id, settings=PrepareSettings(workers=0, shard_size=SHARD_SIZE)
    )
    return out


def contents(root: Path) -> tuple[str, str, dict[str, np.ndarray]]:
    """What must not depend on processes or interruptions: samples, skipped samples, codes per clip."""
    data = PreparedData(root)
    codes = {r[k]: data.codes(r[k]) for r in data.records for k in ("ref_clip", "target_clip")}
    return (root / "samples.jsonl").read_text(), (root / "skipped.jsonl").read_text(), codes


def assert_same_dataset(a: Path, b: Path) -> None:
    samples_a, skipped_a, codes_a = contents(a)
    samples_b, skipped_b, codes_b = contents(b)
    assert samples_a == samples_b and skipped_a == skipped_b
    assert codes_a.keys() == codes_b.keys()
    for clip, codes in codes_a.items():
        np.testing.assert_array_equal(codes, codes_b[clip], err_msg=clip)


@pytest.fixture
def count_encodes(monkeypatch) -> list[int]:
    """Counts codec calls (one entry per encoded clip)."""
    calls: list[int] = []
    encode = encode_module.encode_waveform

    def counting(processor, audio):
        calls.append(audio.size)
        return encode(processor, audio)

    monkeypatch.setattr(encode_module, "encode_waveform", counting)
    return calls


def test_each_distinct_clip_is_encoded_once(
    zero_shot, processor, model_id, reference, count_encodes, tmp_path
):
    samples, _ = read_samples(zero_shot)
    index = prepare_dataset(
        samples,
        processor,
        tmp_path / "data",
        model_id,
        settings=PrepareSettings(workers=1, shard_size=SHARD_SIZE),
    )
    assert len(count_encodes) == 12
    assert index["num_samples"] == 11 and index["num_clips"] == 12 and index["num_clip_uses"] == 22
    assert index["dedupe_ratio"] == pytest.approx(22 / 12, abs=1e-3) and index["num_skipped"] == 0
    assert index["num_codebooks"] == 8 and index["frame_rate"] == 25 and index["model"] == model_id
    copy = {r["id"]: r for r in PreparedData(tmp_path / "data").records}
    assert copy["a_copy"]["target_clip"] == copy["a0"]["target_clip"]  # same bytes, another name
    assert_same_dataset(tmp_path / "data", reference)  # a decoding worker gives what in-process decoding does


def test_prepared_data_reads_every_shard(zero_shot, processor, reference):
    data = PreparedData(reference)
    assert data.index["shards"] == [f"clips/shard-{i:05d}" for i in range(4)]
    samples, _ = read_samples(zero_shot)
    assert [r["id"] for r in data.records] == [s.id for s in samples]
    for s, item in zip(samples, (data[i] for i in range(len(data))), strict=True):
        assert (item.id, item.ref_text, item.text) == (s.id, s.ref_text, s.text)
        np.testing.assert_array_equal(item.ref_codes, encode_file(processor, s.ref_audio))
        np.testing.assert_array_equal(item.target_codes, encode_file(processor, s.audio))
    record = data.records[0]
    assert data.clip_frames(record["target_clip"]) == data[0].target_codes.shape[1]


def test_finished_dataset_is_a_no_op(zero_shot, processor, model_id, reference, count_encodes, caplog):
    before = {p: p.stat().st_mtime_ns for p in reference.rglob("*")}
    samples, _ = read_samples(zero_shot)
    with caplog.at_level("INFO", logger="higgs_tune.prepared.prepare"):
        index = prepare_dataset(
            samples, processor, reference, model_id, settings=PrepareSettings(shard_size=SHARD_SIZE)
        )
    assert "already prepared" in caplog.text and not count_encodes
    assert index == json.loads((reference / "index.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in reference.rglob("*")} == before


def test_a_finished_folder_of_other_samples_is_refused(zero_shot, processor, model_id, reference):
    samples, _ = read_samples(zero_shot)
    with pytest.raises(SampleError, match="already holds a prepared dataset"):
        prepare_dataset(samples[:3], processor, reference, model_id)


@pytest.mark.cli
def test_killed_run_resumes_into_the_same_dataset(
    zero_shot, processor, model_id, reference, tmp_path, monkeypatch
):
    out = tmp_path / "data"
    args = [
        "prepare",
        zero_shot,
        "--model",
        model_id,
        "--out",
        out,
        "--shard-size",
        SHARD_SIZE,
        "--workers",
        1,
    ]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_CLIP, *map(str, args)],
        env=_env(KILL_AT="5"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (out / "clips/shard-00000.jsonl").exists() and not (out / "clips/shard-00001.jsonl").exists()
    assert not (out / "index.json").exists()

    calls: list[int] = []
    encode = encode_module.encode_waveform
    monkeypatch.setattr(encode_module, "encode_waveform", lambda p, a: calls.append(1) or encode(p, a))
    samples, _ = read_samples(zero_shot)
    index = prepare_dataset(
        samples, processor, out, model_id, settings=PrepareSettings(workers=0, shard_size=SHARD_SIZE)
    )
    assert len(calls) == 12 - SHARD_SIZE  # the completed shard is kept, the partial one redone
    assert_same_dataset(out, reference)
    assert index == json.loads((reference / "index.json").read_text())
    assert sorted(p.name for p in (out / "clips").iterdir()) == SHARD_FILES

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already prepared" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_resume_with_another_model_or_shard_size_keeps_nothing_stale(
    zero_shot, processor, model_id, reference, count_encodes, tmp_path, monkeypatch
):
    out = tmp_path / "data"
    samples, _ = read_samples(zero_shot)
    encode, limit = encode_module.encode_waveform, [11]

    def interrupt_at_limit(processor, audio):
        if limit and len(count_encodes) + 1 == limit[0]:
            raise KeyboardInterrupt
        return encode(processor, audio)

    monkeypatch.setattr(encode_module, "encode_waveform", interrupt_at_limit)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(
            samples, processor, out, "another-model", settings=PrepareSettings(workers=0, shard_size=2)
        )
    assert (out / "clips/shard-00004.jsonl").exists()
    count_encodes.clear()
    with pytest.raises(KeyboardInterrupt):  # the five finished shards are another model's codes: redone
        prepare_dataset(samples, processor, out, model_id, settings=PrepareSettings(workers=0, shard_size=2))
    count_encodes.clear()
    limit.clear()
    prepare_dataset(
        samples, processor, out, model_id, settings=PrepareSettings(workers=0, shard_size=SHARD_SIZE)
    )
    assert len(count_encodes) == 12  # other shard boundaries: nothing to keep
    assert_same_dataset(out, reference)
    assert sorted(p.name for p in (out / "clips").iterdir()) == SHARD_FILES


def _shard_clips(out: Path, shard: str) -> set[str]:
    return {json.loads(line)["clip"] for line in (out / f"{shard}.jsonl").read_text().splitlines()}


@pytest.mark.cli
def test_two_processes_split_the_work(zero_shot, model_id, reference, tmp_path):
    out = tmp_path / "data"
    args = ["prepare", zero_shot, "--model", model_id, "--out", out, "--shard-size", 2, "--workers", 0]
    procs = [
        subprocess.Popen(
            _cli(*args),
            env=_env(RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    assert_same_dataset(out, reference)
    index = json.loads((out / "index.json").read_text())
    assert index["num_processes"] == 2 and index["num_clips"] == 12
    by_rank = [
        set().union(
            *(_shard_clips(out, s) for s in index["shards"] if s.startswith(f"clips/shard-r{r:02d}-"))
        )
        for r in range(2)
    ]
    assert len(by_rank[0]) == len(by_rank[1]) == 6 and not by_rank[0] & by_rank[1]


BAD = {  # sample id -> (target file, what the error must say)
    "missing": ("clips/absent.wav", "file not found"),
    "truncated": ("clips/cut.wav", "truncated"),
    "zero_len": ("clips/empty.wav", "contains no audio samples"),
    "nan": ("clips/nan.wav", "NaN"),
    "garbage": ("clips/garbage.wav", "cannot be decoded"),
    "blip": ("clips/blip.wav", "shorter than --min-seconds"),  # known from the header, before decoding
}


@pytest.fixture
def bad_corpus(tmp_path, make_wav) -> Path:
    """Good samples around one sample per kind of broken clip, a sample whose *reference* is broken (the
    NaN clip again) and a malformed entry."""
    make_wav("clips/ref.wav", seed=1)
    for i in range(3):
        make_wav(f"clips/t{i}.wav", seconds=0.5, seed=2 + i)
    full = make_wav("clips/full.wav", seed=6).read_bytes()
    (tmp_path / "clips/cut.wav").write_bytes(full[: len(full) // 2])
    make_wav("clips/empty.wav", data=np.zeros(0, dtype=np.float32))
    nan = np.zeros(24_000, dtype=np.float32)
    nan[100] = np.nan
    make_wav("clips/nan.wav", data=nan, subtype="FLOAT")
    (tmp_path / "clips/garbage.wav").write_text("RIFF? no.\n")
    make_wav("clips/blip.wav", seconds=0.01)
    records = [_sample("ok0", "clips/ref.wav", "clips/t0.wav")]
    records += [_sample(id, "clips/ref.wav", audio) for id, (audio, _) in BAD.items()]
    records += [
        _sample("nan_ref", "clips/nan.wav", "clips/t1.wav"),
        {"id": "no_text", "ref_audio": "clips/ref.wav"},
    ]
    records += [_sample("ok1", "clips/ref.wav", "clips/t2.wav")]
    return write_jsonl(tmp_path / "m.jsonl", records)


@pytest.mark.parametrize("bad", sorted(BAD))
def test_a_bad_clip_stops_prepare_naming_the_sample(bad, bad_corpus, processor, tmp_path):
    samples = [s for s in read_samples(bad_corpus, skip_bad=True)[0] if s.id in ("ok0", bad)]
    with pytest.raises(SampleError, match=f"sample '{bad}': target audio .*{BAD[bad][1]}"):
        prepare_dataset(samples, processor, tmp_path / "data", "tiny", settings=PrepareSettings(workers=0))
    assert not (tmp_path / "data/index.json").exists()


def test_a_malformed_entry_stops_prepare_naming_it(bad_corpus):
    with pytest.raises(SampleError, match="no_text"):
        read_samples(bad_corpus)


@pytest.mark.cli
def test_skip_bad_skips_and_lists_every_bad_sample(bad_corpus, tiny_model_dir, tmp_path):
    out = tmp_path / "data"
    args = ["prepare", bad_corpus, "--model", tiny_model_dir, "--out", out, "--skip-bad", "--workers", 1]
    proc = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped 8 bad samples" in proc.stderr
    skipped = {k["id"]: k for k in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert skipped.keys() == set(BAD) | {"nan_ref", "no_text"}
    for id, (_, message) in BAD.items():
        assert message in skipped[id]["problem"]
    assert (
        skipped["nan_ref"]["code"] == "audio_nonfinite" and "reference audio" in skipped["nan_ref"]["problem"]
    )
    assert skipped["no_text"]["code"] == "missing_field"
    data = PreparedData(out)
    assert [r["id"] for r in data.records] == ["ok0", "ok1"] and data.index["num_skipped"] == 8
    assert data[1].target_codes.shape[0] == 8


@pytest.mark.cli
def test_prepare_refuses_every_sample_validate_calls_an_error(malformed_corpus, tiny_model_dir, tmp_path):
    """Each malformed input of validate's corpus: without --skip-bad prepare stops naming a bad sample;
    with it, prepare skips exactly the samples validate finds an error in, each with one of its codes."""
    from higgs_tune.data.problems import CODES, ERROR

    path, expected = malformed_corpus
    errors = {i: {c for c in codes if CODES[c][0] == ERROR} for i, codes in expected.items()}
    errors = {i: codes for i, codes in errors.items() if codes}
    out = tmp_path / "data"
    args = ["prepare", path, "--model", tiny_model_dir, "--out", out, "--workers", 0]
    stopped = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True)
    assert stopped.returncode == 2 and "m.jsonl line 2 (sample 'm:1')" in stopped.stderr
    assert not (out / "index.json").exists()

    proc = subprocess.run(_cli(*args, "--skip-bad"), env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = {k["id"]: k for k in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())}
    assert skipped.keys() == errors.keys()
    for i, k in skipped.items():
        assert k["code"] in errors[i], (i, k)
    kept = [r["id"] for r in PreparedData(out).records]
    assert sorted(kept) == sorted([*(i for i in expected if i not in errors), "ok"])  # the first "ok"


def test_duration_bounds_and_a_copy_of_the_target_as_reference(make_wav, processor, tmp_path):
    make_wav("clips/ref.wav", seconds=1.0, seed=1)
    make_wav("clips/t.wav", seconds=1.0, seed=2)
    make_wav("clips/long.wav", seconds=3.0, seed=3)
    make_wav("clips/short.wav", seconds=0.3, seed=4)
    shutil.copy(tmp_path / "clips/t.wav", tmp_path / "clips/t_copy.wav")
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"id": i, "ref_audio": r, "ref_text": "a", "text": "b", "audio": a}
            for i, r, a in [
                ("ok", "clips/ref.wav", "clips/t.wav"),
                ("long", "clips/ref.wav", "clips/long.wav"),
                ("short_ref", "clips/short.wav", "clips/t.wav"),
                ("copy", "clips/t_copy.wav", "clips/t.wav"),
            ]
        ],
    )
    samples = read_samples(manifest)[0]
    with pytest.raises(SampleError, match="sample 'copy': reference and target are the same clip"):
        prepare_dataset(
            samples, processor, tmp_path / "a", "tiny", settings=PrepareSettings(workers=0)
        )  # known before encoding
    with pytest.raises(SampleError, match="sample 'long': target audio .* longer than --max-seconds 2"):
        prepare_dataset(
            samples[:2],
            processor,
            tmp_path / "a",
            "tiny",
            settings=PrepareSettings(workers=0, max_seconds=2.0),
        )
    index = prepare_dataset(
        samples,
        processor,
        tmp_path / "b",
        "tiny",
        settings=PrepareSettings(workers=0, skip_bad=True, max_seconds=2),
    )
    skipped = {
        k["id"]: k["code"] for k in map(json.loads, (tmp_path / "b/skipped.jsonl").read_text().splitlines())
    }
    assert skipped == {"long": "too_long", "short_ref": "too_short", "copy": "same_ref_and_target"}
    assert index["num_samples"] == 1
    # Other bounds are another dataset: the finished folder is not taken for it.
    with pytest.raises(SampleError, match="other duration bounds"):
        prepare_dataset(
            samples,
            processor,
            tmp_path / "b",
            "tiny",
            settings=PrepareSettings(workers=0, skip_bad=True, max_seconds=4),
        )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--language", "Arabic"], "arabic_spoken"),  # the language's recommended normalisation
        (["--language", "ar-SA", "--text-normalisation", "arabic"], "arabic"),  # overridable
        (["--language", "en"], "none"),
        ([], "none"),
    ],
)
def test_prepare_language_picks_its_recommended_normalisation(tmp_path, run_cli, model_id, options, expected):
    root = tmp_path / "corpus"
    _clip(root / "clips/ref.wav", 1.0, seed=1)
    _clip(root / "clips/t.wav", 0.7, seed=2)
    sample = {**_sample("s", "clips/ref.wav", "clips/t.wav"), "text": "عام ١٩٤٥", "ref_text": "مرحبا"}
    manifest = write_jsonl(root / "manifest.jsonl", [sample])
    out = tmp_path / "data"
    code, _, err = run_cli("prepare", manifest, "--model", model_id, "--out", out, "--workers", 0, *options)
    assert code == 0, err[-2000:]
    assert json.loads((out / "index.json").read_text())["text_normalisation"] == expected
    stored = json.loads((out / "samples.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
    assert ("١٩٤٥" in stored) is (expected != "arabic_spoken")
