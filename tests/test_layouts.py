"""Layer structure (issue #11): custom layer sequences, sandwich_coef and par_ratio, built as one
block of the reference's sublayers in order (`layers.{i}`). Their parity and generation cases
are the `layout` rows of tests/features.py; here, how a layout reads in the source and graph."""

from __future__ import annotations

from features import feature, feature_spec

import xtc


def layout_spec(name: str, kind: str) -> xtc.Spec:
    return feature_spec(feature(f"layout-{name}"), kind, flash=False)


def test_custom_layers_read_as_named_sublayers():
    source = xtc.compile(layout_spec("custom", "Decoder"))
    assert "x = x + self.attn0(self.attn0_norm(x), mask=mask)" in source
    assert "x = x + self.ff4(self.ff4_norm(x))" in source


def test_graph_shows_the_arrangement_and_shared_sublayers():
    graph = xtc.graph(layout_spec("execute_order_custom", "Decoder"))
    runs = [n for n, d in graph.nodes(data=True) if d["kind"] == "attention"]
    assert len(runs) == 2  # attn0 runs twice
    assert {graph.nodes[n]["parameters"] for n in runs} == {"block.attn0"}
