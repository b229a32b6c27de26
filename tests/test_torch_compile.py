"""Emitted modules compile as one graph: `torch.compile(model, fullgraph=True)` in eval mode for
every example and every row of tests/features.py (one row per group in the default run, the
rest under `slow`), and for a cached decoding step. The "eager" backend runs dynamo's tracing (where
graph breaks are found) without inductor's code generation (about 20 s per model here); the
benchmark reports what inductor makes of one config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ROOT
from features import FEATURES, feature_spec
from inputs import make_inputs
from reference import drawn
from test_golden import sample_inputs

import xtc

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()  # each model is traced from scratch, not from another test's cache
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_compiles_to_one_graph(example: Path):
    spec = xtc.load_spec(example)
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    inputs, kwargs, _ = sample_inputs(spec)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # a graph break raises
    with torch.no_grad():
        expected = model(*inputs, **kwargs)
        actual = compiled(*inputs, **kwargs)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def feature_cases() -> list:
    """Every row, built with its first kind (flash where allowed); the first row of each group in
    the default run, the others slow."""
    cases, groups = [], set()
    for row in FEATURES:
        marks = pytest.mark.slow if row.group in groups else ()
        groups.add(row.group)
        cases.append(pytest.param(row, marks=marks, id=row.id))
    return cases


@pytest.mark.parametrize("row", feature_cases())
def test_every_feature_compiles_to_one_graph(row):
    spec = feature_spec(row, row.kinds[0], flash=row.flash)
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    inputs = make_inputs(spec, 2, 12, masked=row.takes_mask, context_length=7)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # a graph break raises
    with torch.no_grad():  # seeded alike: a sampling model draws the same noise
        expected = drawn(model, *inputs.args, **inputs.kwargs)
        actual = drawn(compiled, *inputs.args, **inputs.kwargs)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_a_cached_decoding_step_compiles_to_one_graph():
    spec = xtc.load_spec(ROOT / "examples" / "char_gpt.yaml")
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    prompt = torch.randint(0, 128, (2, 6))
    with torch.no_grad():
        eager_cache, compiled_cache = model.new_cache(2, 8), model.new_cache(2, 8)
        model.decode_step(prompt, cache=eager_cache)
        model.decode_step(prompt, cache=compiled_cache)
        step = torch.compile(model.decode_step, fullgraph=True, backend="eager")
        expected = model.decode_step(prompt[:, -1:], cache=eager_cache)
        actual = step(prompt[:, -1:], cache=compiled_cache)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert compiled_cache.length == eager_cache.length == 7


def test_checks_still_run_outside_compilation():
    # the run-time checks step aside while dynamo traces; eager calls keep them
    model = xtc.build(xtc.load_spec(ROOT / "examples" / "char_gpt.yaml")).eval()
    with pytest.raises(ValueError, match="token ids must be in"):
        model(torch.tensor([[0, 200]]))


def test_dynamic_shapes_compile_to_one_graph_for_every_length():
    # with dynamic=True, lengths are symbols: any shape-dependent Python branch must stay a
    # plain bool where torch needs one (SDPA's is_causal refused a symbolic one here before)
    model = xtc.build(xtc.load_spec(ROOT / "examples" / "char_gpt.yaml")).eval()
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=True)
    compiled_step = torch.compile(model.decode_step, fullgraph=True, backend="eager", dynamic=True)
    tokens = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        cache = model.new_cache(2, 12)
        compiled_step(tokens[:, :5], cache=cache)
        for position in range(5, 12):  # a decoding step per length of the cache
            step = compiled_step(tokens[:, position:position + 1], cache=cache)
            torch.testing.assert_close(step, model(tokens[:, :position + 1])[:, -1:],
                                       rtol=1e-5, atol=1e-5)
        for length in (7, 11):
            torch.testing.assert_close(compiled(tokens[:, :length]), model(tokens[:, :length]),
                                       rtol=0, atol=0)
