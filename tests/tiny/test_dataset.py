from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from higgs_tune.data.audio import audio_info, load_audio
from higgs_tune.data.manifests import read_manifest
from higgs_tune.data.pairs import build_pairs, read_utterances
from higgs_tune.data.validate import validate_manifest
from higgs_tune.tiny.dataset import write_synthetic_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("dataset"), seed=0)


def pitch_hz(audio: np.ndarray, sr: int = 24_000) -> float:
    """Median autocorrelation pitch over the louder 40 ms frames."""
    size, lags = int(0.04 * sr), np.arange(sr // 400, sr // 70)
    frames = [audio[i : i + size] for i in range(0, audio.size - size, size // 2)]
    loud = [f for f in frames if np.sqrt(np.mean(f**2)) > 0.05]
    estimates = []
    for frame in loud:
        ac = np.correlate(frame, frame, "full")[size - 1 :]
        estimates.append(sr / lags[np.argmax(ac[lags])])
    return float(np.median(estimates))


def test_paths_and_formats(data):
    assert set(data) == {"clips", "metadata", "utterances", "manifest_jsonl", "manifest_json"}
    assert all(p.exists() for p in data.values())
    wavs = sorted(data["clips"].glob("*.wav"))
    assert len(wavs) == 24
    for wav in wavs:
        info = audio_info(wav)
        assert (info.sample_rate, info.channels) == (24_000, 1)
        assert 1.0 <= info.duration <= 2.5
        assert wav.with_suffix(".txt").read_text(encoding="utf-8").strip()


def test_both_manifests_read_back_to_the_same_pairs(data):
    chatml = read_manifest(data["manifest_json"])
    flat = read_manifest(data["manifest_jsonl"])
    assert chatml == flat and len(flat) == 24
    assert json.loads(data["manifest_json"].read_text(encoding="utf-8"))[0]["messages"][0]["role"] == "system"
    for sample in flat:
        assert sample.ref_audio != sample.audio
        assert sample.ref_audio.name.split("_")[0] == sample.audio.name.split("_")[0] == sample.speaker
    assert any(s.scene for s in flat) and any(s.scene is None for s in flat)
    assert any("\u0600" <= ch <= "\u06ff" for s in flat for ch in s.text)  # some Arabic
    assert any(s.text.isascii() for s in flat)  # and some English


def test_utterance_inputs_agree_and_give_the_manifest_pairs(data):
    from_jsonl = read_utterances(data["utterances"])
    assert read_utterances(data["clips"]) == from_jsonl
    assert len({u.speaker for u in from_jsonl}) == 4
    assert build_pairs(from_jsonl, seed=0).pairs == read_manifest(data["manifest_jsonl"])


def test_validates_without_any_problem(data):
    report = validate_manifest(data["manifest_json"])
    assert report.ok and report.counts == {}, report.table()


def test_speakers_differ_clearly(data):
    pitches = {}
    for speaker in range(4):
        clips = sorted(data["clips"].glob(f"spk{speaker:02d}_*.wav"))
        pitches[speaker] = np.median([pitch_hz(load_audio(c)) for c in clips])
    for a, b in itertools.combinations(pitches.values(), 2):
        assert max(a, b) / min(a, b) > 1.15, pitches
    assert min(pitches.values()) > 80 and max(pitches.values()) < 280


def test_deterministic_for_a_seed(tmp_path, data):
    again = write_synthetic_dataset(tmp_path / "again", seed=0)
    other = write_synthetic_dataset(tmp_path / "other", seed=1, n_speakers=2, utts_per_speaker=3)
    for name in ("spk00_00.wav", "spk01_02.wav"):
        assert (again["clips"] / name).read_bytes() == (data["clips"] / name).read_bytes()
        assert (other["clips"] / name).read_bytes() != (data["clips"] / name).read_bytes()
    assert again["manifest_jsonl"].read_text() == data["manifest_jsonl"].read_text()
    assert len(read_manifest(other["manifest_json"])) == 6


def test_needs_two_utterances_per_speaker(tmp_path):
    with pytest.raises(ValueError, match="at least 2 utterances"):
        write_synthetic_dataset(tmp_path, utts_per_speaker=1)
