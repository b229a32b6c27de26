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
