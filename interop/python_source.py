"""Reading Python source as data: bounded, strict UTF-8, tokenized and parsed, never run.

`xtc import` reads files that may come from anywhere, so each stage has a bound that is checked
before the next stage can spend time or memory on the input:

1. bytes: a regular file of at most MAX_PYTHON_BYTES (read_python_bytes), strict UTF-8 without
   NUL bytes; a coding cookie naming another encoding is refused (xtc import reads UTF-8);
2. tokens: at most MAX_TOKENS, brackets nested at most MAX_NESTING deep, and at most MAX_CHAIN
   operators in one expression without brackets or commas (`1+1+...`: CPython's parser builds
   one node per operator and raises RecursionError near 3,000 of them); an f-string's fields
   count as tokens, at most MAX_FSTRING_FIELDS in one f-string;
3. `ast.parse` (never compile, eval or exec), with RecursionError and MemoryError (the parser's
   own stack limits) reported as located diagnostics, not tracebacks, and its warnings silenced;
4. the tree at most MAX_TREE_DEPTH deep, so that whatever walks it recursively afterwards (the
   importer, `literal_value`) stays far below Python's recursion limit.

Measured on the development machine (Python 3.11, 2 cores): the time of parse_python, and the
peak RSS of the whole process (interpreter and imports: 25 MB). The worst inputs found are
those that pass every bound with the most work left: 8,000 f-strings of 9 fields each (0.8 s,
173 MB: each field is a tree of its own); a 250 KiB hexadecimal literal (0.1 s, 160 MB: the
tokenize module's regular expression keeps a backtracking record per digit); 100,000 tokens of
`x = 1` lines (0.5 s, 81 MB) or of one list literal (0.4 s, 71 MB). What a bound refuses costs
less, since the tokens over it are never parsed: 250 KiB of `x = 1` lines, 0.2 s and 25 MB;
a chain of 100,000 `1+` or 1,000 nested brackets, refused at the first token over the bound
(unbounded, the chain made the parser raise RecursionError after 0.5 s). Reading, parsing
and evaluating every keyword argument, as tests/test_import_hostile.py does under a 512 MiB
address-space limit, takes at most 1.3 s and 175 MB for any of these: the issue's targets are
5 s and 512 MB.
"""

from __future__ import annotations

import ast
import codecs
import io
import os
import re
import tokenize
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..spec.diagnostics import Diagnostic, echo, printable
from ..spec.source import line_col, read_bounded_bytes, size_in_words, undecodable_at

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
    "m.py:1:5: error[python-syntax] '(' was never closed"
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
        line, col = undecodable_at(data, exc)
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
                          f"the coding cookie names {echo(name)}: xtc import reads UTF-8 only")]
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
    """Comments by line, or the first token over a bound: a hostile file costs at most
    MAX_TOKENS tokens of work before the parser sees it."""
    bounds = TokenBounds(path)
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    try:
        for token in tokens:
            problem = bounds.check(token)
            if problem:
                return bounds.comments, [problem]
    except tokenize.TokenError:
        # The end of the file inside a string or brackets: every token was read within the
        # bounds, so the parser may see the text and say what is unclosed, where.
        pass
    except SyntaxError as exc:  # IndentationError: a dedent to no outer level, mid-file
        return bounds.comments, [error(path, exc.lineno or 1, (exc.offset or 0) + 1,
                                       "python-syntax", plain(exc.msg))]
    finally:
        tokens.close()
    return bounds.comments, []


class TokenBounds:
    """Step 2 over one file's tokens, in order: counts, nesting, chains, and the comments."""

    def __init__(self, path: str):
        self.path = path
        self.comments: dict[int, Comment] = {}
        self.count = 0
        # Operators since the last comma in the logical line, then in each open bracket: the
        # length is the bracket nesting plus one.
        self.chain = [0]

    def check(self, token: tokenize.TokenInfo) -> Diagnostic | None:
        """Follow one token; the diagnostic of the bound it goes over, if any."""
        line, col = token.start[0], token.start[1] + 1
        fields = fstring_fields(token)
        if fields > MAX_FSTRING_FIELDS:
            return error(self.path, line, col, "python-too-complex",
                         f"an f-string with more than {MAX_FSTRING_FIELDS} replacement fields")
        self.count += 1 + fields
        if self.count > MAX_TOKENS:
            return error(self.path, line, col, "python-too-many-tokens",
                         f"more than {MAX_TOKENS} tokens: a model-building file has a few hundred")
        self.follow(token)
        if len(self.chain) - 1 > MAX_NESTING:
            return error(self.path, line, col, "python-too-deep",
                         f"brackets nested more than {MAX_NESTING} deep")
        if self.chain[-1] > MAX_CHAIN:
            return error(self.path, line, col, "python-too-deep",
                         f"more than {MAX_CHAIN} operators in one expression without brackets "
                         "or commas")
        return None

    def follow(self, token: tokenize.TokenInfo) -> None:
        kind, string = token.type, token.string
        if kind == tokenize.COMMENT:
            own_line = not token.line[: token.start[1]].strip()
            self.comments[token.start[0]] = Comment(string[1:].strip(), own_line)
        elif kind == tokenize.NEWLINE:  # tokenize sees the brackets balanced here, even after
            self.chain = [0]  # a stray closing bracket (the parser reports that)
        elif kind == tokenize.OP and string in OPENING:
            self.chain[-1] += 1  # a call or subscript nests what comes before it
            self.chain.append(0)
        elif kind == tokenize.OP and string in CLOSING:
            if len(self.chain) > 1:
                self.chain.pop()
        elif kind == tokenize.OP and string in SEPARATORS:
            self.chain[-1] = 0
        elif kind == tokenize.OP or (kind == tokenize.NAME and string in KEYWORD_OPERATORS):
            self.chain[-1] += 1


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


# -- 3. text -> tree -----------------------------------------------------------------------------


def parse_tree(text: str, path: str) -> tuple[ast.Module | None, list[Diagnostic]]:
    """ast.parse, with every way it can fail as one located diagnostic. The parser's warnings
    (an invalid escape sequence, `1if`) are silenced: they would print the file's text to
    stderr, and `-W error` would turn them into SyntaxErrors of valid code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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
    """The parser's message as it may appear in a diagnostic: printable ASCII, bounded (it may
    quote the file: "invalid character '\u20ac' (U+20AC)")."""
    return printable(message)[:MESSAGE_LIMIT]
