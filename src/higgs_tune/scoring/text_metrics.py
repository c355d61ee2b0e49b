"""Word and character error rates between what a clip should say and what ASR heard.

Both texts go through the same `normalize_text` first, so that the rates count words the voice got wrong,
not spelling conventions the audio cannot show. For Arabic that means folding what is written differently
but sounds the same, or is routinely left out of writing:

- diacritics (tashkeel U+064B-U+065F, the superscript alef U+0670, Quranic marks) are removed: ASR
  outputs bare script while texts for TTS are often diacritised;
- alef with hamza or madda and alef wasla (أ إ آ ٱ) become bare alef (ا): hamza seats on alef are
  dropped in everyday writing and by ASR alike;
- alef maqsura (ى) becomes ya (ي): the two are interchanged at word ends (Egyptian writing often has
  ى for final ي);
- ta marbuta (ة) becomes ha (ه): at the end of a phrase ة is pronounced as -a or -ah, exactly like ه, so
  the audio cannot tell them apart and transcribers write either. This is a common choice in Arabic ASR
  scoring; the cost is that the rare pairs differing only in ة/ه count as the same word;
- tatweel (ـ), a purely typographic stretch, is removed; Arabic-Indic digits become ASCII digits.

Hamza on waw and ya (ؤ ئ) and standalone hamza (ء) are kept: they are pronounced and spelled consistently.
Numbers are not spelled out; write evaluation texts with numbers as words, or accept that "3" and "three"
count as different words.

For every language: Unicode NFKC (Arabic presentation forms and ligatures become plain letters,
full-width forms become ASCII), case folding, apostrophes removed inside words ("don't" = "dont"), all
other punctuation and symbols (Unicode categories P and S, which covers ، ؛ ؟ « » and friends) replaced by
a space, invisible format characters (right-to-left marks, zero-width joiners; common in Arabic text)
removed, and whitespace collapsed. Accents of Latin script and vowel signs of other scripts are kept; they
distinguish words there.

Edit distances are plain Levenshtein (substitution, deletion and insertion cost 1), counted by `jiwer`.
Character rates count the single spaces between words as characters, like common ASR scoring tools, so
that splitting or joining words costs something there too.

An empty reference (nothing left after normalisation) has no length to divide by. The convention here: its
rate is 0.0 when the hypothesis is empty too and 1.0 otherwise, so that one bad line cannot make a mean
infinite. Corpus-level rates need no convention: their insertions count in the numerator, and only a corpus
whose references are all empty falls back to the same rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from higgs_tune.data.text_normalisation import ALEF_VARIANTS, ARABIC_DIACRITICS, TATWEEL

# The diacritics and alef variants are the training normalisation's tables (one home); scoring folds more.
_ARABIC_FOLDS = str.maketrans(
    ALEF_VARIANTS
    | {
        "\u0649": "\u064a",  # ى alef maqsura -> ي
        "\u0629": "\u0647",  # ة ta marbuta -> ه
        TATWEEL: None,
    }
)
_DIGITS = str.maketrans(
    {chr(0x0660 + d): str(d) for d in range(10)} | {chr(0x06F0 + d): str(d) for d in range(10)}
)
_APOSTROPHES = re.compile("['\u2018\u2019\u02bc\u02bb`\u00b4]")


def normalize_text(text: str, language: str | None = None) -> str:
    """Normalise a transcript for scoring (see the module docstring for every rule and why).

    The Arabic letter folds apply when `language` is None or Arabic ("ar", "ar-EG", ...); they touch only
    Arabic-script letters, but languages that share the script (Persian, Urdu) spell differently, so pass
    their code to skip them. Everything else applies to all languages.
    """
    text = unicodedata.normalize("NFKC", text).casefold().translate(_DIGITS)
    if _is_arabic(language):
        text = ARABIC_DIACRITICS.sub("", text).translate(_ARABIC_FOLDS)
    text = _APOSTROPHES.sub("", text)
    return " ".join("".join(map(_drop_marks, text)).split())


def _drop_marks(ch: str) -> str:
    """Punctuation and symbols become a space; invisible format characters (bidi marks, zero-width
    joiners, byte order marks) disappear."""
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    return " " if category[0] in "PS" else ch


def _is_arabic(language: str | None) -> bool:
    return language is None or re.split(r"[-_]", language.strip().lower())[0] in ("ar", "ara", "arabic")


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of a minimal alignment and the reference length they are measured against.

    Counts add up (`a + b`), which is how corpus-level rates are built: total edits over total length.
    """

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference unit; for an empty reference 0.0 if nothing was inserted, else 1.0."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_length

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )


def edit_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> ErrorCounts:
    """Levenshtein alignment of two token sequences, returning how many of each edit it takes, computed by
    `jiwer` (the tool the published TTS protocols score with, `benchmark_protocols`).

    jiwer aligns words of a string; each distinct token becomes one word (its number), so a token may hold
    any character, spaces included, and the counts are those of the token sequences.
    """
    import jiwer

    ids: dict[str, int] = {}
    ref = " ".join(str(ids.setdefault(t, len(ids))) for t in reference)
    hyp = " ".join(str(ids.setdefault(t, len(ids))) for t in hypothesis)
    out = jiwer.process_words(ref, hyp)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(reference))


def word_errors(reference: str, hypothesis: str, language: str | None = None) -> ErrorCounts:
    """Word-level edits between the normalised texts."""
    return edit_counts(
        normalize_text(reference, language).split(), normalize_text(hypothesis, language).split()
    )


def char_errors(reference: str, hypothesis: str, language: str | None = None) -> ErrorCounts:
    """Character-level edits between the normalised texts (single spaces between words included)."""
    return edit_counts(list(normalize_text(reference, language)), list(normalize_text(hypothesis, language)))


def wer(reference: str, hypothesis: str, language: str | None = None) -> float:
    """Word error rate of one utterance: (S + D + I) / reference words."""
    return word_errors(reference, hypothesis, language).rate


def cer(reference: str, hypothesis: str, language: str | None = None) -> float:
    """Character error rate of one utterance: (S + D + I) / reference characters."""
    return char_errors(reference, hypothesis, language).rate


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str], language: str | None = None) -> float:
    """Total word edits over total reference words: long utterances weigh more than in a mean of WERs."""
    return _corpus(word_errors, references, hypotheses, language).rate


def corpus_cer(references: Sequence[str], hypotheses: Sequence[str], language: str | None = None) -> float:
    """Total character edits over total reference characters."""
    return _corpus(char_errors, references, hypotheses, language).rate


def _corpus(
    count: Callable[[str, str, str | None], ErrorCounts],
    references: Sequence[str],
    hypotheses: Sequence[str],
    language: str | None,
) -> ErrorCounts:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return sum((count(r, h, language) for r, h in zip(references, hypotheses, strict=True)), ErrorCounts())
