"""Checking a loaded YAML tree against the spec language and the keyword table.

Closed keys (an unknown key is `unknown-key`, with the YAML to write where another section of
the model takes it, else a did-you-mean), strict types (no coercion: "4" is not 4, true is not
1), value ranges, and `unsupported-option` for known keywords that xtc does not compile yet.
Every problem is collected. The `Spec` comes back even when there are some, with defaults
where values were rejected, so that spec/load.py can run the checks that do not read them.

>>> from .yaml_loader import load_yaml
>>> tree, _ = load_yaml("xtc: 1\\nname: lm\\nmodel: {type: TransformerWrapper, num_tokens: 8,\\n"
...                     "  max_seq_len: 8, haeds: 2, attn_layers: {type: Decoder, dim: 8}}", "s.yaml")
>>> spec, problems = check_schema(tree, "s.yaml", "0" * 64)
>>> [p.render() for p in problems]
["s.yaml:4:19: error[unknown-key] model.haeds: unknown key 'haeds' for TransformerWrapper"]
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace

from .constraints import NAMED_SIZES, named_size_problem, range_problem
from .diagnostics import Diagnostic, echo
from .keywords import (
    LAYER_TYPES,
    MODEL_TYPES,
    ROUTED_SECTIONS,
    TRAINERS,
    XTRANSFORMER_SIDES,
    Keyword,
    KeywordTable,
    Section,
    keyword_table,
    trainer_of,
)
from .model import AUTOREGRESSIVE, Connection, ModuleSpec, Spec
from .names import NAME_PATTERN, component_name_problem, name_problem
from .support import (
    NOT_PER_LAYER,
    SUPPORTED_LAYER_TYPES,
    SUPPORTED_MODEL_TYPES,
    not_compiled,
    support_place,
    takes_per_layer,
)
from .yaml_loader import Node, scalar_type_name

SPEC_VERSION = 1
DOCUMENT_KEYS = ("xtc", "name", "description", "model", "components", "connections")
MAX_DESCRIPTION = 2000

# Which layer classes each wrapper's `attn_layers` may be (ViT asserts an Encoder; xtc builds a
# PrefixDecoder, a prefix language model, in a TransformerWrapper or alone).
ATTN_LAYERS_TYPES = {
    "TransformerWrapper": LAYER_TYPES,
    "ViTransformerWrapper": ("Encoder",),
    "ContinuousTransformerWrapper": ("Encoder", "Decoder", "CrossAttender"),
    "XValTransformerWrapper": ("Encoder", "Decoder", "CrossAttender"),
}
TYPE_WORDS = {
    "int": "integer", "float": "number", "bool": "boolean", "str": "string", "dict": "mapping",
    "module": "mapping with a `type`", "layer_types": "list of layer types ('a', 'c', 'f')",
    "int_list": "list of integers",
}
CONNECTION_TARGET = re.compile(r"([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)")


# "Did you mean" for the first unknown keys of a document only: a suggestion costs a fuzzy match
# against every known key, and a 1 MiB spec can hold 100k unknown keys (all still reported).
MAX_SUGGESTIONS = 100


def check_schema(tree: Node, path: str, sha256: str) -> tuple[Spec | None, list[Diagnostic]]:
    """The Spec (None if it is not well-formed) and every schema problem."""
    checker = SchemaChecker(path)
    spec = checker.document(tree, sha256)
    return spec, checker.problems


class SchemaChecker:
    def __init__(self, path: str):
        self.path = path
        self.table = keyword_table()
        self.problems: list[Diagnostic] = []
        self.locations: dict[str, tuple[int, int]] = {}
        self.unknown_keys = 0

    # -- reporting -------------------------------------------------------------------------

    def error(self, node_or_pos, key: str, code: str, message: str) -> None:
        line, col = (node_or_pos.line, node_or_pos.col) if isinstance(node_or_pos, Node) else node_or_pos
        self.problems.append(Diagnostic(self.path, line, col, key, code, message))

    def unknown_key(self, pos, key: str, name: str, known, where: str, hint: str = "") -> None:
        """An unknown key, with the hint if there is one (it says more than a spelling guess)."""
        self.unknown_keys += 1
        suggestion = ""
        # typos are few; 100k unknown keys are not typos
        if not hint and self.unknown_keys <= MAX_SUGGESTIONS:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        self.error(pos, key, "unknown-key", f"unknown key {echo(name)} for {where}{suggestion}{hint}")

    # -- the document ----------------------------------------------------------------------

    def document(self, tree: Node, sha256: str) -> Spec | None:
        entries = self.entries_of(tree, "", DOCUMENT_KEYS, "a spec")
        version = self.version(entries.get("xtc"), tree)
        name = self.name(entries.get("name"), tree)
        description = self.description(entries.get("description"))
        model, components, connections = self.body(entries, tree)
        # With errors the Spec holds defaults in place of what was rejected: the checks run on
        # it, and spec/load.py sets aside what they find in doubtful values.
        return Spec(name=name, version=version, path=self.path, sha256=sha256, model=model,
                    components=components, connections=connections, description=description,
                    locations=dict(self.locations))

    def entries_of(self, node: Node, key: str, known, where: str) -> dict[str, Node]:
        """The entries of a mapping with a closed key set; unknown keys are reported."""
        found = {}
        for name, entry in node.entries.items():
            child_key = f"{key}.{name}" if key else name
            self.locations[child_key] = (entry.key_line, entry.key_col)
            if name in known:
                found[name] = entry.value
            else:
                self.unknown_key((entry.key_line, entry.key_col), child_key, name, known, where)
        return found

    def version(self, node: Node | None, tree: Node) -> int:
        if node is None:
            self.error(tree, "xtc", "missing-key", "missing required key 'xtc' (spec format version: 1)")
        elif node.value != SPEC_VERSION or type(node.value) is not int:
            self.error(node, "xtc", "unsupported-version",
                       f"spec format version must be {SPEC_VERSION}, got {echo(node.text)}")
        return SPEC_VERSION

    def name(self, node: Node | None, tree: Node) -> str:
        if node is None:
            self.error(tree, "name", "missing-key", "missing required key 'name'")
            return ""
        if not isinstance(node.value, str) or node.kind != "scalar":
            self.error(node, "name", "invalid-name", f"expected string, got {describe(node)}")
            return ""
        problem = name_problem(node.value)
        if problem:
            self.error(node, "name", "invalid-name", problem)
        return node.value

    def description(self, node: Node | None) -> str | None:
        if node is None:
            return None
        if node.kind != "scalar" or not isinstance(node.value, str):
            self.error(node, "description", "expected-type", f"expected string, got {describe(node)}")
            return None
        text = node.value
        if len(text) > MAX_DESCRIPTION:
            self.error(node, "description", "out-of-range",
                       f"must be at most {MAX_DESCRIPTION} characters, got {len(text)}")
        if any(ord(c) < 0x20 and c not in "\n\t" for c in text):
            self.error(node, "description", "invalid-character", "control characters not allowed")
        return text

    def body(self, entries: dict[str, Node], tree: Node):
        model_node, components_node = entries.get("model"), entries.get("components")
        if (model_node is None) == (components_node is None):
            if model_node is None:
                self.error(tree, "model", "missing-key",
                           "missing required key 'model' (or 'components' for a composite)")
            else:
                self.error(components_node, "components", "conflicting-keys",
                           "a spec has either 'model' or 'components', not both")
            return None, {}, ()
        if "connections" in entries and components_node is None:
            self.error(entries["connections"], "connections", "conflicting-keys",
                       "'connections' belongs to a composite spec with 'components'")
        if model_node is not None:
            return self.module(model_node, "model", MODEL_TYPES), {}, ()
        components = self.components(components_node)
        connections = self.connections(entries.get("connections"), tree)
        return None, components, connections

    # -- composites (structure only; compiling them is a later feature) --------------------

    def components(self, node: Node) -> dict[str, ModuleSpec]:
        if node.kind != "map" or not node.entries:
            self.error(node, "components", "expected-type",
                       f"expected a mapping of named components, got {describe(node)}")
            return {}
        result = {}
        for name, entry in node.entries.items():
            key = f"components.{name}"
            self.locations[key] = (entry.key_line, entry.key_col)
            problem = component_name_problem(name)
            if problem:
                self.error((entry.key_line, entry.key_col), key, "invalid-name", problem)
                continue
            module = self.module(entry.value, key, MODEL_TYPES)
            if module is not None:
                result[name] = module
        return result

    def connections(self, node: Node | None, tree: Node) -> tuple[Connection, ...]:
        if node is None:
            return ()
        if node.kind != "seq":
            self.error(node, "connections", "expected-type", f"expected a list, got {describe(node)}")
            return ()
        result = []
        for item in node.items:
            if item.kind != "map":
                self.error(item, "connections", "expected-type",
                           f"expected a mapping {{from: X, to: Y.arg}}, got {describe(item)}")
                continue
            fields = self.entries_of(item, "connections", ("from", "to"), "a connection")
            source, target = fields.get("from"), fields.get("to")
            if source is None or target is None:
                self.error(item, "connections", "missing-key", "a connection needs 'from' and 'to'")
                continue
            match = CONNECTION_TARGET.fullmatch(target.value) if isinstance(target.value, str) else None
            if not (isinstance(source.value, str) and NAME_PATTERN.fullmatch(source.value)) or not match:
                self.error(item, "connections", "invalid-connection",
                           f"expected {{from: component, to: component.argument}}, got from "
                           f"{echo(source.text)} to {echo(target.text)}")
                continue
            result.append(Connection(source.value, match[1], match[2], "connections", item.line,
                                     item.col))
        return tuple(result)

    # -- modules ---------------------------------------------------------------------------

    def module(self, node: Node, key: str, allowed: tuple[str, ...],
               place: Place | None = None) -> ModuleSpec | None:
        """A mapping with a `type`; place is where it sits in its model (None: it is a model)."""
        if node.invalid:
            return None
        if node.kind != "map":
            self.error(node, key, "expected-type", f"expected a mapping with a `type`, got {describe(node)}")
            return None
        type_name = self.module_type(node, key, allowed)
        if type_name is None:
            return None
        is_model, place = place is None, place or self.model_place(node, type_name)
        # Inside a class xtc does not support at all, one diagnostic (on `type`) is enough.
        supported = type_name in SUPPORTED_LAYER_TYPES | SUPPORTED_MODEL_TYPES
        if type_name in LAYER_TYPES:
            module = self.keywords_module(node, key, type_name, self.table.layers(type_name),
                                          "layers" if supported else None, place, ROUTED_SECTIONS)
        elif type_name == "XTransformer":
            module = self.keywords_module(node, key, type_name, self.table.wrapper(type_name),
                                          type_name if supported else None, place,
                                          sides=XTRANSFORMER_SIDES)
        else:
            module = self.keywords_module(node, key, type_name, self.table.wrapper(type_name),
                                          type_name if supported else None, place)
        return self.with_trainer(module, node.entries.get(AUTOREGRESSIVE), supported) \
            if is_model else module

    def with_trainer(self, module: ModuleSpec, entry, check_support: bool) -> ModuleSpec:
        """A model with its training wrapper's keywords: the defaults, and the `autoregressive:`
        mapping's values where the spec has one."""
        layers = module.children.get("attn_layers")
        trainer = trainer_of(module.type, layers.type if layers else module.type,
                             module.options.get("max_mem_len", 0))
        if entry is None:
            if trainer is None:
                return module
            training = {name: kw.default for name, kw in self.table.trainer(trainer).items()}
            return replace(module, trainer=trainer, training=training)
        key, pos = f"{module.key}.{AUTOREGRESSIVE}", (entry.key_line, entry.key_col)
        self.locations[key] = pos
        if trainer is None:
            self.error(pos, key, "no-training-wrapper", no_trainer_message(module, layers))
            return module
        keywords = self.table.trainer(trainer)
        training = {name: kw.default for name, kw in keywords.items()}
        node, given = entry.value, []
        if node.kind != "map":
            self.error(node, key, "expected-type", f"expected a mapping, got {describe(node)}")
            return replace(module, trainer=trainer, training=training)
        for name, item in node.entries.items():
            item_key = f"{key}.{name}"
            self.locations[item_key] = (item.key_line, item.key_col)
            if name not in keywords:
                self.unknown_key((item.key_line, item.key_col), item_key, name, keywords, trainer,
                                 other_trainer_hint(name, trainer, self.table))
                continue
            training[name] = self.value(item.value, keywords[name], item_key,
                                        trainer if check_support else None)
            given.append(name)
        return replace(module, trainer=trainer, training=training, training_given=tuple(given))

    def model_place(self, node: Node, type_name: str) -> Place:
        """The sections of the model whose own mapping node is, for hints about keys written
        in the wrong one."""
        layer_type = None
        if type_name in ATTN_LAYERS_TYPES:  # a wrapper: its layers take their class's keys
            layers = node.entries.get("attn_layers")
            declared = layers.value.entries.get("type") if layers else None
            value = declared.value.value if declared else None
            layer_type = value if value in ATTN_LAYERS_TYPES[type_name] else None
        return Place(self.table.sections(type_name, layer_type))

    def module_type(self, node: Node, key: str, allowed: tuple[str, ...]) -> str | None:
        entry = node.entries.get("type")
        type_key = f"{key}.type"
        if entry is None:
            self.error(node, type_key, "missing-key", f"missing required key 'type': one of {', '.join(allowed)}")
            for name, other in node.entries.items():  # `tpye:` is the likely cause: name it too
                if difflib.get_close_matches(name, ["type"], n=1, cutoff=0.75):
                    self.error((other.key_line, other.key_col), f"{key}.{name}", "unknown-key",
                               f"unknown key {echo(name)} (did you mean 'type'?)")
            return None
        self.locations[type_key] = (entry.key_line, entry.key_col)
        value = entry.value.value
        if not isinstance(value, str) or entry.value.kind != "scalar" or value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(entry.value, type_key, "unknown-type",
                       f"expected one of {', '.join(allowed)}, got {describe(entry.value)}{hint}")
            return None
        supported = SUPPORTED_LAYER_TYPES if value in LAYER_TYPES else SUPPORTED_MODEL_TYPES
        if value not in supported:
            self.error(entry.value, type_key, "unsupported-option",
                       f"x-transformers class {value} not supported by xtc yet")
        return value

    def keywords_module(self, node: Node, key: str, type_name: str, keywords: dict[str, Keyword],
                        support: str | None, place: Place, sections: tuple[str, ...] = (),
                        sides: tuple[str, ...] = ()):
        """A module's keywords, sections and children. `support` names the support set to check
        values against (spec/support.py); None skips the check (the class is unsupported)."""
        options = {name: kw.default for name, kw in keywords.items() if "module" not in kw.types}
        given: list[str] = []
        built_sections: dict[str, dict] = {}
        sections_given: dict[str, tuple[str, ...]] = {}
        children: dict[str, ModuleSpec] = {}
        for name, entry in node.entries.items():
            if name == "type" or (name == AUTOREGRESSIVE and not place.path):  # with_trainer's
                continue
            child_key = f"{key}.{name}"
            pos = (entry.key_line, entry.key_col)
            self.locations[child_key] = pos
            if name in sections:
                built_sections[name], sections_given[name] = self.section(
                    entry.value, child_key, name, support is not None, place.child(name))
            elif name in sides:
                side = self.side(entry.value, child_key, name, support is not None,
                                 place.child(name))
                if side is not None:
                    children[name] = side
            elif name in keywords:
                kw = keywords[name]
                if "module" in kw.types:
                    child = self.module(entry.value, child_key, ATTN_LAYERS_TYPES[type_name],
                                        place.child(name))
                    if child is not None:
                        children[name] = child
                    given.append(name)
                    continue
                options[name] = self.value(entry.value, kw, child_key, support)
                given.append(name)
            else:
                known = [*keywords, *sections, *sides]
                hint = unknown_key_hint(name, entry.value, place)
                self.unknown_key(pos, child_key, name, known, type_name, hint)
        for section in sections:  # sections not written still hold their defaults
            if section not in built_sections:
                routed = self.table.routed(section)
                built_sections[section] = {name: kw.default for name, kw in routed.items()}
        self.missing_required(node, key, keywords, node.entries, sides)
        return ModuleSpec(type=type_name, key=key, options=options, given=tuple(given),
                          sections=built_sections, sections_given=sections_given, children=children)

    def missing_required(self, node: Node, key: str, keywords, present, sides) -> None:
        for name, kw in keywords.items():
            if kw.required and name not in present:
                self.error(node, f"{key}.{name}", "missing-key", f"missing required key {name!r}")
        for side in sides:
            if side not in present:
                self.error(node, f"{key}.{side}", "missing-key", f"missing required key {side!r}")

    def side(self, node: Node, key: str, side: str, check_support: bool,
             place: Place) -> ModuleSpec | None:
        """XTransformer's flat `encoder:` / `decoder:` (wrapper and layer keywords together)."""
        if node.kind != "map":
            self.error(node, key, "expected-type", f"expected a mapping, got {describe(node)}")
            return None
        if "type" in node.entries:
            entry = node.entries["type"]
            self.error((entry.key_line, entry.key_col), f"{key}.type", "unknown-key",
                       f"XTransformer's {side} takes no 'type'; it is always "
                       f"{self.table.sides[side]['layers']}")
        layer_type = self.table.sides[side]["layers"]
        return self.keywords_module(node, key, layer_type, self.table.side(side),
                                    "layers" if check_support else None, place, ROUTED_SECTIONS)

    def section(self, node: Node, key: str, section: str, check_support: bool,
                place: Place) -> tuple[dict, tuple[str, ...]]:
        """A nested `attn:` / `cross_attn:` / `ff:` mapping of routed keywords."""
        keywords = self.table.routed(section)
        options = {name: kw.default for name, kw in keywords.items()}
        if node.invalid:
            return options, ()
        if node.kind != "map":
            self.error(node, key, "expected-type", f"expected a mapping, got {describe(node)}")
            return options, ()
        given = []
        for name, entry in node.entries.items():
            child_key = f"{key}.{name}"
            pos = (entry.key_line, entry.key_col)
            self.locations[child_key] = pos
            if name not in keywords:
                owner = self.table.routing[section]["class"]
                hint = unknown_key_hint(name, entry.value, place)
                self.unknown_key(pos, child_key, name, keywords, f"{section} ({owner})", hint)
                continue
            support = section if check_support else None
            options[name] = self.value(entry.value, keywords[name], child_key, support)
            given.append(name)
        return options, tuple(given)

    # -- values ----------------------------------------------------------------------------

    def value(self, node: Node, kw: Keyword, key: str, place: str | None) -> object:
        value = self.typed_value(node, kw, key)
        if value is not INVALID and kw.name in NAMED_SIZES:
            value = self.named_sizes(node, key)
        if value is INVALID:
            return kw.default
        for item in value if isinstance(value, tuple) and kw.per_layer else (value,):
            problem = range_problem(kw.name, item)
            if problem:
                self.error(node, key, "out-of-range", problem)
                return kw.default
        if place is not None and value != kw.default:
            owner_place = support_place(place, kw.owner)
            self.check_supported(node, kw, key, owner_place, value)
            if isinstance(value, tuple) and kw.per_layer and not takes_per_layer(owner_place, kw.name):
                return kw.default  # refused above: what follows never meets a list there
        return value

    def named_sizes(self, node: Node, key: str) -> object:
        """A mapping of names to sizes (embed_num_tokens), each entry located, every problem
        reported: each name an identifier (an error at the name), each size a positive int (at
        the size). Empty is the default (none), which `xtc explain` writes out."""
        sizes, sound = {}, True
        for name, entry in node.entries.items():
            child_key = f"{key}.{name}"
            self.locations[child_key] = (entry.key_line, entry.key_col)
            value = entry.value
            if value.invalid:  # reported where it was read
                sound = False
                continue
            size = value.value if value.kind == "scalar" else None
            problem = named_size_problem(name, 1)
            at: object = (entry.key_line, entry.key_col)
            if problem is None and named_size_problem(name, size) is not None:
                at = value
                problem = (named_size_problem(name, size) if value.kind == "scalar" else
                           f"size of {name} must be an int >= 1, got a {value.type_name()}")
            if problem is not None:
                self.error(at, child_key, "out-of-range", problem)
                sound = False
            sizes[name] = size
        return sizes if sound else INVALID

    def check_supported(self, node: Node, kw: Keyword, key: str, place: str, value: object) -> None:
        per_layer = kw.per_layer and isinstance(value, tuple)
        if per_layer and place != "layers" and kw.name in NOT_PER_LAYER:
            self.error(node, key, "not-per-layer",
                       f"{kw.name} takes one value for all layers, not a list: "
                       f"{NOT_PER_LAYER[kw.name]}")
        elif problem := not_compiled(place, kw.owner, kw.name):
            self.error(node, key, *problem)
        elif per_layer and not takes_per_layer(place, kw.name):
            self.error(node, key, "unsupported-option",
                       f"per-layer values (a list) for {kw.owner}.{kw.name} are not supported by "
                       "xtc yet; give one value for every layer")

    def typed_value(self, node: Node, kw: Keyword, key: str) -> object:
        if node.invalid:
            return INVALID
        if "object" in kw.types:
            self.error(node, key, "not-expressible",
                       f"{kw.owner}.{kw.name} takes a Python object, which a spec cannot express")
            return INVALID
        if node.kind == "scalar" and node.value is None:
            if kw.nullable:
                return None
            self.error(node, key, "expected-type", f"expected {expected(kw)}, got null")
            return INVALID
        if node.kind == "seq" and (kw.per_layer or {"layer_types", "int_list"} & set(kw.types)):
            return self.list_value(node, kw, key)
        if any(matches(node, t) for t in kw.types):
            return convert(node)
        self.error(node, key, "expected-type", f"expected {expected(kw)}, got {describe(node)}")
        return INVALID

    def list_value(self, node: Node, kw: Keyword, key: str) -> object:
        if not node.items:
            self.error(node, key, "expected-type", f"expected {expected(kw)}, got an empty list")
            return INVALID
        if "layer_types" in kw.types:
            item_ok, want = (lambda n: n.kind == "scalar" and n.value in ("a", "c", "f")), "'a', 'c' or 'f'"
        elif "int_list" in kw.types:
            item_ok, want = (lambda n: matches(n, "int")), "integer"
        else:  # a layer's null is the keyword's own default (max_attend_past: no window)
            item_ok = lambda n: (any(matches(n, t) for t in kw.types)
                                 or (kw.nullable and n.kind == "scalar" and n.value is None))
            want = expected(kw, per_item=True)
        for item in node.items:
            if item.invalid:
                return INVALID
            if not item_ok(item):
                self.error(item, key, "expected-type", f"list items must be {want}, got {describe(item)}")
                return INVALID
        return tuple(convert(item) for item in node.items)


INVALID = object()  # marker: the value was reported and the default stands in for it


def matches(node: Node, type_name: str) -> bool:
    if type_name in ("dict", "module"):
        return node.kind == "map"
    if node.kind != "scalar":
        return False
    value = node.value
    if type_name == "int":
        return type(value) is int
    if type_name == "float":
        return type(value) in (int, float)
    if type_name == "bool":
        return type(value) is bool
    if type_name == "str":
        return type(value) is str
    return False


def convert(node: Node) -> object:
    """A node's plain Python value: mappings as dicts, lists as tuples."""
    if node.kind == "map":
        return {name: convert(entry.value) for name, entry in node.entries.items()}
    if node.kind == "seq":
        return tuple(convert(item) for item in node.items)
    return node.value


def expected(kw: Keyword, per_item: bool = False) -> str:
    words = " or ".join(TYPE_WORDS[t] for t in kw.types)
    if kw.per_layer and not per_item:
        words += " (or a list with one per layer)"
    return words


def describe(node: Node) -> str:
    """`string '4'`, `boolean`, `float '1e3'`, `sequence`: what a node is, for messages."""
    if node.kind != "scalar":
        return node.type_name()
    type_name = scalar_type_name(node.value)
    if type_name in ("boolean", "null"):
        return f"{type_name} ({'quoted ' if node.quoted else 'unquoted '}{node.text})" if node.text else type_name
    return f"{type_name} {echo(node.text if type_name != 'string' else node.value)}"


# -- training wrappers ---------------------------------------------------------------------------

def no_trainer_message(module: ModuleSpec, layers: ModuleSpec | None) -> str:
    """Why a model has no `autoregressive:` mapping, and what to write instead."""
    if module.type == "XTransformer":
        return ("XTransformer has no training wrapper: it passes its own ignore_index and "
                "pad_value to its decoder's, so write them beside its type (ignore_index: -100)")
    layer_type = layers.type if layers is not None else module.type
    what = module.type if layers is None else f"a {module.type} with {named(layer_type)}"
    if layer_type == "Decoder" and layers is None:
        why = "layers alone take vectors and have no tokens to predict"
    elif layer_type == "Decoder":
        why = "x-transformers has no training wrapper for it"
    else:
        why = f"{named(layer_type)} predicts no next token"
    holders = ", ".join(TRAINERS)
    return (f"autoregressive: belongs to a model that generates ({holders} with "
            f"attn_layers: {{type: Decoder}}); {what} has none: {why}")


def named(layer_type: str) -> str:
    """'an Encoder', 'a Decoder'."""
    return f"{article(layer_type.lower())} {layer_type}"


def other_trainer_hint(name: str, trainer: str, table: KeywordTable) -> str:
    """`use_l1_loss` under a TransformerWrapper: the wrapper that takes it, and this one's."""
    owners = [other for other in TRAINED if other != trainer and name in table.trainer(other)]
    if not owners:
        return ""
    wrappers = " and ".join(f"{owner} (of {TRAINED[owner]})" for owner in owners)
    return f"; {name} is an option of {wrappers}"


# What each training wrapper trains, for messages.
TRAINED = {
    "AutoregressiveWrapper": "a TransformerWrapper with a Decoder",
    "XLAutoregressiveWrapper": "a TransformerWrapper with max_mem_len > 0",
    "ContinuousAutoregressiveWrapper": "a ContinuousTransformerWrapper with a Decoder",
    "XValAutoregressiveWrapper": "an XValTransformerWrapper",
}


# Keywords of x-transformers' README that the installed version does not have.
NOT_KEYWORDS = {
    "output_proj_depth": "; the layers set output_proj_depth themselves: with "
                         "depth_scale_residual: true (a layers option) block i's output "
                         "projections are initialised for depth i + 1",
    "resi_dual": "; resi_dual is not a keyword of x-transformers 2.31.10 (its README's ResiDual "
                 "example fails there with 'unrecognized kwargs')",
    "resi_dual_scale": "; resi_dual_scale is not a keyword of x-transformers 2.31.10 (its "
                       "README's ResiDual example fails there with 'unrecognized kwargs')",
}


# -- keys in the wrong section -----------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """Where a mapping sits: the sections of its model (spec/keywords.py) and its own path."""

    sections: tuple[Section, ...]
    path: tuple[str, ...] = ()

    def child(self, step: str) -> Place:
        return Place(self.sections, (*self.path, step))

    @property
    def section(self) -> Section:
        return next(section for section in self.sections if section.path == self.path)


# cross_attn: takes what attn: beside it sets, unless it sets the key itself.
INHERITS_FROM = {"cross_attn": "attn"}
# How messages name a section's options; the others go by their name ('layers', 'decoder').
SECTION_TITLES = {"attn": "attention", "cross_attn": "cross-attention", "ff": "feedforward"}
# A value echoed into a corrected line: a short word or number, optionally quoted, else `...`.
SHOWN_VALUE = re.compile(r"'?[A-Za-z0-9_.+-]{1,20}'?")


def unknown_key_hint(name: str, value: Node, place: Place) -> str:
    """What to write instead of an unknown key, or "" (then a did-you-mean may help)."""
    if name in NOT_KEYWORDS:
        return NOT_KEYWORDS[name]
    return fixed_hint(name, place) or placement_hint(name, value, place)


def fixed_hint(name: str, place: Place) -> str:
    """`causal` on a Decoder: its class sets it itself, so the reference refuses it. Written
    elsewhere in the model (on the wrapper, in attn:), the same holds unless some layers take it
    (a CrossAttender's `causal`)."""
    if name in place.section.fixed:
        owners = [place.section.owner]
    elif any(name in section.keys for section in place.sections if section.owner):
        return ""
    else:
        owners = [section.owner for section in place.sections if name in section.fixed]
    if not owners:
        return ""
    if len(owners) == 1:
        return f"; {owners[0]} sets {name!r} itself here"
    return f"; {' and '.join(owners)} set {name!r} themselves here"


def placement_hint(name: str, value: Node, place: Place) -> str:
    """`kv_heads` on the layers: name the sections of the model that take it, as YAML to write.

    >>> from .keywords import keyword_table
    >>> place = Place(keyword_table().sections("Decoder"))
    >>> placement_hint("kv_heads", Node("scalar", 1, 1, 2, "2"), place)
    '; kv_heads is an attention option: write attn: {kv_heads: 2}'
    >>> placement_hint("rotary_pos_emb", Node("scalar", 1, 1, True, "true"), place.child("attn"))
    '; rotary_pos_emb is a layers option, not an attention one: write rotary_pos_emb: true beside attn:'
    """
    targets = sections_taking(name, place)
    if not targets:
        return ""
    titles = list(dict.fromkeys(title(section) for section, _ in targets))
    kind = f"{article(titles[0])} {and_join(titles)} option"
    if not any(section.path[:len(place.path)] == place.path for section, _ in targets):
        kind += f", not {article(title(place.section))} {title(place.section)} one"
    return f"; {name} is {kind}: write {corrected_yaml(targets, shown_value(value), place.path)}"


def sections_taking(name: str, place: Place) -> list[tuple[Section, str]]:
    """The other sections that take name, with the key it has there: as written, or without
    the section's prefix (`attn_flash` is attn: {flash}). cross_attn: is left out where attn:
    beside it takes the key (it inherits attn:), and inside an XTransformer side, the other
    side is named only when neither this side nor the top takes the key."""
    found = []
    for section in place.sections:
        key = name if name in section.keys else unprefixed(name, section)
        if key and section.path != place.path:
            found.append((section, key))
    found.sort(key=lambda target: distance(target[0].path, place.path))  # the nearest first
    found = [(section, key) for section, key in found if not inherited(section, key, found)]
    own_side = place.path[:1]
    if own_side and own_side[0] in XTRANSFORMER_SIDES:
        near = [(section, key) for section, key in found if section.path[:1] in ((), own_side)]
        return near or found
    return found


def inherited(section: Section, key: str, found: list[tuple[Section, str]]) -> bool:
    """Whether the section gets key from a section found beside it (x-transformers merges the
    attn_ keywords into cross_attn_'s)."""
    parent = INHERITS_FROM.get(section.name)
    return any(other.name == parent and other.path[:-1] == section.path[:-1] and other_key == key
               for other, other_key in found)


def distance(path: tuple[str, ...], other: tuple[str, ...]) -> int:
    """Steps up and down from one section to the other."""
    common = 0
    while common < min(len(path), len(other)) and path[common] == other[common]:
        common += 1
    return len(path) + len(other) - 2 * common


def unprefixed(name: str, section: Section) -> str:
    """`attn_flash` is attn:'s `flash`; "" when name is not a prefixed key of the section."""
    if section.prefix and name.startswith(section.prefix):
        rest = name[len(section.prefix):]
        return rest if rest in section.keys else ""
    return ""


def corrected_yaml(targets: list[tuple[Section, str]], value: str, source: tuple[str, ...]) -> str:
    """`attn: {kv_heads: 2}`, `use_rmsnorm: true in attn_layers:`, `dim: 64 beside decoder:`,
    `depth: 6 in encoder: and decoder:`: a line per place, joined with "or"."""
    lines_at: dict[tuple[str, str], list[str]] = {}
    for section, key in targets:
        routed = section.name in ROUTED_SECTIONS  # written as a nested mapping
        line = f"{section.name}: {{{key}: {value}}}" if routed else f"{key}: {value}"
        holder = section.path[:-1] if routed else section.path
        lines_at.setdefault(anchor(holder, source), []).append(line)
    clauses: list[tuple[str, list[str], list[str]]] = []  # (word, steps, lines)
    for (word, step), lines in lines_at.items():
        same = [c for c in clauses if word == "in" == c[0] and c[2] == lines]
        if same:  # the same lines in both XTransformer sides: `in encoder: and decoder:`
            same[0][1].append(step)
        else:
            clauses.append((word, [step], lines))
    return ", or ".join(clause(*parts) for parts in clauses)


def clause(word: str, steps: list[str], lines: list[str]) -> str:
    where = f" {word} " + " and ".join(f"{step}:" for step in steps) if word else ""
    return or_join(lines) + where


def anchor(holder: tuple[str, ...], source: tuple[str, ...]) -> tuple[str, str]:
    """Where the mapping holding a line is, seen from the source mapping: the source itself
    (""), an enclosing one (`beside attn:`), or a nested or sibling one (`in attn_layers:`)."""
    if holder == source:
        return "", ""
    if source[:len(holder)] == holder:
        return "beside", source[len(holder)]
    return "in", holder[-1]


def shown_value(node: Node) -> str:
    """The value as the author wrote it, if it is a short scalar; else `...`."""
    if node.kind == "scalar" and not node.invalid:
        text = echo(node.value) if isinstance(node.value, str) else node.text
        if SHOWN_VALUE.fullmatch(text):
            return text
    return "..."


def title(section: Section) -> str:
    return SECTION_TITLES.get(section.name, section.name)


def article(word: str) -> str:
    return "an" if word[0] in "aeiouX" else "a"  # "an XTransformer": said "ex-"


def and_join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def or_join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
