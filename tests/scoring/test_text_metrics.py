from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from higgs_tune.scoring.text_metrics import (
    ErrorCounts,
    cer,
    char_errors,
    corpus_cer,
    corpus_wer,
    edit_counts,
    normalize_text,
    wer,
    word_errors,
)


def test_diacritised_arabic_matches_bare_script():
    assert normalize_text("أَهْلاً وَسَهْلاً") == "اهلا وسهلا"
    assert wer("أَهْلاً وَسَهْلاً", "اهلا وسهلا") == 0.0
    assert cer("أَهْلاً وَسَهْلاً", "اهلا وسهلا") == 0.0


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("إسلام", "اسلام"),  # alef with hamza below
        ("أحمد", "احمد"),  # alef with hamza above
        ("آمن", "امن"),  # alef with madda
        ("ٱلله", "الله"),  # alef wasla
        ("على", "علي"),  # alef maqsura -> ya
        ("مدرسة", "مدرسه"),  # ta marbuta -> ha
        ("مـــرحبا", "مرحبا"),  # tatweel
        ("ﻻ", "لا"),  # presentation-form ligature
        ("مرحبا، كيف حالك؟", "مرحبا كيف حالك"),  # Arabic comma and question mark
        ("قال: «نعم»؛ ثم ذهب.", "قال نعم ثم ذهب"),
        ("الغرفة ٣٤٥ والطابق ۱۲", "الغرفه 345 والطابق 12"),  # Arabic-Indic and Persian digits
        ("\u200fمرحبا\u200c بك", "مرحبا بك"),  # right-to-left mark and zero-width non-joiner
        ("سُؤَال وَمَسَائِل وَشَيْء", "سؤال ومسائل وشيء"),  # hamza on waw/ya and alone: kept
    ],
)
def test_arabic_normalisation(written, normalised):
    assert normalize_text(written, "ar") == normalised
    assert normalize_text(written) == normalised


def test_arabic_folds_are_skipped_for_other_languages_of_the_script():
    assert normalize_text("على", "fa") == "على"
    assert normalize_text("على", "ar-EG") == "علي"


def test_english_basics():
    assert normalize_text("  Hello, World!  It's   FINE... ", "en") == "hello world its fine"
    assert normalize_text("Well-known “quotes” & $5", "en") == "well known quotes 5"
    assert normalize_text("Straße CAFÉ", "de") == "strasse café"
    assert normalize_text("ＡＢＣ　１２３") == "abc 123"  # full-width forms
    assert normalize_text(" ،.!? ") == ""


def test_word_edit_counts_by_hand():
    # sat -> sit is a substitution, the second "the" is deleted
    counts = word_errors("The cat sat on the mat.", "the cat sit on mat")
    assert counts == ErrorCounts(substitutions=1, deletions=1, insertions=0, reference_length=6)
    assert wer("The cat sat on the mat.", "the cat sit on mat") == pytest.approx(2 / 6)
    inserted = word_errors("a b c", "a x b c")
    assert (inserted.substitutions, inserted.deletions, inserted.insertions) == (0, 0, 1)
    assert wer("a b c", "a x b c") == pytest.approx(1 / 3)
    assert wer("a b", "") == 1.0
    assert wer("a", "b c d") == 3.0  # insertions can push WER past 1


def test_arabic_word_errors_by_hand():
    # "ذهب" is substituted, "الى" deleted; the diacritics and ة/ه differences cost nothing
    counts = word_errors("ذَهَبَ الوَلَدُ إلى المَدْرَسَةِ", "راح الولد المدرسه", "ar")
    assert counts == ErrorCounts(1, 1, 0, 4)


def test_character_edit_counts_by_hand():
    counts = char_errors("kitten", "sitting")
    assert (counts.substitutions, counts.deletions, counts.insertions) == (2, 0, 1)
    assert cer("kitten", "sitting") == pytest.approx(3 / 6)
    assert cer("ab cd", "abcd") == pytest.approx(1 / 5)  # the space counts
    assert cer("مدرسة", "مدرسه") == 0.0


def test_empty_reference_convention():
    assert wer("", "") == 0.0
    assert wer("...", "") == 0.0  # nothing left after normalisation
    assert wer("", "something") == 1.0
    assert cer("", "something") == 1.0
    assert word_errors("", "two words").insertions == 2


def test_corpus_rates_weigh_by_reference_length():
    refs, hyps = ["a b c d", "e"], ["a b c d", "f"]
    assert corpus_wer(refs, hyps) == pytest.approx(1 / 5)
    assert np.mean([wer(r, h) for r, h in zip(refs, hyps, strict=True)]) == pytest.approx(0.5)
    assert corpus_cer(["ab", "c"], ["ab", "d"]) == pytest.approx(1 / 3)
    assert corpus_wer(["", "a b"], ["x", "a b"]) == pytest.approx(1 / 2)  # insertions still count
    assert corpus_wer([], []) == 0.0
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer(["a", "b"], ["a"])


def test_error_counts_add_up():
    total = ErrorCounts(1, 2, 3, 10) + ErrorCounts(1, 0, 0, 5)
    assert total == ErrorCounts(2, 2, 3, 15)
    assert total.errors == 7 and total.rate == pytest.approx(7 / 15)


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Textbook recursive Levenshtein, as an independent check of the row-wise DP."""

    @cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_edit_counts_match_a_reference_implementation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = tuple(rng.integers(0, 4, rng.integers(0, 9)).tolist())
        b = tuple(rng.integers(0, 4, rng.integers(0, 9)).tolist())
        counts = edit_counts([str(x) for x in a], [str(x) for x in b])
        assert counts.errors == _distance(a, b)
        assert counts.deletions - counts.insertions == len(a) - len(b)
        assert counts.reference_length == len(a)
