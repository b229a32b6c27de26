"""The parameter budget's contributors (costs.contributors) and where an over-budget spec is
refused (check-resource-budget): the groups add up to the model, each formula lists keys that
really scale its group, and the error names the key that makes the model large."""

from __future__ import annotations

import copy
import glob
import json

import pytest
import yaml
from conftest import ROOT
from xtc.compiler import compile_graph
from xtc.compiler.costs import contributors, parameters_by_owner
from xtc.compiler.passes.check_resource_budget import ResourceBudget

import xtc

EXAMPLES = sorted(glob.glob("examples/*.yaml"))
SECTIONS = ("attn", "cross_attn", "ff")


@pytest.mark.parametrize("path", EXAMPLES)
def test_contributors_add_up_to_the_model(path):
    graph = compile_graph(xtc.load_spec(path))
    groups = contributors(graph)
    assert sum(c.parameters for c in groups) == sum(parameters_by_owner(graph).values())
    assert sum(c.share for c in groups) == pytest.approx(1)
    assert [c.parameters for c in groups] == sorted((c.parameters for c in groups), reverse=True)
    assert len({c.name for c in groups}) == len(groups)


def test_contributors_are_named_per_component():
    spec = xtc.load_spec(ROOT / "examples" / "xtransformer.yaml")
    names = [c.name for c in contributors(compile_graph(spec))]
    assert names[:2] == ["encoder.blocks.ff", "decoder.blocks.ff"]
    assert "decoder.blocks.cross_attn" in names and "decoder.to_logits" in names


# Specs whose every contributor factor is checked against the model itself.
HONEST = [
    "examples/gpt.yaml", "examples/vit.yaml", "examples/continuous.yaml", "examples/memory.yaml",
    {"xtc": 1, "name": "seq2seq", "model": {  # examples/xtransformer.yaml, vocabularies untied
        "type": "XTransformer", "dim": 64,
        "encoder": {"num_tokens": 256, "max_seq_len": 64, "depth": 2, "heads": 4},
        "decoder": {"num_tokens": 128, "max_seq_len": 32, "depth": 3, "heads": 2}}},
    {"xtc": 1, "name": "t5_cross", "model": {
        "type": "TransformerWrapper", "num_tokens": 100, "max_seq_len": 16, "emb_dim": 24,
        "attn_layers": {"type": "Decoder", "dim": 32, "depth": 2, "heads": 4,
                        "cross_attend": True, "rel_pos_bias": True,
                        "cross_attn": {"dim_context": 48}}}},
]


def document_of(source) -> dict:
    if isinstance(source, str):
        return yaml.safe_load((ROOT / source).read_text())
    return copy.deepcopy(source)


def mapping_at(document: dict, key: str) -> tuple[dict, str]:
    """The YAML mapping that holds a dotted key (sections created as needed), and its last part."""
    *path, name = key.split(".")
    node = document
    for part in path:
        node = node.setdefault(part, {}) if part in SECTIONS else node[part]
    return node, name


@pytest.mark.parametrize("source", HONEST, ids=lambda s: s if isinstance(s, str) else s["name"])
def test_every_factor_is_a_key_that_scales_its_contributor(source):
    """Its value is the one written (where written); doubling it grows the contributor (shrinks
    it for an inverse factor such as ViT's patch_size for its positions)."""
    document = document_of(source)
    before = contributors(compile_graph(xtc.loads_spec(yaml.safe_dump(document))))
    for group in before:
        for factor in (f for f in group.factors if f.key):
            changed = copy.deepcopy(document)
            node, name = mapping_at(changed, factor.key)
            if name in node:
                assert node[name] == factor.value, (group.name, factor)
            node[name] = int(factor.value * 2)
            after = contributors(compile_graph(xtc.loads_spec(yaml.safe_dump(changed))))
            count = next(c.parameters for c in after if c.name == group.name)
            grew = count < group.parameters if factor.inverse else count > group.parameters
            assert grew, (group.name, factor)


def test_weight_tying_leaves_depth_out_of_the_formula():
    spec = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tied", "model": {
        "type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
        "attn_layers": {"type": "Decoder", "dim": 32, "depth": 6, "heads": 4,
                        "weight_tie_layers": True}}}))
    ff = next(c for c in contributors(compile_graph(spec)) if c.name == "blocks.ff")
    assert ff.formula == "dim 32 x ff.mult 4"


def over_budget(document: dict) -> xtc.Diagnostic:
    spec = xtc.loads_spec(yaml.safe_dump(document))
    [found] = ResourceBudget(max_params=10**6)(compile_graph(spec), spec)
    return found


GPT = yaml.safe_load((ROOT / "examples" / "gpt.yaml").read_text())


def test_a_usual_model_over_a_low_limit_names_no_unusual_key():
    found = over_budget(GPT)
    assert found.key == "model.attn_layers.dim"  # every factor at its usual value: the first
    assert "times its usual" not in found.message
    assert "largest contributors: blocks.ff 31.5% (dim 512 x ff.mult 4 x depth 6), token_emb " \
        "25.6% (num_tokens 20000 x dim 512), to_logits 25.6%" in found.message


def test_the_blamed_key_is_the_most_unusual_of_the_largest_contributor():
    """heads is further above its usual 8 than num_tokens above 20000, but the embeddings are
    larger than the attention blocks: num_tokens is blamed."""
    document = copy.deepcopy(GPT)
    document["model"]["num_tokens"] = 1_000_000
    document["model"]["attn_layers"]["heads"] = 512
    found = over_budget(document)
    assert found.key == "model.num_tokens"
    assert "num_tokens 1000000 is 50 times its usual 20000" in found.message


def test_inspect_shows_the_contributors(capsys):
    from xtc import cli

    assert cli.main(["inspect", "examples/gpt.yaml", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)["parameters"]
    assert sum(c["parameters"] for c in data["contributors"]) == data["total"]
    ff = data["contributors"][0]
    assert (ff["name"], ff["formula"]) == ("blocks.ff", "dim 512 x ff.mult 4 x depth 6")
    assert [f["key"] for f in ff["factors"]] == [
        "model.attn_layers.dim", "model.attn_layers.ff.mult", "model.attn_layers.depth"]
    assert cli.main(["inspect", "examples/gpt.yaml"]) == 0
    assert ("  largest contributors: blocks.ff 31.5%  token_emb 25.6%  to_logits 25.6%  "
            "blocks.attn 15.7%  pos_emb 1.3%\n") in capsys.readouterr().out


def test_the_budget_is_a_graph_check_that_the_loader_runs_after_the_spec_checks():
    """GRAPH_CHECKS read a compiled graph; CHECKS hands them to read_spec after SPEC_CHECKS,
    each named as its check, and checks(max_params) sets the budget's limit."""
    from xtc.compiler.passes import CHECKS, GRAPH_CHECKS, SPEC_CHECKS, checks
    from xtc.compiler.passes.check_resource_budget import check_resource_budget
    from xtc.spec.load import check_name, read_spec

    assert check_resource_budget in GRAPH_CHECKS and check_resource_budget not in SPEC_CHECKS
    assert CHECKS[:len(SPEC_CHECKS)] == SPEC_CHECKS
    assert [c.check for c in CHECKS[len(SPEC_CHECKS):]] == list(GRAPH_CHECKS)
    assert check_name(CHECKS[-1]) == "check-resource-budget"
    text = (ROOT / "examples" / "gpt.yaml").read_bytes()
    assert read_spec(text, "gpt.yaml", CHECKS)[1] == []
    _, found = read_spec(text, "gpt.yaml", checks(max_params=10**6))
    assert [(d.key, d.code) for d in found] == [("model.attn_layers.dim", "parameter-budget")]
