"""Reading, checking and writing audio clips.

Everything downstream (codec encoding, validation, generation) goes through these functions so that a bad
file always fails the same way: a `SampleError` naming the file and what is wrong, never a bare libsndfile
message or, worse, a silently half-read clip.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from higgs_tune.data.samples import SampleError

log = logging.getLogger(__name__)

TARGET_SR = 24_000
CLIP_LEVEL = 0.999  # |x| at or above this counts as full scale (int16 max is 0.99997)
_BLOCK_FRAMES = 1 << 16
# Streaming WAV writers leave the data size at 0 or at (nearly) 4 GiB because they do not know it yet.
_UNKNOWN_SIZE_FROM = 0x7FFFF000
# Sample rates a real recording can have. Outside them the header lies (or the file is not audio): a small
# file claiming 1 Hz would be "hours long" and resampling it to 24 kHz would ask for tens of GB.
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 768_000
# The formats most often met that libsndfile cannot read, and the conversion that fixes them.
READABLE_FORMATS = "WAV, FLAC, OGG (Vorbis/Opus), MP3, AIFF"
# A file, or the encoded bytes of one (an audio cell of a `datasets` row).
AudioSource = str | os.PathLike[str] | bytes


class AudioError(SampleError):
    """A `SampleError` about an audio file that also carries a problem code (`higgs_tune.data.problems`)."""

    def __init__(self, path: Path, code: str, problem: str) -> None:
        super().__init__(str(path), problem)
        self.path = path
        self.code = code


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, read without decoding the audio."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class AudioStats:
    """Header facts plus level statistics from one streaming pass over the samples."""

    info: AudioInfo
    peak: float  # max |x| over all channels
    rms: float  # RMS of the mono downmix
    clipped_fraction: float  # share of samples (all channels) at or above CLIP_LEVEL

    @property
    def rms_dbfs(self) -> float:
        return 20.0 * float(np.log10(self.rms)) if self.rms > 0 else float("-inf")


def audio_info(source: AudioSource, name: str | None = None) -> AudioInfo:
    """Rate, channels, frame count and duration from the header, checked before anything is decoded.

    `source` is a file, or the encoded bytes of one (a `datasets` row's audio cell), named `name` in
    errors. Refuses a header that lies about the rate (decoding 1 Hz "audio" to 24 kHz would ask for tens
    of GB), and WAV files cut short while copying: libsndfile quietly reads what is there, which would pair
    a full transcript with half the audio.
    """
    path = Path(name or "audio bytes") if isinstance(source, bytes) else Path(source)
    if not isinstance(source, bytes):
        check_file(path)
    try:
        info = sf.info(_opened(source))
    except (sf.SoundFileError, OSError) as e:
        raise undecodable(path, e, convert=not isinstance(source, bytes)) from e
    _check_wav_complete(path, source)
    if info.frames <= 0:
        raise AudioError(path, "audio_empty", "contains no audio samples")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            path,
            "audio_unreadable",
            f"its header claims a sample rate of {info.samplerate} Hz, outside {MIN_SAMPLE_RATE}-"
            f"{MAX_SAMPLE_RATE} Hz: the header is broken; re-export the file",
        )
    return AudioInfo(
        path, int(info.samplerate), int(info.channels), int(info.frames), info.format, info.subtype
    )


def _opened(source: AudioSource) -> str | io.BytesIO:
    """What libsndfile reads: the file's path, or a fresh reader over the bytes."""
    return io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)


def check_file(path: Path) -> None:
    """Raise `AudioError` unless `path` is a regular file, saying why: missing, a folder, or a symbolic
    link that leads nowhere (a loop, or a missing target), which `exists()` alone reports as missing."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioError(
                path, "audio_missing", "is a symbolic link loop; point the link at a file"
            ) from e
        if path.is_symlink():
            target = os.readlink(path)
            raise AudioError(
                path, "audio_missing", f"is a symbolic link to {target}, which is missing"
            ) from e
        raise AudioError(path, "audio_missing", "file not found") from e
    if not stat.S_ISREG(mode):
        raise AudioError(path, "audio_missing", "is not a regular file")


def undecodable(path: Path, e: Exception, convert: bool = True) -> AudioError:
    """The error for audio libsndfile cannot open, with the formats it reads and (for a file, `convert`)
    how to convert it (M4A/AAC, WMA and video containers are the usual cases)."""
    how = f": convert it, e.g. `ffmpeg -i {path.name} -ar 24000 {path.stem}.flac`" if convert else ""
    return AudioError(
        path,
        "audio_unreadable",
        f"cannot be decoded as audio ({_reason(e)}); readable formats are {READABLE_FORMATS}{how}",
    )


def _reason(e: Exception) -> str:
    """libsndfile's reason without its copy of the path, which the error names already."""
    return getattr(e, "error_string", None) or str(e)


def _check_wav_complete(path: Path, source: AudioSource) -> None:
    """Compare the WAV data chunk's declared size with the bytes actually present (RIFF/WAVE only)."""
    try:
        if isinstance(source, bytes):
            sizes = _wav_data_sizes(io.BytesIO(source), len(source))
        else:
            with path.open("rb") as f:
                sizes = _wav_data_sizes(f, path.stat().st_size)
    except OSError as e:
        raise AudioError(path, "audio_unreadable", f"cannot be read ({e})") from e
    if sizes is None:
        return
    declared, available = sizes
    if 0 < declared < _UNKNOWN_SIZE_FROM and available < declared:
        raise AudioError(
            path,
            "audio_truncated",
            f"truncated: the WAV header promises {declared} bytes of audio but only {available} "
            f"({100 * available / declared:.0f}%) are present; re-copy or re-export the file",
        )


def _wav_data_sizes(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, present) byte counts of the WAV data chunk in `f` (`size` bytes long); None without
    RIFF/WAVE header or data chunk."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        chunk = f.read(8)
        declared = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"data":
            return declared, size - pos - 8
        pos += 8 + declared + (declared & 1)
    return None


def load_audio(source: AudioSource, target_sr: int = TARGET_SR, name: str | None = None) -> np.ndarray:
    """Decode a clip (a file, or encoded bytes named `name`; see `audio_info`) to float32 mono at
    `target_sr`: channels are averaged, other rates resampled with soxr (high quality), so the codec always
    sees the format it was trained on.

    Decoded block by block until the data ends, so memory follows the audio really there: a header that
    claims more frames than the file holds (a FLAC may claim 2^36) costs nothing."""
    info = audio_info(source, name)
    blocks = []
    try:
        with sf.SoundFile(_opened(source)) as f:
            while (block := f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)).shape[0]:
                blocks.append(block.mean(axis=1) if block.shape[1] > 1 else block[:, 0])
    except (sf.SoundFileError, OSError) as e:
        raise undecodable(info.path, e, convert=not isinstance(source, bytes)) from e
    if not blocks:
        raise AudioError(info.path, "audio_empty", "contains no audio samples")
    mono = np.concatenate(blocks)
    bad = np.flatnonzero(~np.isfinite(mono))
    if bad.size:
        raise _nonfinite(info.path, int(bad[0]), info.sample_rate)
    return resample(mono, info.sample_rate, target_sr)


def resample(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """A mono float waveform at `sr` as contiguous float32 at `target_sr` (unchanged if the rates match).

    The one resampler of the toolkit (soxr, high quality): clips read for the codec and waveforms handed
    to the 16 kHz evaluation models go through the same filter.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (n,), got shape {x.shape}")
    if sr != target_sr:
        x = soxr.resample(x, sr, target_sr, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)


def _nonfinite(path: Path, frame: int, sr: int) -> AudioError:
    return AudioError(
        path, "audio_nonfinite", f"contains NaN or infinite samples (first at {frame / sr:.3f} s)"
    )


def scan_audio(path: str | os.PathLike[str]) -> AudioStats:
    """Check a clip fully (decodable to the end, finite) and measure its levels, block by block so that
    even an absurdly long file costs little memory. Raises `AudioError` for anything that makes the clip
    unusable."""
    info = audio_info(path)
    peak = 0.0
    sum_sq = 0.0
    clipped = 0
    frames = 0
    try:
        for block in sf.blocks(str(info.path), blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
            mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1)
            if not np.isfinite(mono).all():
                bad = int(np.flatnonzero(~np.isfinite(mono))[0])
                raise _nonfinite(info.path, frames + bad, info.sample_rate)
            peak = max(peak, float(block.max()), -float(block.min()))
            clipped += int(np.count_nonzero(block >= CLIP_LEVEL)) + int(
                np.count_nonzero(block <= -CLIP_LEVEL)
            )
            sum_sq += float(np.dot(mono, mono))
            frames += block.shape[0]
    except (sf.SoundFileError, OSError) as e:
        raise AudioError(info.path, "audio_unreadable", f"cannot be decoded to the end ({_reason(e)})") from e
    if frames == 0:
        raise AudioError(info.path, "audio_empty", "contains no audio samples")
    rms = float(np.sqrt(sum_sq / frames))
    return AudioStats(info=info, peak=peak, rms=rms, clipped_fraction=clipped / (frames * info.channels))


def write_wav(path: str | os.PathLike[str], audio: np.ndarray, sr: int = TARGET_SR) -> Path:
    """Write 16-bit PCM WAV (mono `(n,)` or `(n, channels)`), creating parent folders.

    Values beyond [-1, 1] are clipped (with a warning) rather than left to wrap around in the integer format;
    NaN or infinite values are refused because they mean the producer is broken.
    """
    path = Path(path)
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise ValueError(f"{path}: expected a non-empty (n,) or (n, channels) array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: refusing to write NaN or infinite samples")
    over = int(np.count_nonzero(np.abs(data) > 1.0))
    if over:
        log.warning("%s: clipping %d samples beyond [-1, 1]", path, over)
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, format="WAV", subtype="PCM_16")
    return path
