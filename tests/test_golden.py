"""The emitted module of every example, and its graph after the passes (`.ir.txt`), are
committed in examples/generated/ and must match the compiler's output (`python -m xtc.compiler.regen` or `pytest --regen` rewrites them), and every
example compiles, imports and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, check_snapshot
from xtc.compiler.resolve import needs_condition

import xtc

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Examples that do not compile yet, with the issue that makes them: {"name": "#N"}.
XFAIL: dict[str, str] = {}


def cases():
    for path in EXAMPLES:
        marks = [pytest.mark.xfail(reason=XFAIL[path.stem], strict=True)] if path.stem in XFAIL else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("example", list(cases()))
def test_golden_module_is_in_sync(example: Path, regen):
    source = xtc.compile(xtc.load_spec(example))
    check_snapshot(example.parent / "generated" / f"{example.stem}.py", source, regen)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_golden_graph_is_in_sync(example: Path, regen):
    """The IR after the passes, as review reads it: a change to the graph shows in the diff."""
    from xtc.compiler import compile_graph

    text = compile_graph(xtc.load_spec(example)).review_text()
    check_snapshot(example.parent / "generated" / f"{example.stem}.ir.txt", text, regen)


def test_every_golden_has_its_spec():
    generated = ROOT / "examples" / "generated"
    assert {p.stem for p in generated.glob("*.py")} == {p.stem for p in EXAMPLES}
    assert {p.name.removesuffix(".ir.txt") for p in generated.glob("*.ir.txt")} == \
        {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("example", list(cases()))
def test_example_builds_and_runs(example: Path):
    import torch

    spec = xtc.load_spec(example)
    model = xtc.build(spec).eval()
    inputs, kwargs, shape = sample_inputs(spec)
    with torch.no_grad():
        out = model(*inputs, **kwargs)
    # an xVal model returns logits and numbers
    outs = out if isinstance(out, tuple) else (out,)
    assert tuple(tuple(t.shape) for t in outs) == (shape if isinstance(out, tuple) else (shape,))


def sample_inputs(spec: xtc.Spec) -> tuple[tuple, dict, tuple]:
    """Inputs for a model of any type, and the shape of its output."""
    import torch

    if spec.model is None:
        return composite_inputs(spec)
    model = spec.model
    if model.type == "XTransformer":
        vocab = model.children["encoder"]["num_tokens"]
        return (torch.randint(0, vocab, (2, 8)), torch.randint(0, vocab, (2, 6))), {}, ()
    if model.type == "ViTransformerWrapper":
        size, channels = model["image_size"], model["channels"]
        return (torch.randn(2, channels, size, size),), {}, (2, model["num_classes"])
    layers = model.children.get("attn_layers", model)
    dim = layers["dim"]
    cross = layers.type == "CrossAttender" or layers["cross_attend"]
    kwargs = {"context": torch.randn(2, 5, dim)} if cross else {}
    if needs_condition(layers):  # adaptive norms: one condition per sequence
        kwargs["condition"] = torch.randn(2, layers["dim_condition"] or dim)
    if model.type == "TransformerWrapper":
        return (torch.randint(0, model["num_tokens"], (2, 8)),), kwargs, (2, 8, model["num_tokens"])
    if model.type == "ContinuousTransformerWrapper":
        return (torch.randn(2, 8, model["dim_in"] or dim),), kwargs, (2, 8, model["dim_out"] or dim)
    if model.type == "XValTransformerWrapper":  # tokens and numbers; logits and numbers
        tokens = torch.randint(0, model["num_tokens"], (2, 8))
        return (tokens, torch.randn(2, 8)), kwargs, ((2, 8, model["num_tokens"]), (2, 8))
    return (torch.randn(2, 8, dim),), kwargs, (2, 8, dim)


def composite_inputs(spec: xtc.Spec) -> tuple[tuple, dict, tuple]:
    """The unfed primary inputs of each component, in the order written."""
    import torch

    inputs, shape = [], ()
    for module in spec.components.values():
        if module.type == "ViTransformerWrapper":
            size = module["image_size"]
            inputs.append(torch.randn(2, module["channels"], size, size))
        elif module.type == "XTransformer":
            vocab = module.children["encoder"]["num_tokens"]
            inputs += [torch.randint(0, vocab, (2, 8)), torch.randint(0, vocab, (2, 6))]
        else:
            inputs.append(torch.randint(0, module["num_tokens"], (2, 8)))
            shape = (2, 8, module["num_tokens"])
    return tuple(inputs), {}, shape
