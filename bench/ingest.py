"""Benchmark of `ingest`: audio-hours ingested per wall-hour, VAD only and VAD + tiny ASR, 1 and 2 workers.

    PYTHONPATH=src python bench/ingest.py [--recordings 4] [--minutes 1.0]

Builds a folder of long untranscribed recordings (synthetic speech, `tiny.synth`, joined by 0.6-1.5 s
pauses of low noise; 2 speakers) and the tiny random Whisper in a temporary folder, then times, in one run:

* VAD only: decoding, silero-vad, slicing, the audio filters and writing the clips (everything but the
  ASR), through the same worker pool `ingest` uses (`ingest.run._results`);
* VAD + tiny ASR: the whole `ingest`, the tiny Whisper transcribing every clip (at most 8 tokens each;
  its noise words are often too few for the clip's length, so the letters-per-second filter rejects
  many clips there: fewer clips are kept than in the VAD-only run, the work done is the same).

Each figure is audio hours in / wall hours, worker start-up included. The tiny Whisper costs little; the
docs/ingest-at-scale.md says what a real one adds.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from higgs_tune.tiny.synth import synth_speech

SR = 24_000


def write_recordings(root: Path, recordings: int, minutes: float) -> float:
    """`recordings` files of about `minutes` each, built from a few synthesised utterances; total seconds."""
    rng = np.random.default_rng(0)
    voices = [{"pitch_hz": 130.0, "formant_scale": 1.0}, {"pitch_hz": 200.0, "formant_scale": 1.2}]
    bases = [
        [synth_speech(6.0, SR, seed=s, syllables_per_second=5.0, pause_prob=0.0, **v) for s in range(3)]
        for v in voices
    ]
    total = 0.0
    for i in range(recordings):
        pieces, seconds = [], 0.0
        while seconds < 60 * minutes:
            base = bases[i % 2][int(rng.integers(3))]
            n = round(rng.uniform(2.0, 6.0) * SR)
            pause = round(rng.uniform(0.6, 1.5) * SR)
            pieces += [base[:n], (0.003 * rng.standard_normal(pause)).astype(np.float32)]
            seconds += (n + pause) / SR
        (root / f"speaker{i % 2}").mkdir(parents=True, exist_ok=True)
        sf.write(root / f"speaker{i % 2}" / f"rec{i}.flac", np.concatenate(pieces), SR)
        total += seconds
    return total


def vad_only(source: Path, out: Path, workers: int) -> tuple[int, int]:
    """Kept and rejected clips."""
    from higgs_tune.ingest.run import _my_jobs, _results
    from higgs_tune.ingest.settings import IngestSettings
    from higgs_tune.ingest.sources import read_source

    settings = IngestSettings()
    jobs = _my_jobs(read_source(str(source), settings.source), 1, (0, 1), out, [])
    results = list(_results(jobs, settings, out, workers))
    return sum(len(r.kept) for r in results), sum(len(r.rejected) for r in results)


def with_asr(source: Path, out: Path, workers: int, asr: Path) -> tuple[int, int]:
    """Kept and rejected clips."""
    from higgs_tune.ingest.run import ingest
    from higgs_tune.ingest.settings import IngestSettings

    settings = IngestSettings(asr_model=str(asr), asr_max_new_tokens=8)
    summary = ingest(str(source), out, settings, workers=workers)
    return summary.kept, summary.rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from higgs_tune.tiny.eval_models import build_tiny_asr

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds = write_recordings(root / "recordings", args.recordings, args.minutes)
        asr = build_tiny_asr(root / "whisper")
        print(f"{args.recordings} recordings, {seconds / 60:.1f} min of audio")
        for label in ("VAD only", "VAD + tiny ASR"):
            for workers in (1, 2):
                out = root / f"{'asr' if 'ASR' in label else 'vad'}-{workers}"
                start = time.perf_counter()
                if label == "VAD only":
                    kept, rejected = vad_only(root / "recordings", out, workers)
                else:
                    kept, rejected = with_asr(root / "recordings", out, workers, asr)
                wall = time.perf_counter() - start
                print(
                    f"{label:<16} {workers} worker{'s' if workers > 1 else ' '}: {wall:6.1f} s, "
                    f"{seconds / wall:6.1f} audio-h per wall-h, {kept} clips kept, {rejected} rejected"
                )


if __name__ == "__main__":
    main()
