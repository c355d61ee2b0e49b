"""Manifests -> `Sample`s: reading the formats users have, and writing ours.

Two containers are detected from the file's content (its first non-blank character):

* a JSON list (`[`), usually `.json`;
* JSON Lines (`{`), one object per line, usually `.jsonl`.

Each entry may be either a *ChatML* conversation (it has `messages`, the layout our first users already have)
or a *flat* record with `ref_audio`, `ref_text`, `text`, `audio` and optional `id`, `speaker`, `scene`; one
entry is parsed in `higgs_tune.data.manifest_entries`. Audio paths are resolved relative to the manifest's
folder. Entries without an `id` are named `<manifest stem>:<index>` (index counts entries from 0, blank JSONL
lines excluded).

Reading never stops at the first bad entry internally: `scan_manifest` returns every problem with its line
(JSONL) or index (JSON list) so validation can report them all; `read_manifest` raises on the first error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from higgs_tune.config import PromptSettings
from higgs_tune.data.encoding import UTF8_BOM, byte_problem, decode_utf8, encoding_problem, other_encoding
from higgs_tune.data.manifest_entries import (
    INSTRUCTION,
    Entry,
    UnusedKey,
    entry_id,
    parse_entry,
    system_message_problems,
    unused_key_problems,
)
from higgs_tune.data.problems import Problem, raise_for_errors, text_problems
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.files import write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class ManifestScan:
    """Everything read from one manifest: the good samples, every problem, and where each sample came from."""

    manifest: Path
    container: str  # "json" (a list) or "jsonl"
    entries: int = 0
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)  # sample id -> "manifest.jsonl line 7"


def scan_manifest(path: str | os.PathLike[str], *, require_target: bool = True) -> ManifestScan:
    """Read a manifest without raising: returns the usable samples and *all* problems found.

    With `require_target=False` (inference manifests) entries may omit the target clip.
    """
    path = Path(path)
    scan = ManifestScan(manifest=path, container="jsonl")
    try:
        raw = path.read_bytes()
    except OSError as e:
        scan.problems.append(Problem("manifest_unreadable", str(path), f"cannot be read ({e.strerror or e})"))
        return scan
    encoding = other_encoding(raw)
    if encoding is not None:
        scan.problems.append(Problem("manifest_unreadable", str(path), encoding_problem(path, encoding)))
        return scan
    raw = raw.removeprefix(UTF8_BOM)
    entries = _entries(raw, path, scan)
    base = path.parent.absolute()
    unknown: dict[tuple[str, str], UnusedKey] = {}
    systems: dict[str, UnusedKey] = {}
    first_location: dict[str, str] = {}
    for index, (where, obj, broken) in enumerate(entries):
        scan.entries += 1
        sample_id = entry_id(obj, path, index)
        if broken is not None:
            scan.problems.append(Problem("invalid_json", where, broken, sample_id))
            continue
        entry = Entry(where, sample_id, base)
        sample = parse_entry(obj, entry, require_target, unknown)
        if sample is not None:
            texts = {"ref_text": sample.ref_text, "text": sample.text, "scene": sample.scene}
            entry.problems.extend(text_problems(texts, where, sample_id))
        scan.problems.extend(entry.problems)
        if entry.system is not None:
            systems.setdefault(entry.system, UnusedKey(where)).count += 1
        if sample_id in first_location:
            scan.problems.append(
                Problem(
                    "duplicate_id",
                    where,
                    f"id {sample_id!r} is already used at {first_location[sample_id]}; this entry is skipped",
                    sample_id,
                )
            )
            continue
        first_location[sample_id] = where
        if sample is not None and not any(p.is_error for p in entry.problems):
            scan.samples.append(sample)
            scan.locations[sample.id] = where
    scan.problems.extend(unused_key_problems(unknown))
    scan.problems.extend(system_message_problems(systems))
    if scan.entries == 0 and not scan.problems:
        scan.problems.append(Problem("manifest_empty", str(path), "has no entries"))
    return scan


def read_manifest(path: str | os.PathLike[str], *, require_target: bool = True) -> list[Sample]:
    """Read a manifest (ChatML JSON or JSON Lines) into samples; raises `SampleError` on the first bad entry,
    naming the manifest, the line or index, the sample and the problem. Warnings are logged."""
    scan = scan_manifest(path, require_target=require_target)
    raise_for_errors(scan.problems)
    for problem in scan.problems:
        log.warning("%s", problem.describe())
    return scan.samples


def _entries(raw: bytes, path: Path, scan: ManifestScan) -> Iterable[tuple[str, Any, str | None]]:
    """Pick the container from the first non-blank character: `[` a JSON list, `{` JSON Lines."""
    start = raw.lstrip()[:1]
    if start == b"[":
        scan.container = "json"
        return _json_list_entries(raw, path, scan)
    if start == b"{":
        return _jsonl_entries(raw, path, scan)
    if not start:
        scan.problems.append(Problem("manifest_empty", str(path), "the file is empty"))
    else:
        scan.problems.append(
            Problem(
                "manifest_unreadable",
                str(path),
                f"does not look like JSON (starts with {start.decode(errors='replace')!r}); expected a JSON "
                "list of entries or JSON Lines (one object per line)",
            )
        )
    return []


def _json_list_entries(raw: bytes, path: Path, scan: ManifestScan) -> list[tuple[str, Any, str | None]]:
    try:
        data = json.loads(decode_utf8(raw, path))
    except SampleError as e:  # not UTF-8: named with its line and the fix
        scan.problems.append(Problem("manifest_unreadable", e.where, e.problem))
        return []
    except json.JSONDecodeError as e:
        scan.problems.append(
            Problem(
                "manifest_unreadable",
                str(path),
                f"is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            )
        )
        return []
    if not data:
        scan.problems.append(Problem("manifest_empty", str(path), "is an empty list"))
    return [(f"{path} entry {i}", obj, None) for i, obj in enumerate(data)]


def _jsonl_entries(raw: bytes, path: Path, scan: ManifestScan) -> Iterator[tuple[str, Any, str | None]]:
    """(where, object, None) per non-blank line, or (where, None, why) for a line that is not JSON; broken
    lines still count as entries so that default ids do not shift when one is fixed. A pretty-printed file
    (objects spread over lines) is one problem, not one per line."""
    objects = None  # objects spread over lines, counted at the first broken line
    for number, line in enumerate(raw.split(b"\n"), start=1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        try:
            yield where, json.loads(line.decode("utf-8")), None
        except UnicodeDecodeError as e:
            yield where, None, byte_problem(path, e, e.start + 1)
        except json.JSONDecodeError as e:
            objects = _spread_objects(raw) if objects is None else objects
            if objects:
                scan.problems.append(
                    Problem(
                        "manifest_unreadable",
                        str(path),
                        f"JSON Lines needs one object per line, but this file holds {objects} JSON "
                        f"object{'s' if objects > 1 else ''} spread over several lines (pretty-printed?); "
                        f"write one object per line (e.g. `jq -c . {path.name}`) or a JSON list",
                    )
                )
                return
            yield where, None, f"is not valid JSON: {e.msg} at column {e.colno}"


def _spread_objects(raw: bytes) -> int:
    """How many objects a file of JSON objects written one after another holds when some span several
    lines (pretty-printed JSON Lines); 0 when it is not such a file, so its lines are reported one by one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return 0
    decoder, pos, count = json.JSONDecoder(), 0, 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return count
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return 0
        if not isinstance(obj, dict):
            return 0
        count, pos = count + 1, end


def _relative(path: Path, base: Path) -> str:
    """Relative to the manifest's folder when the clip lives under it (the dataset can then move as a whole);
    absolute otherwise, because `../..` chains break as soon as the manifest moves alone."""
    absolute = path.absolute()
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return str(absolute)


def _flat_record(sample: Sample, base: Path) -> dict[str, Any]:
    """The JSON Lines record of a sample, with paths relative to `base` where possible."""
    record: dict[str, Any] = {
        "id": sample.id,
        "ref_audio": _relative(sample.ref_audio, base),
        "ref_text": sample.ref_text,
        "text": sample.text,
    }
    if sample.audio is not None:
        record["audio"] = _relative(sample.audio, base)
    if sample.speaker is not None:
        record["speaker"] = sample.speaker
    if sample.scene is not None:
        record["scene"] = sample.scene
    return record


def _chatml_record(sample: Sample, base: Path) -> dict[str, Any]:
    """The ChatML entry of a sample, in the single-user-turn layout our first users have."""
    user = [
        {"type": "text", "text": sample.ref_text},
        {"type": "audio", "audio_url": _relative(sample.ref_audio, base)},
        {"type": "text", "text": INSTRUCTION + sample.text},
    ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": PromptSettings().system_prompt},
        {"role": "user", "content": user},
    ]
    if sample.audio is not None:
        assistant = [
            {"type": "text", "text": sample.text},
            {"type": "audio", "audio_url": _relative(sample.audio, base)},
        ]
        messages.append({"role": "assistant", "content": assistant})
    record: dict[str, Any] = {"id": sample.id, "messages": messages}
    if sample.speaker is not None:
        record["speaker"] = sample.speaker
    if sample.scene is not None:
        record["scene"] = sample.scene
    return record


def write_manifest_jsonl(samples: Iterable[Sample], path: str | os.PathLike[str]) -> Path:
    """Write samples as JSON Lines (UTF-8, Arabic left readable), atomically so a crash never leaves half a
    manifest behind."""
    path = Path(path)
    base = path.parent.absolute()
    lines = [json.dumps(_flat_record(s, base), ensure_ascii=False) for s in samples]
    return _write_manifest(path, "".join(line + "\n" for line in lines))


def write_manifest_chatml(samples: Iterable[Sample], path: str | os.PathLike[str]) -> Path:
    """Write samples as a ChatML JSON list (the format `read_manifest` also accepts), atomically."""
    path = Path(path)
    base = path.parent.absolute()
    records = [_chatml_record(s, base) for s in samples]
    return _write_manifest(path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")


def _write_manifest(path: Path, text: str) -> Path:
    write_text_atomic(path, text)
    log.info("wrote %s", path)
    return path
