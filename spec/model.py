"""The validated spec: one family of frozen dataclasses.

Keys are the reference's own keyword names (docs/spec-language.md). Each module keeps every keyword
of its place in the spec, defaults filled in, and `given`, the keywords the author wrote, so that
`explain` can show both and the spec round-trips to YAML. YAML lists become tuples.

>>> m = ModuleSpec("Decoder", "model.attn_layers", options={"dim": 64, "heads": 8}, given=("dim",))
>>> m.to_dict()
{'type': 'Decoder', 'dim': 64}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

EMPTY: Mapping = MappingProxyType({})
AUTOREGRESSIVE = "autoregressive"  # the key of a model's training-wrapper options


@dataclass(frozen=True)
class ModuleSpec:
    """A reference class with its keyword values.

    sections holds the nested `attn`, `cross_attn` and `ff` mappings (prefix stripped), children
    the nested modules (`attn_layers`; XTransformer's `encoder` and `decoder`). A model that
    x-transformers trains and samples through a wrapper (AutoregressiveWrapper and its kin) names
    it in `trainer`, and `training` holds that wrapper's keywords, as the spec's `autoregressive:`
    mapping writes them.
    """

    type: str
    key: str  # dotted key path in the spec, e.g. "model.attn_layers"
    options: Mapping[str, object] = field(default_factory=dict)
    given: tuple[str, ...] = ()
    sections: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    sections_given: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    children: Mapping[str, ModuleSpec] = field(default_factory=dict)
    trainer: str | None = None
    training: Mapping[str, object] = field(default_factory=dict)
    training_given: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> object:
        return self.options[name]

    def section(self, name: str) -> Mapping[str, object]:
        return self.sections.get(name, EMPTY)

    def to_dict(self) -> dict:
        """The module as its author wrote it (explicit keys only), ready for YAML."""
        out: dict = {"type": self.type}
        for name in self.given:
            child = self.children.get(name)
            out[name] = child.to_dict() if child else plain(self.options[name])
        for name, section in self.sections.items():
            given = self.sections_given.get(name, ())
            if given:
                out[name] = {key: plain(section[key]) for key in given}
        for name, child in self.children.items():  # an XTransformer's sides: no `type` of their own
            if name not in self.given:
                side = child.to_dict()
                del side["type"]
                out[name] = side
        if self.training_given:
            out[AUTOREGRESSIVE] = {key: plain(self.training[key]) for key in self.training_given}
        return out


@dataclass(frozen=True)
class Connection:
    """`{from: X, to: Y.arg}` in a composite spec."""

    source: str
    target: str
    argument: str
    key: str
    line: int = 1  # where the connection is written
    col: int = 1


@dataclass(frozen=True)
class Spec:
    """A spec that passed the loader, the schema and every check pass."""

    name: str
    version: int
    path: str
    sha256: str
    model: ModuleSpec | None = None
    components: Mapping[str, ModuleSpec] = field(default_factory=dict)
    connections: tuple[Connection, ...] = ()
    description: str | None = None
    locations: Mapping[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def class_name(self) -> str:
        return pascal_case(self.name)

    def location(self, key: str) -> tuple[int, int]:
        """Line and column of a dotted key path, or of its nearest located parent."""
        while key:
            if key in self.locations:
                return self.locations[key]
            key = key.rpartition(".")[0]
        return (1, 1)

    def to_dict(self) -> dict:
        out: dict = {"xtc": self.version, "name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.model is not None:
            out["model"] = self.model.to_dict()
        if self.components:
            out["components"] = {n: m.to_dict() for n, m in self.components.items()}
            out["connections"] = [
                {"from": c.source, "to": f"{c.target}.{c.argument}"} for c in self.connections
            ]
        return out


def plain(value: object) -> object:
    """Tuples back to lists, for YAML and JSON."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def scalar(value: object) -> str:
    """One YAML flow value that reads back as the same Python value (for `explain` and for
    messages that show the YAML to write).

    >>> scalar((1, "a b")), scalar(None), scalar("yes")
    ('[1, a b]', 'null', "'yes'")
    """
    text = yaml.safe_dump(plain(value), default_flow_style=True, width=10**6,
                          sort_keys=False)  # a mapping keeps its order (embed_num_tokens)
    return text.removesuffix("\n").removesuffix("\n...")


def pascal_case(name: str) -> str:
    """`gpt_small` -> `GptSmall`.

    >>> pascal_case("gpt2_small_v1")
    'Gpt2SmallV1'
    """
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))
