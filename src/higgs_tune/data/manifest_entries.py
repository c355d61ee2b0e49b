"""One manifest entry -> one `Sample`: the flat record and the ChatML conversation our users have.

An entry is read field by field through `Entry`, which records every problem rather than stopping at the
first, so validation can list them all. The manifest file around the entries (its container, ids, duplicate
ids) is `higgs_tune.data.manifests`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from higgs_tune.config import PromptSettings
from higgs_tune.data.problems import Problem, empty_text_problem
from higgs_tune.data.samples import Sample

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
class UnusedKey:
    """An unused key: reported once per manifest with where it first appears and how often."""

    first: str
    count: int = 0


class Entry:
    """Reads typed fields of one entry, recording every problem rather than stopping at the first."""

    def __init__(self, where: str, sample_id: str, base: Path) -> None:
        self.where = where
        self.sample_id = sample_id
        self.base = base
        self.problems: list[Problem] = []
        self.system: str | None = None  # a ChatML system message's text without its scene block

    def add(self, code: str, message: str) -> None:
        self.problems.append(Problem(code, self.where, message, self.sample_id))

    def text(self, value: Any, label: str) -> str | None:
        if value is None:
            self.add("missing_field", f"missing {label}")
            return None
        if not isinstance(value, str):
            self.add("wrong_type", f"{label} must be a string, got {_json_type(value)}")
            return None
        empty = empty_text_problem(value, label)
        if empty is not None:
            self.add(*empty)
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


def entry_id(obj: Any, path: Path, index: int) -> str:
    """The entry's own id, else `<manifest stem>:<index>`, so that even a broken entry can be named."""
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{path.stem}:{index}"


def parse_entry(
    obj: Any, entry: Entry, require_target: bool, unknown: dict[tuple[str, str], UnusedKey]
) -> Sample | None:
    """The sample of a flat or ChatML entry, or None when it has errors (recorded in `entry`); unused keys
    are counted in `unknown` for one warning per manifest."""
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
            seen = unknown.setdefault((kind, key), UnusedKey(entry.where))
            seen.count += 1
    if "messages" in obj:
        return _chatml_sample(obj, entry, require_target)
    return _flat_sample(obj, entry, require_target)


def _flat_sample(obj: dict[str, Any], entry: Entry, require_target: bool) -> Sample | None:
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


def _chatml_sample(obj: dict[str, Any], entry: Entry, require_target: bool) -> Sample | None:
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
            system = _system_text(content)
            match = _SCENE_RE.search(system)
            if match:
                scene = scene or match.group(1).strip() or None
            entry.system = _SCENE_RE.sub("", system).strip() or None
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


def _system_text(content: Any) -> str:
    """The text of a system message: a string, or the text items of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def system_message_problems(systems: dict[str, UnusedKey]) -> list[Problem]:
    """One `system_not_used` warning per distinct ChatML system text that is not the base model's.

    The prompt's system text is a run setting (`prompt.system_prompt`, saved with every checkpoint and used
    again by `clone`), not a per-sample one: one system text per model is what makes the training prompt
    and the cloning prompt the same. A manifest's own system message is therefore not used, and is reported
    rather than dropped silently, with the way to keep it.
    """
    base = PromptSettings().system_prompt
    problems = []
    for text, seen in systems.items():
        if text == base:
            continue
        problems.append(
            Problem(
                "system_not_used",
                seen.first,
                f"ChatML system message {text!r} ({seen.count} entries) is not used: every example is "
                f"prompted with the run's prompt.system_prompt (default {base!r}, the base model's own). "
                f"To train and clone with this text, pass prompt.system_prompt={text!r} to train",
            )
        )
    return problems


def _message_items(message: Any, index: int, entry: Entry) -> tuple[str, Any] | None:
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


def _target_text(between: list[_Item], entry: Entry) -> str | None:
    """The assistant's own text if it has one; otherwise the user's last text without the instruction."""
    texts = [item for item in between if item.kind == "text"]
    spoken = [item.value for item in texts if item.role == "assistant"]
    if not spoken:
        spoken = [_INSTRUCTION_RE.sub("", item.value) for item in texts if item.role == "user"][-1:]
    if not spoken:
        entry.add("missing_field", "no target text (a text item after the reference audio)")
        return None
    return entry.text(spoken[-1], "target text")


def unused_key_problems(unknown: dict[tuple[str, str], UnusedKey]) -> list[Problem]:
    """One `unknown_field` warning per (entry kind, key), with where it first appears and how often."""
    problems = []
    for (kind, key), seen in unknown.items():
        known = CHATML_KEYS if kind == "ChatML" else FLAT_KEYS
        has = "1 entry has it" if seen.count == 1 else f"{seen.count} entries have it"
        problems.append(
            Problem(
                "unknown_field",
                seen.first,
                f"key {key!r} is not used in {kind} entries ({has}); known keys: {', '.join(known)}",
            )
        )
    return problems
