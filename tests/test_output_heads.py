"""Several output heads (num_output_heads, issue #45): forward returns a tuple of logits, one
per head; `head` picks one. Forward, gradient, loss and head-0 generation parity are in the
feature matrix (tests/features.py, group `heads`); here a later head's generation against the
reference's, and what `head` returns."""

from __future__ import annotations

import re

import torch
from features import NUM_TOKENS, layers, spec_of
from reference import TOLERANCE, assert_same_greedy_tokens
from xtc.compiler import compile_graph
from xtc.compiler.inspect_format import render

import xtc

BATCH, LENGTH = 2, 6


def heads_spec(**model) -> xtc.Spec:
    return spec_of({"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
                    "num_output_heads": 3, **model, "attn_layers": layers("Decoder")})


def test_generate_reads_the_head_it_is_given():
    """The last head's greedy tokens, cached, equal the reference's generate run with that head
    alone as its logits head (its own generate fails on several heads)."""
    prompt = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))
    assert_same_greedy_tokens(heads_spec(), prompt, 8, head=2)


def test_head_returns_that_head_of_the_tuple():
    torch.manual_seed(0)
    model = xtc.build(heads_spec(logits_dim=1, squeeze_out_last_dim=True)).eval()
    tokens = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH))
    every = model(tokens)
    assert isinstance(every, tuple) and [t.shape for t in every] == [(BATCH, LENGTH)] * 3
    for head, logits in enumerate(every):
        torch.testing.assert_close(model(tokens, head=head), logits, **TOLERANCE)


def test_inspect_shows_one_tensor_per_head():
    """The graph's logits, and the output that returns them: a tuple of three tensors."""
    spec = heads_spec()
    text, _ = render(spec, compile_graph(spec))
    assert re.search(r"\n +logits +logits +3 x \(B, P\+T, 64\)", text)
    assert re.search(r"\n +output +output +3 x \(B, P\+T, 64\)", text)
