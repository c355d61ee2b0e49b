"""Check a whole manifest before spending GPU hours on it, and say exactly what is wrong where.

Every entry and every clip is checked; nothing stops at the first problem. Errors (see
`higgs_tune.data.problems.CODES`) make a sample unusable and are left out by `write_clean_manifest`;
warnings are things we fix on the fly or that deserve a listen. Each distinct clip is decoded once,
however many samples use it, and the report (`higgs_tune.data.validation_report`) keeps counts plus the
first few examples per problem so that it stays small for millions of samples.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from higgs_tune.data.audio import TARGET_SR, AudioError, AudioStats, scan_audio
from higgs_tune.data.languages import language_name, parse_language
from higgs_tune.data.manifests import scan_manifest, write_manifest_jsonl
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS, Problem, duration_problem, same_clip_problem
from higgs_tune.data.samples import Sample, SampleError
from higgs_tune.data.spoken import count_letters, is_arabic_letter
from higgs_tune.data.validation_report import ValidationReport
from higgs_tune.files import content_hash
from higgs_tune.logs import Progress

log = logging.getLogger(__name__)

SILENCE_DBFS = -50.0  # RMS of the mono mix below this: nearly silent
CLIPPED_FRACTION = 0.001  # more than 0.1% of samples at full scale: clipped
# Letters per second of speech, numbers counted as spoken (`data.spoken.count_letters`). Normal speech
# is roughly 8-20 in English and Arabic; outside the fixed bounds the transcript almost certainly does not
# belong to the clip. Within them, a robust z-score against the corpus median catches what is odd *for
# this corpus* once there are enough samples.
CPS_BOUNDS = (2.0, 35.0)
CPS_MAX_Z = 4.0
CPS_MIN_SAMPLES = 20
# The languages whose target texts are checked for their script: what a letter of it is. Arabic letters
# only (not the Arabic comma, digits, diacritics or tatweel of the Arabic blocks): a transliterated text
# with an Arabic comma or ١٥ in it is not Arabic.
SCRIPT_LETTERS = {"ar": is_arabic_letter}

ClipResult = AudioStats | AudioError  # a clip as read: its measures, or why it could not be read


def validate_manifest(
    path: str | os.PathLike[str],
    *,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    language: str | None = None,
    require_target: bool = True,
    max_examples: int = 5,
    workers: int = 4,
) -> ValidationReport:
    """Check every entry and clip of a manifest; see the module docstring and `data.problems.CODES`.

    `language` is read by `data.languages.parse_language` ("ar", "arabic" and "ar-SA" alike; an unknown one
    is a `UserError`); it reads numbers in the speaking rates, and "ar" also warns about target texts
    without Arabic letters. `workers` threads decode clips in parallel (decoding releases the GIL), which
    matters on network file systems.
    """
    if not 0 <= min_seconds < max_seconds:
        raise ValueError(f"need 0 <= min_seconds < max_seconds, got {min_seconds} and {max_seconds}")
    language = parse_language(language)
    settings = {
        "min_seconds": min_seconds,
        "max_seconds": max_seconds,
        "language": language,
        "require_target": require_target,
    }
    scan = scan_manifest(path, require_target=require_target)
    report = ValidationReport(Path(path), settings, max_examples, scan.entries, scan.samples)
    for problem in scan.problems:
        report.add(problem)
    # Each distinct spelling of a path is resolved once (a million samples name a thousand clips).
    keys = {p: _key(p) for p in dict.fromkeys(p for s in scan.samples for p in _clip_paths(s))}
    clips, hashes = _scan_clips(keys.values(), workers)
    report.clip_count = sum(isinstance(r, AudioStats) for r in clips.values())
    report.clip_seconds = sum(r.info.duration for r in clips.values() if isinstance(r, AudioStats))
    context = _Context(settings, keys, clips, hashes)
    rates: list[_Rate] = []
    for sample in Progress(scan.samples, desc="checking samples", unit="sample"):
        where = scan.locations[sample.id]
        for problem in _sample_problems(sample, where, context):
            report.add(problem, reject=problem.is_error)
        sample_rates = _record(sample, where, context, report)
        if sample.id not in report.rejected:  # a rejected sample's odd rate is a symptom, not news
            rates += sample_rates
    for problem in _rate_outliers(rates):
        report.add(problem)
    log.info("validated %s: %d errors, %d warnings", path, report.n_errors, report.n_warnings)
    return report


def _key(path: Path) -> Path:
    """One cache key per file on disk, however the manifest spelled its path."""
    return Path(os.path.realpath(path))


def _clip_paths(sample: Sample) -> list[Path]:
    return [sample.ref_audio] if sample.audio is None else [sample.ref_audio, sample.audio]


def _scan_clips(keys: Iterable[Path], workers: int) -> tuple[dict[Path, ClipResult], dict[Path, str]]:
    """Decode each distinct clip exactly once; also hash the bytes of each readable one, which `prepare`
    uses as a clip's identity (the file was just read, so the second pass comes from the page cache)."""
    unique = list(dict.fromkeys(keys))

    def one(key: Path) -> tuple[ClipResult, str | None]:
        try:
            return scan_audio(key), content_hash(key)
        except AudioError as e:
            return e, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(Progress(pool.map(one, unique), total=len(unique), desc="checking clips", unit="clip"))
    clips = {key: result for key, (result, _) in zip(unique, results, strict=True)}
    hashes = {key: digest for key, (_, digest) in zip(unique, results, strict=True) if digest is not None}
    return clips, hashes


@dataclass
class _Context:
    """What the per-sample checks share: settings, resolved paths, clip results, pairs seen so far."""

    settings: dict[str, Any]
    keys: dict[Path, Path]  # path as in the sample -> resolved path
    clips: dict[Path, ClipResult]  # resolved path -> result
    hashes: dict[Path, str]  # resolved path of a readable clip -> content hash
    seen_pairs: dict[tuple[Path, Path | str], str] = field(default_factory=dict)
    file_ids: dict[Path, tuple[int, int] | None] = field(default_factory=dict)  # resolved path -> inode

    def clip(self, path: Path) -> ClipResult:
        return self.clips[self.keys[path]]

    def same_file(self, a: Path, b: Path) -> bool:
        """Same path after resolving links, or two names of one file (hard links); each file is looked
        at once, however many samples pair it."""
        return a == b or (self._file_id(a) or (-1, -1)) == self._file_id(b)

    def _file_id(self, key: Path) -> tuple[int, int] | None:
        if key not in self.file_ids:
            try:
                st = os.stat(key)
                self.file_ids[key] = (st.st_dev, st.st_ino)
            except OSError:
                self.file_ids[key] = None
        return self.file_ids[key]


def _sample_problems(sample: Sample, where: str, context: _Context) -> Iterator[Problem]:
    ref_key = context.keys[sample.ref_audio]
    target_key = None if sample.audio is None else context.keys[sample.audio]
    same_file = target_key is not None and context.same_file(ref_key, target_key)
    same = same_clip_problem(context.hashes.get(ref_key), context.hashes.get(target_key), same_file)
    if same is not None:
        code, message = same
        yield Problem(code, where, message, sample.id, sample.audio)
    roles = [("reference", sample.ref_audio)]
    if sample.audio is not None and same is None:
        roles.append(("target", sample.audio))
    for role, path in roles:
        for code, message in clip_findings(context.clip(path), context.settings):
            yield Problem(code, where, f"{role} clip {message}", sample.id, path)
    pair = (ref_key, sample.text if target_key is None else target_key)
    if pair in context.seen_pairs:
        yield Problem(
            "duplicate_pair",
            where,
            f"same reference and target as sample {context.seen_pairs[pair]!r}; it will be trained on twice",
            sample.id,
            sample.audio,
        )
    else:
        context.seen_pairs[pair] = sample.id
    language = context.settings["language"]
    is_letter = SCRIPT_LETTERS.get(language)
    if is_letter is not None and not any(map(is_letter, sample.text)):
        yield Problem(
            "no_arabic_script",
            where,
            f"target text has no {language_name(language)} letters: {sample.text[:60]!r}",
            sample.id,
        )


def clip_findings(result: ClipResult, settings: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(problem code, message) for each check a clip fails: unreadable, duration outside `settings`'
    min_seconds/max_seconds, several channels, another sample rate, near silence, clipping. The one home of
    these checks: `validate` runs them on a manifest's clips, `ingest` on the clips it cuts."""
    if isinstance(result, AudioError):
        yield result.code, result.problem
        return
    info = result.info
    duration = duration_problem(info.duration, settings["min_seconds"], settings["max_seconds"])
    if duration is not None:
        yield duration
    if info.channels > 1:
        yield "multi_channel", f"has {info.channels} channels; it will be downmixed to mono"
    if info.sample_rate != TARGET_SR:
        yield "sample_rate", f"is {info.sample_rate} Hz; it will be resampled to {TARGET_SR} Hz"
    if result.rms_dbfs < SILENCE_DBFS:
        level = "digital silence" if result.rms == 0 else f"RMS {result.rms_dbfs:.1f} dBFS"
        yield "near_silent", f"is nearly silent ({level}; threshold {SILENCE_DBFS:.0f} dBFS)"
    if result.clipped_fraction > CLIPPED_FRACTION:
        yield (
            "clipping",
            f"has {100 * result.clipped_fraction:.2f}% of samples at full scale "
            f"(threshold {100 * CLIPPED_FRACTION:.1f}%): the recording clipped",
        )


@dataclass(frozen=True, slots=True)
class _Rate:
    sample_id: str
    where: str
    role: str
    path: Path
    letters: int
    seconds: float

    @property
    def value(self) -> float:
        return self.letters / self.seconds


def _record(sample: Sample, where: str, context: _Context, report: ValidationReport) -> list[_Rate]:
    """Note durations for the report's distributions and return the speaking rates to check."""
    rates = []
    ref = context.clip(sample.ref_audio)
    if isinstance(ref, AudioStats):
        report.reference_seconds[sample.id] = ref.info.duration
        letters = count_letters(sample.ref_text, context.settings["language"])
        rates.append(_Rate(sample.id, where, "reference", sample.ref_audio, letters, ref.info.duration))
    target = None if sample.audio is None else context.clip(sample.audio)
    if sample.audio is not None and isinstance(target, AudioStats):
        report.target_seconds[sample.id] = target.info.duration
        report.target_clips[sample.id] = context.keys[sample.audio]
        rate = _Rate(
            sample.id,
            where,
            "target",
            sample.audio,
            count_letters(sample.text, context.settings["language"]),
            target.info.duration,
        )
        report.chars_per_second[sample.id] = rate.value
        rates.append(rate)
    return rates


def _rate_outliers(rates: list[_Rate]) -> Iterator[Problem]:
    """Flag texts whose length does not fit their clip, by fixed bounds and by a robust z-score (median and
    MAD of the target rates, or of the reference rates for inference-only manifests)."""
    pool = [r.value for r in rates if r.role == "target"] or [r.value for r in rates]
    median = mad = 0.0
    if len(pool) >= CPS_MIN_SAMPLES:
        values = np.asarray(pool)
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median)))
    low, high = CPS_BOUNDS
    for rate in rates:
        cps = rate.value
        if cps < low:
            reason = f"only {cps:.1f} letters/s (fixed lower bound {low:.0f})"
        elif cps > high:
            reason = f"{cps:.1f} letters/s (fixed upper bound {high:.0f})"
        elif mad > 0 and abs(z := 0.6745 * (cps - median) / mad) > CPS_MAX_Z:
            reason = (
                f"{cps:.1f} letters/s against a corpus median of {median:.1f} "
                f"(robust z {z:+.1f}, limit {CPS_MAX_Z:.0f})"
            )
        else:
            continue
        yield Problem(
            "chars_per_second",
            rate.where,
            f"{rate.role} text: {reason}; {rate.letters} letters in {rate.seconds:.2f} s, "
            "so the transcript may not match the clip",
            rate.sample_id,
            rate.path,
        )


def write_clean_manifest(report: ValidationReport, out_path: str | os.PathLike[str]) -> Path:
    """Write the samples without errors as JSON Lines (warnings kept); the input manifest is never
    modified."""
    out = Path(out_path)
    if _key(out) == _key(report.manifest):
        raise ValueError(f"{out} is the manifest being validated; write the clean manifest to a new file")
    samples = report.clean_samples()
    if not samples:
        raise SampleError(
            str(report.manifest), "no usable samples; nothing to write (see the validation report)"
        )
    write_manifest_jsonl(samples, out)
    log.info(
        "clean manifest %s: kept %d samples; left out %d samples with errors and %d unreadable entries",
        out,
        len(samples),
        len(report.rejected),
        report.entries - len(report.samples),
    )
    return out
