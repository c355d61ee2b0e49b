"""The preference folder: one file per finished prompt, then `prefs.jsonl` with one line per pair.

    PREFS/settings.json          what made the candidates (a rerun with other settings is refused)
    PREFS/prompt.json            the prompt settings the candidates were cloned with (DPO trains with them)
    PREFS/prompts/<key>.json     one finished prompt: its candidates' scores and rewards, and its pairs
    PREFS/codes/<key>-ref.npy    the prompt's reference codes [K, T]
    PREFS/codes/<key>-<i>.npy    candidate i's codes [K, T], for candidates in a pair
    PREFS/prefs.jsonl            one line per (chosen, rejected) pair, in manifest order
    PREFS/summary.json           prompts, pairs, prompts skipped as all alike, reward spread

A prompt's file is written last and atomically, after its codes, so a killed run leaves only prompts that
are whole; a rerun skips them (`done_prompts`). Keys are a digest of the sample id: any id maps to a
distinct, safe file name. A prompt's record also holds a digest of what it was cloned from (`prompt_digests`:
texts, scene, reference audio bytes), so a rerun after the manifest changed makes a changed prompt again,
replacing its record and codes, rather than keeping candidates of a text it no longer has.

Writer and reader live here together, below both their users: `preferences` writes the folder and
`training.preference_data` (`train objective=dpo`) reads it, and training comes before preferences in the
pipeline, so neither may import the other. `settings.json` records "no adapter" as null; folders written
before that recorded the string "None", which `read_settings` reads as null.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from higgs_tune.errors import UserError
from higgs_tune.files import content_hash, read_jsonl, write_atomic, write_json, write_jsonl

PROMPTS, CODES = "prompts", "codes"


def prompt_key(sample_id: str) -> str:
    """A safe, distinct file name for a sample id."""
    return hashlib.sha1(sample_id.encode()).hexdigest()[:16]


def prompt_digests(samples: list) -> list[str]:
    """A digest of what each sample's prompt is cloned from: its reference transcript, text and scene, and
    its reference audio's bytes (each file read once, however many samples share it)."""
    audio: dict[Path, str] = {}
    digests = []
    for x in samples:
        if x.ref_audio not in audio:
            audio[x.ref_audio] = content_hash(x.ref_audio)
        parts = [x.ref_text, x.text, x.scene, audio[x.ref_audio]]
        digests.append(hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16])
    return digests


def read_settings(folder: Path) -> dict:
    """What made a folder's candidates (`settings.json`: model, adapter, the `prefs` settings). Folders
    written before "no adapter" was recorded as null hold the string "None" there: read as null."""
    made = json.loads((Path(folder) / "settings.json").read_text(encoding="utf-8"))
    if made.get("adapter") == _OLD_NO_ADAPTER:
        made["adapter"] = None
    return made


_OLD_NO_ADAPTER = "None"
"""How folders written before null was used recorded "no adapter" (`str(None)`)."""


def check_settings(out: Path, settings: dict) -> None:
    """Record the settings of a new folder; refuse to continue one made with other settings."""
    path = out / "settings.json"
    if path.exists():
        before = read_settings(out)
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise UserError(
                f"{out} holds preferences made with other settings ({', '.join(changed)}): "
                "use another --out, or the same settings to continue it"
            )
        return
    write_json(path, settings)


def _pairs_file(folder: Path) -> Path:
    """`prefs.jsonl` of `folder`; a clear error when there is none (not a preference folder)."""
    path = Path(folder) / "prefs.jsonl"
    if not path.is_file():
        raise UserError(
            f"{folder}: not a preference folder (no prefs.jsonl); make one with `higgs-tune prefs`"
        )
    return path


def read_pairs(folder: Path) -> list[dict]:
    """The pairs of a preference folder (`prefs.jsonl`); a clear error when it is not one or has none."""
    path = _pairs_file(folder)
    pairs = read_jsonl(path)
    if not pairs:
        raise UserError(f"{path}: no pairs (every prompt's candidates were alike); see summary.json")
    return pairs


def read_prompt(folder: Path) -> dict:
    """The prompt settings a preference folder's candidates were cloned with (`record_prompt`)."""
    _pairs_file(folder)
    path = Path(folder) / "prompt.json"
    if not path.is_file():
        raise UserError(
            f"{folder}: no prompt.json; make the folder again with this version of `higgs-tune prefs`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def record_prompt(out: Path, prompt: dict) -> None:
    """Record the prompt settings the model clones with: `train objective=dpo` builds its examples with
    exactly these, so the log-probabilities it raises and lowers are those of the prompt that drew them."""
    path = out / "prompt.json"
    if path.exists() and json.loads(path.read_text(encoding="utf-8")) != prompt:
        raise UserError(f"{path}: the model now clones with other prompt settings; use another --out")
    write_json(path, prompt)


def done_prompts(out: Path) -> dict[str, str | None]:
    """The prompts already finished in `out`: key -> the digest of what each was cloned from (None in a
    record made before digests were recorded, which therefore matches no prompt and is made again)."""
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8")).get("digest")
        for p in (out / PROMPTS).glob("*.json")
    }


def write_prompt(out: Path, record: dict, ref_codes: np.ndarray, codes: dict[int, np.ndarray]) -> None:
    """A finished prompt: its codes first, then its record (which marks it done).

    A prompt made again (its manifest entry changed) is first marked undone (its old record removed), and
    its old codes go, so a killed rerun never leaves an old record beside new codes, nor old candidates'
    codes beside the new ones."""
    key = record["key"]
    (out / PROMPTS / f"{key}.json").unlink(missing_ok=True)
    for old in (out / CODES).glob(f"{key}-*.npy"):
        old.unlink()
    for name, c in [("ref", ref_codes), *codes.items()]:
        write_atomic(out / CODES / f"{key}-{name}.npy", lambda f, c=c: np.save(f, c))
    write_json(out / PROMPTS / f"{key}.json", record)


def finish(out: Path, keys: list[str]) -> dict:
    """Write `prefs.jsonl` (pairs in manifest order) and `summary.json`; returns the summary."""
    records = [json.loads((out / PROMPTS / f"{k}.json").read_text(encoding="utf-8")) for k in keys]
    lines = [
        {
            "id": r["id"],
            "ref_text": r["ref_text"],
            "text": r["text"],
            "scene": r.get("scene"),
            "ref_codes": f"{CODES}/{r['key']}-ref.npy",
            "chosen": {"codes": f"{CODES}/{r['key']}-{a}.npy", **r["candidates"][a]},
            "rejected": {"codes": f"{CODES}/{r['key']}-{b}.npy", **r["candidates"][b]},
        }
        for r in records
        for a, b in r["pairs"]
    ]
    write_jsonl(out / "prefs.jsonl", lines)
    spreads = [r["spread"] for r in records if r["pairs"]]
    summary = {
        "prompts": len(records),
        "pairs": len(lines),
        "skipped_all_alike": [r["id"] for r in records if not r["pairs"]],
        "reward_spread": {
            "min": min(spreads, default=None),
            "median": float(np.median(spreads)) if spreads else None,
            "max": max(spreads, default=None),
        },
    }
    write_json(out / "summary.json", summary)
    return summary
