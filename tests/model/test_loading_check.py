"""A checkpoint that does not fill the model is refused in one line, before any work starts.

transformers fills a weight the checkpoint lacks, or holds at another shape, with random values and only
logs it. The copies of the tiny model built here are what a user meets on the real path: a model in the
original higgs-audio layout (15 of its tensors under the original names) and a codec with one tensor missing.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from higgs_tune.errors import UserError
from higgs_tune.model.loading import (
    AUDIO_TOKENIZER_SUBDIR,
    CONVERSION_SCRIPT,
    CONVERTED_EXTRAS,
    load_checked,
    load_codec,
    load_model,
    load_processor,
)

WEIGHTS = "model.safetensors"
# What the original layout calls the audio embeddings, and the prefix it gives the decoder layers.
ORIGINAL_NAMES = {"model.embed_audio_tokens.embed_audio_tokens.weight": "audio_codebook_embeddings.weight"}
CODEC_TENSOR_DROPPED = "acoustic_decoder.block.0.conv_t1.weight"


def _rewrite(folder: Path, change) -> None:
    """Apply `change` to the tensors of `folder/model.safetensors` (a dict, edited in place), and save."""
    tensors = load_file(folder / WEIGHTS)
    change(tensors)
    save_file(tensors, folder / WEIGHTS, metadata={"format": "pt"})


def _copy(tiny_model_dir: Path, to: Path) -> Path:
    shutil.copytree(tiny_model_dir, to)
    return to


def _to_original_layout(tensors: dict[str, torch.Tensor]) -> None:
    """15 tensors renamed as the original higgs-audio checkpoint names them: the audio embeddings, and the
    14 tensors of decoder layer 0 (`model.layers.0.*` -> `layers.0.*`)."""
    for name in list(tensors):
        new = ORIGINAL_NAMES.get(name) or (
            name.removeprefix("model.") if name.startswith("model.layers.0.") else name
        )
        tensors[new] = tensors.pop(name)


@pytest.fixture(scope="module")
def original_layout_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _copy(tiny_model_dir, tmp_path_factory.mktemp("original") / "higgs-original-layout")
    _rewrite(folder, _to_original_layout)
    return folder


@pytest.fixture(scope="module")
def codec_missing_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _copy(tiny_model_dir, tmp_path_factory.mktemp("codec") / "higgs-codec-missing")
    _rewrite(folder / AUDIO_TOKENIZER_SUBDIR, lambda tensors: tensors.pop(CODEC_TENSOR_DROPPED))
    return folder


def test_the_tiny_folders_load_with_no_warning(tiny_model_dir, caplog):
    with caplog.at_level(logging.WARNING):
        load_model(tiny_model_dir)
        load_model(tiny_model_dir, use_text_head=True)  # the saved text head is used, not reported
        load_processor(tiny_model_dir)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_model_in_the_original_layout_is_refused_naming_the_conversion(original_layout_dir):
    with pytest.raises(UserError) as refused:
        load_model(original_layout_dir)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"{original_layout_dir}: not a complete Higgs Audio v2 model: 1 of its 32 weights missing from the "
        "checkpoint (model.embed_audio_tokens.embed_audio_tokens.weight), so they would be random"
    )
    # transformers adds the `model.` prefix that `layers.0.*` lacks itself: only the embeddings are lost
    assert "layers.0" not in message
    assert "audio_codebook_embeddings.weight" in message  # what the checkpoint holds instead
    assert CONVERSION_SCRIPT in message and "transformers' layout" in message


def test_a_codec_with_a_missing_tensor_is_refused(codec_missing_dir):
    codec_dir = codec_missing_dir / AUDIO_TOKENIZER_SUBDIR
    for load in (load_processor, lambda folder: load_codec(folder / AUDIO_TOKENIZER_SUBDIR)):
        with pytest.raises(UserError) as refused:
            load(codec_missing_dir)
        message = str(refused.value)
        assert "\n" not in message
        assert message.startswith(f"{codec_dir}: not a complete Higgs Audio v2 codec: 1 of its ")
        assert CODEC_TENSOR_DROPPED in message and "would be random" in message
        assert CONVERSION_SCRIPT not in message  # nothing of the original layout is in it


def test_a_weight_of_another_size_is_refused(tiny_model_dir, tmp_path):
    folder = _copy(tiny_model_dir, tmp_path / "resized")
    _rewrite(folder, lambda tensors: tensors.update({"model.norm.weight": torch.ones(63)}))
    with pytest.raises(
        UserError, match=r"1 of another size there \(model\.norm\.weight \(63,\) instead of \(64,\)\)"
    ):
        load_model(folder)


def test_unused_tensors_are_named_in_a_warning_except_a_converted_checkpoints_copies(
    tiny_model_dir, tmp_path, caplog
):
    folder = _copy(tiny_model_dir, tmp_path / "extras")

    def add(tensors: dict[str, torch.Tensor]) -> None:
        for name in CONVERTED_EXTRAS:
            tensors[name] = tensors["audio_lm_head.weight"].clone()
        tensors["stray.weight"] = torch.zeros(2)

    _rewrite(folder, add)
    with caplog.at_level(logging.WARNING, logger="higgs_tune.model.loading"):
        load_model(folder)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"{folder}: 1 unused tensor(s) in the checkpoint, ignored by the Higgs Audio v2 model (stray.weight)"
    ]


@pytest.mark.parametrize("broken", ["original_layout_dir", "codec_missing_dir"])
def test_clone_refuses_an_incomplete_checkpoint_in_one_line_before_writing(
    broken, request, run_cli, make_wav
):
    folder = request.getfixturevalue(broken)
    ref = make_wav("ref.wav", seconds=1.0)
    out = ref.parent / "out" / "clone.wav"
    code, stdout, stderr = run_cli(
        "clone", "--model", folder, "--ref-audio", ref, "--ref-text", "hello", "--text", "hello", "--out", out
    )
    assert code == 2
    assert "Traceback" not in stderr and stdout == ""
    errors = [line for line in stderr.splitlines() if "not a complete Higgs Audio v2" in line]
    assert len(errors) == 1 and "would be random" in errors[0]
    assert not out.parent.exists()


def test_the_measuring_models_load_complete(tmp_path, caplog):
    """Whisper ties its output projection to its token embeddings and saves only the latter: that is not
    a missing weight. A bare WavLM (no x-vector head) as the speaker model is one."""
    from transformers import WavLMForXVector, WhisperForConditionalGeneration

    from higgs_tune.scoring.speaker import SPEAKER_FIX
    from higgs_tune.tiny.eval_models import build_tiny_eval_models

    asr, speaker = build_tiny_eval_models(tmp_path / "eval-models")
    with caplog.at_level(logging.WARNING):
        load_checked(WhisperForConditionalGeneration, asr, "Whisper model", "")
        load_checked(WavLMForXVector, speaker, "speaker model", SPEAKER_FIX)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    _rewrite(speaker, lambda tensors: [tensors.pop(n) for n in list(tensors) if not n.startswith("wavlm.")])
    with pytest.raises(
        UserError, match=r"speaker model: .* weights missing from the checkpoint .*WavLMForXVector"
    ):
        load_checked(WavLMForXVector, speaker, "speaker model", SPEAKER_FIX)
