"""Pooled heads (issue #45): a model whose output is one vector per sequence (class logits), or a
few (an attention pool's).
Forward parity is in the feature matrix (tests/features.py, groups `pooling` and
`continuous`); here its `loss`, the cross entropy of those logits against a class id per
sequence, against the reference's logits put through torch's cross entropy, and the methods it
has and has not."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from features import NUM_TOKENS, layers, spec_of
from inputs import padding_mask
from reference import TOLERANCE, assert_same_gradients, mean_of, paired_models, reference_model

import xtc

BATCH, LENGTH = 3, 12


MEAN = {"average_pool_embed": True}
POOLS = {"mean": MEAN, "cls": {"use_cls_token": True},
         "two_cls": {"use_cls_token": True, "num_cls_tokens": 2},
         "cls_classes": {"use_cls_token": True, "logits_dim": 5},  # a head of 5 classes
         "two_heads": {**MEAN, "num_output_heads": 2}}  # the loss reads head 0


def pooled_spec(kind: str, pool: dict = MEAN) -> xtc.Spec:
    return spec_of({"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
                    **pool, "attn_layers": layers(kind)})


@pytest.mark.parametrize("kind, pool", [("Encoder", "mean"), ("Decoder", "mean"),
                                        ("Encoder", "cls"), ("Encoder", "two_cls"),
                                        ("Encoder", "cls_classes"), ("Encoder", "two_heads")])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_loss_is_the_cross_entropy_of_the_reference_logits(kind, pool, masked):
    """Labels (B,), or (B, num_cls_tokens): a class for each CLS token, averaged over all."""
    spec = pooled_spec(kind, POOLS[pool])
    reference, ours = paired_models(spec)
    tokens = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([3, 0, 4 if pool == "cls_classes" else 63])
    if pool == "two_cls":
        labels = torch.stack((labels, labels.flip(0)), dim=1)  # (B, 2)
    mask = padding_mask(BATCH, LENGTH) if masked else None
    actual = ours.loss(tokens, labels, mask=mask)
    actual.backward()
    logits = reference(tokens, mask=mask)  # (B, num_tokens) or (B, 2, num_tokens)
    logits = logits[0] if isinstance(logits, tuple) else logits  # several heads: the first
    expected = F.cross_entropy(logits.flatten(0, -2), labels.flatten())
    expected.backward()
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    assert_same_gradients(spec, ours, reference)


def test_a_pooled_score_or_embedding_has_no_class_loss():
    """squeeze_out_last_dim's one score per sequence (B,), or return_only_embed's pooled
    embeddings (B, dim), are no class logits: forward only."""
    scores = xtc.build(pooled_spec("Encoder", {**MEAN, "logits_dim": 1, "squeeze_out_last_dim": True}))
    embeddings = xtc.build(pooled_spec("Encoder", {**MEAN, "return_only_embed": True}))
    tokens = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH))
    assert scores(tokens).shape == (BATCH,) and embeddings(tokens).shape == (BATCH, 32)
    assert not hasattr(scores, "loss") and not hasattr(embeddings, "loss")
    assert "Logits (B,) for" in type(scores).forward.__doc__
    assert "Embeddings (B, dim) for" in type(embeddings).forward.__doc__


def test_a_pooled_decoder_does_not_generate():
    """The reference's generate fails on the pooled logits (census): xtc emits none."""
    model = xtc.build(pooled_spec("Decoder"))
    assert not hasattr(model, "generate") and not hasattr(model, "decode_step")
    assert "Logits (B, num_tokens)" in type(model).forward.__doc__


@pytest.mark.parametrize("pool, shape", [("mean", (BATCH, 32)), ("two_cls", (BATCH, 2, 32))])
def test_the_embeddings_are_pooled_too(pool, shape):
    """return_embeddings gives the mean or the CLS tokens' outputs, as the reference does."""
    model = xtc.build(pooled_spec("Encoder", POOLS[pool]))
    tokens = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH))
    assert model(tokens, return_embeddings=True).shape == shape
    if pool == "two_cls":
        assert "Logits (B, num_cls_tokens, num_tokens)" in type(model).forward.__doc__


def test_a_pooled_continuous_decoder_neither_learns_nor_generates():
    """ContinuousTransformerWrapper's average_pool_embed: one vector per sequence (B, dim_out),
    the mean (B, dim) with return_embeddings; no next input to predict, so no loss, no generate."""
    model = xtc.build(spec_of({"type": "ContinuousTransformerWrapper", "dim_in": 8, "dim_out": 6,
                               "average_pool_embed": True, "attn_layers": layers("Decoder")}))
    x = torch.randn(BATCH, LENGTH, 8)
    assert model(x, mask=padding_mask(BATCH, LENGTH)).shape == (BATCH, 6)
    assert model(x, return_embeddings=True).shape == (BATCH, 32)
    assert not hasattr(model, "loss") and not hasattr(model, "generate")
    assert "Outputs (B, dim_out) for" in type(model).forward.__doc__


# -- attn_pool: learned queries read an encoder's outputs ----------------------------------------

ATTENTION = {"attn_pool": True, "num_pooled_tokens": 2}


@pytest.mark.parametrize("extra", [{"num_memory_tokens": 2}, {}], ids=["memory", "prepend"])
def test_the_attention_pool_reads_the_real_positions(extra):
    """Under a padding mask the pool attends to the real positions alone. With memory tokens the
    reference's pool is handed the mask extended over them and fails, so the oracle is its own
    pieces: the embeddings it returns under the mask, pooled by its AttentionPool under the
    mask as given (the same weights: its gradients are compared too). With prepended embeddings (whose mask both extend) the reference runs."""
    spec = pooled_spec("Encoder", {**ATTENTION, **extra})
    reference, ours = paired_models(spec)
    tokens = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))
    mask = padding_mask(BATCH, LENGTH)
    kwargs = {"mask": mask}
    if not extra:
        kwargs["prepend_embeds"] = torch.randn(BATCH, 3, 32)
    actual = ours(tokens, **kwargs)
    mean_of(actual).backward()
    if extra:  # (its forward runs the pool even for the embeddings: taken out meanwhile)
        pool, reference.attn_pool = reference.attn_pool, None
        expected = pool(reference(tokens, return_embeddings=True, **kwargs), mask=mask)
        reference.attn_pool = pool
    else:
        expected = reference(tokens, **kwargs)
    mean_of(expected).backward()
    assert actual.shape == (BATCH, 2, 32)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    assert_same_gradients(spec, ours, reference)


def test_an_attention_pooled_model_returns_its_pooled_tokens_only():
    """Its embeddings with return_embeddings, as the reference; no loss, no logits head, and the
    reference's unread head (to_logits) is dropped on conversion while any other stray key is
    still refused."""
    spec = pooled_spec("Encoder", {**ATTENTION, "dim_pooled_tokens": 16})
    model = xtc.build(spec)
    tokens = torch.randint(0, NUM_TOKENS, (BATCH, LENGTH))
    assert model(tokens).shape == (BATCH, 2, 16)
    assert model(tokens, return_embeddings=True).shape == (BATCH, LENGTH, 32)
    assert not hasattr(model, "loss") and not hasattr(model, "to_logits")
    assert "Pooled tokens (B, num_pooled_tokens, dim_pooled_tokens) for" in type(model).forward.__doc__
    state = reference_model(spec).state_dict()
    assert "to_logits.weight" in state
    model.load_state_dict(xtc.convert_state_dict(spec, state), strict=True)
    with pytest.raises(ValueError, match="unexpected keys \\['stray'\\]"):
        xtc.convert_state_dict(spec, {**state, "stray": state["to_logits.weight"]})
