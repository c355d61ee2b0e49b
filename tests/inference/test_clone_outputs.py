"""clone's outputs and texts: nothing the user has is overwritten (the reference clip and the manifest never,
even with --overwrite), an output that cannot be written is refused before the model loads, a text with
nothing to speak or too long for the model's positions is refused (skipped and listed with --manifest), and
the single clip's speech checks are said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LONG_TEXT = "hello world " * 1700  # about 20,000 characters: past the tiny model's 4,096 positions
SHORT = ("--max-seconds", "0.2")  # a few frames: each clone takes a fraction of a second


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: equal before and after means nothing was touched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _clone(run_cli, model, ref: Path, out: Path, *extra, text: str = "a short text", ref_text: str = "ref"):
    args = ["clone", "--model", model, "--ref-audio", ref, "--ref-text", ref_text, "--text", text]
    return run_cli(*args, "--out", out, *SHORT, *extra)


def _one_line_refusal(code: int, err: str, words: str) -> str:
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if words in x]
    return line


def test_an_existing_out_is_refused_byte_identical_unless_overwrite(
    tiny_model_dir, make_wav, tmp_path, run_cli
):
    ref = make_wav("ref.wav")
    out = tmp_path / "mine.wav"
    out.write_bytes(b"my recording")
    code, _, err = _clone(run_cli, tiny_model_dir, ref, out)
    _one_line_refusal(code, err, f"--out {out} exists: give another file name, or add --overwrite")
    assert out.read_bytes() == b"my recording"
    code, _, err = _clone(run_cli, tiny_model_dir, ref, out, "--overwrite")
    assert code == 0, err[-3000:]
    assert out.read_bytes()[:4] == b"RIFF"


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_reference_clip_is_never_the_output(tiny_model_dir, make_wav, run_cli, overwrite):
    """Overwritten, later runs would clone from the clone."""
    ref = make_wav("ref.wav")
    before = ref.read_bytes()
    code, _, err = _clone(run_cli, tiny_model_dir, ref, ref, *(["--overwrite"] if overwrite else []))
    _one_line_refusal(code, err, "is one of this command's inputs")
    assert ref.read_bytes() == before


@pytest.mark.parametrize("option", ["--out", "--codes-out"])
def test_a_folder_as_output_file_is_refused_before_the_model_loads(make_wav, tmp_path, run_cli, option):
    """The model named does not exist: any other error would mean it was loaded first."""
    ref, folder = make_wav("ref.wav"), tmp_path / "folder"
    folder.mkdir()
    out = folder if option == "--out" else tmp_path / "o.wav"
    extra = ["--codes-out", folder] if option == "--codes-out" else []
    code, _, err = _clone(run_cli, tmp_path / "no-such-model", ref, out, *extra)
    _one_line_refusal(code, err, f"{option} {folder} is a folder; give a file name")


def _manifest(path: Path, ref: Path, texts: dict[str, str]) -> Path:
    rows = [
        {"id": i, "ref_audio": str(ref), "ref_text": "reference words", "text": t} for i, t in texts.items()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_manifest_out_folder_that_holds_anything_is_refused_byte_identical(
    tiny_model_dir, make_wav, tmp_path, run_cli
):
    manifest = _manifest(tmp_path / "m.jsonl", make_wav("ref.wav"), {"a": "first text"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text('{"mine": 1}\n')
    (out / "skipped.jsonl").write_text('{"mine": 2}\n')
    before = _files(out)
    code, _, err = run_cli("clone", "--model", tiny_model_dir, "--manifest", manifest, "--out", out, *SHORT)
    _one_line_refusal(code, err, f"--out {out} is not empty")
    assert _files(out) == before


def test_overwrite_replaces_only_the_manifest_clones_own_files(tiny_model_dir, make_wav, tmp_path, run_cli):
    manifest = _manifest(tmp_path / "m.jsonl", make_wav("ref.wav"), {"a": "first text"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text('{"old": 1}\n')
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(
        "clone", "--model", tiny_model_dir, "--manifest", manifest, "--out", out, *SHORT, "--overwrite"
    )
    assert code == 0, err[-3000:]
    assert [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()] == ["a"]
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("which", ["manifest", "reference"])
def test_overwrite_never_replaces_the_manifest_or_a_reference(
    tiny_model_dir, make_wav, tmp_path, run_cli, which
):
    """The manifest saved as out/results.jsonl, or a reference clip under the name a clone gets (its id)."""
    out = tmp_path / "out"
    ref = make_wav("out/voice.wav" if which == "reference" else "ref.wav")
    out.mkdir(exist_ok=True)
    name = "results.jsonl" if which == "manifest" else "m.jsonl"
    manifest = _manifest(out / name, ref, {"voice": "first text"})
    before = _files(out)
    code, _, err = run_cli(
        "clone", "--model", tiny_model_dir, "--manifest", manifest, "--out", out, *SHORT, "--overwrite"
    )
    _one_line_refusal(code, err, "is one of this command's inputs")
    assert _files(out) == before


@pytest.mark.parametrize(
    ("option", "value"), [("--text", ""), ("--text", "   "), ("--ref-text", ""), ("--ref-text", " \t")]
)
def test_a_text_with_nothing_to_speak_is_refused_before_the_model_loads(
    make_wav, tmp_path, run_cli, option, value
):
    texts = {"text": "some words", "ref_text": "reference words"}
    texts[option.removeprefix("--").replace("-", "_")] = value
    out = tmp_path / "o.wav"
    code, _, err = _clone(run_cli, tmp_path / "no-such-model", make_wav("ref.wav"), out, **texts)
    _one_line_refusal(code, err, f"{option} is empty")
    assert not out.exists()


def test_a_prompt_past_the_models_positions_is_refused_naming_the_limit(
    tiny_model_dir, make_wav, tmp_path, run_cli
):
    out = tmp_path / "o.wav"
    unsplit = ("--max-chars-per-chunk", "0")  # a long text is otherwise spoken in chunks
    code, _, err = _clone(run_cli, tiny_model_dir, make_wav("ref.wav"), out, *unsplit, text=LONG_TEXT)
    line = _one_line_refusal(code, err, "max_position_embeddings")
    assert "past the model's 4096" in line and "--max-seconds" in line
    assert not out.exists()


def test_a_manifest_sample_past_the_models_positions_is_skipped_counted_and_listed(
    tiny_model_dir, make_wav, tmp_path, run_cli
):
    manifest = _manifest(tmp_path / "m.jsonl", make_wav("ref.wav"), {"ok": "first text", "long": LONG_TEXT})
    out = tmp_path / "out"
    code, _, err = run_cli("clone", "--model", tiny_model_dir, "--manifest", manifest, "--out", out, *SHORT)
    assert code == 0, err[-3000:]
    assert [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()] == ["ok"]
    (skipped,) = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert skipped["id"] == "long" and skipped["code"] == "prompt_too_long"
    assert "max_position_embeddings" in skipped["problem"]
    assert "sample 'long' skipped" in err and "skipped 1 of 2 samples" in err


def test_the_single_clip_says_its_speech_checks(tiny_model_dir, make_wav, tmp_path, run_cli):
    out = tmp_path / "o.wav"
    code, _, err = _clone(run_cli, tiny_model_dir, make_wav("ref.wav"), out)
    assert code == 0, err[-3000:]
    (line,) = [x for x in err.splitlines() if f"speech checks of {out}:" in x]
    assert "cut" in line  # 0.2 s is far too short for the tiny model to stop on its own


def test_a_long_text_is_spoken_in_chunks_and_says_which_chunks_are_flagged(
    tiny_model_dir, make_wav, tmp_path, run_cli
):
    out, codes = tmp_path / "o.wav", tmp_path / "o.npy"
    text = "Hello there. How are you? I am fine!"
    chunked = ("--max-chars-per-chunk", "20", "--context-chunks", "1", "--codes-out", codes)
    code, _, err = _clone(run_cli, tiny_model_dir, make_wav("ref.wav"), out, *chunked, text=text)
    assert code == 0, err[-3000:]
    assert "chunk 3 of 3" in err
    (line,) = [x for x in err.splitlines() if f"speech checks of {out}:" in x]
    # 0.2 s is far too short for the tiny model to stop: every chunk is flagged cut, by number
    assert "chunk 1: cut" in line and "chunk 3: cut" in line
    import numpy as np
    import soundfile as sf

    frames = np.load(codes).shape[1]
    assert frames == 3 * 5  # three chunks of 0.2 s at the tiny codec's 25 frames a second
    assert 0 < sf.info(str(out)).frames < frames * 960
