"""JSON Schema (draft-07) of the spec language, generated from the keyword table.

Editors that speak the YAML language server give completion, hover docs and red squiggles from
it. It states structure, types, enums and value ranges, and what xtc compiles where: a keyword
it does not compile at a place (spec/support.py) is left out of completion there (the language
server's `doNotSuggest`) and takes only the reference's default (which `xtc explain` writes out),
any other value reported with the loader's own message (`errorMessage`); a list takes one value
per layer only where xtc does. What only the loader can see (YAML-level rejections such as
duplicate keys or tags, cross-key rules) stays the loader's, so a spec the schema accepts can
still be rejected by `xtc validate`.

>>> schema = spec_schema()
>>> schema["required"], schema["definitions"]["ff"]["properties"]["dropout"]["anyOf"][0]
(['xtc', 'name'], {'type': 'number', 'minimum': 0, 'exclusiveMaximum': 1})
"""

from __future__ import annotations

import math

from .constraints import (
    MAX_SIZE_NAME_LENGTH,
    NAMED_SIZES,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_REAL,
    SIZE_NAME,
    is_probability_keyword,
)
from .keywords import (
    LAYER_TYPES,
    MODEL_TYPES,
    RECURRENT_TRAINER,
    ROUTED_SECTIONS,
    TRAINERS,
    WRAPPERS,
    XTRANSFORMER_SIDES,
    Keyword,
    keyword_table,
)
from .model import AUTOREGRESSIVE, scalar
from .names import MAX_NAME_LENGTH, NAME_PATTERN
from .schema import ATTN_LAYERS_TYPES, CONNECTION_TARGET, MAX_DESCRIPTION, SPEC_VERSION, TRAINED
from .support import not_compiled, support_place, takes_per_layer

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def spec_schema() -> dict:
    """The whole schema: the document, then one definition per class, side and section."""
    name = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$", "maxLength": MAX_NAME_LENGTH}
    return {
        "$schema": DRAFT_07,
        "title": f"xtc spec, format {SPEC_VERSION}",
        "description": f"A transformer described for xtc ({keyword_table().reference}).",
        "type": "object",
        "properties": {
            "xtc": {"const": SPEC_VERSION, "description": "spec format version"},
            "name": {**name, "description": "names the generated class (PascalCased)"},
            "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
            "model": {"$ref": "#/definitions/model"},
            "components": {
                "type": "object", "minProperties": 1, "propertyNames": name,
                "additionalProperties": {"$ref": "#/definitions/model"},
                "description": "named models joined by `connections` (a composite)",
            },
            "connections": {"type": "array", "items": connection_schema()},
        },
        "required": ["xtc", "name"],
        "oneOf": [{"required": ["model"]}, {"required": ["components"]}],
        "dependencies": {"connections": ["components"]},
        "additionalProperties": False,
        "definitions": definitions(),
    }


def connection_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "from": {"type": "string", "description": "a component name"},
            "to": {"type": "string", "pattern": f"^{CONNECTION_TARGET.pattern}$",
                   "description": "component.argument"},
        },
        "required": ["from", "to"],
        "additionalProperties": False,
    }


def definitions() -> dict:
    table = keyword_table()
    found: dict = {"model": one_of(MODEL_TYPES), "layers": one_of(LAYER_TYPES)}
    # each mapping with its place in spec/support.py's sets (a wrapper's own, "layers", a section)
    for type_name in WRAPPERS:
        found[type_name] = class_schema(type_name, table.wrapper(type_name), type_name, ())
    found["XTransformer"] = class_schema("XTransformer", table.wrapper("XTransformer"),
                                         "XTransformer", (), sides=XTRANSFORMER_SIDES)
    for type_name in LAYER_TYPES:
        found[type_name] = class_schema(type_name, table.layers(type_name), "layers",
                                        ROUTED_SECTIONS)
    for side in XTRANSFORMER_SIDES:
        found[f"XTransformer.{side}"] = mapping_schema(table.side(side), "layers", ROUTED_SECTIONS)
    for section in ROUTED_SECTIONS:
        found[section] = mapping_schema(table.routed(section), section, ())
    for trainer in TRAINED:
        found[trainer] = mapping_schema(table.trainer(trainer), trainer, ())
    for type_name, trainer in TRAINERS.items():
        if type_name in found:  # a model that generates takes its training wrapper's keywords
            found[type_name]["properties"][AUTOREGRESSIVE] = trainer_schema(type_name, trainer)
    return found


def trainer_schema(type_name: str, trainer: str) -> dict:
    """A model's `autoregressive:`; a TransformerWrapper's is XLAutoregressiveWrapper's with
    memories (which only the loader can tell, as it can the layers' type). Any of them, not one
    of them: keywords both take (ignore_index) match both."""
    trainers = [trainer, RECURRENT_TRAINER] if type_name == "TransformerWrapper" else [trainer]
    schema = ({"anyOf": [{"$ref": f"#/definitions/{name}"} for name in trainers]}
              if len(trainers) > 1 else {"$ref": f"#/definitions/{trainer}"})
    names = " or ".join(trainers)
    return {**schema, "description": f"the keywords of its training wrapper, {names}"}


def one_of(type_names: tuple[str, ...]) -> dict:
    return {"oneOf": [{"$ref": f"#/definitions/{name}"} for name in type_names]}


def class_schema(type_name: str, keywords: dict[str, Keyword], place: str,
                 sections: tuple[str, ...], sides: tuple[str, ...] = ()) -> dict:
    schema = mapping_schema(keywords, place, sections, sides)
    type_schema = {"const": type_name, "description": f"the x-transformers class, {type_name}"}
    schema["properties"] = {"type": type_schema, **schema["properties"]}
    schema["required"] = ["type", *schema["required"]]
    return schema


def mapping_schema(keywords: dict[str, Keyword], place: str, sections: tuple[str, ...],
                   sides: tuple[str, ...] = ()) -> dict:
    """A closed mapping: every expressible keyword, the nested sections, XTransformer's sides.
    place names the mapping's support set in spec/support.py."""
    properties: dict = {}
    required: list[str] = []
    for name, kw in keywords.items():
        if "object" in kw.types:
            continue  # a Python object has no spec form: the key is unknown to a spec
        if "module" in kw.types:
            properties[name] = attn_layers_schema(kw.owner)
            required.append(name)
            continue
        properties[name] = keyword_schema(kw, support_place(place, kw.owner))
        if kw.required:
            required.append(name)
    for section in sections:
        properties[section] = described_ref(section, SECTION_DOCS[section])
    for side in sides:
        properties[side] = described_ref(f"XTransformer.{side}", SIDE_DOCS[side])
        required.append(side)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


SECTION_DOCS = {
    "attn": "self-attention options: the keywords of x-transformers' Attention (its attn_ "
            "keywords without the prefix)",
    "cross_attn": "cross-attention options: the keywords of x-transformers' Attention (its "
                  "cross_attn_ keywords without the prefix)",
    "ff": "feedforward options: the keywords of x-transformers' FeedForward (its ff_ keywords "
          "without the prefix)",
}
SIDE_DOCS = {
    "encoder": "the encoder: TransformerWrapper and Encoder keywords together (XTransformer's "
               "enc_ keywords without the prefix)",
    "decoder": "the decoder: TransformerWrapper and Decoder keywords together (XTransformer's "
               "dec_ keywords without the prefix)",
}


def described_ref(definition: str, description: str) -> dict:
    """A reference with the text completion shows for its key: draft-07 ignores a $ref's
    siblings, so the description sits beside it in an allOf."""
    return {"allOf": [{"$ref": f"#/definitions/{definition}"}], "description": description}


def attn_layers_schema(owner: str) -> dict:
    allowed = ATTN_LAYERS_TYPES[owner]
    schema = one_of(allowed) if len(allowed) > 1 else {"allOf": [{"$ref": f"#/definitions/{allowed[0]}"}]}
    return {**schema, "description": f"{owner}.attn_layers: the layer stack, a mapping whose "
                                     f"`type` is {' or '.join(allowed)}"}


def keyword_schema(kw: Keyword, place: str) -> dict:
    """A keyword's values at place: its types with their ranges, per-layer lists where xtc takes
    them, null where allowed; only the default where xtc does not compile the keyword."""
    problem = not_compiled(place, kw.owner, kw.name)
    if problem:
        return not_compiled_schema(kw, problem[1])
    choices = [value_schema(t, kw.name) for t in kw.types]
    if kw.nullable:
        choices.append({"type": "null"})
    per_layer = kw.per_layer and takes_per_layer(place, kw.name)
    if per_layer:  # a layer's null is the keyword's own default, as the loader reads it
        choices.append({"type": "array", "minItems": 1, "items": first_or_any_of(list(choices))})
    schema = dict(first_or_any_of(choices))
    schema["description"] = (keyword_description(kw)
                             + ("; a list gives one value per layer" if per_layer else ""))
    if is_json_value(kw.default):
        schema["default"] = json_value(kw.default)
    return schema


def keyword_description(kw: Keyword) -> str:
    """`Attention.flash (default: false)`; an extension says that x-transformers lacks it."""
    default = f"(default: {scalar(kw.default)})"
    if kw.extension:
        return (f"{kw.name}: an xtc extension, which x-transformers lacks: {kw.extension} "
                f"{default}")
    return f"{kw.owner}.{kw.name} {default}"


def not_compiled_schema(kw: Keyword, message: str) -> dict:
    """A keyword xtc does not compile here: xtc accepts it at the reference's default only, so
    completion leaves it out (`doNotSuggest`, which the YAML language server honours) and any
    other value is reported with the loader's message (`errorMessage`). A default JSON cannot
    write is left to the loader."""
    schema = ({"const": json_value(kw.default)} if is_json_value(kw.default)
              else first_or_any_of([value_schema(t, kw.name) for t in kw.types]))
    return {**schema, "doNotSuggest": True, "errorMessage": message,
            "description": f"{message} (xtc accepts only its default, {scalar(kw.default)})"}


def first_or_any_of(choices: list[dict]) -> dict:
    return choices[0] if len(choices) == 1 else {"anyOf": choices}


def value_schema(type_name: str, keyword: str) -> dict:
    if type_name == "layer_types":
        return {"type": "array", "minItems": 1, "items": {"enum": ["a", "c", "f"]}}
    if type_name == "int_list":
        return {"type": "array", "minItems": 1, "items": {"type": "integer"}}
    if type_name == "dict" and keyword in NAMED_SIZES:  # names to positive sizes
        return {"type": "object",
                "propertyNames": {"pattern": f"^{SIZE_NAME.pattern}$",
                                  "maxLength": MAX_SIZE_NAME_LENGTH},
                "additionalProperties": {"type": "integer", "minimum": 1}}
    json_type = {"int": "integer", "float": "number", "bool": "boolean", "str": "string",
                 "dict": "object"}[type_name]
    schema: dict = {"type": json_type}
    if json_type in ("integer", "number"):
        schema.update(value_range(keyword))
    return schema


def value_range(keyword: str) -> dict:
    """spec/constraints.py's ranges, as JSON Schema keywords."""
    if is_probability_keyword(keyword):
        return {"minimum": 0, "exclusiveMaximum": 1}
    if keyword in POSITIVE:
        return {"minimum": 1}
    if keyword in NON_NEGATIVE:
        return {"minimum": 0}
    if keyword in POSITIVE_REAL:
        return {"exclusiveMinimum": 0}
    return {}


def is_json_value(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return value is None or isinstance(value, (bool, int, str))


def json_value(value: object) -> object:
    """A default as JSON holds it: tuples as lists."""
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value
