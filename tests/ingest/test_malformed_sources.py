"""Malformed sources as users have them: text in another encoding, broken table rows, audio bytes whose
header lies. Each is one line and exit 2 (a table unusable as a whole, before any work) or a rejected,
counted recording; never a traceback, never memory out of proportion to the audio really there."""

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from speech import SR, TEXTS, clip, write_common_voice, write_ljspeech

from higgs_tune.data.samples import SampleError
from higgs_tune.ingest.run import ingest
from higgs_tune.ingest.settings import FilterSettings, IngestSettings, SliceSettings, SourceSettings
from higgs_tune.ingest.sources import read_source


def settings() -> IngestSettings:
    return IngestSettings(slicing=SliceSettings(max_seconds=8.0), filters=FilterSettings(max_seconds=8.0))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def latin1_metadata(root: Path) -> tuple[Path, str]:
    source = write_ljspeech(root)
    table = source / "metadata.csv"
    table.write_bytes(table.read_bytes() + "LJ001-0003|caf\xe9|caf\xe9\n".encode("latin-1"))
    return source, "metadata.csv line 4"


def latin1_validated(root: Path) -> tuple[Path, str]:
    source = write_common_voice(root)
    table = source / "validated.tsv"
    table.write_bytes(table.read_text(encoding="utf-8").replace("lazy", "l\xe4zy").encode("latin-1"))
    return source, "validated.tsv line 3"


def latin1_speakers(root: Path) -> tuple[Path, str]:
    (root / "spk").mkdir(parents=True)
    for i in range(2):
        sf.write(root / "spk" / f"r{i}.wav", clip(2.0, i), SR)
    (root / "speakers.csv").write_bytes("file,speaker\nspk/r0.wav,J\xfcrgen\n".encode("latin-1"))
    return root, "speakers.csv line 2"


def utf16_speakers(root: Path) -> tuple[Path, str]:
    source, _ = latin1_speakers(root)
    (source / "speakers.csv").write_text("file,speaker\nspk/r0.wav,hala\n", encoding="utf-16")
    return source, "speakers.csv: is UTF-16LE (byte order mark FF FE) text, not UTF-8"


@pytest.mark.parametrize("write", [latin1_metadata, latin1_validated, latin1_speakers, utf16_speakers])
def test_a_table_that_is_not_utf8_is_one_line_naming_its_line_before_any_work(tmp_path, run_cli, write):
    source, where = write(tmp_path / "source")
    code, out, err = run_cli("ingest", source, "--out", tmp_path / "corpus")
    assert code == 2 and "Traceback" not in err
    [line] = [line for line in err.splitlines() if "UTF-8" in line]
    assert where in line and "save" in line and "as UTF-8" in line
    assert not (tmp_path / "corpus").exists()  # refused before OUT is made


def test_a_transcript_that_is_not_utf8_rejects_its_recording_and_is_counted(tmp_path):
    (tmp_path / "rec" / "spk").mkdir(parents=True)
    for i, encoding in enumerate(("latin-1", "utf-16", "utf-8")):
        sf.write(tmp_path / "rec" / "spk" / f"c{i}.wav", clip(2.5, i), SR)
        (tmp_path / "rec" / "spk" / f"c{i}.txt").write_bytes(f"caf\xe9 {TEXTS[i]}".encode(encoding))
    summary = ingest(str(tmp_path / "rec"), tmp_path / "corpus", settings())
    assert summary.kept == 1 and dict(summary.reasons) == {"transcript_not_utf8": 2}
    assert "transcript_not_utf8" in summary.table()
    latin1, utf16 = rows(tmp_path / "corpus" / "rejected.jsonl")
    assert (
        latin1["source"] == "spk/c0.wav" and "c0.txt line 1 is not UTF-8 text (byte 0xE9" in latin1["message"]
    )
    assert "c1.txt is UTF-16LE" in utf16["message"] and "save it as UTF-8" in utf16["message"]


def test_broken_table_rows_are_named_rejected_and_counted(tmp_path):
    lj = write_ljspeech(tmp_path / "lj")
    table = lj / "metadata.csv"
    huge = "a" * 200_000  # over the csv module's field size limit (128 KiB)
    table.write_text(table.read_text() + f"LJ001-0003|{huge}\nLJ001-0004\n", encoding="utf-8")
    summary = ingest(str(lj), tmp_path / "lj-corpus", settings())
    assert summary.kept == 3 and dict(summary.reasons) == {"bad_row": 2}
    over, short = rows(tmp_path / "lj-corpus" / "rejected.jsonl")
    assert over["source"] == "metadata.csv line 4" and "field larger than field limit" in over["message"]
    assert short["source"] == "metadata.csv line 5" and "expected `id|text`" in short["message"]

    cv = write_common_voice(tmp_path / "cv")
    table = cv / "validated.tsv"
    lines = table.read_text(encoding="utf-8").splitlines()
    lines[2] = "client0"  # fewer columns than the header: once a TypeError
    lines[3] = lines[3].split("\t", 2)[0] + "\t" + lines[3].split("\t")[1]  # no sentence
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = ingest(str(cv), tmp_path / "cv-corpus", settings())
    assert summary.kept == 2 and dict(summary.reasons) == {"bad_row": 2}
    short, no_text = rows(tmp_path / "cv-corpus" / "rejected.jsonl")
    assert short["source"] == "validated.tsv line 3" and short["speaker"] == "client0"
    assert re.search(
        r"validated.tsv line 3 has 1 of the header's 5 columns \(no path, sentence\)", short["message"]
    )
    assert no_text["source"] == "validated.tsv line 4" and "(no sentence)" in no_text["message"]


def lying_dataset(root: Path) -> Path:
    """A saved `datasets` dataset: two good rows, one WAV whose header claims 1 Hz (decoded to 24 kHz it
    would be 7 GB), one FLAC whose header claims 2^36 frames (256 GiB as float32)."""
    from datasets import Audio, Dataset

    def encoded(seed: int, format: str) -> bytearray:
        buffer = io.BytesIO()
        sf.write(buffer, clip(2.5, seed), SR, format=format, subtype="PCM_16")
        return bytearray(buffer.getvalue())

    one_hz = encoded(2, "WAV")
    one_hz[24:28] = (1).to_bytes(4, "little")  # sample rate
    one_hz[28:32] = (2).to_bytes(4, "little")  # byte rate
    endless = encoded(3, "FLAC")
    streaminfo = int.from_bytes(endless[18:26], "big") | ((1 << 36) - 1)  # the 36-bit frame count
    endless[18:26] = streaminfo.to_bytes(8, "big")
    cells = [encoded(0, "WAV"), one_hz, encoded(1, "WAV"), endless]
    data = {
        "audio": [{"bytes": bytes(cell), "path": None} for cell in cells],
        "sentence": [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[0]],
        "client_id": ["a", "a", "b", "b"],
    }
    Dataset.from_dict(data).cast_column("audio", Audio(sampling_rate=None)).save_to_disk(str(root))
    return root


# Runs ingest with its address space capped a few GB above what the process holds once torch and the
# CUDA libraries are mapped (that part differs between machines; the limit is on what ingest then asks).
_CAPPED = """
import re, resource, sys
import higgs_tune.cli, higgs_tune.ingest.run
status = open("/proc/self/status").read()
held = int(re.search(r"VmSize:\\s+(\\d+) kB", status).group(1)) * 1024
limit = held + (3 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["higgs-tune", "ingest", *sys.argv[1:]]
higgs_tune.cli.main()
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmSize from /proc")
def test_a_lying_header_in_a_dataset_row_is_rejected_within_a_memory_limit(tmp_path):
    source = lying_dataset(tmp_path / "ds")
    corpus = tmp_path / "corpus"
    proc = subprocess.run(
        [sys.executable, "-c", _CAPPED, source, "--out", corpus, "--max-seconds", "8"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "kept 2 clips" in proc.stdout
    one_hz, endless = rows(corpus / "rejected.jsonl")
    assert one_hz["source"] == "row 1" and one_hz["code"] == "audio_unreadable"
    assert "header claims a sample rate of 1 Hz" in one_hz["message"]
    assert endless["source"] == "row 3" and endless["code"] == "audio_unreadable"


def _three_column_ljspeech(root: Path) -> Path:
    """An LJSpeech folder whose third column is a transliteration, not a normalized text."""
    source = write_ljspeech(root)
    table = source / "metadata.csv"
    rows = [line.split("|") for line in table.read_text(encoding="utf-8").splitlines()]
    table.write_text("".join(f"{i}|{text}|translit {n}\n" for n, (i, text, _) in enumerate(rows)), "utf-8")
    return source


@pytest.mark.parametrize(("column", "expected"), [("1", "text"), ("text", "text"), ("2", "translit")])
def test_ljspeech_text_column_is_honoured_and_said(tmp_path, caplog, column, expected):
    source = _three_column_ljspeech(tmp_path / "lj")
    caplog.set_level(logging.INFO, logger="higgs_tune.ingest.sources")
    recordings = list(read_source(str(source), SourceSettings(text_column=column)))
    texts = [r.text for r in recordings]
    if expected == "text":
        assert texts == [t.upper() for t in TEXTS[: len(texts)]]
    else:
        assert texts == [f"translit {n}" for n in range(len(texts))]
    assert f"text from column {1 if expected == 'text' else 2}" in caplog.text


def test_ljspeech_default_text_column_is_said(tmp_path, caplog):
    source = _three_column_ljspeech(tmp_path / "lj")
    caplog.set_level(logging.INFO, logger="higgs_tune.ingest.sources")
    assert next(iter(read_source(str(source), SourceSettings()))).text == "translit 0"
    assert "column 2 (normalized text) where a row has it" in caplog.text


def test_column_options_a_source_would_ignore_are_refused(tmp_path):
    lj = _three_column_ljspeech(tmp_path / "lj")
    with pytest.raises(SampleError, match="not a text column"):
        read_source(str(lj), SourceSettings(text_column="3"))
    with pytest.raises(SampleError, match="--speaker-column"):
        read_source(str(lj), SourceSettings(speaker_column="who"))
    cv = write_common_voice(tmp_path / "cv")
    with pytest.raises(SampleError, match="--text-column: .* common voice folder"):
        read_source(str(cv), SourceSettings(text_column="sentence"))
