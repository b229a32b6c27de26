"""JSON Schema (draft-07) of the spec language, generated from the keyword table.

Editors that speak the YAML language server give completion, hover docs and red squiggles from
it. It states structure, types, enums and value ranges; what only the loader can see (YAML-level
rejections such as duplicate keys or tags, cross-key rules, options xtc does not compile yet)
stays the loader's, so a spec the schema accepts can still be rejected by `xtc validate`.

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
from .model import AUTOREGRESSIVE
from .names import MAX_NAME_LENGTH, NAME_PATTERN
from .schema import ATTN_LAYERS_TYPES, CONNECTION_TARGET, MAX_DESCRIPTION, SPEC_VERSION, TRAINED
from .support import NOT_PER_LAYER

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
    for type_name in WRAPPERS:
        found[type_name] = class_schema(type_name, table.wrapper(type_name), ())
    found["XTransformer"] = class_schema("XTransformer", table.wrapper("XTransformer"), (),
                                         sides=XTRANSFORMER_SIDES)
    for type_name in LAYER_TYPES:
        found[type_name] = class_schema(type_name, table.layers(type_name), ROUTED_SECTIONS)
    for side in XTRANSFORMER_SIDES:
        found[f"XTransformer.{side}"] = mapping_schema(table.side(side), ROUTED_SECTIONS)
    for section in ROUTED_SECTIONS:
        found[section] = mapping_schema(table.routed(section), ())
    for trainer in TRAINED:
        found[trainer] = mapping_schema(table.trainer(trainer), ())
    for type_name, trainer in TRAINERS.items():
        if type_name in found:  # a model that generates takes its training wrapper's keywords
            found[type_name]["properties"][AUTOREGRESSIVE] = trainer_schema(type_name, trainer)
    return found


def trainer_schema(type_name: str, trainer: str) -> dict:
    """A model's `autoregressive:`; a TransformerWrapper's is XLAutoregressiveWrapper's with
    memories (which only the loader can tell, as it can the layers' type)."""
    trainers = [trainer, RECURRENT_TRAINER] if type_name == "TransformerWrapper" else [trainer]
    schema = one_of(tuple(trainers)) if len(trainers) > 1 else {"$ref": f"#/definitions/{trainer}"}
    names = " or ".join(trainers)
    return {**schema, "description": f"the keywords of its training wrapper, {names}"}


def one_of(type_names: tuple[str, ...]) -> dict:
    return {"oneOf": [{"$ref": f"#/definitions/{name}"} for name in type_names]}


def class_schema(type_name: str, keywords: dict[str, Keyword], sections: tuple[str, ...],
                 sides: tuple[str, ...] = ()) -> dict:
    schema = mapping_schema(keywords, sections, sides)
    schema["properties"] = {"type": {"const": type_name}, **schema["properties"]}
    schema["required"] = ["type", *schema["required"]]
    return schema


def mapping_schema(keywords: dict[str, Keyword], sections: tuple[str, ...],
                   sides: tuple[str, ...] = ()) -> dict:
    """A closed mapping: every expressible keyword, the nested sections, XTransformer's sides."""
    properties: dict = {}
    required: list[str] = []
    for name, kw in keywords.items():
        if "object" in kw.types:
            continue  # a Python object has no spec form: the key is unknown to a spec
        if "module" in kw.types:
            properties[name] = attn_layers_schema(kw.owner)
            required.append(name)
            continue
        properties[name] = keyword_schema(kw)
        if kw.required:
            required.append(name)
    for section in sections:
        properties[section] = {"$ref": f"#/definitions/{section}"}
    for side in sides:
        properties[side] = {"$ref": f"#/definitions/XTransformer.{side}"}
        required.append(side)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def attn_layers_schema(owner: str) -> dict:
    allowed = ATTN_LAYERS_TYPES[owner]
    return one_of(allowed) if len(allowed) > 1 else {"$ref": f"#/definitions/{allowed[0]}"}


def keyword_schema(kw: Keyword) -> dict:
    """A keyword's values: its types with their ranges, per-layer lists, null where allowed."""
    choices = [value_schema(t, kw.name) for t in kw.types]
    # the reference reads NOT_PER_LAYER's attention keywords whole: a list is never one per layer
    if kw.per_layer and not (kw.owner == "Attention" and kw.name in NOT_PER_LAYER):
        choices.append({"type": "array", "minItems": 1, "items": first_or_any_of(choices)})
    if kw.nullable:
        choices.append({"type": "null"})
    schema = dict(first_or_any_of(choices))
    schema["description"] = f"{kw.owner}.{kw.name} (default: {kw.default!r})"
    if is_json_value(kw.default):
        schema["default"] = list(kw.default) if isinstance(kw.default, tuple) else kw.default
    return schema


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
    return value is None or isinstance(value, (bool, int, str))
