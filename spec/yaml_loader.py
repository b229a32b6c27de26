"""A safe, strict YAML loader that keeps the line and column of every node.

Three steps, each bounded before the next one runs:

1. `Prescan` walks the parser's event stream iteratively and checks document count, nesting depth,
   alias count and the size the aliases would expand to. The billion-laughs file is refused here,
   in a millisecond, before any node exists.
2. `compose` builds PyYAML's node graph (a SafeLoader or CSafeLoader subclass; nothing is ever
   constructed, so no tag can run code), with plain scalars left untyped.
3. `to_tree` walks the node graph iteratively into `Node`s: allowed tags only, plain string
   keys, no duplicate keys (quoted twins and alias-made keys included), no merge keys, and plain
   scalars typed by YAML 1.2 core rules (`scalars.py`).

>>> tree, problems = load_yaml("heads: 4\\n", "gpt.yaml")
>>> tree.entries["heads"].value.value, tree.entries["heads"].value.line, problems
(4, 1, [])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from .diagnostics import Diagnostic, echo
from .scalars import type_plain_scalar
from .yaml_errors import Explanation, explain_syntax_error, tab_problem, unexplained

MAX_DEPTH = 64
MAX_ALIASES = 100
# Nodes of the document, aliases counted at their expanded size. A real spec has hundreds; the
# largest legal layouts (custom_layers and layers_execute_order, 4096 entries each) under 10,000.
# The bound keeps the pure-Python parser within a second or two on any 1 MiB input.
MAX_EXPANDED_NODES = 20_000
TOO_DEEP = f"nesting too deep (more than {MAX_DEPTH} levels)"

PLAIN = "tag:xtc:plain"  # our marker for an untyped plain scalar
CORE = "tag:yaml.org,2002:"
CORE_SCALAR_TAGS = {CORE + name for name in ("str", "int", "float", "bool", "null")}
CORE_COLLECTION_TAGS = {CORE + "map", CORE + "seq"}


@dataclass
class Node:
    """A YAML node with its typed value and 1-based position.

    kind is "scalar" (value: None, bool, int, float or str), "map" (entries: key -> Entry) or
    "seq" (items: list of Node). `text` is the scalar as written, for messages.
    """

    kind: str
    line: int
    col: int
    value: object = None
    text: str = ""
    quoted: bool = False
    invalid: bool = False  # already reported by the loader; later stages skip it
    entries: dict[str, Entry] = field(default_factory=dict)
    items: list[Node] = field(default_factory=list)

    def type_name(self) -> str:
        if self.kind != "scalar":
            return {"map": "mapping", "seq": "sequence"}[self.kind]
        return scalar_type_name(self.value)


@dataclass
class Entry:
    key_line: int
    key_col: int
    value: Node


def scalar_type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "float", str: "string"}.get(type(value), "value")


def use_pure_yaml() -> bool:
    """XTC_PURE_YAML=1 forces PyYAML's pure-Python parser: the verdict must not change."""
    return os.environ.get("XTC_PURE_YAML", "") not in ("", "0") or not hasattr(yaml, "CSafeLoader")


def loader_class() -> type:
    base = yaml.SafeLoader if use_pure_yaml() else yaml.CSafeLoader

    class StrictLoader(base):
        """Leaves plain scalars untyped (xtc types them) and quoted ones as strings."""

        def resolve(self, kind, value, implicit):
            if kind is yaml.ScalarNode:
                return PLAIN if implicit[0] else CORE + "str"
            return super().resolve(kind, value, implicit)

    return StrictLoader


def load_yaml(text: str, path: str) -> tuple[Node | None, list[Diagnostic]]:
    """Parse one YAML document into a `Node` tree, or None and the reasons it was refused."""
    tab = tab_problem(text)
    if tab:
        return None, [located(tab, path)]
    loader = loader_class()
    prescan = Prescan(path)
    try:
        problems = prescan.run(text, loader)
        if problems:
            return None, problems
        root = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        return None, [syntax_diagnostic(pure_parser_error(exc, text), text, path)]
    except yaml.YAMLError as exc:  # unmarked reader errors
        return None, [Diagnostic(path, 1, 1, "", "yaml-syntax", f"invalid YAML: {exc}")]
    if root is None:
        return None, [Diagnostic(path, 1, 1, "", "empty-spec", "spec is empty; expected a mapping")]
    return TreeBuilder(path, prescan.alias_keys).build(root)


def pure_parser_error(exc: yaml.MarkedYAMLError, text: str) -> yaml.MarkedYAMLError:
    """The error as PyYAML's pure-Python parser marks it.

    libyaml and the pure-Python parser can mark one mistake a token apart (`{depth:] 2}`: the
    ':' or the ']'), and the explanation depends on the mark. The pure-Python parser, which runs
    when libyaml is missing or XTC_PURE_YAML is set, is the reference: after a libyaml error it
    parses again (events only, nothing composed) to give one verdict whichever parser ran.
    """
    if use_pure_yaml():
        return exc
    try:
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
    except yaml.MarkedYAMLError as pure_exc:
        return pure_exc
    return exc  # composing (an undefined alias: marked alike), or a text only libyaml refuses


def syntax_diagnostic(exc: yaml.MarkedYAMLError, text: str, path: str) -> Diagnostic:
    """The likely cause, where to fix it (yaml_errors.py); PyYAML's own words only as a last
    resort, since libyaml and the pure-Python parser word the same error differently."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    found = explain_syntax_error(text, line, col)
    return located(found or Explanation(line, col, "yaml-syntax", unexplained(exc.problem)), path)


def located(found: Explanation, path: str) -> Diagnostic:
    return Diagnostic(path, found.line, found.col, "", found.code, found.message)


class Prescan:
    """One pass over the parser's events, refusing a document before it is composed.

    It tracks the key path of the current event (so that a refusal names its key), the node
    count that aliases would expand to, and where aliases stand as keys (the composed node of an
    alias carries its anchor's position, not the alias's).
    """

    def __init__(self, path: str):
        self.path = path
        self.stack: list[dict] = []
        self.alias_keys: dict[tuple[int, int, int], tuple[int, int]] = {}
        self.anchor_sizes: dict[str, int] = {}
        self.open_anchors: list[tuple[str | None, int]] = []  # (anchor, node count at its start)
        self.nodes = self.aliases = self.documents = 0

    def run(self, text: str, loader: type) -> list[Diagnostic]:
        try:
            for event in yaml.parse(text, Loader=loader):
                problem = self.feed(event)
                if problem:
                    return [problem]
        except yaml.MarkedYAMLError as exc:
            # libyaml >= 0.2.5 (PyYAML 6.0.4 wheels) stops at its own nesting limit while it
            # scans ahead for simple keys, before our depth check sees the 65th level. The
            # pure-Python parser reaches our check first: scan again with it, so that the
            # refusal is at the same place whichever parser runs (it stops at level 65).
            if "nesting depth" not in (exc.problem or "") or loader is yaml.SafeLoader:
                raise
            return Prescan(self.path).run(text, yaml.SafeLoader)
        return []

    def feed(self, event) -> Diagnostic | None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                return self.refusal(event.start_mark, "multiple-documents",
                                    "a spec is one YAML document; found a second")
        elif isinstance(event, yaml.CollectionStartEvent):
            return self.collection_started(event)
        elif isinstance(event, yaml.CollectionEndEvent):
            self.collection_ended()
        elif isinstance(event, yaml.ScalarEvent):
            self.node_started(event)
            self.nodes += 1
            if event.anchor is not None:
                self.anchor_sizes[event.anchor] = 1
            self.node_finished()
            return self.too_many_nodes(event)
        elif isinstance(event, yaml.AliasEvent):
            return self.alias(event)
        return None

    def too_many_nodes(self, event) -> Diagnostic | None:
        if self.nodes <= MAX_EXPANDED_NODES:
            return None
        return self.refusal(event.start_mark, "too-many-nodes",
                            f"spec too large: more than {MAX_EXPANDED_NODES} YAML nodes")

    def collection_started(self, event) -> Diagnostic | None:
        self.node_started(event)
        self.nodes += 1
        if len(self.stack) >= MAX_DEPTH:
            return self.refusal(event.start_mark, "nesting-too-deep", TOO_DEEP)
        if self.nodes > MAX_EXPANDED_NODES:
            return self.too_many_nodes(event)
        kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
        start = (event.start_mark.line, event.start_mark.column)
        self.stack.append({"kind": kind, "expect_key": True, "key": None, "start": start, "entries": 0})
        self.open_anchors.append((event.anchor, self.nodes))
        return None

    def collection_ended(self) -> None:
        self.stack.pop()
        anchor, start = self.open_anchors.pop()
        if anchor is not None:
            self.anchor_sizes[anchor] = self.nodes - start + 1
        self.node_finished()

    def alias(self, event) -> Diagnostic | None:
        self.node_started(event)
        self.aliases += 1
        if any(anchor == event.anchor for anchor, _ in self.open_anchors):
            return self.refusal(event.start_mark, "recursive-alias",
                                f"recursive alias *{event.anchor} refers to a node that contains it")
        if self.aliases > MAX_ALIASES:
            return self.refusal(event.start_mark, "alias-budget",
                                f"too many aliases (more than {MAX_ALIASES})")
        self.nodes += self.anchor_sizes.get(event.anchor, 1)
        if self.nodes > MAX_EXPANDED_NODES:
            return self.refusal(event.start_mark, "alias-budget", "alias expansion budget exceeded")
        self.node_finished()
        return None

    def node_started(self, event) -> None:
        top = self.stack[-1] if self.stack else None
        if top and top["kind"] == "map" and top["expect_key"]:
            top["key"] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                self.alias_keys[(*top["start"], top["entries"])] = (mark.line + 1, mark.column + 1)

    def node_finished(self) -> None:
        top = self.stack[-1] if self.stack else None
        if top and top["kind"] == "map":
            if not top["expect_key"]:
                top["entries"] += 1
            top["expect_key"] = not top["expect_key"]

    def key_path(self) -> str:
        # Diagnostic keys are mapping-key paths; list indices are not part of them.
        return ".".join(str(f["key"]) for f in self.stack if f["kind"] == "map" and f["key"])

    def refusal(self, mark, code: str, message: str) -> Diagnostic:
        return Diagnostic(self.path, mark.line + 1, mark.column + 1, self.key_path(), code, message)


class TreeBuilder:
    """Turns PyYAML's composed node graph into checked, typed `Node`s, iteratively."""

    def __init__(self, path: str, alias_keys: dict[tuple[int, int, int], tuple[int, int]]):
        self.path = path
        self.alias_keys = alias_keys  # (map line, map col, entry index) -> where the alias key is
        self.problems: list[Diagnostic] = []

    def build(self, root: yaml.Node) -> tuple[Node | None, list[Diagnostic]]:
        if not isinstance(root, yaml.MappingNode):
            kind = "a sequence" if isinstance(root, yaml.SequenceNode) else "a scalar"
            self.problem(root, "", "top-level-not-mapping", f"top level must be a mapping, got {kind}")
            return None, self.problems
        tree = self.convert(root, "")
        return tree, self.problems

    def problem(self, node: yaml.Node, key: str, code: str, message: str) -> None:
        self.add(node.start_mark.line + 1, node.start_mark.column + 1, key, code, message)

    def add(self, line: int, col: int, key: str, code: str, message: str) -> None:
        self.problems.append(Diagnostic(self.path, line, col, key, code, message))

    def convert(self, root: yaml.Node, root_key: str) -> Node:
        # An explicit work list rather than recursion: depth is bounded by prescan, but the
        # walk should not depend on Python's recursion limit either way.
        result = self.shallow(root, root_key)
        work = [(root, root_key, result)]
        while work:
            source, key, target = work.pop()
            if target.invalid:
                continue
            if target.kind == "map":
                start = (source.start_mark.line, source.start_mark.column)
                for index, (key_node, value_node) in enumerate(source.value):
                    key_at = self.alias_keys.get((*start, index))
                    self.add_entry(key_node, value_node, key, target, work, key_at)
            elif target.kind == "seq":
                for item in source.value:
                    child = self.shallow(item, key)  # list items report their list's key
                    target.items.append(child)
                    work.append((item, key, child))
        return result

    def add_entry(self, key_node, value_node, parent_key, target, work, key_at) -> None:
        name = self.key_name(key_node, parent_key)
        if name is None:
            return
        child_key = f"{parent_key}.{name}" if parent_key else name
        line, col = key_at or (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        if name == "<<":
            self.add(line, col, child_key, "merge-key",
                     "merge keys ('<<') are not supported; write the keys out")
            return
        if name in target.entries:
            first = target.entries[name].key_line
            self.add(line, col, child_key, "duplicate-key",
                     f"duplicate key {echo(name)} (first defined at line {first})")
            return
        child = self.shallow(value_node, child_key)
        target.entries[name] = Entry(line, col, child)
        work.append((value_node, child_key, child))

    def key_name(self, key_node: yaml.Node, parent_key: str) -> str | None:
        if not isinstance(key_node, yaml.ScalarNode):
            self.problem(key_node, parent_key, "non-string-key", "mapping keys must be plain strings")
            return None
        if key_node.tag == PLAIN:
            value, _ = type_plain_scalar(key_node.value)
            if not isinstance(value, str):
                self.problem(key_node, parent_key, "non-string-key",
                             f"mapping keys must be plain strings, got {echo(key_node.value)}")
                return None
            return value
        if key_node.tag != CORE + "str":
            self.problem(key_node, parent_key, "disallowed-tag",
                         f"tag {echo(key_node.tag)} not allowed on a key")
            return None
        return key_node.value

    def shallow(self, node: yaml.Node, key: str) -> Node:
        """A Node for `node` without its children (they are filled in by `convert`)."""
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, yaml.MappingNode):
            return Node("map", line, col, invalid=not self.collection_tag_ok(node, key, CORE + "map"))
        if isinstance(node, yaml.SequenceNode):
            return Node("seq", line, col, invalid=not self.collection_tag_ok(node, key, CORE + "seq"))
        problems_before = len(self.problems)
        value = self.scalar_value(node, key)
        return Node("scalar", line, col, value=value, text=node.value, quoted=node.style in ("'", "\""),
                    invalid=len(self.problems) > problems_before)

    def collection_tag_ok(self, node: yaml.Node, key: str, expected: str) -> bool:
        if node.tag != expected:
            self.problem(node, key, "disallowed-tag", f"tag {echo(node.tag)} not allowed")
            return False
        return True

    def scalar_value(self, node: yaml.ScalarNode, key: str) -> object:
        if node.tag == PLAIN:
            value, refusal = type_plain_scalar(node.value)
        elif node.tag in CORE_SCALAR_TAGS:
            value, refusal = self.explicit_core(node)
        else:
            value, refusal = None, f"tag {echo(node.tag)} not allowed; only YAML core tags are"
            self.problem(node, key, "disallowed-tag", refusal)
            return None
        if refusal:
            self.problem(node, key, "invalid-scalar", refusal)
        return value

    @staticmethod
    def explicit_core(node: yaml.ScalarNode) -> tuple[object, str | None]:
        """`!!str 4` is the string '4'; `!!int "4"` must type as an int by the same strict rules."""
        wanted = node.tag.removeprefix(CORE)
        if wanted == "str":
            return node.value, None
        value, refusal = type_plain_scalar(node.value)
        if refusal:
            return None, refusal
        if scalar_type_name(value) != {"int": "integer", "float": "float", "bool": "boolean",
                                       "null": "null"}[wanted]:
            if not (wanted == "float" and isinstance(value, int) and not isinstance(value, bool)):
                return None, f"{echo(node.value)} is not a valid !!{wanted}"
            value = float(value)
        return value, None
