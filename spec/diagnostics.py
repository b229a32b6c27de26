"""Diagnostics: problems with a spec, as values that carry their source location.

Every stage (reader, YAML loader, schema, check passes) returns a list of `Diagnostic`s instead of
raising, so that one run reports every problem at once (sqlglot's ErrorLevel.RAISE: collect all
errors, then fail once). `SpecError` is the single exception a user sees for a bad spec.

>>> d = Diagnostic("gpt.yaml", 3, 5, "model.heads", "expected-int", "expected integer, got '4'")
>>> d.render()
"gpt.yaml:3:5: error[expected-int] model.heads: expected integer, got '4'"
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

ERROR = "error"
WARNING = "warning"
NOTE = "note"  # about the run, not the spec: checks that did not run, and why

# Values echoed in messages are ascii()-escaped and cut to this length, so that no control or
# bidi character and no megabyte of text ever reaches a terminal or a CI log.
ECHO_LIMIT = 80
# Key paths are dotted names; a key made of other text (a quoted YAML key holding spaces, colons or
# a newline) is shown quoted and cut like a value, so it cannot pose as another diagnostic.
PLAIN_KEY = re.compile(r"[A-Za-z0-9_.<>-]{1,200}")


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place: 1-based line and column, dotted key path, kebab-case rule id."""

    path: str
    line: int
    col: int
    key: str
    code: str
    message: str
    severity: str = ERROR

    def render(self) -> str:
        """`PATH:LINE:COL: error[code] key.path: message` (docs/cli.md)."""
        key = f"{shown_key(self.key)}: " if self.key else ""
        where = f"{printable(self.path)}:{self.line}:{self.col}"
        return f"{where}: {self.severity}[{self.code}] {key}{self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


class SpecError(ValueError):
    """A spec was rejected; `.diagnostics` holds every problem found, errors and warnings."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = in_output_order(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == ERROR]
        shown = "\n".join(d.render() for d in errors or self.diagnostics)
        super().__init__(f"{len(errors)} error(s) in spec:\n{shown}")


def shown_key(key: str) -> str:
    """A key path as text output shows it.

    >>> shown_key("model.attn_layers.heads"), shown_key("components.x; import os")
    ('model.attn_layers.heads', "'components.x; import os'")
    """
    return key if PLAIN_KEY.fullmatch(key) else echo(key)


def echo(value: object) -> str:
    """A value as it may appear in a message: ascii()-escaped, at most ECHO_LIMIT characters.

    >>> echo("caf\\u00e9")
    "'caf\\\\xe9'"
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        # str() of a 4300+ digit int raises since Python 3.11: never format huge ints in full.
        return f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    text = ascii(value)
    if len(text) > ECHO_LIMIT:
        text = text[: ECHO_LIMIT - 3] + "..."
    return text


def printable(text: str) -> str:
    """Text as is when it is plain printable, else ascii()-escaped (a file name can hold a
    newline or a bidi control, and a key can come from a quoted YAML string)."""
    return text if text.isprintable() and text.isascii() else ascii(text)[1:-1]


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == ERROR for d in diagnostics)


def in_output_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """By file, then by position; a file's notes close its part of the output."""
    return sorted(diagnostics, key=lambda d: (d.path, d.severity == NOTE, d))


def render_text(diagnostics: list[Diagnostic]) -> str:
    return "".join(d.render() + "\n" for d in in_output_order(diagnostics))


def render_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.as_dict() for d in in_output_order(diagnostics)], indent=2) + "\n"


def workflow_command(level: str, path: str, line: int, message: str, col: int | None = None,
                     title: str = "") -> str:
    """A GitHub Actions workflow command (`::notice file=...,line=N::message`), shown inline
    on the pull request: the message's line breaks and percent signs escaped, and the
    properties' colons and commas too."""
    where = f"file={escape_property(path)},line={line}"
    where += f",col={col}" if col is not None else ""
    where += f",title={escape_property(title)}" if title else ""
    return f"::{level} {where}::{escape_data(message)}"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
