"""JSON read with the place of every key, so that a problem in a config.json names its line.

Python's json module gives values, not places. This reads objects itself (json's own string
scanner for the keys) and leaves everything else to json's decoder, recording where each key of
every object (nested objects too, not objects inside arrays) starts. Bounded: the text's size is
the caller's to bound, nesting is bounded here, and a duplicate key is a problem (JSON leaves it
undefined; Python would keep the last silently).

>>> value, places, duplicates = located_json('{"a": 1,\\n "b": {"c": [2]}}')
>>> value, places[("b", "c")], duplicates
({'a': 1, 'b': {'c': [2]}}, (2, 8), [])
"""

from __future__ import annotations

import json
from bisect import bisect_right
from json.decoder import scanstring

MAX_DEPTH = 32
WHITESPACE = " \t\n\r"

KeyPath = tuple[str, ...]
Place = tuple[int, int]  # 1-based line and column


class JSONError(ValueError):
    """Text that is not JSON (or nests deeper than MAX_DEPTH), at a line and column."""

    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.line, self.col = line, col


def located_json(text: str) -> tuple[object, dict[KeyPath, Place], list[KeyPath]]:
    """The value, the place of each object key by its path, and the paths written twice."""
    reader = Reader(text)
    try:
        value, end = reader.value(0, (), 0)
        end = reader.skip(end)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as exc:
        raise JSONError(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:  # an array nested beyond Python's stack, which json's decoder walks
        raise JSONError(f"nested deeper than {MAX_DEPTH} levels", 1, 1) from None
    return value, reader.places, reader.duplicates


class Reader:
    def __init__(self, text: str):
        self.text = text
        self.decoder = json.JSONDecoder()
        self.places: dict[KeyPath, Place] = {}
        self.duplicates: list[KeyPath] = []
        self.line_starts = [0, *(i + 1 for i, c in enumerate(text) if c == "\n")]

    def skip(self, index: int) -> int:
        while index < len(self.text) and self.text[index] in WHITESPACE:
            index += 1
        return index

    def value(self, index: int, path: KeyPath, depth: int) -> tuple[object, int]:
        index = self.skip(index)
        if depth > MAX_DEPTH:
            raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", self.text, index)
        if self.text.startswith("{", index):
            return self.object(index + 1, path, depth)
        return self.decoder.raw_decode(self.text, index)

    def object(self, index: int, path: KeyPath, depth: int) -> tuple[dict, int]:
        found: dict = {}
        index = self.skip(index)
        if self.text.startswith("}", index):
            return found, index + 1
        while True:
            if not self.text.startswith('"', index):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes",
                                           self.text, index)
            key, after = scanstring(self.text, index + 1)
            here = (*path, key)
            if key in found:
                self.duplicates.append(here)
            self.places.setdefault(here, self.place(index))
            index = self.skip(after)
            if not self.text.startswith(":", index):
                raise json.JSONDecodeError("Expecting ':' delimiter", self.text, index)
            found[key], index = self.value(index + 1, here, depth + 1)
            index = self.skip(index)
            if self.text.startswith("}", index):
                return found, index + 1
            if not self.text.startswith(",", index):
                raise json.JSONDecodeError("Expecting ',' delimiter", self.text, index)
            index = self.skip(index + 1)

    def place(self, index: int) -> Place:
        line = bisect_right(self.line_starts, index)
        return line, index - self.line_starts[line - 1] + 1
