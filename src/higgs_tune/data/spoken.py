"""A text as it is spoken: numbers in words, and the letters that take speaking time.

A digit string does not say how it is read: `15` and `١٥` are both "خمسة عشر" in an Arabic sentence and
"fifteen" in an English one, `1945` is "nineteen forty-five" as a year, and a model left to guess reads the
same number differently from one clone to the next, while transcripts that spell numbers in words teach it
nothing about digits. `speak_numbers` writes every number out in words, so a prompt and a training text say
the same thing whatever digits they were typed with; the `arabic_spoken` text normalisation
(`data.text_normalisation`) applies it, and `count_letters` (the speaking-length measure of `validate` and
of the speech checks) counts the letters of the spoken form.

What is read, in the three digit systems alike (Western 0-9, Arabic-Indic ٠-٩, Extended Arabic-Indic
(Persian) ۰-۹):

- integers, with or without thousands separators (`,` or the Arabic `٬` between groups of three):
  `1,250,000`; up to 15 digits; a longer digit string, or one with a leading zero (`007`, a phone number),
  is read digit by digit;
- decimals, with `.` or the Arabic decimal separator `٫`: "ثلاثة فاصلة خمسة", "three point five" (the
  fraction digit by digit in English, as a number after its leading zeros in Arabic);
- percentages, the sign (`%` or `٪`) after the number: "خمسة وعشرون في المئة", "twenty-five percent";
- years: in English a plain four-digit number from 1100 to 2099 is read as a year ("nineteen forty-five",
  "twenty twenty-four"); in Arabic a year is read as any number ("ألف وتسعمئة وخمسة وأربعون");
- English ordinals: `21st` is "twenty-first".

Which language a number is read in: the one given, when it is Arabic or English; otherwise (none given, or
another) the script of the nearest letter before the number (after it, for a text that starts with one):
an Arabic letter reads it in Arabic, any other letter in English; a text without letters reads Arabic-Indic
and Persian digits in Arabic and Western digits in `fallback`'s language.

Arabic numbers are written as Modern Standard Arabic reads them when counting (masculine, nominative):
the conjunction و joined to the word after it ("خمسة وعشرون"), مئة rather than the older مائة, the dual
of hundreds and scales (مئتان, ألفان, مليونان), the plural after three to ten (ثلاثة آلاف) and the
accusative singular after eleven to ninety-nine (أحد عشر ألفا). A number's agreement with the noun it counts
(ثلاث سنوات) needs grammar this module does not have; the masculine form is the consistent choice.
English numbers are num2words' (without its commas).
"""

from __future__ import annotations

import re
import unicodedata

# The three digit systems; `_DIGIT` matches any one of their digits, `_TO_WESTERN` maps them to 0-9.
_DIGIT = "[0-9\u0660-\u0669\u06f0-\u06f9]"
_TO_WESTERN = str.maketrans("\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669", "0123456789") | (
    str.maketrans("\u06f0\u06f1\u06f2\u06f3\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9", "0123456789")
)
_WESTERN = frozenset("0123456789")
_NUMBER = re.compile(
    rf"(?<!{_DIGIT})"
    rf"(?P<int>{_DIGIT}{{1,3}}(?:[,\u066c]{_DIGIT}{{3}})+|{_DIGIT}+)(?!{_DIGIT})"
    rf"(?:[.\u066b](?P<frac>{_DIGIT}+))?"
    rf"(?:(?P<ordinal>st|nd|rd|th)(?![A-Za-z]))?"
    rf"(?:[ \u00a0]?(?P<percent>[%\u066a]))?"
)
_LONGEST = 15  # digits read as one number; num2words and our scales stop at trillions
TATWEEL = "\u0640"
SPOKEN_LANGUAGES = ("ar", "en")


def speak_numbers(text: str, language: str | None = None, fallback: str = "en") -> str:
    """`text` with every number written in words (see the module docstring for what is read and in which
    language). `language` is a code of `data.languages` (None: unknown); `fallback` ("ar" or "en") reads
    Western digits in a text without letters. A text without digits is returned unchanged."""
    if not any(_is_digit(ch) for ch in text):
        return text
    pieces: list[str] = []
    end = 0
    for match in _NUMBER.finditer(text):
        start, stop = match.span()
        lang = language if language in SPOKEN_LANGUAGES else _language_at(text, start, stop, fallback)
        words, stop = _read(match, lang)
        before, after = text[start - 1 : start], text[stop : stop + 1]
        pieces += [text[end:start], " " * _joins(before), words, " " * _joins(after)]
        end = stop
    pieces.append(text[end:])
    return "".join(pieces)


def count_letters(text: str, language: str | None = None) -> int:
    """The letters of `text` as it is spoken: numbers in words (`speak_numbers`, in `language` when it is
    known, else by script), then letters only (Unicode category L*): digits, punctuation, spaces, marks
    (Arabic diacritics, category M*) and tatweel take no speaking time of their own, so diacritised and bare
    Arabic text, and ١٥ and "خمسة عشر", expect the same length."""
    spoken = speak_numbers(text, language)
    return sum(unicodedata.category(ch).startswith("L") and ch != TATWEEL for ch in spoken)


def _is_digit(ch: str) -> bool:
    return ch in _WESTERN or "\u0660" <= ch <= "\u0669" or "\u06f0" <= ch <= "\u06f9"


def _joins(neighbour: str) -> bool:
    """Whether a number's words need a space against this neighbour: a letter or digit would stick to them
    (ب15 reads "ب خمسة عشر"; punctuation and spaces keep their place)."""
    return bool(neighbour) and (neighbour.isalnum() or unicodedata.category(neighbour).startswith("M"))


def is_arabic_letter(ch: str) -> bool:
    """A letter (Unicode category L*) of the Arabic blocks, presentation forms included; not tatweel, which
    Unicode calls a letter but only stretches the one before it, nor the Arabic comma, digits and marks."""
    return ch != TATWEEL and unicodedata.category(ch).startswith("L") and "ARABIC" in unicodedata.name(ch, "")


def _language_at(text: str, start: int, stop: int, fallback: str) -> str:
    """The language of the number at text[start:stop]: the script of the nearest letter before it, else
    after it; without letters, Arabic for Arabic-Indic and Persian digits, else `fallback`."""
    for ch in (*reversed(text[:start]), *text[stop:]):
        if ch.isalpha():
            return "ar" if is_arabic_letter(ch) else "en"
    return fallback if text[start] in _WESTERN else "ar"


def _read(match: re.Match[str], language: str) -> tuple[str, int]:
    """The words of one number and where its reading ends (an ordinal suffix is read only in English)."""
    digits = match["int"].translate(_TO_WESTERN)
    grouped = not digits.isdigit()
    digits = re.sub(r"\D", "", digits)
    stop = match.end()
    ordinal = match["ordinal"] if language == "en" and match["frac"] is None else None
    if match["ordinal"] and ordinal is None:  # an Arabic reading leaves the letters as they are
        stop = match.start("ordinal")
    percent = match["percent"] is not None and stop == match.end()
    if ordinal:
        return _english(int(digits), "ordinal"), stop
    if match["frac"] is not None:
        words = _decimal(digits, match["frac"].translate(_TO_WESTERN), language)
    elif len(digits) > _LONGEST or (len(digits) > 1 and digits[0] == "0" and not grouped):
        words = " ".join(_cardinal(int(d), language) for d in digits)
    elif language == "en" and len(digits) == 4 and 1100 <= int(digits) <= 2099 and not percent:
        words = _english(int(digits), "year")
    else:
        words = _cardinal(int(digits), language)
    if percent:
        words += " في المئة" if language == "ar" else " percent"
    return words, stop


def _decimal(whole: str, fraction: str, language: str) -> str:
    if len(whole) > _LONGEST:
        whole_words = " ".join(_cardinal(int(d), language) for d in whole)
    else:
        whole_words = _cardinal(int(whole), language)
    if language == "en":
        return f"{whole_words} point " + " ".join(_cardinal(int(d), "en") for d in fraction)
    zeros = len(fraction) - len(fraction.lstrip("0"))
    rest = fraction[zeros:]
    parts = ["صفر"] * zeros
    if rest:
        parts += (
            [_cardinal(int(rest), "ar")] if len(rest) <= _LONGEST else [_cardinal(int(d), "ar") for d in rest]
        )
    return f"{whole_words} فاصلة " + " ".join(parts)


def _cardinal(n: int, language: str) -> str:
    if language == "en":
        return _english(n, "cardinal")
    return _arabic(n)


def _english(n: int, to: str) -> str:
    """num2words' English reading of `n` (cardinal, ordinal or year), without its commas. Imported here,
    when a number is first read: `validate` and `--help` start faster without it."""
    from num2words import num2words

    return num2words(n, lang="en", to=to).replace(",", "")


_ONES = ("", "واحد", "اثنان", "ثلاثة", "أربعة", "خمسة", "ستة", "سبعة", "ثمانية", "تسعة")
_TENS = ("", "عشرة", "عشرون", "ثلاثون", "أربعون", "خمسون", "ستون", "سبعون", "ثمانون", "تسعون")
_HUNDREDS = ("", "مئة", "مئتان", "ثلاثمئة", "أربعمئة", "خمسمئة", "ستمئة", "سبعمئة", "ثمانمئة", "تسعمئة")
# A scale's forms: one, two (dual), three to ten (plural), eleven to ninety-nine (accusative singular).
_SCALES = (
    (10**12, ("تريليون", "تريليونان", "تريليونات", "تريليونا")),
    (10**9, ("مليار", "ملياران", "مليارات", "مليارا")),
    (10**6, ("مليون", "مليونان", "ملايين", "مليونا")),
    (10**3, ("ألف", "ألفان", "آلاف", "ألفا")),
)
_AND = " و"  # the conjunction, joined to the word after it


def _arabic(n: int) -> str:
    """`n` (0 to 10**15 - 1) in Arabic words; see the module docstring for the forms."""
    if n == 0:
        return "صفر"
    parts = []
    for value, forms in _SCALES:
        count, n = divmod(n, value)
        if count:
            parts.append(_scale(count, forms))
    if n:
        parts.append(_below_thousand(n))
    return _AND.join(parts)


def _below_hundred(n: int) -> str:
    if n < 10:
        return _ONES[n]
    if n == 10:
        return _TENS[1]
    if n < 20:
        return {11: "أحد عشر", 12: "اثنا عشر"}.get(n) or f"{_ONES[n - 10]} عشر"
    tens, ones = divmod(n, 10)
    return _TENS[tens] if not ones else f"{_ONES[ones]}{_AND}{_TENS[tens]}"


def _below_thousand(n: int, construct: bool = False) -> str:
    """1 to 999; `construct`: before the noun it counts (مئتا ألف, not مئتان ألف)."""
    hundreds, rest = divmod(n, 100)
    parts = []
    if hundreds:
        parts.append("مئتا" if hundreds == 2 and construct and not rest else _HUNDREDS[hundreds])
    if rest:
        parts.append(_below_hundred(rest))
    return _AND.join(parts)


def _scale(count: int, forms: tuple[str, str, str, str]) -> str:
    """`count` (1 to 999) thousands, millions, ...: the counted noun follows the last part of the count
    (مئة وخمسة آلاف, مئتا ألف)."""
    one, two, plural, accusative = forms
    hundreds, rest = divmod(count, 100)
    if not rest:
        return f"{_below_thousand(count, construct=True)} {one}"
    if rest == 1:
        tail = one
    elif rest == 2:
        tail = two
    elif rest <= 10:
        tail = f"{_below_hundred(rest)} {plural}"
    else:
        tail = f"{_below_hundred(rest)} {accusative}"
    return f"{_HUNDREDS[hundreds]}{_AND}{tail}" if hundreds else tail
