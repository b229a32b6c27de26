"""The keyword table of x-transformers 2.31.10 (spec/keywords.json), and which keywords apply where.

The table is data generated from the installed reference (scripts/gen_keyword_table.py) and
checked against `inspect.signature` by tests/test_keyword_table.py. This module only reads it and
answers "which keywords may this mapping hold" for each place in a spec (docs/spec-language.md).

>>> table = keyword_table()
>>> table.layers("Decoder")["heads"].default
8
>>> "causal" in table.layers("Decoder")
False
>>> table.routed("attn")["flash"].owner
'Attention'
>>> [section.path for section in table.sections("TransformerWrapper", "Decoder")][:3]
[(), ('attn_layers',), ('attn_layers', 'attn')]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .extensions import EXTENSIONS

WRAPPERS = ("TransformerWrapper", "ViTransformerWrapper", "ContinuousTransformerWrapper",
            "XValTransformerWrapper")
LAYER_TYPES = ("Encoder", "Decoder", "PrefixDecoder", "CrossAttender")
MODEL_TYPES = (*WRAPPERS, "XTransformer", *LAYER_TYPES)
ROUTED_SECTIONS = ("attn", "cross_attn", "ff")
XTRANSFORMER_SIDES = ("encoder", "decoder")
# XTransformer hands its enc_ / dec_ keywords to the sides, without the prefix.
SIDE_PREFIXES = {"encoder": "enc_", "decoder": "dec_"}
# The training wrapper x-transformers puts around each kind of model with a Decoder
# (AutoregressiveWrapper's, XLAutoregressiveWrapper's, ...): a spec's `autoregressive:` holds its
# keywords. A TransformerWrapper with memories (max_mem_len > 0) takes the XL one.
TRAINERS = {
    "TransformerWrapper": "AutoregressiveWrapper",
    "ContinuousTransformerWrapper": "ContinuousAutoregressiveWrapper",
    "XValTransformerWrapper": "XValAutoregressiveWrapper",
}
RECURRENT_TRAINER = "XLAutoregressiveWrapper"


def trainer_of(type_name: str, layer_type: str | None, max_mem_len: object = 0) -> str | None:
    """The training wrapper of a model, or None where x-transformers has none (encoders, bare
    layers, XTransformer, which trains through its own forward).

    >>> trainer_of("TransformerWrapper", "Decoder"), trainer_of("TransformerWrapper", "Encoder")
    ('AutoregressiveWrapper', None)
    >>> trainer_of("TransformerWrapper", "Decoder", max_mem_len=16)
    'XLAutoregressiveWrapper'
    """
    if layer_type not in ("Decoder", "PrefixDecoder") or type_name not in TRAINERS:
        return None
    recurrent = type_name == "TransformerWrapper" and isinstance(max_mem_len, int) and max_mem_len > 0
    return RECURRENT_TRAINER if recurrent else TRAINERS[type_name]


@dataclass(frozen=True)
class Keyword:
    """One keyword of a reference class: its name, allowed value types and default.

    types are drawn from: int, float, bool, str, dict, module (a nested mapping with a `type`),
    object (a Python object: not expressible in a spec), layer_types (a list of 'a'/'c'/'f'),
    int_list. per_layer keywords also take a list with one such value per layer.
    """

    name: str
    owner: str
    types: tuple[str, ...]
    default: object
    required: bool = False
    per_layer: bool = False
    # an xtc extension (spec/extensions.py): what it computes and why; "" for the reference's
    extension: str = ""

    @property
    def nullable(self) -> bool:
        return self.default is None and not self.required


@dataclass(frozen=True)
class Section:
    """One mapping of a model spec: where it is written and which keys it takes.

    name is the model's class for its own mapping, 'layers' for the layers, or the key of a
    routed section or XTransformer side ('attn', 'decoder'). prefix is how the reference writes
    its keywords one level up ('attn_' for attn: on the layers). fixed are the layer keywords
    that owner, the layer class, sets itself (a Decoder's `causal`).
    """

    path: tuple[str, ...]
    name: str
    keys: frozenset[str]
    prefix: str = ""
    fixed: frozenset[str] = frozenset()
    owner: str = ""


class KeywordTable:
    """The reference's keywords (`classes`, exactly keywords.json) and xtc's extensions
    (`extensions`, spec/extensions.py); the mappings a spec writes (`layers()`, `side()`, ...)
    take both."""

    def __init__(self, data: dict, extensions: dict[str, dict[str, dict]] | None = None):
        self.reference = data["reference"]
        self.classes = {
            owner: {name: keyword(owner, name, entry) for name, entry in keywords.items()}
            for owner, keywords in data["classes"].items()
        }
        self.extensions = {
            owner: {name: keyword(owner, name, entry) for name, entry in keywords.items()}
            for owner, keywords in (extensions or {}).items()
        }
        self.routing = data["routing"]
        self.layer_classes = data["layer_classes"]
        self.sides = data["xtransformer_sides"]

    def keywords(self, owner: str) -> dict[str, Keyword]:
        """A class's keywords as a spec writes them: the reference's, then xtc's extensions."""
        return {**self.classes[owner], **self.extensions.get(owner, {})}

    def extension(self, module_type: str, name: str, section: str = "") -> Keyword | None:
        """The extension keyword `name` of a module of class module_type (of its routed
        `section` where given: "attn", "ff"), or None where the name is none there."""
        if section:
            owner = self.routing[section]["class"]
        else:
            owner = "AttentionLayers" if module_type in LAYER_TYPES else module_type
        return self.extensions.get(owner, {}).get(name)

    def wrapper(self, type_name: str) -> dict[str, Keyword]:
        """Keywords of TransformerWrapper, ViTransformerWrapper, ContinuousTransformerWrapper,
        XValTransformerWrapper or XTransformer (its own keywords only; `encoder`/`decoder` are `side()`)."""
        return self.keywords(type_name)

    def layers(self, layer_type: str) -> dict[str, Keyword]:
        """AttentionLayers keywords that Encoder / Decoder / CrossAttender accept."""
        excluded = set(self.layer_classes[layer_type]["exclude"])
        return {n: k for n, k in self.keywords("AttentionLayers").items() if n not in excluded}

    def routed(self, section: str) -> dict[str, Keyword]:
        """Keywords of the nested `attn:`, `cross_attn:` or `ff:` mapping (prefix stripped)."""
        route = self.routing[section]
        excluded = set(route["exclude"])
        return {n: k for n, k in self.keywords(route["class"]).items() if n not in excluded}

    def trainer(self, trainer: str) -> dict[str, Keyword]:
        """The keywords a spec's `autoregressive:` may hold for that training wrapper (its `net`
        is the model itself; Python objects have no spec form)."""
        return {n: k for n, k in self.keywords(trainer).items() if "object" not in k.types}

    def side(self, side: str) -> dict[str, Keyword]:
        """Keywords of XTransformer's flat `encoder:` / `decoder:` mapping."""
        rule = self.sides[side]
        wrapper = self.classes["TransformerWrapper"]
        own = {name: wrapper[name] for name in rule["wrapper_keys"]}
        excluded = set(rule["exclude"])
        layers = self.keywords("AttentionLayers")
        return {**own, **{n: k for n, k in layers.items() if n not in excluded}}

    def sections(self, type_name: str, layer_type: str | None = None) -> tuple[Section, ...]:
        """Every mapping of one model of class type_name, its own first, with the keys each
        takes. layer_type is a wrapper's `attn_layers` type (None when not known)."""
        if type_name == "XTransformer":
            top = Section((), type_name, frozenset([*self.wrapper(type_name), *XTRANSFORMER_SIDES]))
            return (top, *(section for side in XTRANSFORMER_SIDES
                           for section in self.side_sections(side, top.keys)))
        if type_name in LAYER_TYPES:
            return self.layer_sections((), type_name)
        own = Section((), type_name, frozenset(self.wrapper(type_name)))
        return (own, *self.layer_sections(("attn_layers",), layer_type))

    def layer_sections(self, path: tuple[str, ...], layer_type: str | None) -> tuple[Section, ...]:
        """The layers at path and their attn: / cross_attn: / ff: (any layer class if None)."""
        keywords = self.layers(layer_type) if layer_type else self.keywords("AttentionLayers")
        fixed = self.layer_classes[layer_type]["exclude"] if layer_type else ()
        layers = Section(path, "layers", frozenset([*keywords, *ROUTED_SECTIONS]),
                         fixed=frozenset(fixed), owner=layer_type or "")
        return (layers, *self.routed_sections(path))

    def side_sections(self, side: str, top_keys: frozenset[str]) -> tuple[Section, ...]:
        """An XTransformer side and its routed sections. The side's own exclusions that the top
        does not take (`dim` it does) are what XTransformer sets itself."""
        rule = self.sides[side]
        own = Section((side,), side, frozenset([*self.side(side), *ROUTED_SECTIONS]),
                      prefix=SIDE_PREFIXES[side], fixed=frozenset(rule["exclude"]) - top_keys,
                      owner=rule["layers"])
        return (own, *self.routed_sections((side,)))

    def routed_sections(self, path: tuple[str, ...]) -> tuple[Section, ...]:
        return tuple(Section((*path, name), name, frozenset(self.routed(name)), prefix=f"{name}_")
                     for name in ROUTED_SECTIONS)


def keyword(owner: str, name: str, entry: dict) -> Keyword:
    return Keyword(
        name=name,
        owner=owner,
        types=tuple(entry["type"]),
        default=entry["default"],
        required=entry.get("required", False),
        per_layer=entry.get("per_layer", False),
        extension=entry.get("extension", ""),
    )


@cache
def keyword_table() -> KeywordTable:
    text = resources.files(__package__).joinpath("keywords.json").read_text(encoding="utf-8")
    return KeywordTable(json.loads(text), EXTENSIONS)
