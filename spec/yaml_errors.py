"""Plain-language explanations of YAML syntax errors, located where the mistake is.

PyYAML reports where it gave up, in its own terms ("mapping values are not allowed here", "did
not find expected key"), worded differently by libyaml and the pure-Python parser, and often
lines after the mistake: an unclosed `{` or quote is reported at the end of the file. This module
reads the text itself and names the likely cause at the place to fix it:

- `scan_text` is a small lexer: quoted strings, flow brackets, comments and block scalars, and
  for every line its indentation and shape (a key, a list item, a plain word);
- `explain_syntax_error` takes the parser's mark and tries the rules of `RULES` in order (an
  unclosed quote or bracket first, since everything after it reads differently), then the shape
  of the line the parser stopped at against the lines above it.

The lexer follows YAML closely enough to explain an error the parser has already found. The one
thing it decides alone is which tabs to refuse (`tab_problem`), the same for either parser.

>>> explain_syntax_error("model:\\n  attn: {flash: true\\n  depth: 2\\n", 3, 8).message
"this '{' is never closed: add the '}' that ends it (YAML read on to line 3 looking for it)"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .diagnostics import echo

CLOSING = {"[": "]", "{": "}"}
FLOW_NAMES = {"[": "list", "{": "mapping"}
# What may follow a backslash in a double-quoted string (YAML 1.2, section 5.7).
ESCAPES = frozenset("0abt\tnvfre \"/\\N_LPxuU")
# Characters YAML reserves: a plain value cannot start with them.
RESERVED_STARTS = frozenset("@`%")
LEADING_BLANKS = re.compile(r"[ \t]*")
DOCUMENT_MARKER = re.compile(r"(---|\.\.\.)(?=[ \t]|$)")
# Runs of characters that cannot end a plain value (in block or flow context) or a quoted string,
# skipped at once: the scan stays well under a second on a 1 MiB spec.
PLAIN_RUN = {False: re.compile(r"[^ \t:#]*"), True: re.compile(r"[^ \t:#,\[\]{}]*")}
QUOTED_RUN = {"'": re.compile(r"[^']*"), '"': re.compile(r'[^"\\]*')}
# The line breaks PyYAML counts lines by, so that its marks and ours agree.
LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based place in the text and the character found there."""

    line: int
    col: int
    char: str = field(default="", compare=False)


@dataclass
class LineShape:
    """How a line starts, for the indentation rules.

    kind: "blank", "comment", "inside" (it begins inside a quoted string, a flow collection or a
    block scalar), "key" (`key: ...`), "item" (`- ...`, maybe `- key: ...`), "plain" (a value
    with no `key:`) or "other" (a line starting with a quote, bracket or anchor and no key).
    """

    number: int
    indent: int
    kind: str = "blank"
    first: str = ""  # the first word, for messages
    key: str = ""  # the first mapping key on the line, after any `- `
    key_col: int = 0  # its 1-based column
    colon_col: int = 0  # the 1-based column of its ':'
    has_value: bool = False  # the key (or the item) has a value on this line
    dash_col: int = 0  # 1-based column of the leading '-' of an item

    def name(self) -> str:
        """What a message calls the line's first word: `'heads'`, or `the list item`."""
        return "the list item" if self.kind == "item" else echo(self.key or self.first)

    def label(self) -> str:
        return f"{self.name()} on line {self.number}"


@dataclass
class Scan:
    """What `scan_text` found, everything 1-based."""

    text_lines: list[str] = field(default_factory=list)
    lines: list[LineShape] = field(default_factory=list)
    unclosed_quote: Mark | None = None
    open_brackets: list[Mark] = field(default_factory=list)  # never closed, outermost first
    mismatch: tuple[Mark, Mark] | None = None  # an opening bracket and the wrong closing one
    stray_closer: Mark | None = None  # a ']' or '}' with nothing open
    flow_spans: list[tuple[Mark, Mark]] = field(default_factory=list)  # closed ones
    bad_escape: Mark | None = None
    quoted_spans: list[tuple[Mark, Mark]] = field(default_factory=list)  # over several lines
    first_tab: Mark | None = None
    tab_indents: bool = False  # the first tab is in a line's leading white space

    def line(self, number: int) -> LineShape | None:
        return self.lines[number - 1] if 1 <= number <= len(self.lines) else None

    def char_at(self, mark: Mark) -> str:
        if not 1 <= mark.line <= len(self.text_lines):
            return ""
        return self.text_lines[mark.line - 1][mark.col - 1 : mark.col]


class TextScanner:
    """One pass over the text, line by line; quoted strings and flow collections may span lines.

    In block context (outside brackets) a quote or bracket is an indicator only where a value
    starts: `name: it's` and `name: a[0]` are plain words, as in YAML.
    """

    def __init__(self):
        self.scan = Scan()
        self.flow: list[Mark] = []
        self.quote: Mark | None = None
        self.block_scalar_above: int | None = None  # block scalar lines are indented deeper

    def run(self, text: str) -> Scan:
        self.scan.text_lines = LINE_BREAK.split(text)
        for number, line in enumerate(self.scan.text_lines, start=1):
            self.scan.lines.append(self.scan_line(number, line))
        self.scan.unclosed_quote = self.quote
        self.scan.open_brackets = list(self.flow)
        return self.scan

    def scan_line(self, number: int, line: str) -> LineShape:
        indent = len(line) - len(line.lstrip(" "))
        if self.in_block_scalar(line, indent):
            return LineShape(number, indent, "inside")
        shape = LineShape(number, indent, "inside" if self.quote or self.flow else "blank")
        LineScanner(self, shape, line).run()
        return shape

    def in_block_scalar(self, line: str, indent: int) -> bool:
        if self.block_scalar_above is None:
            return False
        if not line.strip(" ") or indent > self.block_scalar_above:
            return True
        self.block_scalar_above = None
        return False

    def tab(self, number: int, index: int, indents: bool) -> None:
        if self.scan.first_tab is None:
            self.scan.first_tab = Mark(number, index + 1, "\t")
            self.scan.tab_indents = indents

    def open_bracket(self, mark: Mark) -> None:
        self.flow.append(mark)

    def close_bracket(self, mark: Mark) -> None:
        if not self.flow:
            self.scan.stray_closer = self.scan.stray_closer or mark
            return
        opening = self.flow.pop()
        if CLOSING[opening.char] != mark.char and self.scan.mismatch is None:
            self.scan.mismatch = (opening, mark)
        self.scan.flow_spans.append((opening, mark))

    def close_quote(self, opening: Mark, closing: Mark) -> None:
        if closing.line > opening.line:
            self.scan.quoted_spans.append((opening, closing))


class LineScanner:
    """The tokens of one line, as far as the rules need them."""

    def __init__(self, text: TextScanner, shape: LineShape, line: str):
        self.text, self.shape, self.line = text, shape, line
        self.pos = 0
        self.in_plain = False  # inside a plain (unquoted) value: quotes and brackets are text
        self.scalar_start: int | None = None  # where the line's first value began
        self.after_colon = False

    def mark(self) -> Mark:
        return Mark(self.shape.number, self.pos + 1, self.line[self.pos : self.pos + 1])

    def run(self) -> None:
        if self.text.quote is not None:
            self.continue_quote()
        else:
            self.skip_leading_blanks()
        while self.pos < len(self.line):
            if not self.step():
                return

    def skip_leading_blanks(self) -> None:
        self.skip_blanks(indents=True)
        if self.pos == 0 and DOCUMENT_MARKER.match(self.line):
            self.pos = 3  # `---` or `...` holds no key: the line is blank but for what follows
            self.skip_blanks(indents=False)
        if self.shape.kind == "blank" and self.pos < len(self.line):
            self.shape.kind = "comment" if self.line[self.pos] == "#" else "other"

    def skip_blanks(self, indents: bool) -> None:
        blanks = LEADING_BLANKS.match(self.line, self.pos).group()
        if "\t" in blanks:
            self.text.tab(self.shape.number, self.pos + blanks.index("\t"), indents)
        self.pos += len(blanks)

    def step(self) -> bool:
        """Read one character or token; False at a comment or a block scalar (end of line)."""
        char = self.line[self.pos]
        if char in " \t":
            if char == "\t":
                self.text.tab(self.shape.number, self.pos, indents=False)
            self.pos += 1
        elif char == "#" and (self.pos == 0 or self.line[self.pos - 1] in " \t"):
            return False
        elif self.is_value_indicator():
            self.colon()
        elif self.in_plain and not (self.text.flow and char in ",[]{}"):
            self.skip(PLAIN_RUN[bool(self.text.flow)])
        else:
            return self.token(char)
        return True

    def is_value_indicator(self) -> bool:
        if self.line[self.pos] != ":":
            return False
        after = self.line[self.pos + 1 : self.pos + 2]
        return after in ("", " ", "\t") or bool(self.text.flow and after in ",[]{}")

    def colon(self) -> None:
        shape = self.shape
        if not self.text.flow and not shape.key and self.scalar_start is not None:
            shape.key = self.line[self.scalar_start : self.pos].strip()
            shape.key_col, shape.colon_col = self.scalar_start + 1, self.pos + 1
            shape.kind = "item" if shape.kind == "item" else "key"
            shape.has_value, self.after_colon = False, True
        self.in_plain = False
        self.pos += 1

    def token(self, char: str) -> bool:
        """The start of a value or an indicator, outside a plain value."""
        self.value_started(char)
        if char in "'\"":
            self.open_quote(char)
        elif char in "[{":
            self.text.open_bracket(self.mark())
            self.pos += 1
        elif char in "]}":
            self.text.close_bracket(self.mark())
            self.pos += 1
        elif char == "," and self.text.flow:
            self.pos += 1
        elif char in "-?" and self.line[self.pos + 1 : self.pos + 2] in ("", " ") and not self.text.flow:
            self.block_indicator(char)
        elif char in "|>" and not self.text.flow:
            self.text.block_scalar_above = self.block_scalar_parent()
            return False
        elif char in "&!*":
            self.skip_property()
        else:
            self.start_plain()
        return True

    def value_started(self, char: str) -> None:
        """has_value: the line's key, or its list item when it has no key, is given a value."""
        item_value = self.shape.kind == "item" and not self.shape.key and char != "-"
        if self.after_colon or item_value:
            self.shape.has_value = True

    def block_indicator(self, char: str) -> None:
        if char == "-" and self.shape.kind == "other" and self.scalar_start is None:
            self.shape.kind, self.shape.dash_col = "item", self.pos + 1
            self.shape.first = self.shape.first or "-"
        self.pos += 1

    def block_scalar_parent(self) -> int:
        """Lines of a `|` or `>` value are indented deeper than the key or item that holds it."""
        shape = self.shape
        if shape.key:
            return shape.key_col - 1
        return shape.dash_col - 1 if shape.kind == "item" else shape.indent

    def skip_property(self) -> None:
        """An anchor, tag or alias: one word, not a value of its own (an alias stands for one)."""
        end = self.pos
        while end < len(self.line) and self.line[end] not in " \t" + (",[]{}" if self.text.flow else ""):
            end += 1
        self.first_word(self.pos, end)
        self.pos = end

    def start_plain(self) -> None:
        if self.scalar_start is None:
            self.scalar_start = self.pos
            if self.shape.kind == "other":
                self.shape.kind = "plain"
        self.first_word(self.pos, len(self.line))
        self.in_plain = True
        self.pos += 1

    def first_word(self, start: int, end: int) -> None:
        if not self.shape.first:
            self.shape.first = self.line[start:end].split(" ")[0].rstrip(":")

    def open_quote(self, char: str) -> None:
        if self.scalar_start is None:
            self.scalar_start = self.pos
        self.first_word(self.pos, len(self.line))
        self.text.quote = self.mark()
        self.pos += 1
        self.continue_quote()

    def continue_quote(self) -> None:
        """Read up to the closing quote, or to the end of the line if it is still open."""
        quote = self.text.quote
        while self.pos < len(self.line):
            char = self.line[self.pos]
            if char == quote.char and quote.char == "'" and self.line[self.pos + 1 : self.pos + 2] == "'":
                self.pos += 2
            elif char == quote.char:
                self.text.close_quote(quote, self.mark())
                self.text.quote = None
                self.pos += 1
                return
            elif char == "\\" and quote.char == '"':
                self.escape()
            else:
                self.skip(QUOTED_RUN[quote.char])

    def skip(self, run: re.Pattern) -> None:
        """Past a run of ordinary characters, or past this one character if it starts none."""
        self.pos = max(run.match(self.line, self.pos).end(), self.pos + 1)

    def escape(self) -> None:
        escaped = self.line[self.pos + 1 : self.pos + 2]
        if escaped and escaped not in ESCAPES and self.text.scan.bad_escape is None:
            self.text.scan.bad_escape = self.mark()
        self.pos += 2


def scan_text(text: str) -> Scan:
    """Quotes, brackets, tabs and the shape of every line of `text` (see `TextScanner`)."""
    return TextScanner().run(text)


@dataclass(frozen=True)
class Explanation:
    """A diagnostic without its path: where to fix the text, the rule id, the message."""

    line: int
    col: int
    code: str
    message: str


def tab_problem(text: str) -> Explanation | None:
    """A tab outside quoted strings, comments and block scalars, refused whichever parser runs.

    Both parsers refuse a tab in indentation, but libyaml accepts one between words
    (`type:<tab>x`) where PyYAML's pure-Python parser refuses it: refusing every such tab
    before parsing keeps one verdict (docs/security.md, E6).
    """
    if "\t" not in text:
        return None
    scan = scan_text(text)
    tab = scan.first_tab
    if tab is None:
        return None
    return Explanation(tab.line, tab.col, "tab-indentation", tab_message(scan.tab_indents))


def tab_message(indents: bool) -> str:
    if indents:
        return "a tab indents this line, and YAML indents with spaces only: replace it with spaces"
    return ("a tab outside a quoted string or comment: PyYAML's pure-Python parser refuses it, "
            "so xtc does with either parser; replace it with a space")


def explain_syntax_error(text: str, line: int, col: int) -> Explanation | None:
    """The likely cause of a parse error that PyYAML marked at (line, col), or None."""
    scan = scan_text(text)
    at = Mark(line, col)
    for rule in RULES:
        found = rule(scan, at)
        if found:
            return found
    return None


def unexplained(problem: str | None) -> str:
    """The message for an error no rule explains: the parser's problem, in plain words."""
    for words, plain in PARSER_PHRASES:
        if words in (problem or ""):
            return f"YAML cannot read this: {plain}"
    return f"YAML cannot read this: {problem or 'invalid YAML'}"


# What PyYAML's problems (libyaml's wording and the pure-Python parser's) usually mean.
DOES_NOT_FIT = "this line does not fit the lines above it; check its indentation"
PARSER_PHRASES = (
    ("mapping values are not allowed", "a ': ' where no key can start"),
    ("did not find expected key", DOES_NOT_FIT),
    ("expected <block end>", DOES_NOT_FIT),
    ("could not find expected ':'", "a key without its ':'"),
    ("did not find expected ','", "a ',' or a closing bracket is missing"),
    ("expected ',' or", "a ',' or a closing bracket is missing"),
    ("did not find expected '-'", "a line among list items that is not a '- ' item"),
    ("node content", "a value is missing here"),
    ("cannot start any token", "this character cannot start a value; put the value in quotes"),
    ("undefined alias", "an alias ('*name') with no anchor ('&name') before it"),
)


def syntax(place: Mark | LineShape, message: str) -> Explanation:
    """A yaml-syntax explanation at a mark, or at the first word of a line."""
    if isinstance(place, LineShape):
        return Explanation(place.number, place.indent + 1, "yaml-syntax", message)
    return Explanation(place.line, place.col, "yaml-syntax", message)


# -- Rules: each looks at the scan and the parser's mark; the first that applies explains it. --

def unclosed_quote(scan: Scan, at: Mark) -> Explanation | None:
    opening = scan.unclosed_quote
    if opening is None or opening > at:
        return None
    return syntax(opening, f"this {opening.char!r} opens a string that is never closed: add "
                           f"the closing {opening.char!r} where the value ends")


def bad_escape(scan: Scan, at: Mark) -> Explanation | None:
    mark = scan.bad_escape
    if mark is None or mark > at:
        return None
    return syntax(mark, "unknown escape in a double-quoted string: write '\\\\' for a "
                        "backslash, or use single quotes, in which a backslash is plain text")


def quote_closed_lines_later(scan: Scan, at: Mark) -> Explanation | None:
    """A string that runs over lines up to the error: its closing quote is probably missing."""
    for opening, closing in scan.quoted_spans:
        if opening < at and closing.line == at.line:
            return syntax(opening, f"the string that opens here with {opening.char!r} runs on to "
                                   f"line {closing.line}: is its closing {opening.char!r} missing?")
    return None


def wrong_closing_bracket(scan: Scan, at: Mark) -> Explanation | None:
    if scan.mismatch is None or scan.mismatch[1] > at:
        return None
    opening, closing = scan.mismatch
    return syntax(opening, f"this {opening.char!r} is never closed: add the "
                           f"{CLOSING[opening.char]!r} that ends it (the {closing.char!r} at "
                           f"line {closing.line}, column {closing.col} cannot)")


def unclosed_bracket(scan: Scan, at: Mark) -> Explanation | None:
    opened = [mark for mark in scan.open_brackets if mark <= at]
    if not opened:
        return None
    opening = opened[-1]  # the innermost: its closing bracket is the first one missing
    return syntax(opening, f"this {opening.char!r} is never closed: add the "
                           f"{CLOSING[opening.char]!r} that ends it (YAML read on to line "
                           f"{at.line} looking for it)")


def stray_closing_bracket(scan: Scan, at: Mark) -> Explanation | None:
    mark = scan.stray_closer
    if mark is None or mark > at:
        return None
    return syntax(mark, f"this {mark.char!r} closes nothing: no '[' or '{{' is open here; "
                        "remove it, or put the value in quotes if it is text")


def tab_at_mark(scan: Scan, at: Mark) -> Explanation | None:
    """A tab that the parser refused and `tab_problem` did not see (a safety net)."""
    if scan.char_at(at) != "\t":
        return None
    before = scan.text_lines[at.line - 1][: at.col - 1]
    return Explanation(at.line, at.col, "tab-indentation", tab_message(not before.strip(" \t")))


def reserved_character(scan: Scan, at: Mark) -> Explanation | None:
    char = scan.char_at(at)
    if char not in RESERVED_STARTS or not char:
        return None
    return syntax(at, f"a value cannot start with {char!r}: put the value in quotes")


def undefined_alias(scan: Scan, at: Mark) -> Explanation | None:
    if scan.char_at(at) != "*":
        return None
    return syntax(at, "'*' makes an alias of an anchor ('&name') defined before it, and there "
                      "is none by this name: put the value in quotes if '*' is meant as text")


def inside_flow(scan: Scan, at: Mark) -> Explanation | None:
    around = [opening for opening, closing in scan.flow_spans
              if opening < at <= closing]
    if not around:
        return None
    opening = max(around)
    name, closing = FLOW_NAMES[opening.char], CLOSING[opening.char]
    return syntax(at, f"inside the {name} {opening.char!r} opened at line {opening.line}, column "
                      f"{opening.col}, entries are separated by ',': is a ',' missing before "
                      f"this, or does a value holding {closing!r}, ',' or ': ' need quotes?")


def second_colon(scan: Scan, at: Mark) -> Explanation | None:
    shape = scan.line(at.line)
    if shape is None or not shape.colon_col or at.col <= shape.colon_col:
        return None
    if scan.char_at(at) != ":":
        return None
    return syntax(at, f"a second ': ' after the key {shape.name()}: put a value that holds ': ' "
                      "in quotes, or break the line into nested keys")


def missing_colon(scan: Scan, at: Mark) -> Explanation | None:
    stopped = stopped_line(scan, at)
    if stopped is None:
        return None
    # The parser stops at the word line, or at the next key when it read both as one value: a
    # sibling, or a key indented under the word (`attn` then `  flash: true`).
    word = stopped if stopped.kind == "plain" else previous_line(scan, stopped)
    if word is None or word.kind != "plain" or word.indent > stopped.indent:
        return None
    if not is_stray_word(scan, word):
        return None
    return syntax(word, f"expected `key: value`; is a ':' missing after {echo(word.first)}?")


def list_item_among_keys(scan: Scan, at: Mark) -> Explanation | None:
    shape = stopped_line(scan, at)
    if shape is None or shape.kind != "item":
        return None
    above = line_above_at_or_left_of(scan, shape)
    if above is None or above.kind != "key" or above.indent != shape.indent:
        return None
    if not above.has_value and above is previous_line(scan, shape):
        return None  # `key:` then `- item` at the same indentation is a list under that key
    return syntax(shape, f"a list item ('- ') among the keys of a mapping ({above.label()} is "
                         "a key at this indentation): remove the '- ' to make it a key, or put "
                         "the list under a key of its own, its items indented below it")


def key_among_list_items(scan: Scan, at: Mark) -> Explanation | None:
    shape = stopped_line(scan, at)
    if shape is None or shape.kind != "key":
        return None
    above = line_above_at_or_left_of(scan, shape)
    if above is None or above.kind != "item" or above.dash_col != shape.indent + 1:
        return None
    return syntax(shape, f"a mapping key among list items ({above.label()} has its '- ' at "
                         "this indentation): put '- ' before it to make it an item, or indent "
                         "it to the keys of the item it belongs to")


def bad_indentation(scan: Scan, at: Mark) -> Explanation | None:
    shape = stopped_line(scan, at)
    if shape is None:
        return None
    levels = open_levels(scan, shape.number)
    outer = [(indent, line) for indent, line in levels if indent <= shape.indent]
    inner = [(indent, line) for indent, line in levels if indent > shape.indent]
    if outer and outer[-1][0] == shape.indent:
        return None  # it lines up with keys above it
    start = f"this line is indented differently from the keys above it: {shape.name()} starts " \
            f"at column {shape.indent + 1}"
    if inner:
        return syntax(shape, f"{start}, but {levels_text(outer, inner)}; line it up with the "
                             "keys of its mapping")
    if outer and outer[-1][1].has_value:
        parent = outer[-1][1]
        return syntax(shape, f"{start}, deeper than {parent.label()} (column {outer[-1][0] + 1}), "
                             "which already has a value; line it up with the keys of its mapping")
    return None


RULES: tuple[Callable[[Scan, Mark], Explanation | None], ...] = (
    unclosed_quote, bad_escape, quote_closed_lines_later, wrong_closing_bracket, unclosed_bracket,
    stray_closing_bracket, tab_at_mark, reserved_character, undefined_alias, inside_flow,
    second_colon, missing_colon, list_item_among_keys, key_among_list_items, bad_indentation,
)


# -- Helpers of the line rules --------------------------------------------------------------

def stopped_line(scan: Scan, at: Mark) -> LineShape | None:
    """The line the parser stopped at, or the last one with content before it (the parser
    often stops at the end of the file or at a blank line); None inside a string or bracket."""
    for number in range(min(at.line, len(scan.lines)), 0, -1):
        shape = scan.lines[number - 1]
        if shape.kind not in ("blank", "comment"):
            return None if shape.kind == "inside" else shape
    return None


def previous_line(scan: Scan, shape: LineShape) -> LineShape | None:
    """The nearest line above with content, None if that begins inside a string or bracket."""
    for above in reversed(scan.lines[: shape.number - 1]):
        if above.kind not in ("blank", "comment"):
            return None if above.kind == "inside" else above
    return None


def line_above_at_or_left_of(scan: Scan, shape: LineShape) -> LineShape | None:
    """The nearest key or item line above that is indented no deeper than `shape`."""
    for above in reversed(scan.lines[: shape.number - 1]):
        if above.kind in ("key", "item") and above.indent <= shape.indent:
            return above
    return None


def is_stray_word(scan: Scan, shape: LineShape) -> bool:
    """A plain line that stands where a key should (not the continuation of a long value)."""
    above = previous_line(scan, shape)
    if above is None:
        return True
    if above.key and above.key_col == shape.indent + 1:  # a key at the same column
        return True
    # A line indented under `key:` starts that key's value; under `key: value`, it goes on.
    return above.indent < shape.indent and above.kind in ("key", "item") and not above.has_value


def open_levels(scan: Scan, before: int) -> list[tuple[int, LineShape]]:
    """The indentations of the keys and items still open above line `before`, outermost first,
    each with its most recent line."""
    levels: list[tuple[int, LineShape]] = []
    for shape in scan.lines[: before - 1]:
        if shape.kind not in ("key", "item"):
            continue
        levels = [level for level in levels if level[0] < shape.indent]
        levels.append((shape.indent, shape))
        if shape.kind == "item" and shape.key:  # `- key: value` opens the item's mapping
            levels.append((shape.key_col - 1, shape))
    return levels


def levels_text(outer: list, inner: list) -> str:
    """`'type' on line 3 starts at column 3 and 'model' on line 2 at column 1`."""
    indent, line = inner[0]
    text = f"{line.label()} starts at column {indent + 1}"
    if outer:
        text += f" and {outer[-1][1].label()} at column {outer[-1][0] + 1}"
    return text
