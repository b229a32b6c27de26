"""Checks on a spec that already has errors: which of them can still run.

When the loader or the schema rejects keys, the spec they build holds defaults where the author's
values were wrong or misspelled. A check that reads such a key could report a problem the author
did not make (`kv_heads: 3` measured against the default 8 heads, when the author's `haeds: 4`
was misspelled), so its findings are set aside and the check is counted as skipped; a check that
reads none of them reports as usual. So one run shows every problem it can vouch for, and says
how many checks are still to come.

Reads are recorded by wrapping the spec's mappings (`TrackedMapping`); a key is *doubtful* when an
error names it or a mapping above it, or when it is the likely meaning of a rejected unknown key
(the same name in another section, or a close spelling).

>>> from .diagnostics import Diagnostic
>>> doubt = Doubt([Diagnostic("s.yaml", 9, 5, "model.attn_layers.haeds", "unknown-key", "...")])
>>> doubt.covers("model.attn_layers.heads", {}), doubt.covers("model.attn_layers.dim", {})
(True, False)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache

from .diagnostics import ERROR, Diagnostic
from .keywords import XTRANSFORMER_SIDES, keyword_table
from .model import ModuleSpec, Spec

EVERY_KEY = "*"  # a read of a whole mapping (iterating it) reads every key in it
# Errors that keep the author's value: an option xtc does not compile yet still holds what was
# written, so `flash: true` beside an unsupported score option reports that conflict too.
VALUE_KEPT = frozenset({"unsupported-option"})


@dataclass
class ReadLog:
    """What one check read: dotted keys of values, `parent.*` for a mapping it listed, and the
    entries each listed mapping held."""

    keys: set[str] = field(default_factory=set)
    listed: dict[str, frozenset] = field(default_factory=dict)


class TrackedMapping(Mapping):
    """A read-only view of a spec mapping that records what a check reads from it.

    A mapping of values (a module's options, a section) records each value read. A mapping of
    entries (child modules, sections, components) records what is not there: an entry looked up
    in vain, or the list of its entries, which a rejected entry is missing from."""

    def __init__(self, data: Mapping, prefix: str, log: ReadLog, values: bool):
        self._data, self._prefix, self._log, self._values = data, prefix, log, values

    def _key(self, name: object) -> str:
        return f"{self._prefix}.{name}" if self._prefix else str(name)

    def __getitem__(self, name):
        if self._values or name not in self._data:
            self._log.keys.add(self._key(name))
        return self._data[name]

    def __iter__(self) -> Iterator:
        if not self._values:
            self._log.keys.add(self._key(EVERY_KEY))
            self._log.listed[self._prefix] = frozenset(self._data)
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def tracked(spec: Spec, log: ReadLog) -> Spec:
    """The spec with every mapping a check can read recording into `log`."""
    components = {name: tracked_module(module, log) for name, module in spec.components.items()}
    model = tracked_module(spec.model, log) if spec.model is not None else None
    return replace(spec, model=model,
                   components=TrackedMapping(components, "components", log, values=False))


def tracked_module(module: ModuleSpec, log: ReadLog) -> ModuleSpec:
    sections = {name: TrackedMapping(section, f"{module.key}.{name}", log, values=True)
                for name, section in module.sections.items()}
    children = {name: tracked_module(child, log) for name, child in module.children.items()}
    training = TrackedMapping(module.training, f"{module.key}.autoregressive", log, values=True)
    return replace(module, options=TrackedMapping(module.options, module.key, log, values=True),
                   training=training,
                   sections=TrackedMapping(sections, module.key, log, values=False),
                   children=TrackedMapping(children, module.key, log, values=False))


class Doubt:
    """The keys whose values the errors found so far put in doubt."""

    def __init__(self, errors: list[Diagnostic]):
        errors = [d for d in errors if d.severity == ERROR and d.code not in VALUE_KEPT]
        self.keys = {d.key for d in errors if d.key}
        # An unknown key was meant as some key: one of that name elsewhere, or a close spelling.
        self.meant = {d.key.rpartition(".")[2] for d in errors if d.code == "unknown-key" and d.key}

    def covers(self, read: str, listed: dict[str, frozenset]) -> bool:
        parent, _, name = read.rpartition(".")
        if name == EVERY_KEY:  # a listed mapping is in doubt if a rejected entry is missing
            present = listed.get(parent, frozenset())
            return any(entry not in present for entry in self.entries_below(parent))
        if any(read == key or read.startswith(f"{key}.") for key in self.keys):
            return True
        return any(difflib.SequenceMatcher(None, name, meant).ratio() >= 0.75
                   for meant in self.meant)

    def entries_below(self, parent: str) -> Iterator[str]:
        """Names of the modules (components, nested models) under `parent` that errors name."""
        for key in self.keys:
            if key.startswith(f"{parent}."):
                entry = key[len(parent) + 1:].split(".")[0]
                if parent == "components" or entry in module_keywords():
                    yield entry

    def doubtful(self, log: ReadLog) -> list[str]:
        return sorted(key for key in log.keys if self.covers(key, log.listed))


@cache
def module_keywords() -> frozenset[str]:
    """Keys whose value is a module of its own (`attn_layers`, an XTransformer's sides)."""
    table = keyword_table()
    nested = {name for keywords in table.classes.values() for name, kw in keywords.items()
              if "module" in kw.types}
    return frozenset(nested | set(XTRANSFORMER_SIDES))
