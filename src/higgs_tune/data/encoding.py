"""Text files users give that are not UTF-8: how they are recognised and the one message that says so.

Manifests, transcripts and source tables (`metadata.csv`, `validated.tsv`, `speakers.csv`) are read as
UTF-8 (a leading byte order mark is allowed). Editors save text in other encodings too: Notepad's
"Unicode" is UTF-16, older tools write Latin-1 or Windows-1252. Such a file is named with the line of its
first foreign byte (or the encoding its byte order mark shows) and the fix, instead of ending the command
with a bare `UnicodeDecodeError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from higgs_tune.data.samples import SampleError

UTF8_BOM = b"\xef\xbb\xbf"
# Byte order marks of the encodings editors (Notepad, Excel, PowerShell) save text in; UTF-32 first, since
# its little-endian mark begins with UTF-16's.
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


def other_encoding(raw: bytes) -> str | None:
    """The encoding of text saved as UTF-16 or UTF-32 (by its byte order mark, or by the zero bytes around
    its first ASCII character when it has none); None for UTF-8 or anything else. Checked before decoding:
    ASCII text in UTF-16 decodes as "UTF-8" full of NUL characters."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return f"{name} (byte order mark {bom.hex(' ').upper()})"
    if len(raw) >= 2 and raw[0] and not raw[1]:
        return "UTF-16LE (no byte order mark)"
    if len(raw) >= 2 and not raw[0] and raw[1]:
        return "UTF-16BE (no byte order mark)"
    return None


def encoding_problem(path: Path, encoding: str) -> str:
    """What is wrong with a UTF-16/32 file (`other_encoding`) and how to convert it."""
    return (
        f"is {encoding} text, not UTF-8; save it as UTF-8 (e.g. `iconv -f {encoding.split()[0]} "
        f"-t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`) and read that"
    )


def byte_problem(path: Path, error: UnicodeDecodeError, column: int) -> str:
    """What is wrong with a line holding a byte that is not UTF-8 (usually Latin-1 or Windows-1252 text),
    and how to convert the file."""
    byte = error.object[error.start]
    return (
        f"is not UTF-8 text (byte 0x{byte:02X} at column {column}); save the file as UTF-8 (e.g. "
        f"`iconv -f WINDOWS-1252 -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}` for Latin-1 or "
        "Windows text)"
    )


def _start_of_utf8(head: bytes, path: Path) -> bytes:
    """The start of a file's bytes without its UTF-8 byte order mark; a `SampleError` naming `path` when a
    byte order mark says it is UTF-16 or UTF-32."""
    encoding = other_encoding(head)
    if encoding is not None:
        raise SampleError(str(path), encoding_problem(path, encoding))
    return head.removeprefix(UTF8_BOM)


def decode_utf8(raw: bytes, path: Path) -> str:
    """The text of a whole file read as `raw`, without its UTF-8 byte order mark; a `SampleError` naming
    `path` (and the line) when it is not UTF-8."""
    raw = _start_of_utf8(raw, path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        line = raw.count(b"\n", 0, e.start) + 1
        raise SampleError(f"{path} line {line}", byte_problem(path, e, e.start - line_start + 1)) from None


def utf8_lines(path: Path) -> Iterator[str]:
    """The lines of a text file, one at a time with their line ends (what `csv.reader` takes, as from a
    file opened with `newline=""`); a `SampleError` naming the file and line at the first one that is not
    UTF-8. Tables of a million rows are read without holding them whole."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if number == 1:
                line = _start_of_utf8(line, path)
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise SampleError(f"{path} line {number}", byte_problem(path, e, e.start + 1)) from None


def check_utf8(path: Path) -> None:
    """Raise the `SampleError` of `utf8_lines` for a file that is not UTF-8 throughout: a table is checked
    whole before any of its rows is used, so that a wrong encoding stops a run before it starts."""
    for _ in utf8_lines(path):
        pass
