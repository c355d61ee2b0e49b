"""What is learned: only the target turn's codes and stream EOS (and closing text), shapes by construction."""

import pytest
import torch

from higgs_tune.config import PromptSettings
from higgs_tune.training.examples import IGNORE, build_example


def _codes(frames: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 1024, (8, frames), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("ref_frames,target_frames", [(1, 1), (7, 3), (25, 60), (80, 12)])
def test_labels_match_inputs_and_mask_all_but_target(processor, ref_frames, target_frames):
    ex = build_example(
        processor, "s", "ref", _codes(ref_frames, 1), "target", _codes(target_frames, 2), PromptSettings()
    )
    assert ex.labels.shape == ex.input_ids.shape
    assert ex.audio_labels.shape == ex.audio_input_ids.shape
    placeholders = (ex.input_ids == processor.audio_token_id) | (
        ex.input_ids == processor.audio_delay_token_id
    )
    assert int(placeholders.sum()) == ex.audio_input_ids.shape[0]

    ref_len = ref_frames + 2 + 7
    assert (ex.audio_labels[:ref_len] == IGNORE).all(), "reference audio must never be learned"
    target_labels = ex.audio_labels[ref_len:]
    # Every codebook learns its T codes and its stream EOS, nothing else.
    learned = target_labels != IGNORE
    assert learned.sum(0).tolist() == [target_frames + 1] * 8
    assert (target_labels[learned] != processor.audio_stream_bos_id).all(), "BOS and BOS filler are masked"
    assert (ex.labels == IGNORE).all(), "no text labels without a text head"


def test_stream_eos_is_learned_and_filler_is_not(processor):
    target_frames = 5
    tgt = _codes(target_frames, 3)
    ex = build_example(processor, "s", "ref", _codes(4, 4), "target", tgt, PromptSettings())
    target_labels = ex.audio_labels[4 + 2 + 7 :]
    eos = processor.audio_stream_eos_id
    for k in range(8):
        column = target_labels[:, k]
        assert column[k + target_frames + 1] == eos, f"codebook {k}: its stream EOS must carry a label"
        assert (column[k + target_frames + 2 :] == IGNORE).all(), f"codebook {k}: EOS filler must be masked"
        assert torch.equal(column[k + 1 : k + 1 + target_frames], tgt[k]), f"codebook {k}: codes in place"
        assert (column[: k + 1] == IGNORE).all()


def test_a_clip_that_did_not_end_learns_its_codes_but_no_stream_eos(processor):
    """A candidate cut at its length limit (DPO): the model never chose to stop there, so no EOS label."""
    tgt = _codes(5, 3)
    args = (processor, "s", "ref", _codes(4, 4), "target", tgt, PromptSettings())
    ended, cut = build_example(*args).audio_labels, build_example(*args, ended=False).audio_labels
    assert torch.equal(
        build_example(*args, ended=False).audio_input_ids, build_example(*args).audio_input_ids
    )
    assert ((ended != IGNORE) & (cut == IGNORE)).sum(0).tolist() == [1] * 8
    assert (cut != processor.audio_stream_eos_id).all()
    assert torch.equal(cut[cut != IGNORE], ended[cut != IGNORE])


def test_text_head_learns_only_closing_tokens(processor):
    ex = build_example(
        processor, "s", "ref", _codes(4, 5), "target", _codes(6, 6), PromptSettings(), learn_text=True
    )
    labelled = ex.labels != IGNORE
    assert processor.tokenizer.decode(ex.labels[labelled]) == "<|audio_eos|><|eot_id|>"
    # They are the last tokens of the sequence, after the target's audio.
    assert labelled.nonzero().flatten().tolist() == [ex.num_tokens - 2, ex.num_tokens - 1]
