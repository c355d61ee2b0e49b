"""Codes through the tiny codec: a clone with no frames decodes to no audio instead of crashing the codec."""

import numpy as np

from higgs_tune.model.codes import decode_codes, encode_waveform
from higgs_tune.tiny.synth import synth_speech


def test_decode_length_follows_the_frames_and_no_frames_give_no_audio(processor):
    codes = encode_waveform(processor, synth_speech(1.0, seed=3))
    assert decode_codes(processor, codes).shape == (codes.shape[1] * 960,)
    assert decode_codes(processor, codes[:, :1]).shape == (960,)
    empty = decode_codes(processor, np.zeros((codes.shape[0], 0), dtype=np.int64))
    assert empty.shape == (0,) and empty.dtype == np.float32
