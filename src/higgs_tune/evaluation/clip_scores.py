"""How one cloned clip is scored: the words it says (WER and CER of its transcript against the text) and the
voice it keeps (speaker similarity to its reference). `eval` and `prefs` both score through `score_clips`,
so a preference reward and an evaluation report measure a clip the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from higgs_tune.data.audio import TARGET_SR
from higgs_tune.scoring.text_metrics import char_errors, word_errors

NO_AUDIO = "no audio"  # why a clip that the model ended at once has no similarity


def score_clips(
    audios: Sequence[np.ndarray],
    texts: Sequence[str],
    references: Sequence[np.ndarray],
    measuring: tuple,
    language: str | None,
) -> list[dict]:
    """The scores of each clip (24 kHz mono) against its text and its reference's speaker embedding.

    A clip without audio (the model stopped at once) says nothing: an empty transcript, every word missed.
    A clip shorter than the speaker model can embed has no similarity (None), and `similarity_missing` says
    why a clip has none (the reports show it beside the "n/a"); it is None for a clip that has one.
    """
    from higgs_tune.scoring.speaker import cosine_similarity

    transcriber, speaker = measuring
    spoken = [i for i, a in enumerate(audios) if a.size]
    transcripts = dict(zip(spoken, transcriber.transcribe([audios[i] for i in spoken]), strict=True))
    scores = []
    for i, (audio, text, reference) in enumerate(zip(audios, texts, references, strict=True)):
        hyp = transcripts.get(i, "")
        words, chars = word_errors(text, hyp, language), char_errors(text, hyp, language)
        similarity, missing = None, None
        if not audio.size:
            missing = NO_AUDIO
        elif audio.size / TARGET_SR < speaker.min_seconds:
            missing = f"clip shorter than the speaker model's minimum ({speaker.min_seconds:.2f} s)"
        else:
            similarity = float(cosine_similarity(speaker.embed([audio])[0], reference))
        scores.append(
            {
                "transcript": hyp,
                "wer": words.rate,
                "cer": chars.rate,
                "word_errors": words.errors,
                "ref_words": words.reference_length,
                "char_errors": chars.errors,
                "ref_chars": chars.reference_length,
                "similarity": similarity,
                "similarity_missing": missing,
            }
        )
    return scores
