"""Benchmark of `prepare` on the tiny codec: encoding speed, deduplication, and what preparing buys training.

    PYTHONPATH=src python bench/prepare.py [--clips 200] [--speakers 25] [--refs-per-target 5]

Builds the tiny model and a zero-shot corpus of synthetic speech (16 kHz FLAC, so loading includes a real
resample to the codec's 24 kHz) in a temporary folder, then measures in one run:

* clips/s of `prepare_dataset` with 1 and 2 loading worker processes (hashing and writing included);
* the dedupe ratio of the zero-shot manifest (clip uses / distinct clips);
* a training epoch's data loading: `ExampleDataset` over the prepared data against loading and encoding both
  clips of every sample on the fly (timed on a subset, scaled to the epoch).

torch runs on one thread throughout: on a small shared machine more threads only spin against the loading
workers, and one thread keeps the on-the-fly baseline honest. The tiny codec is far cheaper than the real one,
so on real data the gap between preparing once and encoding every epoch is wider still.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from higgs_tune.data.samples import Sample
from higgs_tune.tiny.synth import synth_speech

if TYPE_CHECKING:
    from higgs_tune.prepared.dataset import PreparedData

# torch and transformers are imported inside the functions that need them: the loading workers are spawned,
# and spawned processes re-import the main script, which should cost them as little as the light
# `higgs-tune` entry point does rather than seconds of torch imports.

SOURCE_SR = 16_000
LOAD_PASSES = 5  # loading alone is fast: repeat it so that starting the workers does not dominate


def write_corpus(root: Path, clips: int, speakers: int, refs_per_target: int, seed: int = 0) -> list[Sample]:
    """Clips of 1-4 s cut from one synthetic stream per speaker. Each clip is the target of one sample per
    reference (the speaker's next clips), so each also serves as reference for that many targets."""
    rng = np.random.default_rng(seed)
    per_speaker = clips // speakers
    samples = []
    for spk in range(speakers):
        stream = synth_speech(
            14.0,
            sr=SOURCE_SR,
            seed=seed + spk,
            pitch_hz=float(rng.uniform(90, 230)),
            formant_scale=float(rng.uniform(0.9, 1.2)),
        )
        paths = []
        for i in range(per_speaker):
            seconds = rng.uniform(1.0, 4.0)
            start = int(rng.uniform(0, 14.0 - seconds) * SOURCE_SR)
            path = root / f"spk{spk:02d}_{i:02d}.flac"
            sf.write(str(path), stream[start : start + int(seconds * SOURCE_SR)], SOURCE_SR)
            paths.append(path)
        for t, target in enumerate(paths):
            for r in range(1, refs_per_target + 1):
                ref = paths[(t + r) % per_speaker]
                samples.append(
                    Sample(f"spk{spk:02d}_{t:02d}_r{r}", ref, "reference words", "target words", target)
                )
    return samples


def time_prepare(
    samples: list[Sample], processor, out: Path, model_id: str, workers: int
) -> tuple[float, dict]:
    from higgs_tune.prepared.prepare import prepare_dataset
    from higgs_tune.prepared.settings import PrepareSettings

    start = time.perf_counter()
    index = prepare_dataset(samples, processor, out, model_id, settings=PrepareSettings(workers=workers))
    return time.perf_counter() - start, index


def time_load(samples: list[Sample], workers: int, passes: int = LOAD_PASSES) -> float:
    """Seconds to load and resample every distinct clip `passes` times without the codec: the rate at
    which the workers could feed a codec faster than the tiny one on a CPU (the real codec on a GPU)."""
    from higgs_tune.prepared.clip_loading import load_clips

    paths = sorted({p for s in samples for p in (s.ref_audio, s.audio)}) * passes
    start = time.perf_counter()
    for _ in load_clips(((p.name, p) for p in paths), 24_000, workers):
        pass
    return time.perf_counter() - start


def time_codes_prepared(data: PreparedData) -> float:
    """Seconds to read both clips' codes of every sample: the data access alone, without the prompt."""
    start = time.perf_counter()
    for i in range(len(data)):
        data[i]
    return time.perf_counter() - start


def time_epoch_prepared(data: PreparedData, processor) -> float:
    """Seconds to build every example of the epoch from prepared codes."""
    from higgs_tune.config import PromptSettings
    from higgs_tune.training.examples import ExampleDataset

    dataset = ExampleDataset(data, processor, PromptSettings(), learn_text=False)
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return time.perf_counter() - start


def time_on_the_fly(samples: list[Sample], processor) -> float:
    """Seconds per sample to load and encode both clips and build the example, as a loader without
    prepared data must do every epoch."""
    import torch

    from higgs_tune.config import PromptSettings
    from higgs_tune.model.codes import encode_file
    from higgs_tune.training.examples import build_example

    settings = PromptSettings()
    start = time.perf_counter()
    for s in samples:
        ref = torch.from_numpy(encode_file(processor, s.ref_audio))
        target = torch.from_numpy(encode_file(processor, s.audio))
        build_example(processor, s.id, s.ref_text, ref, s.text, target, settings)
    return (time.perf_counter() - start) / len(samples)


def main() -> None:
    import torch

    from higgs_tune.logs import quiet_transformers
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.dataset import PreparedData
    from higgs_tune.tiny.model import build_tiny_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--speakers", type=int, default=25)
    parser.add_argument("--refs-per-target", type=int, default=5)
    parser.add_argument("--on-the-fly-samples", type=int, default=40, help="subset timed for the baseline")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quiet_transformers()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(root / "tiny")
        processor = load_processor(model_dir)
        (root / "clips").mkdir()
        samples = write_corpus(root / "clips", args.clips, args.speakers, args.refs_per_target)
        runs = {w: time_prepare(samples, processor, root / f"data-w{w}", str(model_dir), w) for w in (1, 2)}
        index = runs[1][1]
        load_only = {w: time_load(samples, w) for w in (1, 2)}
        data = PreparedData(root / "data-w1")
        epochs = {
            "ExampleDataset over PreparedData": time_epoch_prepared(data, processor),
            "  of which reading the codes": time_codes_prepared(data),
        }
        subset = samples[:: max(1, len(samples) // args.on_the_fly_samples)][: args.on_the_fly_samples]
        fly_epoch = time_on_the_fly(subset, processor) * len(samples)

    report(index, runs, load_only, epochs, fly_epoch, len(subset))


def table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned first column, right-aligned figures."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print(r[0].ljust(widths[0]) + "".join(c.rjust(w + 3) for c, w in zip(r[1:], widths[1:], strict=True)))


def report(
    index: dict,
    runs: dict[int, tuple[float, dict]],
    load_only: dict[int, float],
    epochs: dict[str, float],
    fly: float,
    fly_samples: int,
) -> None:
    clips, samples, hours = index["num_clips"], index["num_samples"], index["audio_hours"]
    print(f"\nprepare on the tiny codec (CPU, 1 torch thread): {clips} clips of 1-4 s synthetic speech,")
    print(f"{hours * 3600:.0f} s of audio as {SOURCE_SR // 1000} kHz FLAC (loading resamples to 24 kHz)\n")
    rows = [
        [f"prepare, {w} loading worker{'s' * (w > 1)}", t, 1, runs[1][0] / t] for w, (t, _) in runs.items()
    ] + [
        [f"loading alone, {w} worker{'s' * (w > 1)}", t, LOAD_PASSES, load_only[1] / t]
        for w, t in load_only.items()
    ]
    table(
        ["", "seconds", "clips/s", "audio-h/s", "vs 1 worker"],
        [
            [label, f"{t:.2f}", f"{n * clips / t:.1f}", f"{n * hours / t:.4f}", f"{r:.2f}x"]
            for label, t, n, r in rows
        ],
    )
    print(f"(loading alone: every clip loaded {LOAD_PASSES} times, worker start-up included)")
    print(
        f"\nzero-shot manifest: {samples} samples, {index['num_clip_uses']} clip uses, "
        f"{clips} distinct clips: dedupe ratio {index['dedupe_ratio']:.1f}x\n"
    )
    table(
        [f"one training epoch ({samples} samples)", "seconds", "samples/s", "speed-up"],
        [
            ["load + encode both clips + build example", f"{fly:.1f}", f"{samples / fly:.1f}", "1x"],
            *([label, f"{t:.3f}", f"{samples / t:.0f}", f"{fly / t:.0f}x"] for label, t in epochs.items()),
        ],
    )
    print(f"(on the fly: timed on {fly_samples} samples, scaled to the epoch)")


if __name__ == "__main__":
    main()
