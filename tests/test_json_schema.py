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
from xtc.spec.keywords import keyword_table

import xtc
from xtc import cli

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Diagnostic codes whose rule the schema states; the rest are YAML-level or cross-key rules.
SCHEMA_CODES = {"unknown-key", "expected-type", "out-of-range", "missing-key", "unknown-type",
                "invalid-name", "unsupported-version", "not-expressible", "not-per-layer"}
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
