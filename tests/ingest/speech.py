"""Test recordings for ingest: synthetic voices (`tiny.synth`) that silero-vad hears as speech, joined by
pauses of low noise, so every cut the slicer makes can be checked against where the pauses really are."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from higgs_tune.data.audio import resample
from higgs_tune.tiny.synth import synth_speech

SR = 24_000
# Voices silero-vad scores as speech throughout (mean speech probability over 0.9 on 4 s clips): a lively
# syllable rate, no pauses inside an utterance. Slower synthetic voices get false pauses mid-utterance.
VOICES = ({"pitch_hz": 130.0, "formant_scale": 1.0}, {"pitch_hz": 200.0, "formant_scale": 1.2})


@lru_cache(maxsize=16)
def utterance(seconds: float, seed: int, voice: int = 0) -> np.ndarray:
    """Cached: synthesis costs about 0.2 s per second of audio, and tests share their voices."""
    audio = synth_speech(seconds, SR, seed=seed, syllables_per_second=5.0, pause_prob=0.0, **VOICES[voice])
    audio.flags.writeable = False
    return audio


def long_recording(
    parts: int, seed: int = 0, voice: int = 0, part_seconds=(2.0, 4.0), pause_seconds=(0.6, 1.5)
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Utterances (stretches of three synthesised ones) joined by pauses of low noise (about -50 dBFS);
    returns the audio and the joins' (start, end) in seconds."""
    rng = np.random.default_rng(seed)
    pieces, joins, position = [], [], 0
    for i in range(parts):
        source = utterance(5.0, seed=3 * seed + i % 3, voice=voice)
        n = round(rng.uniform(*part_seconds) * SR)
        offset = int(rng.integers(0, source.size - n + 1))
        pieces.append(source[offset : offset + n])
        position += n
        if i < parts - 1:
            n = round(rng.uniform(*pause_seconds) * SR)
            pieces.append((0.003 * rng.standard_normal(n)).astype(np.float32))
            joins.append((position / SR, (position + n) / SR))
            position += n
    return np.concatenate(pieces), joins


def clip(seconds: float, seed: int, voice: int = 0, edge_seconds: float = 0.3) -> np.ndarray:
    """A short utterance (the end of a cached one, which silero-vad hears as speech throughout) with a
    little low noise before and after it, as recordings have."""
    rng = np.random.default_rng(seed)
    speech = utterance(5.0, seed=seed % 3, voice=voice)[-round(seconds * SR) :]
    edge = (0.003 * rng.standard_normal(round(edge_seconds * SR))).astype(np.float32)
    return np.concatenate([edge, speech, edge])


TEXTS = ("the quick brown fox jumps", "over the lazy dog again", "a third short sentence here")


def write_folder(root: Path, long_seconds_parts: int = 6) -> Path:
    """A folder of recordings: per speaker (sub-folder) one long untranscribed recording and two short
    clips with their transcripts in same-named .txt files."""
    for voice, speaker in enumerate(("amal", "omar")):
        audio, _ = long_recording(long_seconds_parts, seed=voice, voice=voice)
        (root / speaker).mkdir(parents=True)
        sf.write(root / speaker / "long.flac", audio, SR)
        for i in range(2):
            sf.write(root / speaker / f"short{i}.wav", clip(2.5, i, voice), SR)
            (root / speaker / f"short{i}.txt").write_text(TEXTS[i], encoding="utf-8")
    return root


def write_ljspeech(root: Path, clips: int = 3) -> Path:
    """`metadata.csv` (`id|text|normalized text`) and `wavs/`, one speaker."""
    (root / "wavs").mkdir(parents=True)
    lines = []
    for i in range(clips):
        text = TEXTS[i % len(TEXTS)]
        sf.write(root / "wavs" / f"LJ001-{i:04d}.wav", clip(2.5, i), SR, subtype="PCM_16")
        lines.append(f"LJ001-{i:04d}|{text.upper()}|{text}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_common_voice(root: Path) -> Path:
    """`validated.tsv` and mp3 clips at 48 kHz, as Common Voice releases them."""
    (root / "clips").mkdir(parents=True)
    rows = ["client_id\tpath\tsentence\tup_votes\tdown_votes"]
    for i in range(4):
        name = f"common_voice_ar_{i}.mp3"
        audio = resample(clip(2.5, i, voice=i % 2), SR, 48_000)
        sf.write(root / "clips" / name, audio, 48_000, format="MP3")
        rows.append(f"client{i % 2}\t{name}\t{TEXTS[i % 3]}\t2\t0")
    (root / "validated.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def write_saved_dataset(root: Path) -> Path:
    """A `datasets` dataset with an Audio column (encoded wav bytes) and Common Voice's column names."""
    from datasets import Audio, Dataset

    cells, sentences, speakers = [], [], []
    for i in range(4):
        buffer = io.BytesIO()
        sf.write(buffer, clip(2.5, i, voice=i % 2), SR, format="WAV")
        cells.append({"bytes": buffer.getvalue(), "path": None})
        sentences.append(TEXTS[i % 3])
        speakers.append(f"client{i % 2}")
    data = {"audio": cells, "sentence": sentences, "client_id": speakers}
    dataset = Dataset.from_dict(data).cast_column("audio", Audio(sampling_rate=None))
    dataset.save_to_disk(str(root))
    return root
