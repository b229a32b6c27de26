"""Layer structure (issue #11): custom layer sequences, sandwich_coef and par_ratio, built as one
block of the reference's sublayers in order (`layers.{i}`). Their parity and generation cases
are the `layout` rows of tests/features.py; here, how a layout reads in the source and graph."""

from __future__ import annotations

import warnings

import pytest
import torch
from features import FEATURES, feature, feature_spec
from inputs import make_inputs
from reference import assert_same_gradients, drawn, paired_models

import xtc


def layout_spec(name: str, kind: str) -> xtc.Spec:
    return feature_spec(feature(f"layout-{name}"), kind, flash=False)


def test_custom_layers_read_as_named_sublayers():
    source = xtc.compile(layout_spec("custom", "Decoder"))
    assert "x = x + self.attn0(self.attn0_norm(x), mask=mask, cache=self_caches[0])" in source
    assert "x = x + self.attn2(self.attn2_norm(x), mask=mask, cache=self_caches[1])" in source
    assert "x = x + self.ff4(self.ff4_norm(x))" in source
    assert "self_layers=3,  # the layout's runs" in source


def test_a_repeated_sublayer_has_a_cache_per_run():
    """layers_execute_order [0, 1, 0, 1, 1]: attn0 runs twice, so two caches, one per run."""
    source = xtc.compile(layout_spec("execute_order_custom", "Decoder"))
    assert source.count("self.attn0(self.attn0_norm(x), mask=mask, cache=self_caches[") == 2
    assert "cache=self_caches[0])" in source and "cache=self_caches[1])" in source
    assert "self_layers=2,  # the layout's runs" in source


@pytest.mark.parametrize("row", [f for f in FEATURES if f.group == "layout"], ids=lambda f: f.id)
def test_every_layout_generates_with_its_cache_and_without_a_warning(row):
    """Cached greedy tokens equal the uncached ones (which the feature matrix compares with
    the reference's), and generate does not warn that it recomputes."""
    spec = feature_spec(row, "Decoder", flash=False)
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    inputs = make_inputs(spec, 2, 5, context_length=7)
    context = {k: v for k, v in inputs.kwargs.items() if k in ("context", "context_mask")}
    (prompt,) = inputs.args
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached = model.generate(prompt, 10, temperature=0, **context)
    assert hasattr(model, "new_cache")
    assert torch.equal(cached, model.generate(prompt, 10, temperature=0, cache=False, **context))


def test_graph_shows_the_arrangement_and_shared_sublayers():
    graph = xtc.graph(layout_spec("execute_order_custom", "Decoder"))
    runs = [n for n, d in graph.nodes(data=True) if d["kind"] == "attention"]
    assert len(runs) == 2  # attn0 runs twice
    assert {graph.nodes[n]["parameters"] for n in runs} == {"block.attn0"}


@pytest.mark.parametrize("name", ["cross_tokens_dropout", "cross_tokens_dropout_custom"])
def test_cross_attn_tokens_dropout_draws_as_the_reference_in_training(name):
    """In training each cross-attention keeps a random share of the context tokens it is given
    and hands them on: with torch's generator seeded alike, the reference and xtc keep the
    same tokens (a padding mask keeps real tokens first), so the outputs and gradients agree;
    in eval nothing is dropped."""
    spec = layout_spec(name, "Decoder")
    inputs = make_inputs(spec, 2, 8, masked=True, context_length=12)
    reference, ours = paired_models(spec)
    outputs = []
    for model in (reference.train(), ours.train()):
        outputs.append(drawn(model, *inputs.args, **inputs.kwargs))
        outputs[-1].mean().backward()
    torch.testing.assert_close(outputs[1], outputs[0])
    assert_same_gradients(spec, ours, reference)
    with torch.no_grad():
        evaluated = ours.eval()(*inputs.args, **inputs.kwargs)
        expected = reference.eval()(*inputs.args, **inputs.kwargs)
    torch.testing.assert_close(evaluated, expected)
    assert not torch.allclose(outputs[1].detach(), evaluated)  # training dropped tokens
