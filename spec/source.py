"""Reading spec bytes: bounded, strict UTF-8, no invisible characters.

Everything here happens before YAML sees the text, so that a binary file, a NUL byte or a bidi
override gets a located diagnostic instead of a parser traceback or a confusing mark
(PyYAML reports "position 17", not a line and column).
"""

from __future__ import annotations

import os
import stat

from .diagnostics import Diagnostic

MAX_SPEC_BYTES = 1 << 20  # 1 MiB: the largest real spec is a few KiB.

# Bidi controls reorder how text is displayed, so a spec can read differently from what it says
# (CVE-2021-42574, "Trojan Source"). They are allowed only inside comments.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ALLOWED_CONTROLS = frozenset("\t\n\r")


class SpecInputError(OSError):
    """The spec could not be read at all (missing, not a regular file, too large): exit 2."""


def read_spec_bytes(path: str | os.PathLike) -> bytes:
    """Read a spec file after checking that it is a regular file of at most MAX_SPEC_BYTES."""
    return read_bounded_bytes(path, MAX_SPEC_BYTES, "spec")


def read_bounded_bytes(path: str | os.PathLike, limit: int, noun: str) -> bytes:
    """Read a file after checking that it is a regular file of at most `limit` bytes; `noun`
    names what the file should be in messages ("spec", "Python file").

    The size is checked on the open descriptor and again while reading, so a file that grows
    (or a FIFO that never ends) cannot make xtc read without bound.
    """
    where = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecInputError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise SpecInputError(f"{where}: is a directory, not a {noun}") from None
    except OSError as exc:
        raise SpecInputError(f"{where}: cannot open: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SpecInputError(f"{where}: not a regular file")
    too_large = f"{noun} larger than {size_in_words(limit)}"
    if info.st_size > limit:
        os.close(fd)
        raise SpecInputError(f"{where}: {too_large} ({info.st_size} bytes)")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise SpecInputError(f"{where}: {too_large}")
    return data


def size_in_words(size: int) -> str:
    """A limit in bytes as messages say it.

    >>> size_in_words(1 << 20), size_in_words(256 * 1024), size_in_words(1000)
    ('1 MiB', '256 KiB', '1000 bytes')
    """
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def decode_spec(data: bytes, path: str) -> tuple[str | None, list[Diagnostic]]:
    """Strict UTF-8 decoding (a leading BOM is dropped); the text, or None and a diagnostic."""
    if len(data) > MAX_SPEC_BYTES:
        return None, [Diagnostic(path, 1, 1, "", "spec-too-large", "spec larger than 1 MiB")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = undecodable_at(data, exc)
        return None, [
            Diagnostic(path, line, col, "", "invalid-utf8", f"invalid UTF-8 at line {line}, column {col}")
        ]
    return text.removeprefix("\ufeff"), []


def undecodable_at(data: bytes, exc: UnicodeDecodeError) -> tuple[int, int]:
    """Line and column of the first byte that is not UTF-8 (a leading BOM takes no column)."""
    good = data[: exc.start].decode("utf-8").removeprefix("\ufeff")
    return line_col(good, len(good))


def check_characters(text: str, path: str) -> list[Diagnostic]:
    """Reject NUL, C0/C1 controls (other than tab, LF, CR) anywhere, and bidi controls outside
    comments. Reported once per line, so a binary blob does not yield a thousand diagnostics."""
    found = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        comment_at = comment_start(line)
        for col, char in enumerate(line, start=1):
            problem = character_problem(char, in_comment=comment_at is not None and col > comment_at)
            if problem:
                found.append(Diagnostic(path, line_no, col, "", "invalid-character",
                                        f"{problem} at line {line_no}, column {col}"))
                break
    return found


def character_problem(char: str, in_comment: bool) -> str | None:
    code = ord(char)
    if code == 0:
        return "NUL character"
    if (code < 0x20 or 0x7F <= code <= 0x9F) and char not in ALLOWED_CONTROLS:
        return f"control character U+{code:04X}"
    if char in BIDI_CONTROLS and not in_comment:
        return f"bidirectional control character U+{code:04X} outside a comment"
    return None


def comment_start(line: str) -> int | None:
    """1-based column of the `#` that starts a comment on this line, or None.

    A `#` starts a comment at the start of a line or after white space, outside quotes. This
    approximates the YAML scanner well enough to decide where bidi characters may appear: a
    mistake here only makes xtc stricter inside an exotic quoted string.
    """
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"" and (index == 0 or line[index - 1] in " \t[{,:"):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return index + 1
    return None
