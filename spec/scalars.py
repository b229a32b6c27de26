"""Typing plain YAML scalars under YAML 1.2 core rules, strictly.

PyYAML follows YAML 1.1, where `yes`, `off`, `010` (octal 8), `0x1F` and `1:30` (base 60) are
not what they look like. xtc types plain scalars itself and refuses the ambiguous forms instead
of guessing: a spec must mean what it reads as.

>>> type_plain_scalar("64")
(64, None)
>>> type_plain_scalar("yes")[1]
"'yes' is not a boolean; write true or false (quote it for a string)"
"""

from __future__ import annotations

import math
import re

NULLS = frozenset({"", "~", "null", "Null", "NULL"})
TRUES = frozenset({"true", "True", "TRUE"})
FALSES = frozenset({"false", "False", "FALSE"})
YAML11_BOOLS = frozenset(
    f"{word}" for base in ("yes", "no", "on", "off") for word in (base, base.title(), base.upper())
)
MAX_INT_DIGITS = 30  # far past any model size, far below Python's 4300-digit str() limit

DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
LEADING_ZERO_INT = re.compile(r"[-+]?0[0-9]+")
OTHER_BASE_INT = re.compile(r"[-+]?0([xX][0-9a-fA-F_]+|[oO][0-7_]+|[bB][01_]+)")
SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")
UNDERSCORE_NUMBER = re.compile(r"[-+]?[0-9][0-9_]*_[0-9_]*(\.[0-9_]*)?")
FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
NON_FINITE = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


def type_plain_scalar(text: str) -> tuple[object, str | None]:
    """The value of an unquoted scalar, or (None, why it is refused)."""
    if text in NULLS:
        return None, None
    if text in TRUES:
        return True, None
    if text in FALSES:
        return False, None
    if text in YAML11_BOOLS:
        return None, f"{text!r} is not a boolean; write true or false (quote it for a string)"
    number = type_number(text)
    if number is not None:
        return number
    return text, None


def type_number(text: str) -> tuple[object, str | None] | None:
    """A number's value or refusal; None when the text does not look like a number at all."""
    if DECIMAL_INT.fullmatch(text):
        if len(text.lstrip("+-")) > MAX_INT_DIGITS:
            return None, f"integer out of range ({len(text.lstrip('+-'))} digits)"
        return int(text), None
    if LEADING_ZERO_INT.fullmatch(text):
        return None, f"leading zeros not allowed in {text!r} (YAML 1.1 reads it as octal)"
    if OTHER_BASE_INT.fullmatch(text):
        return None, f"{text!r}: only decimal numbers are allowed"
    if SEXAGESIMAL.fullmatch(text):
        return None, f"{text!r} looks like a base-60 number; quote it if it is a string"
    if UNDERSCORE_NUMBER.fullmatch(text):
        return None, f"{text!r}: digit separators are not allowed in numbers"
    if NON_FINITE.fullmatch(text):
        return None, f"{text!r} is not a finite number"
    if FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            return None, f"{text!r} is out of the float range"
        return value, None
    return None
