"""The runtime's AttentionPool against x-transformers' AttentionPool with the same weights:
its output and every gradient, with and without a padding mask, for one cross-attention and
for a deeper pool of blocks. In float64: the deeper pool's first norm sees the learned
queries, initialised 1e-2 small, and its gradient divides by their spread, which leaves float32
cancellation of 1e-4 in the queries' gradients of either model (1e-12 in float64)."""

from __future__ import annotations

import pytest
import torch
from inputs import padding_mask
from reference import TOLERANCE
from x_transformers.x_transformers import AttentionPool as ReferencePool
from xtc.runtime.pooling import AttentionPool

BATCH, LENGTH, DIM_CONTEXT, HEADS, DIM_HEAD = 3, 12, 32, 4, 16


def reference_names(name: str) -> str:
    """The reference parameter that the runtime's `name` holds (its norms' gains are stored
    minus one, as x-transformers' layer stacks store them)."""
    if name.startswith("attn."):
        return "pooler." + name.removeprefix("attn.")
    if name == "norm.weight":
        return "pooler.final_norm.gamma"
    if name.startswith("blocks."):
        _, index, part, rest = name.split(".", 3)
        attn, ff = 2 * int(index), 2 * int(index) + 1
        return {"attn_norm": f"pooler.layers.{attn}.0.0.gamma", "attn": f"pooler.layers.{attn}.1.{rest}",
                "ff_norm": f"pooler.layers.{ff}.0.0.gamma",
                "ff": f"pooler.layers.{ff}.1.ff.{'0.0' if rest.startswith('0.') else '2'}."
                      f"{rest.split('.')[-1]}"}[part]
    return name


@pytest.mark.parametrize("depth, dim, queries", [(1, 32, 1), (1, 16, 2), (2, 16, 2)])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_the_pool_is_the_reference_pool(depth, dim, queries, masked):
    torch.manual_seed(0)
    reference = ReferencePool(dim=dim, dim_context=DIM_CONTEXT, num_pooled_tokens=queries,
                              depth=depth, heads=HEADS, dim_head=DIM_HEAD)
    ours = AttentionPool(dim, DIM_CONTEXT, queries, depth, HEADS, DIM_HEAD).double()
    reference.double()
    theirs = dict(reference.named_parameters())
    with torch.no_grad():
        for name, parameter in ours.named_parameters():
            source = theirs[reference_names(name)]
            parameter.copy_(source + 1 if name.endswith("norm.weight") else source)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    context = torch.randn(BATCH, LENGTH, DIM_CONTEXT, dtype=torch.float64, requires_grad=True)
    mask = padding_mask(BATCH, LENGTH) if masked else None
    expected = reference(context, mask=mask)
    actual = ours(context, mask)
    assert actual.shape == (BATCH, queries, dim)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    (ours_grad,) = torch.autograd.grad(actual.square().sum(), context, retain_graph=True)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), context, retain_graph=True)
    torch.testing.assert_close(ours_grad, expected_grad, **TOLERANCE)
    actual.square().sum().backward()
    expected.square().sum().backward()
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, theirs[reference_names(name)].grad, **TOLERANCE)
