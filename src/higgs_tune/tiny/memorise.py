"""The demo's proof that the pipeline is faithful: memorise one training sample, then clone it exactly.

A 2-layer random model cannot clone a held-out voice in a few CPU minutes, so a clip of its held-out
clones is not speech and says little. What it can show is the correctness contract itself: trained on one
sample until memorised, the model cloning that sample greedily, with the same prompt, must give back the
prepared target codes exactly and stop by its stream EOS. Anything that disagrees between training and
inference (prompt, delay pattern, EOS, codec round trip) breaks that equality, so the demo checks it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from higgs_tune.config import PromptSettings, TrainSettings
from higgs_tune.data.audio import write_wav
from higgs_tune.data.samples import Sample
from higgs_tune.inference.clone import clone_one
from higgs_tune.inference.generate import load_for_cloning
from higgs_tune.inference.previews import TrainingPreviews
from higgs_tune.inference.settings import SamplingSettings
from higgs_tune.model.loading import load_processor
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.prepared.prepare import prepare_dataset
from higgs_tune.prepared.settings import PrepareSettings
from higgs_tune.training.run import train

log = logging.getLogger(__name__)

MEMORISE_STEPS = 120
"""Full fine-tuning steps on the one sample: enough for greedy decoding to reproduce it on the tiny model."""
MEMORISE_LEARNING_RATE = 3e-3


@dataclass(frozen=True)
class MemorisedClone:
    """The greedy clone of a memorised sample, compared with that sample's prepared target codes."""

    sample_id: str
    wav: Path | None
    seconds: float
    frames: int
    frame_limit: int
    target_frames: int
    stopped_by_eos: bool
    identical: bool
    matching_frames: int  # leading frames whose codes are all the target's

    def describe(self) -> str:
        """One plain line: how long the clone is, how it ended, and whether it is the target exactly."""
        ending = (
            "stopped by EOS" if self.stopped_by_eos else f"cut at the {self.frame_limit}-frame limit (no EOS)"
        )
        same = "yes" if self.identical else f"NO (target has {self.target_frames} frames)"
        return (
            f"memorised clone of {self.sample_id}: {self.seconds:.2f} s, {self.frames} frames, {ending}, "
            f"codes identical to the target: {same} (greedy, same prompt)"
        )

    def as_json(self) -> dict:
        return {**asdict(self), "wav": str(self.wav) if self.wav else None}


def memorise_config(
    model: Path, data: Path, run: Path, steps: int, learning_rate: float = MEMORISE_LEARNING_RATE
) -> TrainSettings:
    """Full fine-tuning at a high constant learning rate on one sample (or a few), nothing held out: the
    quickest way for a tiny model to make the sample's codes its greedy choice at every frame."""
    return TrainSettings(
        model=str(model),
        data=str(data),
        output_dir=str(run),
        full=True,
        max_steps=steps,
        learning_rate=learning_rate,
        warmup_steps=0,
        lr_scheduler_type="constant",
        per_device_train_batch_size=1,
        eval_fraction=0,
        logging_steps=max(1, steps // 4),
        save_steps=steps,
    )


def memorise_and_clone(
    model: Path, sample: Sample, prepared: PreparedData, out: Path, steps: int = MEMORISE_STEPS
) -> MemorisedClone:
    """Train `model` on `sample` alone until memorised, clone it greedily and compare with its codes in
    `prepared` (the main run's prepared data). Writes into `out`: the one-sample data, the run, clone.wav."""
    target = prepared_target(prepared, sample.id)
    checkpoint = memorise(model, [sample], out, steps)
    clone_model, processor, prompt = load_for_cloning(str(model), checkpoint)
    return clone_memorised(clone_model, processor, prompt, sample, target, out / "clone.wav")


def clone_memorised(
    model, processor, prompt: PromptSettings, sample: Sample, target: np.ndarray, wav: Path | None = None
) -> MemorisedClone:
    """Clone `sample` greedily with `model` (trained on it) and `prompt` (its training prompt), and
    compare with its `target` codes [K, T]; the clip is written to `wav` if given. At most twice the
    target's length plus a second is generated, so a clone that never stops is cut, not run on."""
    rate = processor.audio_tokenizer.config.frame_rate
    clone = clone_one(
        model, processor, sample.ref_audio, sample.ref_text, sample.text, prompt,
        SamplingSettings(greedy=True), max_seconds=2 * target.shape[1] / rate + 1.0,
    )  # fmt: skip
    sr = processor.feature_extractor.sampling_rate
    written = (
        write_wav(wav, clone.audio, sr) if wav is not None and clone.audio.size else None
    )  # none if it stopped at once
    return MemorisedClone(
        sample_id=sample.id,
        wav=written,
        seconds=clone.codes.shape[1] / rate,
        frames=clone.codes.shape[1],
        frame_limit=clone.frame_limit,
        target_frames=target.shape[1],
        stopped_by_eos=clone.stopped_by_eos,
        identical=clone.codes.shape == target.shape and bool(np.array_equal(clone.codes, target)),
        matching_frames=_matching_frames(clone.codes, target),
    )


def _matching_frames(codes: np.ndarray, target: np.ndarray) -> int:
    """How many leading frames of `codes` [K, T'] equal the target's [K, T] in every codebook."""
    n = min(codes.shape[1], target.shape[1])
    differs = np.flatnonzero((codes[:, :n] != target[:, :n]).any(axis=0))
    return int(differs[0]) if differs.size else n


def memorise(
    model: Path, samples: list[Sample], out: Path, steps: int, learning_rate: float = MEMORISE_LEARNING_RATE
) -> Path:
    """Fully fine-tune `model` on `samples` alone (prepared into `out/prepared`, trained into `out/run`,
    rebuilt each time); returns the checkpoint. With a few samples it stops like them: a model to sample
    candidates from that really ends its clips (the preference tests)."""
    data = out / "prepared"
    prepare_dataset(
        samples, load_processor(model), data, model_id=str(model), settings=PrepareSettings(workers=0)
    )
    cfg = memorise_config(model, data, out / "run", steps, learning_rate)
    return train(cfg, overwrite=True, previews=TrainingPreviews)


def prepared_target(prepared: PreparedData, sample_id: str) -> np.ndarray:
    """The prepared target codes [K, T] of the sample with this id."""
    for i, record in enumerate(prepared.records):
        if record["id"] == sample_id:
            return prepared[i].target_codes
    raise KeyError(f"sample {sample_id!r} is not in the prepared dataset {prepared.root}")
