from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import write_jsonl

from higgs_tune.data.manifests import (
    read_manifest,
    scan_manifest,
    write_manifest_chatml,
    write_manifest_jsonl,
)
from higgs_tune.data.samples import Sample, SampleError

SYSTEM = (
    "You are a helpful assistant capable of generating speech in the voice of the provided reference audio."
)


def chatml(
    ref_text="ref words", ref="clips/ref_0001.wav", text="target words", target="clips/tgt_0001.wav", **top
):
    """An entry exactly as our first users' files have them."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ref_text},
                    {"type": "audio", "audio_url": ref},
                    {
                        "type": "text",
                        "text": f"Please generate speech for given text in reference audio's voice: {text}",
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "audio", "audio_url": target, "duration": 3.2},
                ],
            },
        ],
        **top,
    }


def flat(**fields):
    record = {"ref_audio": "r.wav", "ref_text": "ref words", "text": "target words", "audio": "t.wav"}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def codes(scan) -> list[tuple[str, str | None]]:
    return [(p.code, p.sample_id) for p in scan.problems]


def test_chatml_as_users_have_it(tmp_path):
    path = write_json(tmp_path / "train.json", [chatml(speaker="spk_0001", start_index=0)])
    [sample] = read_manifest(path)
    assert sample == Sample(
        id="train:0",
        ref_audio=tmp_path / "clips/ref_0001.wav",
        ref_text="ref words",
        text="target words",
        audio=tmp_path / "clips/tgt_0001.wav",
        speaker="spk_0001",
    )


def test_chatml_without_assistant_text_strips_the_instruction(tmp_path):
    entry = chatml(text="بدون نص المساعد")
    entry["messages"][2]["content"].pop(0)
    [sample] = read_manifest(write_json(tmp_path / "m.json", [entry]))
    assert sample.text == "بدون نص المساعد"


def test_chatml_inference_entry_without_assistant(tmp_path):
    entry = chatml()
    entry["messages"].pop()
    path = write_json(tmp_path / "m.json", [entry])
    [sample] = read_manifest(path, require_target=False)
    assert sample.audio is None and sample.text == "target words"
    with pytest.raises(SampleError, match=r"m.json entry 0 \(sample 'm:0'\): no target audio"):
        read_manifest(path)


def test_chatml_scene_from_scene_role_top_level_or_system_tags(tmp_path):
    a = chatml()
    a["messages"].insert(1, {"role": "scene", "content": "a busy cafe"})
    b = chatml(scene="a small studio", id="b")
    c = chatml(id="c")
    c["messages"][0]["content"] = "Generate audio.\n\n<|scene_desc_start|>\nquiet room\n<|scene_desc_end|>"
    samples = read_manifest(write_json(tmp_path / "m.json", [a, b, c]))
    assert [s.scene for s in samples] == ["a busy cafe", "a small studio", "quiet room"]
    assert [s.id for s in samples] == ["m:0", "b", "c"]


def test_chatml_higgs_multi_turn_layout(tmp_path):
    entry = {
        "messages": [
            {"role": "user", "content": "ref words"},
            {"role": "assistant", "content": [{"type": "audio", "audio_url": "r.wav"}]},
            {"role": "user", "content": "target words"},
            {"role": "assistant", "content": [{"type": "audio", "audio_url": "t.wav"}]},
        ]
    }
    [sample] = read_manifest(write_json(tmp_path / "m.json", [entry]))
    assert (sample.ref_text, sample.text, sample.ref_audio.name, sample.audio.name) == (
        "ref words",
        "target words",
        "r.wav",
        "t.wav",
    )


def test_jsonl_fields_paths_and_optional_target(tmp_path):
    absolute = tmp_path / "elsewhere" / "t.wav"
    records = [flat(id="x", speaker="s1", scene="studio", audio=str(absolute)), flat(speaker=7)]
    path = write_jsonl(tmp_path / "data" / "m.jsonl", records)
    path.write_text(path.read_text() + "\n   \n", encoding="utf-8")  # trailing blank lines are fine
    x, second = read_manifest(path)
    assert x == Sample("x", tmp_path / "data/r.wav", "ref words", "target words", absolute, "s1", "studio")
    assert second.id == "m:1" and second.speaker == "7"
    only_refs = write_jsonl(tmp_path / "infer.jsonl", [flat(audio=None)])
    assert read_manifest(only_refs, require_target=False)[0].audio is None


def test_format_is_detected_by_content_not_extension(tmp_path):
    as_json = write_jsonl(tmp_path / "lines.json", [flat(id="a"), flat(id="b")])
    as_jsonl = write_json(tmp_path / "list.jsonl", [chatml(id="c")])
    assert [s.id for s in read_manifest(as_json)] == ["a", "b"]
    assert scan_manifest(as_json).container == "jsonl"
    assert [s.id for s in read_manifest(as_jsonl)] == ["c"]
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [chatml(id="c"), flat(id="f")])
    assert [s.id for s in read_manifest(mixed)] == ["c", "f"]


def test_every_jsonl_problem_is_reported_with_its_line(tmp_path):
    path = tmp_path / "m.jsonl"
    lines = [
        json.dumps(flat(id="good")),
        "",
        '{"ref_audio": "r.wav", "ref_text": "x"',  # line 3: broken JSON
        json.dumps(flat(ref_text=None)),  # line 4: missing key
        json.dumps(flat(text=5)),  # line 5: wrong type
        json.dumps(flat(text="   ")),  # line 6: empty text
        json.dumps([1, 2]),  # line 7: not an object
        json.dumps(flat(id="good")),  # line 8: duplicate id
        json.dumps(flat(audio="")),  # line 9: empty path
        json.dumps(flat(ref_audio="https://x.org/a.wav")),  # line 10: URL
        json.dumps(flat(speaker=["a"], id="s")),  # line 11: wrong type of optional field
        json.dumps(flat(audio=None)),  # line 12: target required by default
        json.dumps(flat(typo_key=1)),  # line 13: unknown key (warning only)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scan = scan_manifest(path)
    found = {(p.code, p.sample_id, p.where.rsplit(" ", 1)[-1]) for p in scan.problems}
    assert found == {
        ("invalid_json", "m:1", "3"),
        ("missing_field", "m:2", "4"),
        ("wrong_type", "m:3", "5"),
        ("empty_text", "m:4", "6"),
        ("wrong_type", "m:5", "7"),
        ("duplicate_id", "good", "8"),
        ("bad_path", "m:7", "9"),
        ("bad_path", "m:8", "10"),
        ("wrong_type", "s", "11"),
        ("missing_field", "m:10", "12"),
        ("unknown_field", None, "13"),
    }
    assert [s.id for s in scan.samples] == ["good", "m:11"]
    assert scan.entries == 12
    assert scan.locations["good"] == f"{path} line 1"
    with pytest.raises(
        SampleError, match=r"m.jsonl line 3 \(sample 'm:1'\): is not valid JSON.*and 9 more errors"
    ):
        read_manifest(path)


def test_chatml_problems(tmp_path):
    no_ref_text = chatml()
    no_ref_text["messages"][1]["content"].pop(0)
    three_audios = chatml()
    three_audios["messages"][2]["content"].append({"type": "audio", "audio_url": "x.wav"})
    user_target = chatml()
    user_target["messages"][1]["content"].append({"type": "audio", "audio_url": "x.wav"})
    user_target["messages"].pop()
    bad_role = chatml()
    bad_role["messages"][0]["role"] = "narrator"
    no_url = chatml()
    del no_url["messages"][2]["content"][1]["audio_url"]
    entries = [
        chatml(),
        no_ref_text,
        three_audios,
        user_target,
        bad_role,
        no_url,
        {"messages": "hello"},
        chatml(text=""),
        {"messages": [{"role": "user", "content": "only text"}]},
    ]
    scan = scan_manifest(write_json(tmp_path / "c.json", entries))
    assert codes(scan) == [
        ("missing_field", "c:1"),
        ("bad_chatml", "c:2"),
        ("bad_chatml", "c:3"),
        ("bad_chatml", "c:4"),
        ("missing_field", "c:5"),
        ("wrong_type", "c:6"),
        ("empty_text", "c:7"),
        ("bad_chatml", "c:8"),
        ("system_not_used", None),  # the fixture's system text is not the base model's: reported once
    ]
    assert scan.problems[0].where == f"{tmp_path / 'c.json'} entry 1"
    assert [s.id for s in scan.samples] == ["c:0"]


@pytest.mark.parametrize(
    ("content", "code", "match"),
    [
        (None, "manifest_unreadable", "cannot be read"),
        ("", "manifest_empty", "empty"),
        ("[]", "manifest_empty", "empty list"),
        ('[{"messages": [}', "manifest_unreadable", "not valid JSON: .* at line 1 column 16"),
        ("ref_audio,ref_text\n", "manifest_unreadable", "does not look like JSON"),
        (
            '{\n  "ref_audio": "a.wav"\n}\n',
            "manifest_unreadable",
            "JSON Lines needs one object per line.*1 JSON object spread",
        ),
    ],
)
def test_unreadable_manifests(tmp_path, content, code, match):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    scan = scan_manifest(path)
    assert [p.code for p in scan.problems] == [code]
    assert scan.samples == []
    with pytest.raises(SampleError, match=match):
        read_manifest(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(json.dumps(flat()).encode() + b"\n" + b'{"text": "\xff"}\n')
    assert codes(scan_manifest(path)) == [("invalid_json", "m:1")]


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(flat(id="a")).encode() + b"\n")
    assert [s.id for s in read_manifest(path)] == ["a"]


def test_write_jsonl_relative_inside_absolute_outside_and_round_trip(tmp_path):
    inside = tmp_path / "out" / "clips" / "a.wav"
    outside = tmp_path / "elsewhere" / "b.wav"
    samples = [
        Sample("1", inside, "مرحبا", "target", outside, "spk", "scene"),
        Sample("2", outside, "ref", "target", None),
    ]
    path = write_manifest_jsonl(samples, tmp_path / "out" / "m.jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0]["ref_audio"] == "clips/a.wav" and records[0]["audio"] == str(outside)
    assert "مرحبا" in path.read_text(encoding="utf-8")  # Arabic stays readable
    assert "audio" not in records[1] and "speaker" not in records[1]
    assert read_manifest(path, require_target=False) == samples


def test_chatml_writer_round_trips(tmp_path):
    samples = [
        Sample("a", tmp_path / "r.wav", "ref", "مرحبا بكم", tmp_path / "t.wav", "spk", "quiet"),
        Sample("b", tmp_path / "r.wav", "ref", "plain", tmp_path / "u.wav"),
    ]
    path = write_manifest_chatml(samples, tmp_path / "m.json")
    assert read_manifest(path) == samples
    assert not list(tmp_path.glob(".*.tmp"))


def test_unknown_keys_are_one_warning_per_key_and_do_not_stop_reading(tmp_path, caplog):
    path = write_jsonl(tmp_path / "m.jsonl", [flat(duration=1.0), flat(duration=2.0, speaker_id="s")])
    scan = scan_manifest(path)
    assert [(p.code, p.where.rsplit(" ", 1)[-1]) for p in scan.problems] == [
        ("unknown_field", "1"),
        ("unknown_field", "2"),
    ]
    assert "key 'duration' is not used in flat entries (2 entries have it)" in scan.problems[0].message
    assert len(read_manifest(path)) == 2
    assert "speaker_id" in caplog.text


def test_a_chatml_system_message_is_reported_not_dropped_silently(tmp_path, caplog):
    """The run's prompt.system_prompt prompts every example; a manifest's own system text is not used, and
    the scan says so once per distinct text, with the count and the way to keep it."""
    base = chatml(id="base")
    base["messages"][0]["content"] = [{"type": "text", "text": "Generate audio following instruction."}]
    entries = [chatml(id="a"), chatml(id="b"), base]
    scan = scan_manifest(write_json(tmp_path / "m.json", entries))
    [problem] = [p for p in scan.problems if p.code == "system_not_used"]
    assert not problem.is_error and len(scan.samples) == 3
    assert "(2 entries)" in problem.message and "prompt.system_prompt=" in problem.message
    assert repr(SYSTEM.split("<|scene_desc_start|>")[0].strip()) in problem.message
    with caplog.at_level("WARNING"):
        read_manifest(tmp_path / "m.json")
    assert "system_not_used" in caplog.text or "is not used" in caplog.text


@pytest.mark.parametrize(
    ("encode", "named"),
    [
        (lambda text: text.encode("utf-16"), "UTF-16LE (byte order mark FF FE)"),  # Notepad's "Unicode"
        (lambda text: b"\xfe\xff" + text.encode("utf-16-be"), "UTF-16BE (byte order mark FE FF)"),
        (lambda text: text.encode("utf-32"), "UTF-32LE (byte order mark FF FE 00 00)"),
        (lambda text: text.encode("utf-16-le"), "UTF-16LE (no byte order mark)"),
    ],
)
def test_a_utf16_or_utf32_manifest_names_its_encoding_and_the_fix(tmp_path, encode, named):
    path = tmp_path / "m.jsonl"
    path.write_bytes(encode(json.dumps(flat(id="a")) + "\n"))
    scan = scan_manifest(path)
    assert [p.code for p in scan.problems] == ["manifest_unreadable"]
    with pytest.raises(SampleError, match=re.escape(f"is {named} text, not UTF-8; save it as UTF-8")):
        read_manifest(path)


def test_pretty_printed_json_lines_is_one_error_saying_one_object_per_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        "".join(json.dumps(flat(id=f"s{i}"), indent=2) + "\n" for i in range(3)), encoding="utf-8"
    )
    scan = scan_manifest(path)
    assert len(scan.problems) == 1
    assert "JSON Lines needs one object per line" in scan.problems[0].message
    assert "3 JSON objects spread over several lines" in scan.problems[0].message
    # A genuinely broken line among good ones is still reported on its own line.
    path.write_text(json.dumps(flat(id="a")) + "\n{broken\n", encoding="utf-8")
    assert codes(scan_manifest(path)) == [("invalid_json", "m:1")]


def test_a_latin1_line_is_named_with_its_byte_and_the_fix(tmp_path):
    path = tmp_path / "m.jsonl"
    latin1 = json.dumps(flat(id="b", text="caf\xe9"), ensure_ascii=False).encode("latin-1")
    path.write_bytes(json.dumps(flat(id="a")).encode() + b"\n" + latin1 + b"\n")
    [problem] = [p for p in scan_manifest(path).problems if p.is_error]
    assert problem.code == "invalid_json" and problem.where == f"{path} line 2"
    assert "is not UTF-8 text (byte 0xE9 at column" in problem.message and "as UTF-8" in problem.message
    path.write_bytes(b"[" + latin1 + b"]")
    [problem] = scan_manifest(path).problems
    assert problem.code == "manifest_unreadable" and problem.where == f"{path} line 1"
    assert "save the file as UTF-8" in problem.message
