"""Why not the processor's own labels? transformers' documented training step against ours, side by side.

    PYTHONPATH=src python bench/labels_side_by_side.py [--steps 40] [--work DIR]

transformers' docs for Higgs Audio v2 show a training step: the conversation through
`processor.apply_chat_template(..., output_labels=True)`, then `model(**inputs).loss.backward()`. Those
labels (`HiggsAudioV2Processor.__call__`) set every stream BOS and every stream EOS of `audio_labels` to
-100, and label every clip in the conversation, the reference included (and, where the model has a text
head, the system and user text). A model trained on them never sees the stop. Ours
(`training.examples.mask_labels`) learn the target clip's codes and its stream EOS, nothing else.

Both sides memorise one sample of the demo's synthetic data on the tiny model, CPU, full fine-tuning from
the same weights with the same optimizer (`training.build.build_optimizer` of the same config: AdamW,
constant learning rate, gradient clipping), the same number of steps at the same learning rate:

* transformers: the docs' calls verbatim (`AutoProcessor`, `HiggsAudioV2ForConditionalGeneration`,
  `apply_chat_template(conversation, add_generation_prompt=True, tokenize=True, return_dict=True,
  sampling_rate=24000, return_tensors="pt", output_labels=True)`, `model(**inputs).loss.backward()`) in a
  plain loop; the conversation is our cloning conversation with the two clips' waveforms in it, so its
  tokens and codes are ours (the script checks and prints that): only the labels differ;
* ours: `tiny.memorise.memorise`, the `higgs-tune demo`'s path (prepare, then the trainer).

Each model then clones the sample greedily through `inference` (`tiny.memorise.clone_memorised`, as the
demo does), with the same prompt, at most twice the target's length plus a second. The script prints, per
side, what is labelled and how the clone ends, and the transformers version it ran with. It reports and
never asserts the transformers side: a release may change those labels. It takes about 45 s of CPU time
(2 torch threads): under a minute on 2 free cores, under 2 on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from higgs_tune.tiny.memorise import MemorisedClone

STEPS = 40
"""Memorising steps, each side: twice the fewest at which our side's greedy clone is the target exactly
on the tiny model (20; 10 are not enough), for margin. The demo takes 120 (`tiny.memorise.MEMORISE_STEPS`);
40 keep this script near a minute on 2 CPU cores. Measured on the demo's first sample: from 30 steps on,
the transformers side's clone starts with the target's codes too (all frames but the last, which its
most-delayed codebooks generate after the missed stop), so by 40 both sides have memorised the codes and
what differs is the stop."""


@dataclass(frozen=True)
class Labels:
    """What one side's labels ask the model to learn, counted on the sample's training example."""

    audio_codes: int  # labelled (frame, codebook) entries of audio_labels
    stream_eos: int  # of which the stream EOS
    reference_codes: int  # of which in the reference clip
    text_tokens: int  # labelled text positions (learned only by a model with a text head)


def audio_label_counts(audio_input_ids: torch.Tensor, audio_labels: torch.Tensor, bos: int, eos: int):
    """(labelled codes, of which stream EOS, of which in the first clip, the reference) of a [F, K]
    example. A clip starts at its all-BOS frame (the stream BOS with the delay pattern's BOS filler)."""
    labelled = audio_labels != -100
    starts = (audio_input_ids == bos).all(-1).nonzero().flatten().tolist()
    reference_end = starts[1] if len(starts) > 1 else audio_input_ids.shape[0]
    return (
        int(labelled.sum()),
        int((labelled & (audio_input_ids == eos)).sum()),
        int(labelled[:reference_end].sum()),
    )


def docs_inputs(processor, sample, settings) -> dict:
    """The docs' training step's inputs: the cloning conversation (system, scene, the reference's
    transcript and audio, the text, the target audio) through the processor with `output_labels=True`."""
    from higgs_tune.data.audio import load_audio

    sr = processor.feature_extractor.sampling_rate
    scene = sample.scene or settings.scene
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": settings.system_prompt}]},
        *([{"role": "scene", "content": [{"type": "text", "text": scene}]}] if scene else []),
        {"role": "user", "content": [{"type": "text", "text": sample.ref_text}]},
        {"role": "assistant", "content": [{"type": "audio", "audio": load_audio(sample.ref_audio, sr)}]},
        {"role": "user", "content": [{"type": "text", "text": sample.text}]},
        {"role": "assistant", "content": [{"type": "audio", "audio": load_audio(sample.audio, sr)}]},
    ]
    return processor.apply_chat_template(
        conversation,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        sampling_rate=24000,
        return_tensors="pt",
        output_labels=True,
    )


def same_inputs(inputs: dict, example) -> str:
    """Whether the processor's inputs are our example's tokens and codes (a tail of extra tokens, which
    no audio position sees, is said)."""
    ids, ours = inputs["input_ids"][0], example.input_ids
    codes = inputs["audio_input_ids"][0]
    if codes.shape != example.audio_input_ids.shape or not torch.equal(codes, example.audio_input_ids):
        return "NO: other audio codes than ours"
    if ids.shape[0] < ours.shape[0] or not torch.equal(ids[: ours.shape[0]], ours):
        return "NO: other tokens than ours"
    extra = ids.shape[0] - ours.shape[0]
    return "yes" + (f" (+{extra} generation-prompt tokens at the end)" if extra else "")


def transformers_side(model_dir: Path, sample, cfg, ours: dict) -> tuple[Labels, MemorisedClone, str]:
    """The docs' training step, `cfg.max_steps` times on the one sample; cloned as `ours` was (its
    processor, prompt settings and target). Returns (labels, clone, whether its inputs are ours)."""
    from transformers import AutoProcessor, HiggsAudioV2ForConditionalGeneration

    from higgs_tune.tiny.memorise import clone_memorised
    from higgs_tune.training.build import build_optimizer

    processor = AutoProcessor.from_pretrained(model_dir)
    model = HiggsAudioV2ForConditionalGeneration.from_pretrained(model_dir)
    inputs = docs_inputs(processor, sample, ours["settings"])
    codes, eos_codes, reference = audio_label_counts(
        inputs["audio_input_ids"][0],
        inputs["audio_labels"][0],
        processor.audio_stream_bos_id,
        processor.audio_stream_eos_id,
    )
    labels = Labels(codes, eos_codes, reference, int((inputs["labels"] != -100).sum()))

    torch.manual_seed(cfg.seed)
    model.train()
    optimizer = build_optimizer(cfg, model)
    for _ in range(cfg.max_steps):
        model(**inputs).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    clone = clone_memorised(model, ours["processor"], ours["settings"], sample, ours["target"])
    return labels, clone, same_inputs(inputs, ours["example"])


def our_side(model_dir: Path, sample, cfg, work: Path) -> dict:
    """`tiny.memorise.memorise` on the one sample: its labels and clone, and what the other side is
    compared and cloned with (the training example, the target codes, the processor and prompt)."""
    from higgs_tune.inference.generate import load_for_cloning
    from higgs_tune.prepared.dataset import PreparedData
    from higgs_tune.tiny.memorise import clone_memorised, memorise, prepared_target
    from higgs_tune.training.examples import ExampleDataset

    checkpoint = memorise(model_dir, [sample], work, cfg.max_steps, cfg.learning_rate)
    data = PreparedData(work / "prepared")
    model, processor, settings = load_for_cloning(str(model_dir), checkpoint)
    example = ExampleDataset(data, processor, settings, learn_text=cfg.text_loss_weight > 0)[0]
    codes, eos_codes, reference = audio_label_counts(
        example.audio_input_ids,
        example.audio_labels,
        processor.audio_stream_bos_id,
        processor.audio_stream_eos_id,
    )
    labels = Labels(codes, eos_codes, reference, int((example.labels != -100).sum()))
    target = prepared_target(data, sample.id)
    clone = clone_memorised(model, processor, settings, sample, target)
    return {
        "labels": labels,
        "clone": clone,
        "example": example,
        "target": target,
        "processor": processor,
        "settings": settings,
    }


def run(work: Path, steps: int, model_dir: Path | None = None, sample=None) -> dict:
    """Both sides on `sample` (default: the first of the demo's synthetic data) with the tiny model
    `model_dir` (default: built, seed 0), in `work`; prints the table and returns its rows
    ({side: (Labels, MemorisedClone)}) and the inputs check."""
    import transformers

    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.tiny.dataset import write_synthetic_dataset
    from higgs_tune.tiny.memorise import memorise_config
    from higgs_tune.tiny.model import build_tiny_model

    started = time.perf_counter()
    if model_dir is None:
        model_dir = build_tiny_model(work / "tiny-model", seed=0)
    if sample is None:
        sample = read_manifest(write_synthetic_dataset(work / "data")["manifest_jsonl"])[0]
    cfg = memorise_config(model_dir, work / "ours" / "prepared", work / "ours" / "run", steps)
    ours = our_side(model_dir, sample, cfg, work / "ours")
    theirs = transformers_side(model_dir, sample, cfg, ours)
    rows = {"transformers": theirs[:2], "ours": (ours["labels"], ours["clone"])}
    print_table(rows, theirs[2], sample.id, steps, cfg.learning_rate, transformers.__version__)
    print(f"({time.perf_counter() - started:.0f} s wall, CPU, torch threads {torch.get_num_threads()})")
    return {"rows": rows, "same_inputs": theirs[2]}


def print_table(rows: dict, inputs: str, sample_id: str, steps: int, lr: float, version: str) -> None:
    (tl, tc), (ol, oc) = rows["transformers"], rows["ours"]

    def ending(c) -> str:
        return "stream EOS" if c.stopped_by_eos else f"none: cut at {c.frame_limit}"

    lines = [
        ("labelled audio codes (frame x codebook)", tl.audio_codes, ol.audio_codes),
        ("  of which stream EOS", tl.stream_eos, ol.stream_eos),
        ("  of which the reference clip's", tl.reference_codes, ol.reference_codes),
        ("labelled text tokens (need a text head)", tl.text_tokens, ol.text_tokens),
        (f"greedy clone frames (target {oc.target_frames})", tc.frames, oc.frames),
        ("  stopped by", ending(tc), ending(oc)),
        ("  leading frames equal to the target's", tc.matching_frames, oc.matching_frames),
        ("  codes = the target exactly", _yes(tc.identical), _yes(oc.identical)),
    ]
    print(
        f"\nOne sample ({sample_id}) memorised on the tiny model: full fine-tuning, {steps} steps at "
        f"lr {lr:g}, CPU;\ntransformers {version}; the processor's inputs are ours: {inputs}\n"
    )
    width = max(len(label) for label, _, _ in lines)
    print(f"{'':{width}}   {'output_labels=True':>26}   {'higgs-tune mask_labels':>26}")
    for label, a, b in lines:
        print(f"{label:{width}}   {str(a):>26}   {str(b):>26}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=STEPS, help="memorising steps, each side")
    p.add_argument(
        "--work", type=Path, help="folder to keep the model, data and run in (default: a temporary one)"
    )
    args = p.parse_args(argv)
    from higgs_tune.files import check_output_folder
    from higgs_tune.logs import quiet_transformers

    logging.basicConfig(level=logging.WARNING)
    quiet_transformers()
    if args.work is not None:
        check_output_folder(args.work, "--work")
        return run(args.work, args.steps)
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        return run(Path(tmp), args.steps)


if __name__ == "__main__":
    main()
