"""Cloning samples: generated codes -> audio -> speech checks, for one batch or a whole manifest.

Every caller clones through `clone_samples`, so a clip is decoded, checked and flagged the same way
everywhere: `clone_one` (the `clone` command and the demo: one sample, its reference a clip on disk),
`clone_manifest` (`clone --manifest` and `eval`) and the clips logged during training. A clone that stopped
at once has no audio: it is kept, without checks, and flagged silent (and cut when it never stopped).

A prompt that, with the frames its length limit allows, would run past the model's positions is never
generated (`generate.context_problem`): `clone_one` refuses it, `clone_manifest` skips its sample and lists
it in `skipped.jsonl` beside the references of the wrong length.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from higgs_tune.config import PromptSettings
from higgs_tune.data.audio import AudioError, AudioSource, audio_info
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS, duration_problem
from higgs_tune.data.samples import SampleError
from higgs_tune.files import check_output_file, check_output_folder, write_jsonl
from higgs_tune.inference.generate import context_problem, generate_codes, prompt_length
from higgs_tune.inference.settings import LengthLimit, SamplingSettings
from higgs_tune.inference.speech_checks import CUT, SILENT, SpeechChecks, check_speech
from higgs_tune.logs import Progress
from higgs_tune.model.codes import decode_codes, encode_file
from higgs_tune.model.prompt import spoken_texts

log = logging.getLogger(__name__)

# What `clone_manifest` writes into its folder besides each sample's clip and codes (`clip_file_name`).
RESULTS_FILE = "results.jsonl"
SKIPPED_FILE = "skipped.jsonl"
# The code of a sample skipped because its prompt and length limit do not fit the model's positions.
PROMPT_TOO_LONG = "prompt_too_long"


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
    prompt: PromptSettings,
    sampling: SamplingSettings,
    frame_limits: list[int],
) -> list[Clone]:
    """Clone one generation batch. Each item has `ref_text`, `ref_codes` ([K, T]), `text` and optional
    `scene`; `frame_limits` caps each sample's generated frames (see `generate.generate_codes`)."""
    sr = processor.feature_extractor.sampling_rate
    clones = []
    for item, generated in zip(
        items, generate_codes(model, processor, items, prompt, sampling, frame_limits), strict=True
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
    prompt: PromptSettings,
    sampling: SamplingSettings,
    *,
    max_seconds: float,
) -> Clone:
    """Clone one sample whose reference is a clip on disk, generating at most `max_seconds` of audio; a
    prompt that would run past the model's positions is a `SampleError`, before any generation."""
    check_reference(ref_audio)
    rate = processor.audio_tokenizer.config.frame_rate
    item = {"ref_text": ref_text, "ref_codes": encode_file(processor, ref_audio), "text": text}
    frames = int(max_seconds * rate)
    problem = context_problem(
        model, prompt_length(processor, item, prompt), frames, item["ref_codes"].shape[0]
    )
    if problem is not None:
        raise SampleError("clone", problem)
    return clone_samples(model, processor, [item], prompt, sampling, [frames])[0]


def clone_manifest(
    model,
    processor,
    samples: list,
    out: Path,
    prompt: PromptSettings,
    sampling: SamplingSettings,
    limit: LengthLimit,
    batch_size: int = 8,
) -> list[dict]:
    """Clone every sample of a manifest in batches: `out/<name>.wav`, `out/<name>.npy` (`clip_file_name`)
    and `out/results.jsonl`; samples whose reference is too short or too long (`screen_references`), or
    whose prompt does not fit the model's positions (`screen_prompts`), are listed in `out/skipped.jsonl`
    instead.

    Reference clips are encoded once each, however many samples share them. Returns the result rows.
    """

    samples, skipped = screen_references(samples)  # before any work, not batches later
    rate = processor.audio_tokenizer.config.frame_rate
    ref_codes: dict[Path, np.ndarray] = {}
    for s in samples:
        if s.ref_audio not in ref_codes:
            ref_codes[s.ref_audio] = encode_file(processor, s.ref_audio)
    items = [
        {
            "ref_text": s.ref_text,
            "ref_codes": ref_codes[s.ref_audio],
            "text": s.text,
            "scene": s.scene,
            "id": s.id,
        }
        for s in samples
    ]
    limits = [limit.frames(s.text, rate) for s in samples]
    kept, too_long = screen_prompts(model, processor, samples, items, limits, prompt)
    skipped += too_long
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / SKIPPED_FILE, skipped)
    rows = []
    for start in Progress(range(0, len(kept), batch_size), desc="clone", unit="batch"):
        batch = kept[start : start + batch_size]
        clones = clone_samples(
            model, processor, [items[i] for i in batch], prompt, sampling, [limits[i] for i in batch]
        )
        rows += [
            _write_clone(samples[i], clone, out, processor, prompt)
            for i, clone in zip(batch, clones, strict=True)
        ]
    write_jsonl(out / RESULTS_FILE, rows)
    _log_flags(rows, out)
    return rows


def _log_flags(rows: list[dict], out: Path) -> None:
    """The clones' flags counted, and one warning that says what to do when clips were cut (rather than one
    per sample: the cut samples are listed in the results file and named at INFO)."""
    flags = Counter(f for r in rows for f in r["flags"])
    counts = ", ".join(f"{k} {v}" for k, v in sorted(flags.items())) or "none"
    log.info("cloned %d samples into %s; flags: %s", len(rows), out, counts)
    if flags[CUT]:
        log.warning(
            "%d of %d clones never emitted their stream EOS and were cut at their length limit (flag %r in "
            "%s): the model has not learned where these clips end; train's stop health (eos_prob, "
            "early_stop_risk) says whether more training helps; raise --max-seconds only for texts longer "
            "than the limit allows",
            flags[CUT],
            len(rows),
            CUT,
            out / RESULTS_FILE,
        )


def check_reference(path: AudioSource, name: str | None = None) -> float:
    """The duration of a reference clip read from its header, or a `SampleError` saying what is wrong:
    missing or unreadable (`audio_info`), or outside the durations `validate` accepts
    (`data.problems.MIN_SECONDS`-`MAX_SECONDS`), beyond which the model was never trained. `path` may be
    the encoded bytes of a clip (a server's upload), named `name` in the error."""
    seconds = audio_info(path, name).duration
    if duration_problem(seconds, MIN_SECONDS, MAX_SECONDS) is not None:
        raise SampleError(
            name or str(path),
            f"reference audio is {seconds:.2f} s; a reference must be {MIN_SECONDS:g}-{MAX_SECONDS:g} s "
            "long (as `validate` requires): cut or choose another clip",
        )
    return seconds


def screen_references(samples: list) -> tuple[list, list[dict]]:
    """(samples to clone, skipped) for a manifest: a reference that is missing or unreadable stops the run
    before any cloning, naming the first sample (and how many more); one of a length the model was not
    trained on skips its sample, each one logged and counted (rows of `skipped.jsonl`: id, code, problem)."""
    kept, skipped, broken = [], [], []
    durations: dict[Path, float | AudioError] = {}  # a reference shared by many samples is read once
    for s in samples:
        if s.ref_audio not in durations:
            try:
                durations[s.ref_audio] = audio_info(s.ref_audio).duration
            except AudioError as e:
                durations[s.ref_audio] = e
        seconds = durations[s.ref_audio]
        if isinstance(seconds, AudioError):
            broken.append((s, seconds))
            continue
        problem = duration_problem(seconds, MIN_SECONDS, MAX_SECONDS)
        if problem is None:
            kept.append(s)
            continue
        message = (
            f"reference audio {s.ref_audio} is {seconds:.2f} s, outside {MIN_SECONDS:g}-{MAX_SECONDS:g} s"
        )
        log.warning("sample %r skipped: %s", s.id, message)
        skipped.append({"id": s.id, "code": problem[0], "problem": message})
    if broken:
        (first, e), more = broken[0], f" (and {len(broken) - 1} more samples)" if len(broken) > 1 else ""
        raise SampleError(f"sample {first.id!r}", f"reference audio {e.path}: {e.problem}{more}")
    if skipped:
        log.warning(
            "skipped %d of %d samples whose reference is too short or too long", len(skipped), len(samples)
        )
    if not kept and samples:
        raise SampleError(
            "manifest", f"no sample left to clone: all {len(samples)} references are too short or too long"
        )
    return kept, skipped


def screen_prompts(
    model, processor, samples: list, items: list[dict], limits: list[int], prompt: PromptSettings
) -> tuple[list[int], list[dict]]:
    """(indices of the samples to clone, skipped) by whether each sample's prompt (`items`) and frame limit
    (`limits`) fit the model's positions (`generate.context_problem`): one that does not is skipped, logged
    and counted (rows of `skipped.jsonl`: id, code, problem), before any generation."""
    kept, skipped = [], []
    for i, (s, item, frames) in enumerate(zip(samples, items, limits, strict=True)):
        length = prompt_length(processor, item, prompt)
        problem = context_problem(model, length, frames, item["ref_codes"].shape[0])
        if problem is None:
            kept.append(i)
            continue
        log.warning("sample %r skipped: %s", s.id, problem)
        skipped.append({"id": s.id, "code": PROMPT_TOO_LONG, "problem": problem})
    if skipped:
        log.warning(
            "skipped %d of %d samples whose prompt does not fit the model's positions",
            len(skipped),
            len(samples),
        )
    if not kept and samples:
        raise SampleError(
            "manifest", f"no sample left to clone: all {len(samples)} prompts are too long for the model"
        )
    return kept, skipped


def check_manifest_output(out: Path, samples: list, inputs: list[Path], overwrite: bool) -> None:
    """Refuse `clone --manifest`'s output folder before any work: a file, or a folder that holds anything
    (`files.check_output_folder`). With `overwrite`, a folder that holds something is taken, and only the
    files `clone_manifest` writes are replaced: each is refused if it is a folder or one of the `inputs`
    (the manifest, the reference clips), so a clone never lands on what it is read from."""
    out = Path(out)
    if not (overwrite and out.is_dir()):
        check_output_folder(out, "--out")
        return
    names = [RESULTS_FILE, SKIPPED_FILE]
    for s in samples:
        names += [f"{clip_file_name(s.id)}.wav", f"{clip_file_name(s.id)}.npy"]
    for name in names:
        check_output_file(out / name, "--out", overwrite=True, inputs=inputs)


def _write_clone(sample, clone: Clone, out: Path, processor, prompt: PromptSettings) -> dict:
    """Write one clone's codes and audio into `out`; returns its row of `results.jsonl`. A clone without
    audio is recorded without a wav, never dropped. The row holds the text as given and as the model was
    given it (`spoken_text`: after the prompt's text normalisation), so a report can show both."""
    from higgs_tune.data.audio import write_wav

    name = clip_file_name(sample.id)
    np.save(out / f"{name}.npy", clone.codes)
    sr = processor.feature_extractor.sampling_rate
    wav = write_wav(out / f"{name}.wav", clone.audio, sr).name if clone.audio.size else None
    return {
        "id": sample.id,
        "wav": wav,
        "codes": f"{name}.npy",
        "text": sample.text,
        "spoken_text": spoken_texts(sample.ref_text, sample.text, prompt)[1],
        "ref_audio": str(sample.ref_audio),
        "seconds": clone.codes.shape[1] / processor.audio_tokenizer.config.frame_rate,
        "stopped_by_eos": clone.stopped_by_eos,
        "frame_limit": clone.frame_limit,
        "checks": asdict(clone.checks) if clone.checks else None,
        "flags": clone.flags,
    }


def clip_file_name(sample_id: str) -> str:
    """The file name stem of a sample's clone: distinct for distinct ids, the same on every run.

    An id that is already a plain lower-case name (letters, digits, `-`, `_`, `.`; not starting with a dot;
    at most `_MAX_PLAIN` characters, in NFC form) is its own name. Any other id gets a readable slug of it
    plus `~` and a hash of the exact id, so `spk/1`, `spk:1`, `Spk_1` and `spk_1` never share a file, even
    on a case-insensitive file system. A plain name never contains `~`, so it cannot equal a hashed one.
    """
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample_id.lower())[:_MAX_PLAIN]
    if slug == sample_id and not slug.startswith(".") and unicodedata.is_normalized("NFC", slug):
        return slug
    digest = hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:10]
    return f"{slug.lstrip('.')}~{digest}"


_MAX_PLAIN = 100  # file names stay far below the usual 255-byte limit
