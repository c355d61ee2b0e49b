from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_jsonl

from higgs_tune.data.manifests import read_manifest
from higgs_tune.data.pairs import (
    Utterance,
    build_pairs,
    check_heldout_speakers,
    heldout_amount,
    read_utterances,
    split_speakers,
)
from higgs_tune.data.samples import SampleError
from higgs_tune.errors import UserError


def utterances(speakers: dict[str, int], root: Path = Path("/data")) -> list[Utterance]:
    return [
        Utterance(f"{spk}_{i}", root / f"{spk}_{i}.wav", f"text {spk} {i}", spk)
        for spk, n in speakers.items()
        for i in range(n)
    ]


def signature(result) -> list[tuple[str, str, str]]:
    return [(s.id, s.ref_audio.name, s.audio.name) for s in result.pairs]


def test_every_target_gets_another_clip_of_its_speaker():
    utts = utterances({"a": 5, "b": 3})
    result = build_pairs(utts)
    assert len(result.pairs) == 8
    by_audio = {u.audio: u for u in utts}
    for pair in result.pairs:
        ref, target = by_audio[pair.ref_audio], by_audio[pair.audio]
        assert ref.audio != target.audio and ref.speaker == target.speaker == pair.speaker
        assert (pair.ref_text, pair.text) == (ref.text, target.text)
        assert pair.id == f"{target.id}@{ref.id}"


def test_never_pairs_a_file_with_itself_even_under_two_ids(tmp_path):
    clip = tmp_path / "a.wav"
    utts = [
        Utterance("x1", clip, "one", "s"),
        Utterance("x2", tmp_path / "sub" / ".." / "a.wav", "one again", "s"),  # same file, other spelling
        Utterance("y", tmp_path / "b.wav", "two", "s"),
    ]
    for seed in range(20):
        result = build_pairs(utts, refs_per_target=2, seed=seed)
        for pair in result.pairs:
            assert os.path.realpath(pair.ref_audio) != os.path.realpath(pair.audio)
        # x1 and x2 can only use y; y can use either
        assert result.short_targets == 2


def test_deterministic_for_a_seed_and_different_for_another():
    utts = utterances({"a": 12, "b": 9})
    assert signature(build_pairs(utts, seed=3)) == signature(build_pairs(utts, seed=3))
    assert signature(build_pairs(utts, seed=3)) != signature(build_pairs(utts, seed=4))


def test_adding_a_speaker_does_not_reshuffle_the_others():
    base = signature(build_pairs(utterances({"a": 6, "b": 6}), seed=1))
    more = signature(build_pairs(utterances({"a": 6, "new": 4, "b": 6}), seed=1))
    assert [p for p in more if not p[0].startswith("new")] == base


def test_refs_per_target():
    result = build_pairs(utterances({"a": 6}), refs_per_target=3)
    assert len(result.pairs) == 18 and result.short_targets == 0
    for target in {p.audio for p in result.pairs}:
        refs = [p.ref_audio for p in result.pairs if p.audio == target]
        assert len(set(refs)) == 3 and target not in refs
    few = build_pairs(utterances({"a": 3}), refs_per_target=5)
    assert len(few.pairs) == 6 and few.short_targets == 3 and "3 targets got fewer" in few.summary()
    with pytest.raises(ValueError):
        build_pairs(utterances({"a": 3}), refs_per_target=0)


def test_single_utterance_speakers_are_reported_not_dropped_silently(caplog):
    result = build_pairs(utterances({"a": 4, "solo1": 1, "b": 2, "solo2": 1}))
    assert result.skipped_speakers == ["solo1", "solo2"]
    assert result.skipped_utterances == 2
    assert {p.speaker for p in result.pairs} == {"a", "b"}
    assert (result.utterances, result.speakers) == (8, 4)
    assert "skipped 2 speakers with a single clip (2 utterances): solo1, solo2" in result.summary()
    assert "solo1, solo2" in caplog.text


def test_from_jsonl(tmp_path):
    path = write_jsonl(
        tmp_path / "utts.jsonl",
        [
            {"audio": "c/a0.wav", "text": "one", "speaker": "a"},
            {"id": "named", "audio": "c/a1.wav", "text": "two", "speaker": "a", "scene": "cafe"},
            {"audio": "c/b0.wav", "text": "three", "speaker": 7},
        ],
    )
    utts = read_utterances(path)
    assert [u.id for u in utts] == ["utts:0", "named", "utts:2"]
    assert utts[1] == Utterance("named", tmp_path / "c/a1.wav", "two", "a", "cafe")
    assert utts[2].speaker == "7"
    result = build_pairs(path)
    assert {p.id for p in result.pairs} == {"utts:0@named", "named@utts:0"}
    assert result.skipped_speakers == ["7"]


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text(
        json.dumps({"audio": "a.wav", "text": "t", "speaker": "s"})
        + "\n{oops\n"
        + json.dumps({"audio": "b.wav", "text": " ", "speaker": "s"})
        + "\n"
        + json.dumps({"audio": "c.wav", "text": "t"})
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(SampleError, match=r"u.jsonl line 2: is not valid JSON.*and 2 more errors"):
        read_utterances(path)


def _folder(tmp_path: Path, metadata) -> Path:
    folder = tmp_path / "ds"
    folder.mkdir()
    for name, text in [("s1_000", "first"), ("s1_001", "second"), ("s2_000", "third"), ("s2_001", "fourth")]:
        (folder / f"{name}.wav").write_bytes(b"")  # not opened by pairing
        (folder / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return folder


def test_from_trainer_folder_layout(tmp_path):
    metadata = {
        "dataset_info": {"total_samples": 4},
        "samples": [
            {
                "id": "s1_000",
                "audio_file": "s1_000.wav",
                "transcript_file": "s1_000.txt",
                "duration": 3.8,
                "speaker_id": "s1",
                "scene": "quiet_room",
                "emotion": "neutral",
            },
            {"audio_file": "s1_001.wav", "speaker_id": "s1"},  # id from the file name, NAME.txt beside it
            {"id": "s2_000", "speaker_id": "s2"},  # audio from the id
            {"audio": "s2_001.wav", "text": "inline words", "speaker": "s2"},
        ],
    }
    folder = _folder(tmp_path, metadata)
    utts = read_utterances(folder)
    assert [(u.id, u.audio.name, u.text, u.speaker, u.scene) for u in utts] == [
        ("s1_000", "s1_000.wav", "first", "s1", "quiet_room"),
        ("s1_001", "s1_001.wav", "second", "s1", None),
        ("s2_000", "s2_000.wav", "third", "s2", None),
        ("s2_001", "s2_001.wav", "inline words", "s2", None),
    ]
    assert read_utterances(folder / "metadata.json") == utts
    assert len(build_pairs(folder).pairs) == 4


def test_plain_list_metadata(tmp_path):
    folder = _folder(tmp_path, [{"audio_file": "s1_000.wav", "speaker_id": "s1"}])
    assert [u.id for u in read_utterances(folder)] == ["s1_000"]


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"items": []}, r'expected \{"samples": \[...\]\} or a list'),
        ([{"audio_file": "s1_000.wav"}], r"samples\[0\] \(sample 's1_000'\): no speaker"),
        ([{"speaker_id": "s1"}], r"samples\[0\]: no audio path \(keys tried: audio_file, audio\)"),
        ([{"audio_file": "zz.wav", "speaker_id": "s1"}], r"transcript file .*zz.txt not found"),
        (
            [{"audio_file": "s1_000.wav", "speaker_id": "s1"}] * 2,
            r"samples\[1\] \(sample 's1_000'\): utterance id 's1_000' is already used at .*samples\[0\]",
        ),
        ([], "has no utterances"),
        (["s1_000.wav"], "entry must be a JSON object"),
    ],
)
def test_folder_errors_are_explicit(tmp_path, metadata, match):
    with pytest.raises(SampleError, match=match):
        read_utterances(_folder(tmp_path, metadata))


def test_folder_without_metadata(tmp_path):
    with pytest.raises(SampleError, match="no metadata.json"):
        read_utterances(tmp_path)
    with pytest.raises(SampleError, match="not found"):
        read_utterances(tmp_path / "nothing.jsonl")
    (tmp_path / "metadata.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(SampleError, match="cannot be read as JSON"):
        read_utterances(tmp_path)


def test_summary_counts_read_naturally():
    result = build_pairs(utterances({"a": 2, "solo": 1}))
    assert result.summary() == (
        "2 pairs from 3 utterances of 2 speakers (1 paired); skipped 1 speaker with a single clip "
        "(1 utterance): solo"
    )


def test_text_that_is_not_utf8_names_its_line_and_the_fix(tmp_path):
    """Latin-1 (or Windows-1252) text is the usual case: one line naming file, line and byte, and how to
    convert it; a UTF-16 file names its encoding."""
    path = tmp_path / "u.jsonl"
    good = json.dumps({"audio": "a.wav", "text": "t", "speaker": "s"})
    path.write_bytes(f'{good}\n{{"audio": "b.wav", "text": "caf\xe9", "speaker": "s"}}\n'.encode("latin-1"))
    with pytest.raises(
        SampleError, match=r"u.jsonl line 2: is not UTF-8 text \(byte 0xE9 at column 32\); save"
    ):
        read_utterances(path)
    path.write_text(good + "\n", encoding="utf-16")
    with pytest.raises(SampleError, match=r"u.jsonl: is UTF-16LE \(byte order mark FF FE\) text, not UTF-8"):
        read_utterances(path)
    folder = _folder(tmp_path, [{"audio_file": "s1_000.wav", "speaker_id": "s1"}])
    (folder / "s1_000.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(SampleError, match=r"transcript file .*s1_000.txt line 1 is not UTF-8 text.*as UTF-8"):
        read_utterances(folder)


def speakers_of(path: Path) -> set[str]:
    return {json.loads(line)["speaker"] for line in path.read_text(encoding="utf-8").splitlines()}


def test_split_holds_out_whole_speakers_reproducibly():
    utts = utterances({f"s{i}": 3 for i in range(10)} | {"lonely": 1})
    split = split_speakers(utts, 3, seed=7)
    assert len(split.heldout) == 3 and len(split.training) == 7 and split.unpaired == ["lonely"]
    assert not set(split.heldout) & {u.speaker for u in split.training_utterances}
    assert {u.speaker for u in split.heldout_utterances} == set(split.heldout)
    assert len(split.training_utterances) + len(split.heldout_utterances) == len(utts)  # nothing dropped
    assert split_speakers(utts, 3, seed=7).heldout == split.heldout
    assert any(split_speakers(utts, 3, seed=s).heldout != split.heldout for s in range(8, 12))
    assert len(split_speakers(utts, 0.2, seed=7).heldout) == 2  # a fraction of the 10 pairable speakers
    assert len(split_speakers(utts, 0.01, seed=7).heldout) == 1  # at least one
    # Adding a speaker moves at most the one it displaces.
    grown = split_speakers(utterances({f"s{i}": 3 for i in range(11)}), 3, seed=7)
    assert len(set(grown.heldout) - set(split.heldout)) <= 1


def test_split_leaves_someone_to_train_on():
    with pytest.raises(UserError, match="would hold out 2 of the 2 speakers"):
        split_speakers(utterances({"a": 2, "b": 2, "c": 1}), 2)


@pytest.mark.parametrize(("value", "amount"), [("3", 3), ("0.1", 0.1), ("0.5", 0.5)])
def test_heldout_amount_is_a_count_or_a_fraction(value, amount):
    assert heldout_amount(value) == amount


@pytest.mark.parametrize("value", ["0", "-2", "1.0", "1.5", "0.0", "ten", ""])
def test_heldout_amount_refuses_anything_else(value):
    with pytest.raises(UserError, match=f"--heldout-speakers {value!r} is neither a count"):
        heldout_amount(value)


def test_pairs_cli_writes_disjoint_training_and_heldout_manifests(tmp_path, run_cli):
    rows = [
        {"audio": f"clips/{s}_{i}.wav", "text": f"نص {i}", "speaker": s}
        for s in ("ali", "badr", "dana", "eman", "fadi")
        for i in range(3)
    ]
    source = write_jsonl(tmp_path / "utterances.jsonl", rows)
    out = tmp_path / "pairs.jsonl"
    code, stdout, err = run_cli("pairs", source, "--out", out, "--heldout-speakers", "2", "--seed", "3")
    assert code == 0, err
    heldout = tmp_path / "pairs.heldout.jsonl"
    summary = json.loads((tmp_path / "pairs.split.json").read_text(encoding="utf-8"))
    assert speakers_of(heldout) == set(summary["heldout_speakers"]) and len(summary["heldout_speakers"]) == 2
    assert speakers_of(out) == set(summary["training_speakers"])
    assert not speakers_of(out) & speakers_of(heldout)
    assert summary["training_pairs"] == 9 and summary["heldout_pairs"] == 6 and summary["seed"] == 3
    assert "held out 2 speakers" in stdout and all(s in stdout for s in summary["heldout_speakers"])

    # The same seed gives the same split; an existing output is never replaced without --overwrite.
    before = {p: p.read_bytes() for p in (out, heldout, tmp_path / "pairs.split.json")}
    code, _, err = run_cli("pairs", source, "--out", out, "--heldout-speakers", "2", "--seed", "3")
    assert code == 2 and "exists" in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in before} == before
    code, _, err = run_cli(
        "pairs", source, "--out", out, "--heldout-speakers", "2", "--seed", "3", "--overwrite"
    )
    assert code == 0, err
    assert {p: p.read_bytes() for p in before} == before

    code, _, err = run_cli("pairs", source, "--out", tmp_path / "p2.jsonl", "--heldout-speakers", "5")
    assert code == 2 and "would hold out 5 of the 5 speakers" in err and "Traceback" not in err
    assert not (tmp_path / "p2.jsonl").exists()


def test_prepare_refuses_a_training_manifest_sharing_a_heldout_speaker(tmp_path, make_wav, run_cli):
    for name in ("a", "b", "c"):
        make_wav(f"clips/{name}.wav", seed=len(name))

    def manifest(path, speakers):
        rows = [
            {
                "id": f"{s}{i}",
                "ref_audio": "clips/a.wav",
                "ref_text": "نص",
                "text": "نص",
                "audio": "clips/b.wav",
            }
            | ({} if s is None else {"speaker": s})
            for i, s in enumerate(speakers)
        ]
        return write_jsonl(tmp_path / path, rows)

    heldout = manifest("heldout.jsonl", ["dana", "eman"])
    train = manifest("train.jsonl", ["ali", "dana", "eman", "fadi"])
    args = ("--model", tmp_path / "no-model", "--out", tmp_path / "data", "--heldout-manifest", heldout)
    code, _, err = run_cli("prepare", train, *args)
    assert code == 2 and "shares 2 speakers with the held-out" in err and "(dana, eman)" in err
    assert "Traceback" not in err and not (tmp_path / "data").exists()

    unnamed = manifest("unnamed.jsonl", ["ali", None, None])
    code, _, err = run_cli("prepare", unnamed, *args)
    assert code == 2 and "2 samples without a speaker" in err and not (tmp_path / "data").exists()

    check_heldout_speakers(
        read_manifest(manifest("ok.jsonl", ["ali", "fadi"])), read_manifest(heldout), "t", "h"
    )
