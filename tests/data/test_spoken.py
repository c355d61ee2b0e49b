"""Numbers as they are spoken (`data.spoken`): both digit systems, the forms of Arabic numbers, English
years, and the letter count that the speaking-length checks use."""

import random

import pytest

from higgs_tune.data.spoken import count_letters, is_arabic_letter, speak_numbers

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


@pytest.mark.parametrize(
    ("number", "words"),
    [
        ("0", "صفر"),
        ("11", "أحد عشر"),
        ("12", "اثنا عشر"),
        ("15", "خمسة عشر"),
        ("25", "خمسة وعشرون"),
        ("100", "مئة"),
        ("200", "مئتان"),
        ("125", "مئة وخمسة وعشرون"),
        ("1945", "ألف وتسعمئة وخمسة وأربعون"),  # a year reads like any number in Arabic
        ("2000", "ألفان"),
        ("3000", "ثلاثة آلاف"),
        ("11000", "أحد عشر ألفا"),
        ("102000", "مئة وألفان"),
        ("200200", "مئتا ألف ومئتان"),
        ("1,250,000", "مليون ومئتان وخمسون ألفا"),
        ("3.5", "ثلاثة فاصلة خمسة"),
        ("0.05", "صفر فاصلة صفر خمسة"),
        ("12.75", "اثنا عشر فاصلة خمسة وسبعون"),
        ("25%", "خمسة وعشرون في المئة"),
        ("007", "صفر صفر سبعة"),  # a leading zero: read digit by digit
    ],
)
def test_arabic_numbers_in_every_digit_system(number, words):
    sentence = "قال {} فقط"
    expected = sentence.format(words)
    for digits in (number, number.translate(ARABIC_INDIC), number.translate(PERSIAN)):
        assert speak_numbers(sentence.format(digits)) == expected
    assert speak_numbers(number.translate(ARABIC_INDIC)) == words  # no letters: the digits say Arabic
    assert speak_numbers(number.replace(".", "٫").replace("%", "٪").replace(",", "٬"), "ar") == words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("In 1945, 80 people", "In nineteen forty-five, eighty people"),
        ("It grew 25% in 2024.", "It grew twenty-five percent in twenty twenty-four."),
        ("Room 101 costs 3.25 dollars", "Room one hundred and one costs three point two five dollars"),
        ("the 21st century", "the twenty-first century"),
        ("1,250,000 votes", "one million two hundred and fifty thousand votes"),
        ("15kg", "fifteen kg"),
        ("no digits here", "no digits here"),
    ],
)
def test_english_numbers(text, spoken):
    assert speak_numbers(text) == spoken


def test_the_conjunction_is_joined_to_the_next_word():
    # Arabic writes و as a prefix: "خمسة وعشرون", never "خمسة و عشرون".
    rng = random.Random(0)
    for n in [*range(2000), *(rng.randrange(10**15) for _ in range(2000))]:
        words = speak_numbers(str(n), "ar")
        assert "و" not in words.split(), (n, words)
        assert "  " not in words and words == words.strip()


def test_the_language_is_the_one_given_or_the_nearest_words():
    assert speak_numbers("15", "ar") == speak_numbers("١٥") == "خمسة عشر"
    assert speak_numbers("15", "en") == speak_numbers("15") == "fifteen"
    assert speak_numbers("١٥", "en") == "fifteen"
    assert speak_numbers("اتصل على 911 now") == "اتصل على تسعمئة وأحد عشر now"
    assert speak_numbers("call 911 الآن") == "call nine hundred and eleven الآن"
    assert speak_numbers("15", "fr") == "fifteen"  # no reading of its own: by script


def test_count_letters_counts_the_spoken_letters_only():
    assert count_letters("عام ١٥") == count_letters("عام خمسة عشر") == 10
    assert count_letters("أَهْلاً") == count_letters("اهلا") == 4  # marks (M*) take no time of their own
    assert count_letters("ذهـــب") == 3  # tatweel is category Lm, but no letter
    assert count_letters(" ... ، ؛ ") == 0


def test_arabic_letters_are_letters_of_the_arabic_blocks():
    assert all(map(is_arabic_letter, "ابتثىةءئؤ\ufefb\ufdf2"))  # presentation forms included
    assert not any(map(is_arabic_letter, "،؛؟٠١٢٫٪\u0640\u064e\u0670abc"))
