"""Check passes, driven by tests/fixtures/passes/<pass-id>.yaml, the shape pass by
tests/fixtures/passes/infer-shapes.yaml, and the IR's own invariants.

Each fixture case merges `model` into the base spec's model and `layers` into its attn_layers
(or replaces the model with `spec`, or the whole body with a `composite`),
runs the one pass on the well-formed spec (a graph check, check-resource-budget, on the graph it
compiles to; schema errors such as unsupported options do not hide a pass's verdict), and
compares the (key, code) pairs it reports, with `severity: warning` for warnings.
"""

from __future__ import annotations

import copy
import importlib
import re

import pytest
import yaml
from conftest import FIXTURES, ROOT
from xtc.compiler.passes import CHECKS
from xtc.spec.schema import check_schema
from xtc.spec.yaml_loader import load_yaml

BASE = {
    "xtc": 1,
    "name": "tiny",
    "model": {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
              "attn_layers": {"type": "Decoder", "dim": 32, "depth": 2, "heads": 4}},
}
PASSES = {fn.__module__.rsplit(".", 1)[-1].replace("_", "-"): fn for fn in CHECKS}


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def fixture_cases(pass_id: str) -> list[dict]:
    return yaml.safe_load((FIXTURES / "passes" / f"{pass_id}.yaml").read_text())


def check_pass_fixture(pass_id: str, case: dict) -> None:
    found = [{"key": d.key, "code": d.code, **({"severity": d.severity} if d.severity != "error" else {})}
             for d in PASSES[pass_id](case_spec(case))]
    assert found == case["expect"], case["title"]


def case_spec(case: dict):
    """The well-formed spec of a fixture case (the base spec with the case merged in)."""
    document = copy.deepcopy(BASE)
    if "composite" in case:
        del document["model"]
        document.update(case["composite"])
    elif "spec" in case:
        document["model"] = case["spec"]
    else:
        document["model"] = merged(document["model"], case.get("model", {}))
        document["model"]["attn_layers"] = merged(document["model"]["attn_layers"],
                                                  case.get("layers", {}))
    tree, problems = load_yaml(yaml.safe_dump(document, sort_keys=False), "case.yaml")
    assert problems == []
    spec, _ = check_schema(tree, "case.yaml", "0" * 64)
    assert spec is not None, case["title"]
    return spec


def all_cases():
    for pass_id in sorted(PASSES):
        for case in fixture_cases(pass_id):
            yield pytest.param(pass_id, case, id=f"{pass_id}: {case['title']}")


@pytest.mark.parametrize("pass_id, case", list(all_cases()))
def test_pass_fixture(pass_id, case):
    check_pass_fixture(pass_id, case)


@pytest.mark.parametrize("case", fixture_cases("infer-shapes"), ids=lambda case: case["title"])
def test_infer_shapes_fixture(case):
    """The one graph transform: every op gets its shape, and the listed ops the shapes listed."""
    from xtc.compiler.build_ir import build_graph
    from xtc.compiler.passes.infer_shapes import infer_shapes

    graph = build_graph(case_spec(case))
    assert [op.name for op in graph.ops() if op.shape is not None] == []
    shapes = {op.name: op.shape for op in infer_shapes(graph).ops()}
    assert [name for name, shape in shapes.items() if shape is None] == []
    printed = {name: " ".join(map(str, shapes[name])) if name in shapes else None
               for name in case["expect"]}
    assert printed == case["expect"], case["title"]


@pytest.mark.parametrize("case", fixture_cases("fuse-qkv"), ids=lambda case: case["title"])
def test_fuse_qkv_fixture(case):
    """The fusing rewrite: every self-attention gets one projection of the listed widths."""
    from xtc.compiler.build_ir import build_graph
    from xtc.compiler.passes.fuse_qkv import fuse_qkv

    graph = build_graph(case_spec(case))
    assert not any(getattr(op.attrs, "fused_qkv", False) for op in graph.ops())
    fused = fuse_qkv(graph)
    printed = {name: " ".join(map(str, fused[name].attrs.qkv_widths))
               if getattr(fused[name].attrs, "fused_qkv", False) else "separate"
               for name in case["expect"]}
    assert printed == case["expect"], case["title"]


def test_every_pass_has_a_fixture_and_an_id():
    for pass_id, fn in PASSES.items():
        module = __import__(fn.__module__, fromlist=["ID"])
        assert module.ID == pass_id
        assert (FIXTURES / "passes" / f"{pass_id}.yaml").exists()


def test_every_exclusion_rule_has_a_fixture_case():
    rules = importlib.import_module("xtc.compiler.passes.check_exclusive_features")

    covered = {e["code"] for case in fixture_cases("check-exclusive-features") for e in case["expect"]}
    assert covered == ({rule.code for rule in (*rules.RULES, *rules.AT_MOST_ONE)}
                       | {rules.Z_LOSS_CODE, rules.INVERTED_SINK_CODE, rules.GLU_SOFTCLAMP_CODE,
                          rules.HEADLESS_TRANSFORM_CODE}
                       | {code for code, _ in rules.ONE_HEAD_OPTIONS.values()}
                       | {rules.NEXT_EMBED_WIDTH_CODE, rules.NEXT_EMBED_OPTION_CODE,
                          rules.NEXT_EMBED_MIXTURE_CODE})


# The reference's source line numbers ("I:2931") mean nothing to a reader of xtc: messages quote
# the reference or say that it refuses the same, and code names its function or class.
REFERENCE_LINE = re.compile(r"\bI:\d")


def test_no_message_cites_reference_line_numbers():
    from test_invalid_fixtures import CASES, errors_of

    messages = [d.message for pass_id in PASSES for case in fixture_cases(pass_id)
                for d in PASSES[pass_id](case_spec(case))]
    messages += [d.message for case in CASES for d in errors_of(case)]
    assert len(messages) > 100
    assert [m for m in messages if REFERENCE_LINE.search(m)] == []


def test_no_code_cites_reference_line_numbers():
    files = [path for folder in ("spec", "compiler", "runtime", "xtc", "interop")
             for path in sorted((ROOT / folder).rglob("*.py"))]
    assert [str(path) for path in files if REFERENCE_LINE.search(path.read_text())] == []


def test_flash_with_talking_heads_names_both_keys_and_lines():
    """P29: both keys, both lines."""
    import xtc

    text = yaml.safe_dump(merged(BASE, {"model": {"attn_layers": {
        "attn": {"flash": True, "pre_talking_heads": True}}}}), sort_keys=False)
    with pytest.raises(xtc.SpecError) as caught:
        xtc.loads_spec(text, "p29.yaml")
    codes = {d.code: d for d in caught.value.diagnostics}
    assert set(codes) == {"flash-excludes-talking-heads"}
    rule = codes["flash-excludes-talking-heads"]
    assert "attn.flash (line 13)" in rule.message and "attn.pre_talking_heads (line 14)" in rule.message
    assert (rule.line, rule.key) == (14, "model.attn_layers.attn.pre_talking_heads")


def test_lint_catches_broken_graphs():
    from xtc.compiler.ir import (
        AttentionAttrs,
        Graph,
        GraphError,
        InputAttrs,
        NormAttrs,
        OpKind,
        OutputAttrs,
        TokenEmbeddingAttrs,
    )
    from xtc.compiler.passes import run_graph_passes

    def graph(*ops):
        g = Graph()
        for op in ops:
            g.add(*op)
        return g

    tokens = ("tokens", OpKind.INPUT, InputAttrs("x", "tokens"))
    emb = ("emb", OpKind.TOKEN_EMBEDDING, TokenEmbeddingAttrs(8, 16), ("tokens",))
    out = ("out", OpKind.OUTPUT, OutputAttrs("embeddings"), ("emb",))
    run_graph_passes(graph(tokens, emb, out))  # well-formed
    broken = {
        "reads before defined": graph(tokens, ("n", OpKind.NORM, NormAttrs("layernorm", 16), ("emb",)), emb, out),
        "wrong payload": graph(tokens, ("emb", OpKind.TOKEN_EMBEDDING, NormAttrs("layernorm", 16), ("tokens",)), out),
        "wrong arity": graph(tokens, emb, ("n", OpKind.NORM, NormAttrs("layernorm", 16), ("emb", "tokens", "tokens")), out),
        "no output": graph(tokens, emb),
        "feature size": graph(tokens, emb, ("a", OpKind.ATTENTION,
                                            AttentionAttrs(32, 2, 8, True, False, True), ("emb",)),
                              ("out", OpKind.OUTPUT, OutputAttrs("embeddings"), ("a",))),
    }
    for g in broken.values():
        with pytest.raises(GraphError):
            run_graph_passes(g)
    with pytest.raises(GraphError, match="duplicate"):
        graph(tokens, tokens)
