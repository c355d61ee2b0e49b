"""Cloning samples: generated codes -> audio -> speech checks, for one batch or a whole manifest.

Every caller clones through `clone_samples`, so a clip is decoded, checked and flagged the same way
everywhere: `clone_one` (the `clone` command and the demo: one sample, its reference a clip on disk),
`clone_manifest` (`clone --manifest` and `eval`) and the clips logged during training. A clone that stopped
at once has no audio: it is kept, without checks, and flagged silent (and cut when it never stopped).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from higgs_tune.config import PromptConfig
from higgs_tune.data.samples import SampleError
from higgs_tune.files import write_jsonl
from higgs_tune.inference.generate import generate_codes
from higgs_tune.inference.settings import LengthLimit, SamplingConfig
from higgs_tune.inference.speech_checks import CUT, SILENT, SpeechChecks, check_speech
from higgs_tune.model.codes import decode_codes, encode_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clone:
    """One sample cloned: its codes [K, T], their audio (empty when the model stopped at once), how
    generation ended, and the speech checks of the audio (None without audio)."""

    codes: np.ndarray
    audio: np.ndarray
    stopped_by_eos: bool
    frame_limit: int
    checks: SpeechChecks | None

    @property
    def flags(self) -> list[str]:
        """What went wrong: the checks' flags, or silent (and cut) for a clone without audio."""
        if self.checks is not None:
            return self.checks.flags
        return [SILENT] + ([] if self.stopped_by_eos else [CUT])


def clone_samples(
    model,
    processor,
    items: list[dict],
    settings: PromptConfig,
    sampling: SamplingConfig,
    frame_limits: list[int],
) -> list[Clone]:
    """Clone one generation batch. Each item has `ref_text`, `ref_codes` ([K, T]), `text` and optional
    `scene`; `frame_limits` caps each sample's generated frames (see `generate.generate_codes`)."""
    sr = processor.feature_extractor.sampling_rate
    clones = []
    for item, generated in zip(
        items, generate_codes(model, processor, items, settings, sampling, frame_limits), strict=True
    ):
        audio = decode_codes(processor, generated.codes)
        stopped = generated.stopped_by_eos
        checks = check_speech(audio, item["text"], stopped, sr=sr) if audio.size else None
        clones.append(Clone(generated.codes, audio, stopped, generated.frame_limit, checks))
    return clones


def clone_one(
    model,
    processor,
    ref_audio: Path,
    ref_text: str,
    text: str,
    settings: PromptConfig,
    sampling: SamplingConfig,
    *,
    max_seconds: float,
) -> Clone:
    """Clone one sample whose reference is a clip on disk, generating at most `max_seconds` of audio."""
    rate = processor.audio_tokenizer.config.frame_rate
    item = {"ref_text": ref_text, "ref_codes": encode_file(processor, ref_audio), "text": text}
    return clone_samples(model, processor, [item], settings, sampling, [int(max_seconds * rate)])[0]


def clone_manifest(
    model,
    processor,
    samples: list,
    out: Path,
    settings: PromptConfig,
    sampling: SamplingConfig,
    limit: LengthLimit,
    batch_size: int = 8,
) -> list[dict]:
    """Clone every sample of a manifest in batches: `out/<id>.wav`, `out/<id>.npy` and `out/results.jsonl`.

    Reference clips are encoded once each, however many samples share them. Returns the result rows.
    """
    from tqdm import tqdm

    _check_references(samples)  # before any work, not batches later
    out.mkdir(parents=True, exist_ok=True)
    rate = processor.audio_tokenizer.config.frame_rate
    ref_codes: dict[Path, np.ndarray] = {}
    rows = []
    for start in tqdm(range(0, len(samples), batch_size), desc="clone", unit="batch"):
        batch = samples[start : start + batch_size]
        for s in batch:
            if s.ref_audio not in ref_codes:
                ref_codes[s.ref_audio] = encode_file(processor, s.ref_audio)
        items = [
            {"ref_text": s.ref_text, "ref_codes": ref_codes[s.ref_audio], "text": s.text, "scene": s.scene}
            for s in batch
        ]
        limits = [limit.frames(s.text, rate) for s in batch]
        clones = clone_samples(model, processor, items, settings, sampling, limits)
        rows += [_write_clone(s, clone, out, processor) for s, clone in zip(batch, clones, strict=True)]
    write_jsonl(out / "results.jsonl", rows)
    flags = Counter(f for r in rows for f in r["flags"])
    log.info(
        "cloned %d samples into %s; flags: %s",
        len(rows),
        out,
        ", ".join(f"{k} {v}" for k, v in sorted(flags.items())) or "none",
    )
    return rows


def _check_references(samples: list) -> None:
    """Name the first sample whose reference audio is missing (and how many more there are)."""
    missing = [s for s in samples if not s.ref_audio.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more samples)" if len(missing) > 1 else ""
        raise SampleError(
            f"sample {missing[0].id!r}", f"reference audio {missing[0].ref_audio} not found{more}"
        )


def _write_clone(sample, clone: Clone, out: Path, processor) -> dict:
    """Write one clone's codes and audio into `out`; returns its row of `results.jsonl`. A clone without
    audio is recorded without a wav, never dropped."""
    from higgs_tune.data.audio import write_wav

    name = _safe_name(sample.id)
    np.save(out / f"{name}.npy", clone.codes)
    sr = processor.feature_extractor.sampling_rate
    wav = write_wav(out / f"{name}.wav", clone.audio, sr).name if clone.audio.size else None
    return {
        "id": sample.id,
        "wav": wav,
        "codes": f"{name}.npy",
        "text": sample.text,
        "ref_audio": str(sample.ref_audio),
        "seconds": clone.codes.shape[1] / processor.audio_tokenizer.config.frame_rate,
        "stopped_by_eos": clone.stopped_by_eos,
        "frame_limit": clone.frame_limit,
        "checks": asdict(clone.checks) if clone.checks else None,
        "flags": clone.flags,
    }


def _safe_name(sample_id: str) -> str:
    """A file name for a sample id (ids may contain ':' or '/')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id)
