"""Manifests -> `Sample`s: reading the formats users have, and writing ours.

Two containers are detected from the file's content (its first non-blank character):

* a JSON list (`[`), usually `.json`;
* JSON Lines (`{`), one object per line, usually `.jsonl`.

Each entry may be either a *ChatML* conversation (it has `messages`, the layout our first users already have)
or a *flat* record with `ref_audio`, `ref_text`, `text`, `audio` and optional `id`, `speaker`, `scene`.
Audio paths are resolved relative to the manifest's folder. Entries without an `id` are named
`<manifest stem>:<index>` (index counts entries from 0, blank JSONL lines excluded).

Reading never stops at the first bad entry internally: `scan_manifest` returns every problem with its line
(JSONL) or index (JSON list) so validation can report them all; `read_manifest` raises on the first error.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from higgs_tune.data.problems import Problem, raise_for_errors
from higgs_tune.data.samples import Sample
from higgs_tune.files import write_text_atomic

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a helpful assistant capable of generating speech in the voice of the provided reference audio."
)
INSTRUCTION = "Please generate speech for given text in reference audio's voice: "
_INSTRUCTION_RE = re.compile(
    r"^\s*please\s+generate\s+speech\s+for\s+(?:the\s+)?given\s+text\s+in\s+(?:the\s+)?"
    r"reference\s+audio['\u2019]s\s+voice\s*:\s*",
    re.IGNORECASE,
)
_SCENE_RE = re.compile(r"<\|scene_desc_start\|>(.*?)<\|scene_desc_end\|>", re.DOTALL)

FLAT_KEYS = ("id", "ref_audio", "ref_text", "text", "audio", "speaker", "scene")
# start_index appears in existing ChatML exports; it carries nothing we use.
CHATML_KEYS = ("messages", "id", "speaker", "scene", "start_index")
_CHATML_ROLES = ("system", "scene", "user", "assistant")


@dataclass
class ManifestScan:
    """Everything read from one manifest: the good samples, every problem, and where each sample came from."""

    manifest: Path
    container: str  # "json" (a list) or "jsonl"
    entries: int = 0
    samples: list[Sample] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)  # sample id -> "manifest.jsonl line 7"


@dataclass
class _Unknown:
    """An unused key: reported once per manifest with where it first appears and how often."""

    first: str
    count: int = 0


class _Entry:
    """Reads typed fields of one entry, recording every problem rather than stopping at the first."""

    def __init__(self, where: str, sample_id: str, base: Path) -> None:
        self.where = where
        self.sample_id = sample_id
        self.base = base
        self.problems: list[Problem] = []

    def add(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, self.where, message, self.sample_id))

    def text(self, value: Any, label: str) -> str | None:
        if value is None:
            self.add("missing_field", f"missing {label}")
            return None
        if not isinstance(value, str):
            self.add("wrong_type", f"{label} must be a string, got {_json_type(value)}")
            return None
        if not value.strip():
            self.add("empty_text", f"{label} is empty")
            return None
        return value.strip()

    def optional_name(self, value: Any, label: str) -> str | None:
        """speaker / scene: a string (or integer speaker id), or absent."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.add("wrong_type", f"{label} must be a string, got {_json_type(value)}")
            return None
        return str(value).strip() or None

    def path(self, value: Any, label: str) -> Path | None:
        if value is None:
            self.add("missing_field", f"missing {label}")
            return None
        if not isinstance(value, str):
            self.add("wrong_type", f"{label} must be a path string, got {_json_type(value)}")
            return None
        value = value.strip()
        if value.startswith("file://"):
            value = value[len("file://") :]
        if not value:
            self.add("bad_path", f"{label} is empty")
            return None
        if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.IGNORECASE):
            self.add("bad_path", f"{label} {value!r} is a URL; download the file and give a local path")
            return None
        return self.base / Path(value).expanduser()


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


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
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    entries = _entries(raw, path, scan)
    base = path.parent.absolute()
    unknown: dict[tuple[str, str], _Unknown] = {}
    first_location: dict[str, str] = {}
    for index, (where, obj, broken) in enumerate(entries):
        scan.entries += 1
        sample_id = _entry_id(obj, path, index)
        if broken is not None:
            scan.problems.append(Problem("invalid_json", where, broken, sample_id))
            continue
        entry = _Entry(where, sample_id, base)
        sample = _parse_entry(obj, entry, require_target, unknown)
        scan.problems.extend(entry.problems)
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
    for (kind, key), seen in unknown.items():
        known = CHATML_KEYS if kind == "ChatML" else FLAT_KEYS
        has = "1 entry has it" if seen.count == 1 else f"{seen.count} entries have it"
        scan.problems.append(
            Problem(
                "unknown_field",
                seen.first,
                f"key {key!r} is not used in {kind} entries ({has}); known keys: {', '.join(known)}",
            )
        )
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
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        scan.problems.append(Problem("manifest_unreadable", str(path), f"is not UTF-8 text (byte {e.start})"))
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
    lines still count as entries so that default ids do not shift when one is fixed."""
    for number, line in enumerate(raw.split(b"\n"), start=1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        try:
            yield where, json.loads(line.decode("utf-8")), None
        except UnicodeDecodeError as e:
            yield where, None, f"is not UTF-8 text (byte {e.start} of the line)"
        except json.JSONDecodeError as e:
            if number == 1 and _is_single_object(raw):
                scan.problems.append(
                    Problem(
                        "manifest_unreadable",
                        str(path),
                        "holds one JSON object spread over several lines; expected a JSON list of entries "
                        "or JSON Lines (one object per line)",
                    )
                )
                return
            yield where, None, f"is not valid JSON: {e.msg} at column {e.colno}"


def _is_single_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def _entry_id(obj: Any, path: Path, index: int) -> str:
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{path.stem}:{index}"


def _parse_entry(
    obj: Any, entry: _Entry, require_target: bool, unknown: dict[tuple[str, str], _Unknown]
) -> Sample | None:
    if not isinstance(obj, dict):
        entry.add("wrong_type", f"entry must be a JSON object, got {_json_type(obj)}")
        return None
    value = obj.get("id")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip()
    ):
        entry.add("wrong_type", f"id must be a non-empty string, got {value!r}")
    kind, known = ("ChatML", CHATML_KEYS) if "messages" in obj else ("flat", FLAT_KEYS)
    for key in obj:
        if key not in known:
            seen = unknown.setdefault((kind, key), _Unknown(entry.where))
            seen.count += 1
    if "messages" in obj:
        return _chatml_sample(obj, entry, require_target)
    return _flat_sample(obj, entry, require_target)


def _flat_sample(obj: dict[str, Any], entry: _Entry, require_target: bool) -> Sample | None:
    ref_audio = entry.path(obj.get("ref_audio"), "ref_audio")
    ref_text = entry.text(obj.get("ref_text"), "ref_text")
    text = entry.text(obj.get("text"), "text")
    audio = None
    if require_target or obj.get("audio") is not None:
        audio = entry.path(obj.get("audio"), "audio (the target clip)")
    speaker = entry.optional_name(obj.get("speaker"), "speaker")
    scene = entry.optional_name(obj.get("scene"), "scene")
    if entry.problems:
        return None
    return Sample(entry.sample_id, ref_audio, ref_text, text, audio, speaker, scene)


@dataclass
class _Item:
    role: str
    kind: str  # "text" or "audio"
    value: Any


def _chatml_sample(obj: dict[str, Any], entry: _Entry, require_target: bool) -> Sample | None:
    """Understands both layouts in use: everything in one user turn (reference transcript, reference audio,
    instruction + target text) answered by the assistant (target text, target audio); and the Higgs-native
    multi-turn one (user: reference transcript, assistant: reference audio, user: target text, assistant:
    target audio). The first audio is the reference, a second one (from the assistant) the target."""
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        entry.add("wrong_type", f"messages must be a non-empty list, got {_json_type(messages)}")
        return None
    scene = entry.optional_name(obj.get("scene"), "scene")
    items: list[_Item] = []
    for i, message in enumerate(messages):
        found = _message_items(message, i, entry)
        if found is None:
            continue
        role, content = found
        if role == "scene":
            scene = scene or entry.optional_name(content, f"messages[{i}] (scene) content")
        elif role == "system":
            match = _SCENE_RE.search(content) if isinstance(content, str) else None
            if match:
                scene = scene or match.group(1).strip() or None
        else:
            items.extend(content)
    if entry.problems:
        return None
    audios = [i for i, item in enumerate(items) if item.kind == "audio"]
    if not audios:
        entry.add("bad_chatml", "no audio item: expected a reference audio (and a target audio)")
        return None
    if len(audios) > 2:
        entry.add("bad_chatml", f"{len(audios)} audio items; expected a reference audio and a target audio")
        return None
    ref_at = audios[0]
    target_at = audios[1] if len(audios) == 2 else None
    ref_text = " ".join(item.value.strip() for item in items[:ref_at] if item.kind == "text").strip()
    if not ref_text:
        entry.add("missing_field", "no reference transcript (a text item before the reference audio)")
    if target_at is not None:
        if items[target_at].role != "assistant":
            entry.add("bad_chatml", "the second audio item (the target) must be in an assistant message")
        if target_at != len(items) - 1:
            entry.add("bad_chatml", "unexpected content after the target audio")
    elif require_target:
        entry.add("missing_field", "no target audio (an assistant audio item after the reference)")
    text = _target_text(items[ref_at + 1 : target_at], entry)
    ref_audio = entry.path(items[ref_at].value, "reference audio_url")
    audio = entry.path(items[target_at].value, "target audio_url") if target_at is not None else None
    speaker = entry.optional_name(obj.get("speaker"), "speaker")
    if entry.problems:
        return None
    return Sample(entry.sample_id, ref_audio, ref_text, text, audio, speaker, scene)


def _message_items(message: Any, index: int, entry: _Entry) -> tuple[str, Any] | None:
    """(role, content) of one message; for user/assistant the content becomes a list of `_Item`s."""
    if not isinstance(message, dict):
        entry.add("wrong_type", f"messages[{index}] must be an object, got {_json_type(message)}")
        return None
    role = message.get("role")
    if role not in _CHATML_ROLES:
        entry.add(
            "bad_chatml", f"messages[{index}] has role {role!r}; expected one of {', '.join(_CHATML_ROLES)}"
        )
        return None
    content = message.get("content")
    if role in ("system", "scene"):
        return role, content
    if isinstance(content, str):
        return role, [_Item(role, "text", content)]
    if not isinstance(content, list):
        entry.add(
            "wrong_type", f"messages[{index}].content must be a string or a list, got {_json_type(content)}"
        )
        return None
    items = []
    for j, part in enumerate(content):
        label = f"messages[{index}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            items.append(_Item(role, "text", part["text"]))
        elif kind == "audio" and "audio_url" in part:
            items.append(_Item(role, "audio", part["audio_url"]))
        elif kind == "audio":
            entry.add("missing_field", f"{label} is an audio item without 'audio_url'")
        elif kind == "text":
            entry.add("wrong_type", f"{label} is a text item whose 'text' is not a string")
        else:
            entry.add(
                "bad_chatml", f"{label} must be {{'type': 'text', 'text': ...}} or {{'type': 'audio', ...}}"
            )
    return role, items


def _target_text(between: list[_Item], entry: _Entry) -> str | None:
    """The assistant's own text if it has one; otherwise the user's last text without the instruction."""
    texts = [item for item in between if item.kind == "text"]
    spoken = [item.value for item in texts if item.role == "assistant"]
    if not spoken:
        spoken = [_INSTRUCTION_RE.sub("", item.value) for item in texts if item.role == "user"][-1:]
    if not spoken:
        entry.add("missing_field", "no target text (a text item after the reference audio)")
        return None
    return entry.text(spoken[-1], "target text")


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
        {"role": "system", "content": SYSTEM_PROMPT},
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
