"""The one filter of every text the report pages show (`report.md`, `report.html`, the A/B page): control
characters made visible.

A transcript is whatever the ASR model decoded, and an id or a path is whatever the user wrote: either may
carry NUL, escape sequences or bidi overrides. In a page a NUL makes the file "binary" to grep and to some
viewers, an ESC starts a terminal escape when the file is printed, and a bidi override reorders the text
after it (a cell, or a whole table row in Markdown). Each of these is shown instead as a visible sign (a C0
control as its Control Pictures symbol, U+2400 "SYMBOL FOR NULL" for NUL, any other as U+FFFD), so a reader
sees that something was there and nothing vanishes unseen. Tabs and line feeds stay (a carriage return
becomes a line feed; each page then lays them out its own way); the joiners and the left-to-right and
right-to-left marks that Arabic and Persian text needs stay too.
"""

from __future__ import annotations

import html
import re

# Bidi embeddings, overrides and isolates: in a line of text, they reorder what follows them (also in a
# terminal: `listening_score.printable`).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) but tab and line feed, and the bidi
# controls; a run of one of them is taken whole (a decoder stuck on NUL gives hundreds).
_HIDDEN = re.compile("([\x00-\x08\x0b-\x1f\x7f-\x9f" + "".join(sorted(BIDI_CONTROLS)) + "])\\1*")
_LONG_RUN = 4


def _sign(char: str) -> str:
    """The visible sign of one hidden character: its Control Pictures symbol for C0 and DEL, else U+FFFD."""
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def _signs(match: re.Match) -> str:
    sign, n = _sign(match.group(1)), len(match.group(0))
    return f"{sign}\u00d7{n}" if n >= _LONG_RUN else sign * n


def visible_text(value: object) -> str:
    """`str(value)` with its line breaks as line feeds and every other control character (Unicode category
    Cc but tab) and every bidi embedding, override or isolate replaced by a visible sign; a run of 4 or more
    of one shows as its sign and the count ("\u2400\u00d7210"), so a page stays readable."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return _HIDDEN.sub(_signs, text)


def html_text(value: object) -> str:
    """`value` as inert, visible text in an HTML page: `visible_text`, then HTML-escaped (quotes too, so it
    is safe in an attribute as well)."""
    return html.escape(visible_text(value))
