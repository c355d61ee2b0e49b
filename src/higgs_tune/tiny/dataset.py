"""A tiny, fully synthetic voice-cloning dataset, so every stage can be tried and tested without real data.

Several made-up voices (different pitch, vocal-tract length, speaking rate and breathiness) each say a few
short English and Arabic sentences. Clips are 24 kHz mono, 1.0 to 2.5 s long, so a tiny model trains on CPU
in seconds. The same data is written in every input format we read: the pairs as `manifest.json` (ChatML) and
`manifest.jsonl`, the utterances as `utterances.jsonl` and as the `clips/` folder with `metadata.json`
(both inputs of `higgs_tune.data.pairs`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from higgs_tune.data.audio import TARGET_SR, write_wav
from higgs_tune.data.manifests import write_manifest_chatml, write_manifest_jsonl
from higgs_tune.data.pairs import Utterance, build_pairs
from higgs_tune.files import write_json, write_jsonl
from higgs_tune.tiny.synth import synth_speech

log = logging.getLogger(__name__)

_ENGLISH = (
    "The sun is warm today.",
    "Please close the door.",
    "We met by the river.",
    "My tea is getting cold.",
    "The train leaves at noon.",
    "She reads a book every night.",
    "Birds sing in the morning.",
    "Turn left at the bakery.",
    "The market opens early.",
    "I lost my blue umbrella.",
)
_ARABIC = (
    "صباح الخير يا أصدقائي.",
    "الجو جميل اليوم.",
    "أين تقع المكتبة؟",
    "شكرا جزيلا على المساعدة.",
    "القطار يصل في الموعد.",
    "أحب القهوة في الصباح.",
    "البحر هادئ هذا المساء.",
    "سأعود إلى البيت قريبا.",
    "هذا الكتاب مفيد جدا.",
    "نلتقي غدا في السوق.",
)
_SCENE = "Audio is recorded from a quiet room."
_MIN_SECONDS, _MAX_SECONDS = 1.0, 2.5


@dataclass(frozen=True)
class _Voice:
    pitch_hz: float
    formant_scale: float  # shorter vocal tract -> higher formants -> brighter timbre
    syllables_per_second: float
    breathiness: float

    @property
    def letters_per_second(self) -> float:
        return 2.6 * self.syllables_per_second


def write_synthetic_dataset(
    out: str | os.PathLike[str], *, n_speakers: int = 4, utts_per_speaker: int = 6, seed: int = 0
) -> dict[str, Path]:
    """Write the dataset under `out` and return its paths: `clips` (folder, with `metadata` inside),
    `utterances`, `manifest_jsonl` and `manifest_json`. Deterministic for a seed."""
    if n_speakers < 1 or utts_per_speaker < 2:
        raise ValueError("need at least 1 speaker with at least 2 utterances (a reference and a target)")
    out = Path(out)
    clips = out / "clips"
    rng = np.random.default_rng(seed)
    voices = _voices(n_speakers, rng)
    utterances = []
    for s, voice in enumerate(voices):
        for u in range(utts_per_speaker):
            pool = _ARABIC if (s + u) % 2 == 0 else _ENGLISH
            text = pool[int(rng.integers(len(pool)))]
            letters = sum(ch.isalnum() for ch in text)
            seconds = float(np.clip(letters / voice.letters_per_second, _MIN_SECONDS, _MAX_SECONDS))
            name = f"spk{s:02d}_{u:02d}"
            write_wav(clips / f"{name}.wav", _voice_clip(seconds, voice, int(rng.integers(2**31))), TARGET_SR)
            (clips / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
            scene = _SCENE if s % 2 == 0 else None
            utterances.append(Utterance(name, clips / f"{name}.wav", text, f"spk{s:02d}", scene))
    paths = {
        "clips": clips,
        "metadata": clips / "metadata.json",
        "utterances": out / "utterances.jsonl",
    }
    write_json(paths["metadata"], _metadata(utterances))
    write_jsonl(paths["utterances"], [_utterance_record(u, out) for u in utterances])
    pairs = build_pairs(utterances, refs_per_target=1, seed=seed).pairs
    paths["manifest_jsonl"] = write_manifest_jsonl(pairs, out / "manifest.jsonl")
    paths["manifest_json"] = write_manifest_chatml(pairs, out / "manifest.json")
    log.info(
        "synthetic dataset: %d speakers x %d utterances, %d pairs in %s",
        n_speakers,
        utts_per_speaker,
        len(pairs),
        out,
    )
    return paths


def _voices(n: int, rng: np.random.Generator) -> list[_Voice]:
    """Voices spread over a 95-240 Hz pitch range (in random order), with vocal-tract length following pitch
    loosely, so any two speakers differ clearly in pitch, timbre and rate."""
    spread = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.5])
    rng.shuffle(spread)
    voices = []
    for x in spread:
        voices.append(
            _Voice(
                pitch_hz=float(95.0 * (240.0 / 95.0) ** x * rng.uniform(0.97, 1.03)),
                formant_scale=float(0.88 + 0.3 * x + rng.uniform(-0.03, 0.03)),
                syllables_per_second=float(rng.uniform(3.8, 5.8)),
                breathiness=float(rng.uniform(0.02, 0.12)),
            )
        )
    return voices


def _voice_clip(seconds: float, voice: _Voice, seed: int) -> np.ndarray:
    """One utterance of a synthetic voice (see `higgs_tune.tiny.synth`)."""
    return synth_speech(
        seconds,
        sr=TARGET_SR,
        seed=seed,
        pitch_hz=voice.pitch_hz,
        formant_scale=voice.formant_scale,
        syllables_per_second=voice.syllables_per_second,
        breathiness=voice.breathiness,
    )


def _metadata(utterances: list[Utterance]) -> dict[str, object]:
    """metadata.json in the community trainer's layout (NAME.wav + NAME.txt beside it)."""
    entries = []
    for u in utterances:
        entry = {
            "id": u.id,
            "audio_file": u.audio.name,
            "transcript_file": u.audio.with_suffix(".txt").name,
            "speaker_id": u.speaker,
        }
        if u.scene is not None:
            entry["scene"] = u.scene
        entries.append(entry)
    return {"samples": entries}


def _utterance_record(u: Utterance, root: Path) -> dict[str, str]:
    """One line of utterances.jsonl, its audio path relative to the dataset folder."""
    record = {"id": u.id, "audio": u.audio.relative_to(root).as_posix(), "text": u.text, "speaker": u.speaker}
    if u.scene is not None:
        record["scene"] = u.scene
    return record
