"""Attention variants (issue #9) beyond parity: what the kv cache keeps, and the decoding path
of one query against grouped keys. Their parity and generation cases are the `attention`,
`explicit` and `residual` rows of tests/features.py."""

from __future__ import annotations

import pytest
import torch
from features import feature, feature_spec
from reference import paired_models


def test_gqa_caches_only_the_key_value_heads():
    _, ours = paired_models(feature_spec(feature("attention-gqa"), "Decoder", False))
    cache = ours.new_cache(2, 8)
    assert cache.layers[0].self_attn.keys.shape == (2, 2, 8, 16)


def test_latent_attention_caches_the_latent_and_the_rope_keys():
    """Multi-head latent attention keeps the latent (B, S, 12) and its 2 decoupled-rope key
    heads (B, 2, S, 16), unrotated, not 4 heads of keys and values: a decoding step re-projects
    keys and values from them, and the rope keys cached are the projection of the input."""
    _, ours = paired_models(feature_spec(feature("attention-latent_rope_subheads"), "Decoder", False))
    cache = ours.new_cache(2, 8)
    kept = cache.layers[0].self_attn
    assert [tuple(t.shape) for t in kept.buffers] == [(2, 8, 12), (2, 2, 8, 16)]
    tokens = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours.decode_step(tokens, cache=cache)
        attn, h = ours.blocks[0].attn, ours.token_emb(tokens)  # the first block's input
        rope_keys = attn.to_rotateable_k(ours.blocks[0].attn_norm(h)).unflatten(-1, (2, -1))
    assert kept.length == 5
    torch.testing.assert_close(kept.rope_keys[:, :, :5], rope_keys.transpose(1, 2))


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "key-mask"])
def test_one_query_against_grouped_keys_equals_tiled_heads(masked):
    # attend folds query heads into rows for one decoding query (no tiled copy of the cache);
    # it must give what tiling the key / value heads (x-transformers' repeat) gives, up to the
    # rounding of SDPA's row blocking (measured: at most 2.4e-7 here)
    from xtc.runtime.attention import attend, tile_heads

    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 6, 1, 8, generator=generator)
    k, v = (torch.randn(2, 2, 5, 8, generator=generator) for _ in range(2))
    key_mask = torch.tensor([[True] * 5, [True, True, True, False, False]]) if masked else None
    folded = attend(q, k, v, causal=True, key_mask=key_mask)
    tiled = attend(q, tile_heads(k, 6), tile_heads(v, 6), causal=True, key_mask=key_mask)
    assert folded.shape == (2, 6, 1, 8)
    torch.testing.assert_close(folded, tiled, rtol=1e-5, atol=1e-6)


def belief_and_dropout_spec(p: float):
    """A cross-attending decoder whose attention and cross-attention both zero-initialise their
    output projection and drop out their branch's output with probability p (cross_attn:
    inherits both from attn:, as in x-transformers)."""
    from features import spec_of

    return spec_of({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 32,
                    "attn_layers": {"type": "Decoder", "dim": 32, "depth": 1, "heads": 4,
                                    "cross_attend": True,
                                    "attn": {"dim_head": 8, "zero_init_output": True,
                                             "sublayer_dropout": p}}})


def test_zero_init_output_starts_the_output_projections_at_zero():
    # as x-transformers' do: its attention and cross-attention of the same spec
    from reference import reference_model

    import xtc

    spec = belief_and_dropout_spec(0.0)
    model, reference = xtc.build(spec), reference_model(spec)
    for name, layer in (("attn", 0), ("cross_attn", 1)):
        attention = getattr(model.blocks[0], name)
        for parameter_name, parameter in attention.named_parameters():
            zero = parameter_name.startswith("to_out")
            assert (torch.count_nonzero(parameter) == 0) == zero, (name, parameter_name)
        to_out = reference.attn_layers.layers[layer][1].to_out.weight
        assert torch.count_nonzero(to_out) == 0, name


@pytest.mark.parametrize("name", ["attn", "cross_attn"])
def test_sublayer_dropout_drops_the_branch_output_in_training_only(name):
    # p = 0.5: in training each output feature is zeroed or doubled, about half of each. Over
    # 3 x 32 x 32 = 3072 features the zeroed share has a standard deviation of 0.009: the bounds
    # 0.4-0.6 hold for any seed (11 deviations), and no dropout (0) or another p misses them
    import xtc

    model = xtc.build(belief_and_dropout_spec(0.5))
    attention = getattr(model.blocks[0], name)
    torch.nn.init.normal_(attention.to_out.weight)  # zero-initialised: give it an output
    x, context = torch.randn(3, 32, 32), torch.randn(3, 7, 32)
    arguments = (x, context) if name == "cross_attn" else (x,)
    attention.eval()
    kept = attention(*arguments)
    assert torch.equal(attention(*arguments), kept)  # eval: no dropout
    assert torch.count_nonzero(kept) == kept.numel()
    attention.train()
    dropped = attention(*arguments)
    zeroed = dropped == 0
    torch.testing.assert_close(dropped[~zeroed], 2 * kept[~zeroed])
    assert 0.4 < zeroed.float().mean().item() < 0.6


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "key-mask"])
def test_gumbel_attention_picks_keys_as_often_as_the_softmax_weighs_them(masked):
    # the cached decoding step of gumbel_softmax draws noise of another shape than the
    # reference's uncached forward (one query row against the cache), so it is tested by its
    # statistics: with hard Gumbel-softmax (the default), one query against S cached keys gives
    # one-hot weights (values = the identity, so the output is the weights), and over many
    # draws each key is picked with its softmax probability (Gumbel-max). 40,000 draws: the
    # frequencies' standard error is at most 0.0025; the tolerance, 0.015, is six of them, and
    # far below the 0.2 by which a uniform pick (or the plain softmax's argmax) would miss
    from xtc.runtime.attention import attend_explicit

    draws, S = 40_000, 5
    q = torch.ones(draws, 1, 1, 4)
    k = torch.tensor([0.0, 0.5, 1.0, -1.0, 0.25])[:, None].expand(S, 4)[None, None]  # (1, 1, S, 4)
    v = torch.eye(S)[None, None]
    key_mask = torch.tensor([[True, True, True, True, False]]).expand(draws, S) if masked else None
    torch.manual_seed(0)
    weights = attend_explicit(q, k.expand(draws, 1, S, 4), v.expand(draws, 1, S, S), causal=True,
                              key_mask=key_mask, gumbel=0.5)[:, 0, 0]  # (draws, S)
    assert torch.equal(weights.sum(-1), torch.ones(draws))  # one key each, weight exactly 1
    assert torch.equal((weights == 1).sum(-1), torch.ones(draws, dtype=torch.long))
    scores = (q[0, 0] @ k[0, 0].T * 0.5)[0]  # (S,): dim_head 4, scaled by 4 ** -0.5
    if masked:
        scores[-1] = float("-inf")
    expected = scores.softmax(-1)
    assert expected.max() - expected[expected > 0].min() > 0.2  # far from uniform
    torch.testing.assert_close(weights.mean(0), expected, rtol=0, atol=0.015)


def test_gumbel_generation_samples_with_and_without_the_cache():
    # the prompt's forward is one draw of the same shapes cached or not: the first token agrees
    # for one seed; the cached steps then sample (seeds give different continuations) and one
    # seed gives one continuation
    _, ours = paired_models(feature_spec(feature("explicit-gumbel_softmax"), "Decoder", False))
    prompt = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(0))

    def tokens(seed: int, cache: bool) -> torch.Tensor:
        torch.manual_seed(seed)
        return ours.generate(prompt, 8, temperature=0, cache=cache)

    runs = [tokens(seed, True) for seed in range(4)]
    assert torch.equal(runs[0], tokens(0, True))
    assert any(not torch.equal(runs[0], run) for run in runs[1:])
    assert all(torch.equal(tokens(seed, False)[:, 0], run[:, 0]) for seed, run in enumerate(runs))
