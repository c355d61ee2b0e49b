"""Single-speaker utterances -> zero-shot cloning pairs.

Most corpora are lists of (clip, transcript, speaker). A cloning sample needs a *reference* clip of the same
voice that is not the target: each target gets `refs_per_target` other utterances of its speaker, drawn at
random but reproducibly for a seed (each speaker has its own random stream, so adding a speaker does not
reshuffle the others). Two inputs are understood:

* JSON Lines with `audio`, `text`, `speaker` and optional `id`, `scene`;
* a folder of `NAME.wav` + `NAME.txt` with a `metadata.json` (the layout of an existing community trainer),
  either `{"samples": [...]}` or a plain list. Per entry we read: audio from `audio_file` (or `audio`, or
  `<id>.wav`); text from `transcript_file`, else an inline `text` / `transcript`, else `NAME.txt` beside
  the audio; speaker from `speaker_id` (or `speaker`); id from `id` (or the audio file's stem); optional
  `scene`. Other keys (duration, emotion, ...) are ignored.

Audio files are not opened here; `higgs-tune validate` checks the resulting manifest.

Zero-shot cloning is measured on voices the model never trained on, so `split_speakers` holds out whole
speakers: `pairs --heldout-speakers N` (a count, or a fraction such as 0.1 of the speakers) pairs the held-out
speakers' utterances into a manifest of their own, disjoint in speakers from the training manifest, and
`check_heldout_speakers` is `prepare --heldout-manifest`'s refusal of a training manifest that shares a
speaker with it. Every utterance here has a speaker (reading refuses one without), so the split never meets
a sample it cannot place; only speakers with two or more clips (the ones that can be paired) are held out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from higgs_tune.data.encoding import decode_utf8
from higgs_tune.data.problems import Problem, raise_for_errors, text_problems
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.errors import UserError

log = logging.getLogger(__name__)

METADATA = "metadata.json"


@dataclass(frozen=True)
class Utterance:
    """One clip of one speaker with its transcript; the raw material of pairs."""

    id: str
    audio: Path
    text: str
    speaker: str
    scene: str | None = None


@dataclass
class PairingResult:
    """The pairs, plus what could not be paired and why, so nothing disappears unnoticed."""

    pairs: list[Sample] = field(default_factory=list)
    utterances: int = 0
    speakers: int = 0
    skipped_speakers: list[str] = field(default_factory=list)  # fewer than two distinct clips
    skipped_utterances: int = 0  # utterances of the skipped speakers
    short_targets: int = 0  # targets that got fewer references than asked for

    def summary(self) -> str:
        text = (
            f"{len(self.pairs)} pairs from {self.utterances} utterances of {self.speakers} speakers"
            f" ({self.speakers - len(self.skipped_speakers)} paired)"
        )
        if self.skipped_speakers:
            names = ", ".join(self.skipped_speakers[:10]) + (
                ", ..." if len(self.skipped_speakers) > 10 else ""
            )
            text += (
                f"; skipped {_count(len(self.skipped_speakers), 'speaker')} with a single clip "
                f"({_count(self.skipped_utterances, 'utterance')}): {names}"
            )
        if self.short_targets:
            text += (
                f"; {_count(self.short_targets, 'target')} got fewer references than asked (too few clips)"
            )
        return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def read_utterances(path: str | os.PathLike[str]) -> list[Utterance]:
    """Read utterances from a JSON Lines file, or from a folder (or its metadata.json) in the trainer layout.
    Raises `SampleError` naming the file and line/entry of the first problem (and counting the rest)."""
    path = Path(path)
    if path.is_dir():
        return _read_metadata(path / METADATA)
    if path.name == METADATA:
        return _read_metadata(path)
    if not path.is_file():
        raise SampleError(str(path), "not found; expected a JSON Lines file or a folder with metadata.json")
    return _read_jsonl(path)


def _read_jsonl(path: Path) -> list[Utterance]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SampleError(str(path), f"cannot be read ({e.strerror or e})") from e
    lines = decode_utf8(raw, path).splitlines()
    base = path.parent.absolute()
    problems: list[Problem] = []
    utterances: list[tuple[str, Utterance]] = []
    index = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        default_id = f"{path.stem}:{index}"
        index += 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(Problem("invalid_json", where, f"is not valid JSON: {e.msg} at column {e.colno}"))
            continue
        utterance = _utterance(obj, where, default_id, base, problems, inline_only=True)
        if utterance is not None:
            utterances.append((where, utterance))
    return _finish(utterances, problems, path)


def _read_metadata(meta: Path) -> list[Utterance]:
    folder = meta.parent
    if not meta.is_file():
        raise SampleError(
            str(folder),
            f"no {METADATA}: the folder layout needs it to know each clip's speaker "
            "(or give a JSON Lines file with audio, text and speaker)",
        )
    try:
        data = json.loads(decode_utf8(meta.read_bytes(), meta))
    except (OSError, json.JSONDecodeError) as e:
        raise SampleError(str(meta), f"cannot be read as JSON ({e})") from e
    entries = data.get("samples") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise SampleError(str(meta), 'expected {"samples": [...]} or a list of samples')
    problems: list[Problem] = []
    utterances: list[tuple[str, Utterance]] = []
    for i, obj in enumerate(entries):
        where = f"{meta} samples[{i}]"
        utterance = _utterance(obj, where, None, folder.absolute(), problems, inline_only=False)
        if utterance is not None:
            utterances.append((where, utterance))
    return _finish(utterances, problems, meta)


def _utterance(
    obj: Any, where: str, default_id: str | None, base: Path, problems: list[Problem], *, inline_only: bool
) -> Utterance | None:
    """One utterance from a JSONL line (`inline_only`: text must be inline) or a metadata.json entry."""
    if not isinstance(obj, dict):
        problems.append(Problem("wrong_type", where, "entry must be a JSON object"))
        return None
    audio_keys = ("audio",) if inline_only else ("audio_file", "audio")
    audio_name = _first_string(obj, audio_keys)
    raw_id = obj.get("id")
    given_id = str(raw_id).strip() if isinstance(raw_id, str | int) and str(raw_id).strip() else None
    if audio_name is None and given_id is not None and not inline_only:
        audio_name = f"{given_id}.wav"
    sample_id = given_id or default_id or (Path(audio_name).stem if audio_name else None)
    before = len(problems)

    def need(code: str, message: str) -> None:
        problems.append(Problem(code, where, message, sample_id))

    if audio_name is None:
        need("missing_field", f"no audio path (keys tried: {', '.join(audio_keys)})")
    speaker_key = "speaker" if inline_only else "speaker_id"
    speaker = obj.get(speaker_key, obj.get("speaker"))
    if isinstance(speaker, bool) or not isinstance(speaker, str | int) or not str(speaker).strip():
        need("missing_field", f"no speaker (a non-empty string under {speaker_key!r})")
    text = _text(obj, base, audio_name, inline_only, need)
    scene = obj.get("scene")
    if scene is not None and not isinstance(scene, str):
        need("wrong_type", "scene must be a string")
    problems.extend(
        text_problems({"text": text, "scene": scene if isinstance(scene, str) else None}, where, sample_id)
    )
    if len(problems) > before or audio_name is None or text is None or sample_id is None:
        return None
    return Utterance(sample_id, base / audio_name, text, str(speaker).strip(), (scene or "").strip() or None)


def _first_string(obj: dict[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _text(
    obj: dict[str, Any],
    base: Path,
    audio_name: str | None,
    inline_only: bool,
    need: Callable[[str, str], None],
) -> str | None:
    """The transcript: inline, or from its own file (explicit `transcript_file` or NAME.txt)."""
    inline = _first_string(obj, ("text",) if inline_only else ("text", "transcript"))
    if inline_only or inline is not None:
        if inline is None:
            need(
                "empty_text" if "text" in obj else "missing_field",
                "no text (a non-empty string under 'text')",
            )
        return inline
    name = obj.get("transcript_file")
    if name is None and audio_name is not None:
        name = str(Path(audio_name).with_suffix(".txt"))
    if not isinstance(name, str) or not name.strip():
        need("missing_field", "no transcript: give transcript_file, text, or NAME.txt beside the audio")
        return None
    try:
        text = decode_utf8((base / name).read_bytes(), base / name).strip()
    except FileNotFoundError:
        need("missing_field", f"transcript file {base / name} not found")
        return None
    except OSError as e:
        need("wrong_type", f"transcript file {base / name} cannot be read ({e.strerror or e})")
        return None
    except SampleError as e:
        need("wrong_type", f"transcript file {e.where} {e.problem}")
        return None
    if not text:
        need("empty_text", f"transcript file {base / name} is empty")
        return None
    return text


def _finish(located: list[tuple[str, Utterance]], problems: list[Problem], source: Path) -> list[Utterance]:
    """Check ids are unique, then raise for the first problem or return the utterances."""
    first: dict[str, str] = {}
    for where, u in located:
        if u.id in first:
            message = f"utterance id {u.id!r} is already used at {first[u.id]}"
            problems.append(Problem("duplicate_id", where, message, u.id))
        first.setdefault(u.id, where)
    raise_for_errors(problems)
    if not located:
        raise SampleError(str(source), "has no utterances")
    return [u for _, u in located]


def build_pairs(
    utterances: Sequence[Utterance] | str | os.PathLike[str], refs_per_target: int = 1, seed: int = 0
) -> PairingResult:
    """Pair every utterance (as target) with `refs_per_target` other utterances of the same speaker (as
    references): never itself, never the same file. Deterministic for a given seed. Speakers with fewer
    than two distinct clips cannot be paired; they are counted, named and logged."""
    if refs_per_target < 1:
        raise ValueError(f"refs_per_target must be at least 1, got {refs_per_target}")
    if isinstance(utterances, str | os.PathLike):
        utterances = read_utterances(utterances)
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    result = PairingResult(utterances=len(utterances), speakers=len(by_speaker))
    for speaker, group in by_speaker.items():
        keys = [_key(u.audio) for u in group]
        copies = Counter(keys)  # utterances per file: a target must not get its own file as reference
        if len(copies) < 2:
            result.skipped_speakers.append(speaker)
            result.skipped_utterances += len(group)
            continue
        rng = random.Random(f"{seed}:{speaker}")
        for target, key in zip(group, keys, strict=True):
            k = min(refs_per_target, len(group) - copies[key])
            # Drawing k + copies[key] distinct indices leaves at least k from other files; O(k), not O(n).
            drawn = rng.sample(range(len(group)), min(len(group), k + copies[key]))
            chosen = [group[i] for i in drawn if keys[i] != key][:k]
            result.short_targets += k < refs_per_target
            result.pairs += [_pair(target, ref) for ref in chosen]
    if result.skipped_speakers:
        log.warning("pairs: %s", result.summary())
    else:
        log.info("pairs: %s", result.summary())
    return result


def _key(path: Path) -> str:
    return os.path.realpath(path)


def _pair(target: Utterance, ref: Utterance) -> Sample:
    return Sample(
        id=f"{target.id}@{ref.id}",
        ref_audio=ref.audio,
        ref_text=ref.text,
        text=target.text,
        audio=target.audio,
        speaker=target.speaker,
        scene=target.scene,
    )


@dataclass(frozen=True)
class SpeakerSplit:
    """Which speakers train and which are held out, and the utterances of each side. `unpaired` speakers
    (a single clip) stay with the training utterances, where `build_pairs` names and skips them."""

    seed: int
    training: list[str]
    heldout: list[str]
    unpaired: list[str]
    training_utterances: list[Utterance]
    heldout_utterances: list[Utterance]

    def summary(self) -> str:
        names = ", ".join(self.heldout[:10]) + (", ..." if len(self.heldout) > 10 else "")
        return (
            f"held out {_count(len(self.heldout), 'speaker')} ({names}) of the "
            f"{len(self.heldout) + len(self.training)} that can be paired; "
            f"{_count(len(self.training), 'speaker')} train (seed {self.seed})"
        )

    def record(self) -> dict[str, Any]:
        """What went where, for the JSON summary `pairs --heldout-speakers` writes."""
        return {
            "seed": self.seed,
            "heldout_speakers": self.heldout,
            "training_speakers": self.training,
            "unpaired_speakers": self.unpaired,
            "heldout_utterances": len(self.heldout_utterances),
            "training_utterances": len(self.training_utterances),
        }


def heldout_amount(value: str, option: str = "--heldout-speakers") -> int | float:
    """A count of speakers ("5", at least 1) or a fraction of them ("0.1", between 0 and 1), as
    `pairs --heldout-speakers` takes it; anything else is a `UserError` naming `option`."""
    try:
        count = int(value)
    except ValueError:
        count = None
    if count is not None and count >= 1:
        return count
    try:
        fraction = float(value)
    except ValueError:
        fraction = math.nan
    if count is None and 0 < fraction < 1:
        return fraction
    raise UserError(
        f"{option} {value!r} is neither a count of speakers (at least 1, e.g. 5) nor a fraction of them "
        "(between 0 and 1, e.g. 0.1)"
    )


def split_speakers(utterances: Sequence[Utterance], amount: int | float, seed: int = 0) -> SpeakerSplit:
    """Hold out `amount` speakers (a count, or a fraction of the speakers that can be paired, at least one),
    drawn reproducibly for `seed`: the speakers with the smallest hash of (seed, name) go, so adding a
    speaker to a corpus moves at most the one it displaces. Raises a `UserError` when no speaker would
    be left to train on."""
    clips: dict[str, set[str]] = {}
    for u in utterances:
        clips.setdefault(u.speaker, set()).add(_key(u.audio))
    pairable = sorted(s for s, files in clips.items() if len(files) >= 2)
    count = amount if isinstance(amount, int) else max(1, round(amount * len(pairable)))
    if count >= len(pairable):
        raise UserError(
            f"--heldout-speakers {amount} would hold out {count} of the {len(pairable)} speakers with two or "
            "more clips, leaving none to train on; hold out fewer"
        )
    order = sorted(pairable, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    heldout = set(order[:count])
    return SpeakerSplit(
        seed=seed,
        training=[s for s in pairable if s not in heldout],
        heldout=sorted(heldout),
        unpaired=sorted(s for s in clips if s not in pairable),
        training_utterances=[u for u in utterances if u.speaker not in heldout],
        heldout_utterances=[u for u in utterances if u.speaker in heldout],
    )


def check_heldout_speakers(
    training: Sequence[Sample], heldout: Sequence[Sample], training_name: str, heldout_name: str
) -> None:
    """Refuse a training set that shares a speaker with the held-out set, or that cannot be checked: a
    sample without a speaker, on either side, may be any voice. The message names a few of them."""
    for name, samples in ((training_name, training), (heldout_name, heldout)):
        unnamed = [s.id for s in samples if s.speaker is None]
        if unnamed:
            raise UserError(
                f"{name}: {_count(len(unnamed), 'sample')} without a speaker ({_few(unnamed)}), so the "
                "training voices cannot be checked against the held-out ones; give every sample a speaker "
                "(pairs writes it), or leave out --heldout-manifest"
            )
    shared = sorted({s.speaker for s in training} & {s.speaker for s in heldout})  # type: ignore[misc]
    if shared:
        raise UserError(
            f"{training_name} shares {_count(len(shared), 'speaker')} with the held-out {heldout_name} "
            f"({_few(shared)}): a held-out voice would be trained on; make both with pairs "
            "--heldout-speakers, or leave those speakers' samples out of one of them"
        )
    log.info(
        "%s: no speaker of the held-out %s (%d speakers) is trained on",
        training_name,
        heldout_name,
        len({s.speaker for s in heldout}),
    )


def _few(names: Sequence[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")
