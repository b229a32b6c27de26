"""Layer structure (issue #11): custom layer sequences, sandwich_coef and par_ratio, built as one
block of the reference's sublayers in order (`layers.{i}`), with parity and generation."""

from __future__ import annotations

import pytest
import yaml
from reference import assert_same_greedy_tokens
from test_generation import prompts
from test_model_types import assert_token_parity, floats

import xtc

LAYOUTS = {
    "custom": {"custom_layers": ["a", "f", "a", "a", "f"]},
    "attention_only": {"custom_layers": ["a", "a"]},  # no feedforward class at all
    "custom_cross": {"custom_layers": ["a", "c", "f", "c", "f"], "cross_attend": True},
    "sandwich_coef": {"sandwich_coef": 1, "depth": 3},
    "par_ratio": {"par_ratio": 2, "depth": 3},
    "custom_residual_attn_shift": {"custom_layers": ["a", "a", "f", "f"], "residual_attn": True,
                                   "shift_tokens": 1},
    "execute_order_custom": {"custom_layers": ["a", "f"], "layers_execute_order": [0, 1, 0, 1, 1]},
    "execute_order_default": {"depth": 2, "layers_execute_order": [0, 1, 2, 3, 2, 3]},
}


def layout_spec(name: str, kind: str) -> xtc.Spec:
    stack = {"type": kind, "dim": 32, "heads": 4, "attn": {"dim_head": 16}, **LAYOUTS[name]}
    model = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 32, "attn_layers": stack}
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": model}, sort_keys=False))


def context_kwargs(name: str) -> dict:
    return {"context": floats(2, 5, 32)} if LAYOUTS[name].get("cross_attend") else {}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("kind", ["Decoder", "Encoder"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_layout_parity(name, kind, masked):
    assert_token_parity(layout_spec(name, kind), masked, **context_kwargs(name))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_generates(name):
    # custom layouts generate without a kv cache in xtc; compare with the reference uncached
    assert_same_greedy_tokens(layout_spec(name, "Decoder"), prompts(), 8, reference_cache=False,
                              **context_kwargs(name))


def test_custom_layers_read_as_named_sublayers():
    source = xtc.compile(layout_spec("custom", "Decoder"))
    assert "x = x + self.attn0(self.attn0_norm(x), mask=mask)" in source
    assert "x = x + self.ff4(self.ff4_norm(x))" in source


def test_graph_shows_the_arrangement_and_shared_sublayers():
    graph = xtc.graph(layout_spec("execute_order_custom", "Decoder"))
    runs = [n for n, d in graph.nodes(data=True) if d["kind"] == "attention"]
    assert len(runs) == 2  # attn0 runs twice
    assert {graph.nodes[n]["parameters"] for n in runs} == {"block.attn0"}
