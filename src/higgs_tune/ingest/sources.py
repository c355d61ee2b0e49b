"""Where raw audio comes from: the layouts users arrive with, each read as a stream of recordings.

A `Recording` is one piece of audio with its speaker and, when the source has one, its transcript. Every
source yields its recordings in a fixed order (sorted paths, table order, dataset order), so that a re-run
numbers them the same way and can skip what an earlier run finished. Nothing is decoded here: a recording
carries a path or the encoded bytes, and the worker that slices it decodes it.

Understood layouts (`detect_source` picks one):

* a folder written by `datasets`' `save_to_disk` (a `Dataset` or a `DatasetDict`, with `--split`);
* a Common Voice release folder: `validated.tsv` (`client_id`, `path`, `sentence`) and `clips/`;
* an LJSpeech-style folder: `metadata.csv` (`id|text[|normalized text]`) and `wavs/ID.wav`;
* any other folder: recordings of any length in sub-folders named for their speaker (files at the top
  take the folder's own name; a `speakers.csv` with `file,speaker` rows overrides both), with a
  transcript in a same-named `.txt` when there is one;
* a Hugging Face Hub dataset name (`--config`, `--split`), streamed; this needs the network.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from higgs_tune.data.audio import load_audio
from higgs_tune.data.encoding import check_utf8, decode_utf8, utf8_lines
from higgs_tune.data.samples import SampleError
from higgs_tune.ingest.settings import SourceSettings

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
# Audio formats users have that libsndfile cannot decode: named in the error rather than skipped silently.
UNDECODABLE_EXTENSIONS = (".m4a", ".aac", ".wma", ".mp4", ".webm", ".amr", ".3gp", ".mka", ".ac3")
AUDIO_COLUMNS = ("audio",)
TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
SPEAKERS = "speakers.csv"
CV_COLUMNS = ("client_id", "path", "sentence")  # what ingest uses of validated.tsv
SOURCE_KINDS = ("dataset", "common_voice", "ljspeech", "folder", "hub")
# An LJSpeech `metadata.csv` row is `id|text|normalized text` (columns 0, 1, 2): `--text-column` picks the
# text's column by number or name.
LJSPEECH_TEXT_FIELDS = {"1": 1, "text": 1, "2": 2, "normalized_text": 2}


@dataclass(frozen=True)
class Recording:
    """One piece of raw audio: a file (`path`) or encoded bytes from a dataset row (`data`).

    `key` names it uniquely and stably within its source (a relative path, a table row, a dataset index):
    the name of its clips, its line in the summary, its place in the resume records.
    """

    key: str
    speaker: str
    text: str | None = None
    path: Path | None = None
    data: bytes | None = None
    problem: tuple[str, str] | None = None  # (code, message): rejected as it is, never decoded

    def decode(self, sr: int) -> np.ndarray:
        """Mono float32 at `sr`; an `AudioError` naming the recording when it cannot be decoded. Encoded
        bytes pass the same header check as files (`audio_info`) before a sample is decoded."""
        if self.path is not None:
            return load_audio(self.path, sr)
        return load_audio(self.data or b"", sr, name=self.key)


def detect_source(source: str) -> str:
    """The layout of `source` (one of `SOURCE_KINDS`), from the files it holds."""
    path = Path(source)
    if not path.exists():
        if path.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
            raise SampleError(source, "no such file or folder")
        return "hub"
    if not path.is_dir():
        raise SampleError(source, "is a file; give a folder of recordings or a dataset folder")
    if any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
        return "dataset"
    if (path / "validated.tsv").is_file():
        return "common_voice"
    if (path / "metadata.csv").is_file():
        return "ljspeech"
    return "folder"


def read_source(source: str, options: SourceSettings) -> Iterator[Recording]:
    """The recordings of `source` in their fixed order."""
    kind = detect_source(source)
    if kind == "dataset":
        from datasets import load_from_disk

        return dataset_recordings(_pick_split(load_from_disk(source), source, options.split), options)
    if kind == "hub":
        from datasets import load_dataset

        try:
            dataset = load_dataset(source, options.config, split=options.split or "train", streaming=True)
        except (OSError, ValueError) as e:  # no such folder nor hub dataset, offline, a wrong config/split
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SampleError(source, f"is not a folder here, and as a hub dataset it fails: {reason}") from e
        return dataset_recordings(dataset, options)
    if kind == "ljspeech":
        _refuse_columns(source, kind, options, allowed=("text_column",))
        return ljspeech(Path(source), options.text_column)
    _refuse_columns(source, kind, options, allowed=())
    return {"common_voice": common_voice, "folder": folder}[kind](Path(source))


def _refuse_columns(source: str, kind: str, options: SourceSettings, allowed: tuple[str, ...]) -> None:
    """Column options name columns of a dataset (or LJSpeech's text field); a source without such columns
    would ignore them while the run records them, so they are refused instead."""
    given = [
        "--" + name.replace("_", "-")
        for name in ("audio_column", "text_column", "speaker_column")
        if getattr(options, name) is not None and name not in allowed
    ]
    if given:
        raise SampleError(
            " ".join(given),
            f"{source} is a {kind.replace('_', ' ')} folder, whose columns are fixed: these options apply to "
            "dataset sources (and --text-column to an LJSpeech folder); leave them out",
        )


def folder(root: Path) -> Iterator[Recording]:
    """Recordings under `root`: speaker from the first sub-folder, text from a same-named `.txt`. The
    folder and its `speakers.csv` are checked here, before any work; a transcript that cannot be read
    rejects its recording only."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    bad = [p for p in files if p.suffix.lower() in UNDECODABLE_EXTENSIONS]
    if bad:
        raise SampleError(
            str(bad[0]),
            f"{bad[0].suffix} audio is not supported ({len(bad)} such files); supported: "
            f"{', '.join(AUDIO_EXTENSIONS)}. Convert them first, e.g. ffmpeg -i IN{bad[0].suffix} OUT.flac",
        )
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not audio:
        raise SampleError(str(root), f"has no audio files (supported: {', '.join(AUDIO_EXTENSIONS)})")
    return _folder_recordings(root, audio, _speaker_table(root / SPEAKERS))


def _folder_recordings(root: Path, audio: list[Path], speakers: dict[str, str]) -> Iterator[Recording]:
    for path in audio:
        relative = path.relative_to(root)
        speaker = relative.parts[0] if len(relative.parts) > 1 else root.resolve().name
        speaker = speakers.get(relative.as_posix(), speaker)
        text, problem = _transcript(path.with_suffix(".txt"))
        yield Recording(relative.as_posix(), speaker, text, path=path, problem=problem)


def _transcript(path: Path) -> tuple[str | None, tuple[str, str] | None]:
    """The text of a recording's own `.txt` (None without one), or the problem that rejects the
    recording: a transcript in another encoding is one bad clip, not the end of the run."""
    if not path.is_file():
        return None, None
    try:
        return decode_utf8(path.read_bytes(), path).strip() or None, None
    except SampleError as e:
        return None, ("transcript_not_utf8", f"its transcript {e.where} {e.problem}")


def _speaker_table(path: Path) -> dict[str, str]:
    """`speakers.csv` (`file,speaker`, file relative to the folder): speakers that the folder names do not
    tell, e.g. a flat folder of several voices. Empty when there is no such file."""
    if not path.is_file():
        return {}
    reader = csv.DictReader(utf8_lines(path))
    try:
        if not {"file", "speaker"} <= set(reader.fieldnames or ()):
            raise SampleError(str(path), "needs the columns file and speaker")
        speakers = {}
        for row in reader:
            if row["file"] is None or row["speaker"] is None:
                raise SampleError(f"{path} line {reader.line_num}", "expected `file,speaker`; fix the row")
            if row["speaker"].strip():
                speakers[row["file"].strip()] = row["speaker"].strip()
        return speakers
    except csv.Error as e:
        raise SampleError(
            f"{path} line {reader.line_num}", f"cannot be read as CSV ({e}); fix the row"
        ) from e


def ljspeech(root: Path, text_column: str | None = None) -> Iterator[Recording]:
    """LJSpeech layout: `metadata.csv` rows `id|text|normalized text`, audio in `wavs/`; one speaker, the
    folder's name. By default the normalized text (numbers spelled out) is used when a row has it, else
    the text; `text_column` (`1`/`text` or `2`/`normalized_text`) picks one column for every row, since a
    third column is not always a normalized text (some corpora keep a transliteration there). Which one
    is used is logged. A table that is not UTF-8 or an unknown `text_column` fails here, before any work;
    a row that cannot be used is rejected (`bad_row`) and counted."""
    table = root / "metadata.csv"
    check_utf8(table)
    if text_column is not None and text_column.strip().lower() not in LJSPEECH_TEXT_FIELDS:
        raise SampleError(
            "--text-column",
            f"{text_column!r} is not a text column of {table} (rows `id|text|normalized text`): give 1 "
            "(or text) or 2 (or normalized_text)",
        )
    field = None if text_column is None else LJSPEECH_TEXT_FIELDS[text_column.strip().lower()]
    if field is None:
        log.info("%s: text from column 2 (normalized text) where a row has it, else column 1 (text)", table)
    else:
        log.info("%s: text from column %d, as --text-column %s says", table, field, text_column)
    return _ljspeech_rows(table, root.resolve().name, field)


def _ljspeech_rows(table: Path, speaker: str, field: int | None) -> Iterator[Recording]:
    """The rows of `metadata.csv`; `field` is the text's column, None for the normalized text where a
    row has it."""
    reader = csv.reader(utf8_lines(table), delimiter="|", quoting=csv.QUOTE_NONE)
    for number, row in _rows(reader):
        if not row:
            continue
        if isinstance(row, str):
            yield _bad_row(table, number, speaker, row)
        elif len(row) < 2 or (field is not None and len(row) <= field):
            wanted = "`id|text`" if field in (None, 1) else "`id|text|normalized text`"
            yield _bad_row(table, number, speaker, f"has no text in the column asked for; expected {wanted}")
        else:
            if field is None:
                field_text = row[2] if len(row) > 2 and row[2].strip() else row[1]
            else:
                field_text = row[field]
            path = table.parent / "wavs" / f"{row[0]}.wav"
            yield Recording(f"wavs/{row[0]}", speaker, field_text.strip() or None, path=path)


def common_voice(root: Path) -> Iterator[Recording]:
    """Common Voice release layout: `validated.tsv` (`client_id`, `path`, `sentence`), audio in `clips/`.
    A table that is not UTF-8 or lacks a column fails here, before any work; a row that cannot be used
    (fewer columns than it needs, a field over the size limit) is rejected (`bad_row`) and counted."""
    table = root / "validated.tsv"
    check_utf8(table)
    reader = csv.DictReader(utf8_lines(table), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        header = reader.fieldnames or ()
    except csv.Error as e:
        raise SampleError(f"{table} line 1", f"cannot be read as a header ({e})") from e
    missing = set(CV_COLUMNS) - set(header)
    if missing:
        raise SampleError(str(table), f"has no column {', '.join(sorted(missing))}")
    return _common_voice_rows(table, reader)


def _common_voice_rows(table: Path, reader: csv.DictReader) -> Iterator[Recording]:
    for number, row in _rows(reader):
        if isinstance(row, str):
            yield _bad_row(table, number, "unknown", row)
            continue
        absent = [name for name in CV_COLUMNS if row[name] is None]
        if absent:
            fields = sum(value is not None for key, value in row.items() if key is not None)
            columns = len(reader.fieldnames or ())
            problem = f"has {fields} of the header's {columns} columns (no {', '.join(absent)})"
            yield _bad_row(table, number, row["client_id"] or "unknown", problem)
            continue
        text = row["sentence"].strip()
        yield Recording(
            f"clips/{row['path']}", row["client_id"], text or None, path=table.parent / "clips" / row["path"]
        )


def _rows(reader: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    """(line, row) of a `csv` reader or `DictReader`, or (line, why) as a string for a row it cannot parse
    (a field over `csv`'s size limit): the reader goes on with the next line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield reader.line_num, f"cannot be read ({e})"
            continue
        yield reader.line_num, row


def _bad_row(table: Path, line: int, speaker: str, problem: str) -> Recording:
    """A table row that cannot be used, as a recording that is rejected without being decoded."""
    return Recording(
        f"{table.name} line {line}",
        speaker,
        problem=("bad_row", f"{table} line {line} {problem}; fix or remove the row"),
    )


def _pick_split(dataset, source: str, split: str | None):
    """A `DatasetDict` needs a split: `--split`, else its only one; a `Dataset` is taken as it is."""
    from datasets import DatasetDict

    if not isinstance(dataset, DatasetDict):
        return dataset
    if split is None and len(dataset) == 1:
        return next(iter(dataset.values()))
    if split not in dataset:
        raise SampleError(source, f"has splits {', '.join(dataset)}; choose one with --split")
    return dataset[split]


def _column(names: list[str], given: str | None, usual: tuple[str, ...], option: str) -> str | None:
    if given is not None:
        if given not in names:
            raise SampleError(option, f"the dataset has no column {given!r}; its columns: {', '.join(names)}")
        return given
    return next((name for name in usual if name in names), None)


def dataset_recordings(dataset, options: SourceSettings) -> Iterator[Recording]:
    """Rows of a `datasets` dataset (on disk or streamed), one at a time, audio left encoded: the
    dataset is never loaded whole and decoding happens in the workers."""
    from datasets import Audio

    names = list(dataset.column_names or dataset.features or [])
    audio = _column(names, options.audio_column, AUDIO_COLUMNS, "--audio-column")
    if audio is None:
        raise SampleError(
            "--audio-column", f"no audio column found; the dataset's columns: {', '.join(names)}"
        )
    text = _column(names, options.text_column, TEXT_COLUMNS, "--text-column")
    speaker = _column(names, options.speaker_column, SPEAKER_COLUMNS, "--speaker-column")
    rows = dataset.cast_column(audio, Audio(decode=False))
    for index, row in enumerate(rows):
        cell = row[audio] or {}
        data, path = cell.get("bytes"), cell.get("path")
        value = str(row[text]).strip() if text is not None and row[text] is not None else ""
        who = str(row[speaker]).strip() if speaker is not None and row[speaker] is not None else ""
        yield Recording(
            f"row {index}",
            who or "speaker",
            value or None,
            path=Path(path) if data is None and path else None,
            data=data,
        )
