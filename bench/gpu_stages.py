"""`bench/gpu.sh`'s other stages: `prepare`'s codec encoding and `ingest`'s ASR, in audio hours per GPU hour.

    PYTHONPATH=src python bench/gpu_stages.py --work DIR [--tiny]

Codec: `model.codes.encode_waveform` (what `prepare` runs, one clip at a time) on the released codec's
architecture (HiggsAudioV2TokenizerConfig defaults, random weights) over 10 s clips. ASR:
`scoring.asr.Transcriber` at `ingest`'s default batch size (`IngestSettings.asr_batch_size`) with the
tiny Whisper (`tiny.eval_models`; a real Whisper is not on the machine), so its figure is the pipeline's
overhead rather than a released model's speed. `--tiny`: the tiny codec, 2 clips of 1 s (`--dry-run`).
Cloning's real-time factor is `gpu_extras.py rtf`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def _timed(device: torch.device, fn) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def codec_rate(work: Path, device: torch.device, clips: int, seconds: float, tiny: bool) -> float:
    """Audio hours encoded per wall hour by prepare's encoder."""
    from gpu_extras import tiny_assets
    from transformers import HiggsAudioV2TokenizerConfig, HiggsAudioV2TokenizerModel

    from higgs_tune.model.codes import encode_waveform
    from higgs_tune.model.loading import load_processor

    processor = load_processor(tiny_assets(work, with_data=False)[0])
    if not tiny:
        with torch.device(device):
            processor.audio_tokenizer = HiggsAudioV2TokenizerModel(HiggsAudioV2TokenizerConfig()).eval()
    processor.audio_tokenizer.to(device)
    rate = processor.feature_extractor.sampling_rate
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(seconds * rate)).astype(np.float32) * 0.1 for _ in range(clips)]
    with torch.inference_mode():
        encode_waveform(processor, waves[0])  # warm-up
        wall = _timed(device, lambda: [encode_waveform(processor, w) for w in waves])
    return clips * seconds / wall


def asr_rate(work: Path, device: torch.device, clips: int, seconds: float) -> tuple[float, int]:
    """(audio hours transcribed per wall hour, batch size) at ingest's default batch size."""
    from higgs_tune.ingest.settings import IngestSettings
    from higgs_tune.scoring.asr import Transcriber
    from higgs_tune.tiny.eval_models import build_tiny_asr

    asr_dir = work / "tiny-asr"
    if not (asr_dir / "config.json").is_file():
        build_tiny_asr(asr_dir)
    batch = IngestSettings.model_fields["asr_batch_size"].default
    asr = Transcriber(str(asr_dir), language="en", device=device, batch_size=batch, max_new_tokens=24)
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(int(seconds * 16_000)).astype(np.float32) * 0.1 for _ in range(clips)]
    asr.transcribe(waves[:1], sr=16_000)  # warm-up
    return clips * seconds / _timed(device, lambda: asr.transcribe(waves, sr=16_000)), batch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    from higgs_tune.logs import quiet_transformers

    quiet_transformers()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    clips, seconds = (2, 1.0) if args.tiny else (32, 10.0)
    work = Path(args.work)
    codec = codec_rate(work, device, clips, seconds, args.tiny)
    arch = "tiny codec" if args.tiny else "released codec architecture, random weights"
    print(f"\nprepare's codec encoding ({arch}, {device.type}, {clips} clips of {seconds:g} s, one by one): "
          f"{codec:,.1f} audio hours per GPU hour", flush=True)  # fmt: skip
    asr, batch = asr_rate(work, device, 2 if args.tiny else 64, seconds)
    print(f"ingest's ASR (tiny Whisper, batch {batch}, {device.type}): {asr:,.1f} audio hours per GPU hour",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
