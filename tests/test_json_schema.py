"""`xtc schema`: a draft-07 JSON Schema that accepts every example and rejects what the loader
rejects for structure, types and ranges."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml
from conftest import FIXTURES, ROOT
from xtc.spec.json_schema import spec_schema
from xtc.spec.keywords import (
    LAYER_TYPES,
    RECURRENT_TRAINER,
    ROUTED_SECTIONS,
    WRAPPERS,
    XTRANSFORMER_SIDES,
    Keyword,
    keyword_table,
)
from xtc.spec.load import read_spec
from xtc.spec.schema import TRAINED
from xtc.spec.support import is_supported, support_place

import xtc
from xtc import cli

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Diagnostic codes whose rule the schema states; the rest are YAML-level or cross-key rules.
SCHEMA_CODES = {"unknown-key", "expected-type", "out-of-range", "missing-key", "unknown-type",
                "invalid-name", "unsupported-version", "not-expressible", "not-per-layer",
                "unsupported-option", "refused-option"}
# Rules on the PascalCased name (a keyword or builtin, a name the module imports): the loader
# decides them.
LOADER_ONLY = {"name-keyword", "name-reserved"}


@pytest.fixture(scope="module")
def validator():
    schema = spec_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def fixture_code(path) -> str:
    """The code in a fixture's snapshot ('' for input rejected before there is a spec)."""
    found = re.search(r"(?:error|warning)\[([a-z-]+)\]", path.with_suffix(".expected").read_text())
    return found[1] if found else ""


SCHEMA_FIXTURES = [p for p in sorted((FIXTURES / "invalid").glob("*.yaml"))
                   if p.stem not in LOADER_ONLY and fixture_code(p) in SCHEMA_CODES]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_and_its_explanation_is_valid(validator, path):
    assert not list(validator.iter_errors(yaml.safe_load(path.read_text())))
    # the explanation writes every default, so this checks each default against its range too
    assert not list(validator.iter_errors(yaml.safe_load(xtc.explain(path))))


@pytest.mark.parametrize("path", SCHEMA_FIXTURES, ids=lambda p: p.stem)
def test_what_the_loader_rejects_for_structure_the_schema_rejects(validator, path):
    assert list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))


def test_the_schema_covers_enough_fixtures():
    assert len(SCHEMA_FIXTURES) >= 15


def test_keyword_docs_defaults_and_ranges_come_from_the_keyword_table(validator):
    attn = spec_schema()["definitions"]["attn"]["properties"]
    kw = keyword_table().routed("attn")["dim_head"]
    assert attn["dim_head"]["default"] == kw.default == 64
    assert attn["dim_head"]["description"].startswith("Attention.dim_head")
    assert "custom_attn_fn" not in attn  # a Python object: no spec form
    spec = yaml.safe_load((ROOT / "examples" / "gpt.yaml").read_text())
    layers = spec["model"]["attn_layers"]
    for bad in ({"heads": 0}, {"layer_dropout": 1.0}, {"attn": {"flash": "yes"}},
                {"custom_layers": ["a", "x"]}, {"type": "Encoderr"}):
        broken = {**spec, "model": {**spec["model"], "attn_layers": {**layers, **bad}}}
        assert list(validator.iter_errors(broken)), bad


def test_a_spec_is_a_model_or_components_not_both(validator):
    spec = yaml.safe_load((ROOT / "examples" / "gpt.yaml").read_text())
    assert list(validator.iter_errors({**spec, "components": {"a": spec["model"]}}))
    assert list(validator.iter_errors({k: v for k, v in spec.items() if k != "model"}))


def test_cli_schema_prints_or_writes_the_schema(capsys, tmp_path):
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == spec_schema()
    out = tmp_path / "xtc.schema.json"
    assert cli.main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text()) == spec_schema()
    assert cli.main(["schema", "-o", str(tmp_path / "missing" / "s.json")]) == 2


def schema_places():
    """Each mapping's definition, its keywords, and its place in spec/support.py's sets."""
    table = keyword_table()
    yield from ((name, table.wrapper(name), name) for name in (*WRAPPERS, "XTransformer"))
    yield from ((name, table.layers(name), "layers") for name in LAYER_TYPES)
    yield from ((f"XTransformer.{side}", table.side(side), "layers") for side in XTRANSFORMER_SIDES)
    yield from ((section, table.routed(section), section) for section in ROUTED_SECTIONS)
    yield from ((trainer, table.trainer(trainer), trainer) for trainer in TRAINED)


def test_the_schema_marks_exactly_the_keywords_xtc_does_not_compile():
    definitions = spec_schema()["definitions"]
    marked_anywhere = set()
    for definition, keywords, place in schema_places():
        properties = definitions[definition]["properties"]
        marked = {name for name, schema in properties.items() if schema.get("doNotSuggest")}
        not_compiled = {name for name, kw in keywords.items()
                        if not {"object", "module"} & set(kw.types)
                        and not is_supported(support_place(place, kw.owner), name)}
        assert marked == not_compiled, definition
        for name in marked:  # accepted at the default only, which `xtc explain` writes
            kw = keywords[name]
            assert properties[name]["const"] == json_default(kw), (definition, name)
            assert properties[name]["errorMessage"] in properties[name]["description"]
        marked_anywhere |= {f"{definition}.{name}" for name in marked}
    # refused with a reason, not compiled yet, in a section and in a training wrapper
    assert {"attn.dim_out", "cross_attn.kv_heads", "ff.dim_out",
            f"{RECURRENT_TRAINER}.ttt_lr"} <= marked_anywhere


def json_default(kw: Keyword) -> object:
    return list(kw.default) if isinstance(kw.default, tuple) else kw.default


def other_value(kw: Keyword) -> object:
    """A value of the keyword's type (and range) that is not its default."""
    kind = kw.types[0]
    if kind == "bool":
        return not kw.default
    if kind in ("int", "float"):
        return (kw.default or 0) + (1 if kind == "int" else 0.5)
    return {"str": "other", "dict": {"other": 1}}[kind]


def misplaced_spec(place: str, name: str, value: object) -> dict:
    """gpt.yaml with name: value in a routed section or, for a training wrapper, its
    `autoregressive:` (XLAutoregressiveWrapper's: the model keeps memories)."""
    spec = yaml.safe_load((ROOT / "examples" / "gpt.yaml").read_text())
    model = spec["model"]
    if place in ROUTED_SECTIONS:
        model["attn_layers"][place] = {name: value}
    else:
        model.update(max_mem_len=4, use_abs_pos_emb=False, autoregressive={name: value})
    return spec


def test_a_value_xtc_does_not_compile_gets_the_loaders_message(validator):
    definitions = spec_schema()["definitions"]
    for place in (*ROUTED_SECTIONS, RECURRENT_TRAINER):
        keywords = keyword_table().routed(place) if place in ROUTED_SECTIONS else \
            keyword_table().trainer(place)
        for name, schema in definitions[place]["properties"].items():
            if not schema.get("doNotSuggest"):
                continue
            spec = misplaced_spec(place, name, other_value(keywords[name]))
            assert list(validator.iter_errors(spec)), (place, name)
            _, problems = read_spec(yaml.safe_dump(spec))
            messages = [p.message for p in problems if p.key.endswith(f".{name}")]
            assert messages == [schema["errorMessage"]], (place, name)


def test_what_the_loader_accepts_the_schema_accepts(validator):
    """A per-layer list may hold null (that layer's default); a key both training wrappers take
    matches both."""
    spec = yaml.safe_load((ROOT / "examples" / "gpt.yaml").read_text())
    layers = spec["model"]["attn_layers"]
    for accepted in ({"attn_layers": {**layers, "attn": {"max_attend_past": [None, 3] * 3}}},
                     {"autoregressive": {"ignore_index": 0}}):
        document = {**spec, "model": {**spec["model"], **accepted}}
        assert read_spec(yaml.safe_dump(document))[0] is not None, accepted
        assert not list(validator.iter_errors(document)), accepted
    # a list where xtc takes one value for the stack
    refused = {**spec, "model": {**spec["model"],
                                 "attn_layers": {**layers, "attn": {"kv_heads": [2] * 6}}}}
    assert list(validator.iter_errors(refused))
    assert read_spec(yaml.safe_dump(refused))[0] is None
