"""The benchmarks' test sets, read in their own formats and paired by their own rules into the `Sample`s
`eval` clones.

- Habibi: a hub id (the subset is its config, split `test`) or a folder `datasets.save_to_disk` wrote
  (a `DatasetDict` with split `test`, or a plain `Dataset`), with columns `audio`, `text`, `speaker_id`.
  Pairing, as SWivid/Habibi-TTS src/habibi_tts/eval/0_benchmark.py and 1_infer_habibi.py build it (fork
  Santzy1/Habibi-TTS, commit 9660c7158bc6d2c9f4c78e12352619c13d1f472c): rows grouped by `speaker_id`,
  speakers in order of first appearance, rows in dataset order; row i of a speaker is cloned with row i-1
  of that speaker as reference, so the first takes the speaker's last (Python's `group[-1]`) and a speaker
  with one row is its own reference. A sample's id is the target row's `audio.path`, the name the
  official scorers read its clone by.
- Seed-TTS-Eval: a folder with `meta.lst` (or the path of a list, e.g. `zh/hardcase.lst`), lines
  `utt|prompt_text|prompt_wav|text[|ground truth]`, a relative `prompt_wav` taken from the list's folder
  (BytedanceSpeech/seed-tts-eval get_wav_res_ref_text.py, commit 752f4297f090c46bb1a55a1f7439e5944ddefe8d).
  The fifth field is not used: the protocol scores against `text` and the prompt clip.

A dataset row's audio is written once into the eval's `work` folder, so cloning reads it like any clip.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from higgs_tune.data.samples import Sample
from higgs_tune.errors import UserError
from higgs_tune.evaluation.benchmark_protocols import HABIBI, HABIBI_SPLIT, Benchmark
from higgs_tune.ingest.sources import detect_source

HABIBI_COLUMNS = ("audio", "text", "speaker_id")
SEEDTTS_LIST = "meta.lst"


@dataclass(frozen=True)
class HabibiRow:
    """One row of a Habibi subset, its audio written to `file`."""

    index: int
    speaker: object
    path: str
    text: str
    file: Path


def read_benchmark(benchmark: Benchmark, data: str, work: Path) -> list[Sample]:
    """The benchmark's samples in the protocol's order; rows' audio goes into `work`."""
    if benchmark.protocol == HABIBI:
        return habibi_pairs(read_habibi(benchmark, data, work))
    return read_seedtts(Path(data))


def clip_name(benchmark: Benchmark, sample_id: str) -> str:
    """The file name the official scorers read a sample's clone by: Habibi's `audio.path`, Seed-TTS-Eval's
    `<utt>.wav`."""
    return sample_id if benchmark.protocol == HABIBI else f"{sample_id}.wav"


def habibi_dataset(benchmark: Benchmark, data: str):
    """The subset's test split, from a local `save_to_disk` folder or the hub."""
    if detect_source(data) == "hub":
        from datasets import load_dataset

        try:
            return load_dataset(data, benchmark.subset, split=HABIBI_SPLIT)
        except (OSError, ValueError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(
                f"--benchmark-data {data}: not a folder here, and as a hub dataset: {reason}"
            ) from e
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(data)
    except (OSError, ValueError) as e:
        raise UserError(f"--benchmark-data {data}: not a folder `datasets.save_to_disk` wrote ({e})") from e
    if isinstance(dataset, DatasetDict):
        if HABIBI_SPLIT not in dataset:
            raise UserError(
                f"--benchmark-data {data}: has splits {', '.join(dataset)} but no {HABIBI_SPLIT!r}, "
                "the split Habibi evaluates"
            )
        dataset = dataset[HABIBI_SPLIT]
    return dataset


def read_habibi(benchmark: Benchmark, data: str, work: Path) -> list[HabibiRow]:
    """Every row of the subset, checked, its audio written into `work`."""
    from datasets import Audio

    dataset = habibi_dataset(benchmark, data)
    missing = [c for c in HABIBI_COLUMNS if c not in dataset.column_names]
    if missing:
        raise UserError(
            f"--benchmark-data {data}: no column {', '.join(missing)}; a Habibi subset has "
            f"{', '.join(HABIBI_COLUMNS)} (its columns: {', '.join(dataset.column_names)})"
        )
    work.mkdir(parents=True, exist_ok=True)
    rows, seen = [], {}
    for index, row in enumerate(dataset.cast_column("audio", Audio(decode=False))):
        where = f"--benchmark-data {data} row {index}"
        cell = row["audio"] or {}
        path = _clip_path(cell.get("path"), where)
        if path in seen:
            raise UserError(
                f"{where}: audio.path {path!r} is also row {seen[path]}'s; clones are named by it"
            )
        seen[path] = index
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: text is empty or not a string; every row needs its transcript")
        if row["speaker_id"] is None:
            raise UserError(f"{where}: speaker_id is empty; pairing groups rows by it")
        rows.append(
            HabibiRow(index, row["speaker_id"], path, text, _row_audio(cell, path, work, index, where))
        )
    if not rows:
        raise UserError(f"--benchmark-data {data}: the subset has no rows")
    return rows


def _clip_path(path: object, where: str) -> str:
    """A row's `audio.path`, which must be a relative path inside the export folder."""
    if not isinstance(path, str) or not path.strip():
        raise UserError(f"{where}: audio has no path; Habibi names each clone by it")
    parts = PurePosixPath(path).parts
    if PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path:
        raise UserError(f"{where}: audio.path {path!r} is not a relative path; clones are written under it")
    return path


def _row_audio(cell: dict, path: str, work: Path, index: int, where: str) -> Path:
    """The row's audio as a file: its encoded bytes written into `work`, or the file its path names."""
    data = cell.get("bytes")
    if data is None:
        if not Path(path).is_file():
            raise UserError(f"{where}: audio has no bytes and {path!r} is no file here")
        return Path(path)
    file = work / f"row-{index}{PurePosixPath(path).suffix or '.wav'}"
    file.write_bytes(data)
    return file


def habibi_pairs(rows: list[HabibiRow]) -> list[Sample]:
    """Habibi's pairs: per speaker (first appearance first), each row cloned with the speaker's previous
    row as reference, the first with the speaker's last."""
    speakers: dict[object, list[HabibiRow]] = defaultdict(list)
    for row in rows:
        speakers[row.speaker].append(row)
    samples = []
    for speaker, group in speakers.items():
        for i, gen in enumerate(group):
            ref = group[i - 1]
            samples.append(
                Sample(gen.path, ref.file, ref.text, gen.text, audio=gen.file, speaker=str(speaker))
            )
    return samples


def read_seedtts(data: Path) -> list[Sample]:
    """The utterances of a Seed-TTS-Eval list, in its order."""
    lst = data / SEEDTTS_LIST if data.is_dir() else data
    if not lst.is_file():
        raise UserError(
            f"--benchmark-data {data}: no {SEEDTTS_LIST} there; give a Seed-TTS-Eval folder or list"
        )
    try:
        lines = lst.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{lst}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        samples.append(_seedtts_line(lst, number, line.strip(), seen))
    if not samples:
        raise UserError(f"{lst}: no utterance in it")
    return samples


def _seedtts_line(lst: Path, number: int, line: str, seen: dict[str, int]) -> Sample:
    """One `utt|prompt_text|prompt_wav|text[|ground truth]` line, checked."""
    where = f"{lst} line {number}"
    fields = line.split("|")
    if len(fields) not in (4, 5):
        raise UserError(
            f"{where}: {len(fields)} fields; a line is utt|prompt_text|prompt_wav|text[|ground truth]"
        )
    utt, prompt_text, prompt_wav, text = fields[:4]
    if not utt or "/" in utt or "\\" in utt or utt in (".", ".."):
        raise UserError(f"{where}: utt {utt!r} cannot name a file (<utt>.wav); fix the line")
    if utt in seen:
        raise UserError(f"{where}: utt {utt!r} is also line {seen[utt]}'s; clones are named by it")
    seen[utt] = number
    if not text.strip():
        raise UserError(f"{where}: the text to say is empty")
    prompt = Path(prompt_wav) if Path(prompt_wav).is_absolute() else lst.parent / prompt_wav
    if not prompt.is_file():
        raise UserError(f"{where}: prompt clip {prompt} is not there")
    return Sample(utt, prompt, prompt_text, text)
