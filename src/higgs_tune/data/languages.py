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

from higgs_tune.errors import UserError

# Code -> English name: the languages Whisper transcribes, in its order (most data first).
LANGUAGE_NAMES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian",
    "kn": "kannada", "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic",
    "hy": "armenian", "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian",
    "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer",
    "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian",
    "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish",
    "lo": "lao", "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen",
    "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar",
    "bo": "tibetan", "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # fmt: skip
# Other names (and codes) of the same languages.
_ALIASES = {
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
    "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
    "castilian": "es", "mandarin": "zh", "farsi": "fa", "jv": "jw", "iw": "he",
}  # fmt: skip
_CODES: dict[str, str] = {
    **{code: code for code in LANGUAGE_NAMES},
    **{name: code for code, name in LANGUAGE_NAMES.items()},
    **_ALIASES,
}
# A locale tag: the language, then region, script or variant subtags after `-` or `_` (ar-SA, zh_Hant_TW).
_SUBTAGS = re.compile(r"[-_]")


def parse_language(value: str | None, option: str = "--language") -> str | None:
    """The code of the language `value` names (see the module docstring); None stays None (no language).

    Case, surrounding spaces and a locale tag's region do not matter: `ar`, `AR`, `ar-SA`, `ar_EG`,
    `arabic` and ` Arabic ` all give "ar". Anything else raises a `UserError` naming `option`.
    """
    if value is None:
        return None
    key = value.strip().lower()
    code = _CODES.get(key) or _CODES.get(_SUBTAGS.split(key, maxsplit=1)[0])
    if code is None:
        raise UserError(
            f"{option} {value!r} is not a language we know; give an ISO 639-1 code (ar, en, ...), an English "
            "name (arabic, english, ...) or a locale tag (ar-SA, en-US, ...)"
        )
    return code


def language_name(code: str) -> str:
    """The English name of a code `parse_language` returns, capitalised (for messages)."""
    return LANGUAGE_NAMES[code].title()
