"""The one reading of a `--language` value, for every command: a code, a name or a locale tag.

Users write a language the way they have it at hand: `ar`, `AR`, `ar-SA`, `ar_EG`, `arabic`, `Arabic`
(and `en`, `english`, `en-US` ...). Every command that takes `--language` (`ingest`, `validate`, `eval`,
`prefs`) reads it here, so one spelling works everywhere and means the same thing, and the stages below
only ever see the code. An unknown language is a `UserError` (one line, exit 2) that says what is accepted.

The codes are those of the Whisper transcriber that `ingest` and `eval` force the language of: ISO 639-1
where the language has one, `haw` (Hawaiian) and `yue` (Cantonese) where it does not, and `jw` for
Javanese, as Whisper spells it. A locale tag's region (`SA` in `ar-SA`) is dropped: the checks and the
transcriber work per language, not per region.
"""

from __future__ import annotations

import re
from functools import cache

from higgs_tune.errors import UserError

# Other spellings users have at hand that Whisper's table lacks (ISO 639-1's old codes for Hebrew and
# Javanese, the everyday name of Persian).
_ALIASES = {"farsi": "fa", "jv": "jw", "iw": "he"}
# A locale tag: the language, then region, script or variant subtags after `-` or `_` (ar-SA, zh_Hant_TW).
_SUBTAGS = re.compile(r"[-_]")


@cache
def language_names() -> dict[str, str]:
    """Code -> English name: the languages Whisper transcribes, as transformers' Whisper tokenizer lists
    them, so that every code given here is one the transcriber takes. Read when first asked for: importing
    transformers takes a second that a command without --language does not spend."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES


@cache
def _codes() -> dict[str, str]:
    """Code, name (or other name) or alias -> code."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    return {**{code: code for code in language_names()}, **TO_LANGUAGE_CODE, **_ALIASES}


def parse_language(value: str | None, option: str = "--language") -> str | None:
    """The code of the language `value` names (see the module docstring); None stays None (no language).

    Case, surrounding spaces and a locale tag's region do not matter: `ar`, `AR`, `ar-SA`, `ar_EG`,
    `arabic` and ` Arabic ` all give "ar". Anything else raises a `UserError` naming `option`.
    """
    if value is None:
        return None
    key = value.strip().lower()
    codes = _codes()
    code = codes.get(key) or codes.get(_SUBTAGS.split(key, maxsplit=1)[0])
    if code is None:
        raise UserError(
            f"{option} {value!r} is not a language we know; give an ISO 639-1 code (ar, en, ...), an English "
            "name (arabic, english, ...) or a locale tag (ar-SA, en-US, ...)"
        )
    return code


def language_name(code: str) -> str:
    """The English name of a code `parse_language` returns, capitalised (for messages)."""
    return language_names()[code].title()
