"""Reading Python source as data: bounded, strict UTF-8, tokenized and parsed, never run.

`xtc import` reads files that may come from anywhere, so each stage has a bound that is checked
before the next stage can spend time or memory on the input:

1. bytes: a regular file of at most MAX_PYTHON_BYTES (read_python_bytes), strict UTF-8 without
   NUL bytes; a coding cookie naming another encoding is refused (xtc import reads UTF-8);
2. tokens: at most MAX_TOKENS, brackets nested at most MAX_NESTING deep, and at most MAX_CHAIN
   operators in one expression without brackets or commas (`1+1+...`: CPython's parser builds
   one node per operator and raises RecursionError near 3,000 of them);
3. `ast.parse` (never compile, eval or exec), with RecursionError and MemoryError (the parser's
   own stack limits) reported as located diagnostics, not tracebacks;
4. the tree at most MAX_TREE_DEPTH deep, so that whatever walks it recursively afterwards (the
   importer, `literal_value`) stays far below Python's recursion limit.

Measured on the development machine (Python 3.11, 2 cores), `parse_python` on inputs of 250 KiB,
with the time and peak RSS of the whole process (interpreter and imports included, ~25 MB):
the worst case is the largest tree, a list literal of 100,000 tokens (0.6 s, 120 MB); 100,000
tokens of `x = 1` lines, 0.6 s and 110 MB. Inputs refused by a bound cost less: the
tokens over the limit are never parsed (250 KiB of `x = 1` lines: 0.3 s, 30 MB; 1,000 nested
brackets and a chain of 100,000 `1+` are refused at the first token over the bound: 0.1 s).
The issue's targets are 5 s and 512 MB for any input; tests/test_import_hostile.py runs each
hostile input under a 512 MiB address-space limit.
"""

from __future__ import annotations

import ast
import codecs
import io
import os
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..spec.diagnostics import Diagnostic
from ..spec.source import line_col, read_bounded_bytes, size_in_words

MAX_PYTHON_BYTES = 256 * 1024  # a model-building script is a few KiB
# x-transformers' own x_transformers.py, 3,700 lines and 170 KB, is 31,000 tokens; a file that
# builds a model is a few hundred. 256 KiB of dense code (`x = 1` lines) would be 170,000.
MAX_TOKENS = 100_000
# Python's parser allows 200 nested brackets; real code uses fewer than 10.
MAX_NESTING = 50
# Operators (and `.`, calls, subscripts) in one expression between commas, at one bracket level:
# each nests one node deeper in the tree. The standard library's longest is far shorter.
MAX_CHAIN = 100
# The deepest tree in the standard library, x-transformers and torch.nn is 32 nodes deep.
MAX_TREE_DEPTH = 100
# An f-string is one token whose replacement fields Python 3.11 parses one by one, in time that
# grows faster than their number (40,000 fields in one f-string: 1.5 s). Each `{` counts as a
# token, and one f-string may hold at most this many (a real one has a handful).
MAX_FSTRING_FIELDS = 1_000

OPENING, CLOSING, SEPARATORS = "([{", ")]}", {",", ";"}
# Words that join expressions the way operators do: each nests one node deeper.
KEYWORD_OPERATORS = frozenset({"and", "or", "not", "in", "is", "if", "else", "lambda", "await"})
# PEP 263: the cookie is read from the first two lines (the second only after a comment line).
CODING_COOKIE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.ASCII)
BLANK_OR_COMMENT = re.compile(r"^[ \t\f]*(?:[#\r\n]|$)", re.ASCII)
UTF8_NAMES = frozenset({"utf-8", "utf-8-sig"})  # codecs.lookup's names for utf8, UTF_8, ...
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class Comment:
    """A comment: its text without the `#` and surrounding spaces; own_line when nothing but
    white space comes before it on its line."""

    text: str
    own_line: bool


@dataclass(frozen=True)
class PythonSource:
    """A parsed Python file: its text (BOM dropped), tree, and comments by 1-based line."""

    path: str
    text: str
    tree: ast.Module
    comments: Mapping[int, Comment]


def read_python_bytes(path: str | os.PathLike) -> bytes:
    """Read a Python file after checking that it is a regular file of at most MAX_PYTHON_BYTES;
    spec.source.SpecInputError otherwise (the command line exits with 2)."""
    return read_bounded_bytes(path, MAX_PYTHON_BYTES, "Python file")


def parse_python(data: bytes, path: str) -> tuple[PythonSource | None, list[Diagnostic]]:
    """The parsed file, or None and located diagnostics; nothing in the file runs.

    >>> source, problems = parse_python(b"dim = 4 * 64  # width\\n", "m.py")
    >>> problems, source.comments[1], type(source.tree.body[0].value).__name__
    ([], Comment(text='width', own_line=False), 'BinOp')
    >>> parse_python(b"x = (1,\\n", "m.py")[1][0].render()
    "m.py:1:5: error[python-syntax] '(' is never closed"
    """
    text, problems = decode_python(data, path)
    if text is None:
        return None, problems
    comments, problems = scan_tokens(text, path)
    if problems:
        return None, problems
    tree, problems = parse_tree(text, path)
    if tree is None:
        return None, problems
    problems = check_tree_depth(tree, path)
    if problems:
        return None, problems
    return PythonSource(path, text, tree, MappingProxyType(comments)), []


def error(path: str, line: int, col: int, code: str, message: str) -> Diagnostic:
    return Diagnostic(path, line, col, "", code, message)


# -- 1. bytes -> text ----------------------------------------------------------------------------


def decode_python(data: bytes, path: str) -> tuple[str | None, list[Diagnostic]]:
    """Strict UTF-8 without NUL bytes (a leading BOM is dropped); the text, or None and one
    located diagnostic."""
    if len(data) > MAX_PYTHON_BYTES:
        return None, [error(path, 1, 1, "python-too-large",
                            f"Python file larger than {size_in_words(MAX_PYTHON_BYTES)}")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8").removeprefix("\ufeff")
        line, col = line_col(good, len(good))
        return None, [error(path, line, col, "python-not-utf8",
                            f"invalid UTF-8 at line {line}, column {col}: xtc import reads UTF-8")]
    text = text.removeprefix("\ufeff")
    nul = text.find("\0")
    if nul >= 0:
        line, col = line_col(text, nul)
        return None, [error(path, line, col, "python-nul-byte",
                            f"NUL byte at line {line}, column {col}")]
    problems = cookie_problems(text, path)
    return (None if problems else text), problems


def cookie_problems(text: str, path: str) -> list[Diagnostic]:
    """A coding cookie (`# -*- coding: latin-1 -*-`) must name UTF-8, or ASCII for an ASCII file:
    the text was decoded as UTF-8, so any other encoding would mean a different program.

    >>> [d.message for d in cookie_problems("# coding: latin-1\\nx = 1\\n", "m.py")]
    ["the coding cookie names 'latin-1': xtc import reads UTF-8 only"]
    >>> cookie_problems("#!/usr/bin/env python\\n# -*- coding: utf-8 -*-\\n", "m.py")
    []
    """
    for line_no, line in enumerate(text.split("\n", 2)[:2], start=1):
        match = CODING_COOKIE.match(line)
        if match:
            name = match[1]
            if encoding_agrees(name, text):
                return []
            return [error(path, line_no, match.start(1) + 1, "python-not-utf8",
                          f"the coding cookie names {shown(name)}: xtc import reads UTF-8 only")]
        if not BLANK_OR_COMMENT.match(line):
            return []
    return []


def encoding_agrees(name: str, text: str) -> bool:
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return False
    return canonical in UTF8_NAMES or (canonical == "ascii" and text.isascii())


# -- 2. tokens -----------------------------------------------------------------------------------


def scan_tokens(text: str, path: str) -> tuple[dict[int, Comment], list[Diagnostic]]:
    """Count tokens, bracket nesting and operator chains; collect comments. Stops at the first
    token over a bound, so a hostile file costs at most MAX_TOKENS tokens of work."""
    comments: dict[int, Comment] = {}
    opened: list[tuple[int, int, str]] = []  # (line, col, bracket) of each open bracket
    chain = [0]  # operators in the expression being read, for each open bracket and the line
    count = 0
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    try:
        for token in tokens:
            line, col = token.start[0], token.start[1] + 1
            fields = fstring_fields(token)
            if fields > MAX_FSTRING_FIELDS:
                return comments, [error(path, line, col, "python-too-complex",
                                        f"an f-string with more than {MAX_FSTRING_FIELDS} "
                                        "replacement fields")]
            count += 1 + fields
            if count > MAX_TOKENS:
                return comments, [error(path, line, col, "python-too-many-tokens",
                                        f"more than {MAX_TOKENS} tokens: a model-building "
                                        "file has a few hundred")]
            if token.type == tokenize.COMMENT:
                comments[line] = Comment(token.string[1:].strip(),
                                         own_line=not token.line[: token.start[1]].strip())
            elif token.type == tokenize.NEWLINE:
                chain = [0]
            elif token.type == tokenize.OP and token.string in OPENING:
                chain[-1] += 1  # a call or subscript nests what comes before it
                opened.append((line, col, token.string))
                chain.append(0)
                if len(opened) > MAX_NESTING:
                    return comments, [error(path, line, col, "python-too-deep",
                                            f"brackets nested more than {MAX_NESTING} deep")]
            elif token.type == tokenize.OP and token.string in CLOSING:
                if opened:  # an unmatched one is the parser's to report
                    opened.pop()
                    chain.pop()
            elif token.type == tokenize.OP and token.string in SEPARATORS:
                chain[-1] = 0
            elif token.type == tokenize.OP or (token.type == tokenize.NAME
                                               and token.string in KEYWORD_OPERATORS):
                chain[-1] += 1
            if chain[-1] > MAX_CHAIN:
                return comments, [error(path, line, col, "python-too-deep",
                                        f"more than {MAX_CHAIN} operators in one expression "
                                        "without brackets or commas")]
    except tokenize.TokenError as exc:
        return comments, [token_error(exc, opened, path)]
    except SyntaxError as exc:  # IndentationError: a dedent to no outer level
        return comments, [error(path, exc.lineno or 1, (exc.offset or 0) + 1, "python-syntax",
                                plain(exc.msg))]
    finally:
        tokens.close()
    return comments, []


def fstring_fields(token: tokenize.TokenInfo) -> int:
    """How many replacement fields an f-string token may hold, counted as its `{` (an escaped
    `{{` counts twice: an upper bound is all the bound needs); 0 for any other token.

    >>> [fstring_fields(t) for t in tokenize.generate_tokens(io.StringIO("f'{a}{b:{c}}' '{}'").readline)]
    [3, 0, 0, 0]
    """
    if token.type != tokenize.STRING:
        return 0
    prefix = token.string[: len(token.string) - len(token.string.lstrip("bBrRuUfF"))]
    return token.string.count("{") if "f" in prefix.lower() else 0


def token_error(exc: tokenize.TokenError, opened: list[tuple[int, int, str]],
                path: str) -> Diagnostic:
    """The end of the file inside a string or a bracket, at the string's start or the bracket."""
    message, (line, col) = exc.args
    if "string" in message:
        return error(path, line, col + 1, "python-syntax", "unterminated triple-quoted string")
    if opened:
        line, col, bracket = opened[-1]
        return error(path, line, col, "python-syntax", f"{bracket!r} is never closed")
    return error(path, max(line - 1, 1), 1, "python-syntax",
                 "the file ends after a line continuation (\\)")


# -- 3. text -> tree -----------------------------------------------------------------------------


def parse_tree(text: str, path: str) -> tuple[ast.Module | None, list[Diagnostic]]:
    """ast.parse, with every way it can fail as one located diagnostic."""
    try:
        return ast.parse(text, filename=path), []
    except SyntaxError as exc:
        line, col = exc.lineno or 1, exc.offset or 1
        return None, [error(path, line, max(col, 1), "python-syntax", plain(exc.msg))]
    except (RecursionError, MemoryError):
        return None, [error(path, 1, 1, "python-too-complex",
                            "the file is nested too deeply for Python's parser")]
    except ValueError as exc:
        return None, [error(path, 1, 1, "python-too-complex", plain(str(exc)))]


def check_tree_depth(tree: ast.AST, path: str) -> list[Diagnostic]:
    """Refuse a tree deeper than MAX_TREE_DEPTH, at the first node too deep (walked without
    recursion, so the walk itself cannot overflow)."""
    stack = [(tree, 0, (1, 1))]
    while stack:
        node, depth, where = stack.pop()
        if hasattr(node, "lineno"):
            where = (node.lineno, node.col_offset + 1)
        if depth > MAX_TREE_DEPTH:
            return [error(path, *where, "python-too-deep",
                          f"code nested more than {MAX_TREE_DEPTH} levels deep")]
        stack.extend((child, depth + 1, where) for child in ast.iter_child_nodes(node))
    return []


def plain(message: str) -> str:
    """The parser's message as it may appear in a diagnostic: printable ASCII, bounded."""
    if not (message.isascii() and message.isprintable()):
        message = ascii(message)[1:-1]
    return message[:MESSAGE_LIMIT]


def shown(name: str) -> str:
    return repr(name[:40]) if name.isascii() and name.isprintable() else ascii(name[:40])
