"""The cut rule on a real voice activity detector, and on hand-made speech segments."""

import numpy as np
import pytest
from speech import SR, long_recording

from higgs_tune.ingest.settings import SliceSettings
from higgs_tune.ingest.slicing import SpeechDetector, plan_clips


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector()


def test_silero_vad_hears_the_synthetic_voices_as_speech(detector):
    audio, joins = long_recording(4, seed=0)
    speech = detector.segments(audio, SR)
    spoken = sum(e - s for s, e in speech)
    assert spoken > 0.85 * (audio.size / SR - sum(e - s for s, e in joins))


def test_a_long_recording_is_cut_at_its_pauses(detector):
    audio, joins = long_recording(12, seed=0)
    settings = SliceSettings(min_seconds=1.0, max_seconds=8.0)
    clips = plan_clips(audio.size / SR, detector.segments(audio, SR), settings)
    assert max(end - start for start, end in clips) <= settings.max_seconds
    cuts = list(zip(clips[:-1], clips[1:], strict=True))
    for (_, left_end), (right_start, _) in cuts:
        # both edges of every cut lie inside one pause between utterances: never mid-word
        assert any(a <= left_end <= right_start <= b for a, b in joins), (left_end, right_start, joins)
    assert len(cuts) >= 0.9 * len(joins), (len(cuts), len(joins))


def test_sentence_pauses_first_shorter_pauses_only_to_fit():
    # speech segments (seconds): a 1.0 s pause at 10 s, 0.3 s pauses elsewhere
    speech = [(0.0, 4.0), (4.3, 10.0), (11.0, 15.0), (15.3, 30.0)]
    settings = SliceSettings(min_seconds=1.0, max_seconds=20.0, sentence_pause=0.6, edge_seconds=0.1)
    clips = plan_clips(30.0, speech, settings)
    # the sentence pause is cut although both sides would fit anyway; the 0.3 s pauses are not needed
    assert clips == [(0.0, 10.1), (10.9, 30.0)]
    clips = plan_clips(30.0, speech, SliceSettings(min_seconds=1.0, max_seconds=12.0, edge_seconds=0.1))
    # the second piece (19 s) is too long: its one short pause is used (half of it kept on each side)
    assert np.round(clips, 3).tolist() == [[0.0, 10.1], [10.9, 15.1], [15.2, 30.0]]


def test_a_cut_needs_both_sides_long_enough_and_short_recordings_stay_whole():
    speech = [(0.0, 0.5), (1.5, 25.0)]  # a 1 s pause, but the first side would be 0.7 s
    settings = SliceSettings(min_seconds=1.0, max_seconds=20.0, edge_seconds=0.2)
    assert plan_clips(25.0, speech, settings) == [(0.0, 25.0)]  # left too long: the filter rejects it
    assert plan_clips(15.0, [(0.0, 4.0), (6.0, 15.0)], settings) == [(0.0, 15.0)]  # fits: not re-cut


def test_no_clip_shares_audio_with_its_neighbour():
    rng = np.random.default_rng(0)
    starts = np.cumsum(rng.uniform(0.5, 3.0, 40))
    speech = [(float(s), float(s + rng.uniform(0.3, 2.0))) for s in starts]
    speech = [(s, min(e, n[0] - 0.05)) for (s, e), n in zip(speech, speech[1:], strict=False)]
    clips = plan_clips(speech[-1][1] + 1, speech, SliceSettings(max_seconds=6.0))
    assert all(a[1] <= b[0] for a, b in zip(clips, clips[1:], strict=False))
