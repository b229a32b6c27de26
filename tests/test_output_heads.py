"""The wrapper's extra heads (issue #45). Several output heads (num_output_heads): forward
returns a tuple of logits, one per head; `head` picks one. Forward, gradient, loss and head-0
generation parity are in the feature matrix (tests/features.py, group `heads`); here a later
head's generation against the reference's, and what `head` returns. The continuous prediction
head (add_continuous_pred_head, group `next_embed` there): here forward's extra output."""

from __future__ import annotations

import re

import pytest
import torch
from features import DIM, NUM_TOKENS, layers, spec_of
from inputs import padding_mask
from reference import TOLERANCE, assert_parity, assert_same_greedy_tokens, assert_same_loss
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


# -- the continuous prediction head (add_continuous_pred_head) ----------------------------------

NEXT_EMBED_CASES = {
    "decoder": ("Decoder", {}),
    "encoder": ("Encoder", {}),
    "pooled": ("Encoder", {"average_pool_embed": True}),  # predicted from the pooled output
    "post_emb_norm": ("Decoder", {"post_emb_norm": True, "emb_frac_gradient": 0.5}),
}


@pytest.mark.parametrize("case", NEXT_EMBED_CASES)
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_forward_returns_the_next_embeddings_predicted(case, masked):
    """forward(return_next_embed_pred=True): (logits, (prediction, initial embeddings)), the
    reference's, with its gradients; prepended embeddings are among the initial ones."""
    kind, model = NEXT_EMBED_CASES[case]
    spec = spec_of({"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
                    "add_continuous_pred_head": True, **model, "attn_layers": layers(kind)})
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, NUM_TOKENS, (3, LENGTH), generator=generator)
    inputs = {"mask": padding_mask(3, LENGTH)} if masked else {}
    if case == "decoder":
        inputs["prepend_embeds"] = torch.randn(3, 2, DIM, generator=generator)
    assert_parity(spec, tokens, return_next_embed_pred=True, **inputs)


def test_loss_adds_the_next_embeddings_error_without_ignored_targets():
    """The feature rows' loss holds ignored targets; here every target counts."""
    spec = spec_of({"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
                    "add_continuous_pred_head": True, "attn_layers": layers("Decoder")})
    tokens = torch.randint(0, NUM_TOKENS, (3, LENGTH), generator=torch.Generator().manual_seed(0))
    assert_same_loss(spec, tokens, mask=padding_mask(3, LENGTH))
