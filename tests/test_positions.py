"""Positional schemes (issue #8) beyond parity: which schemes keep absolute positions, cached
rotary logits, and generating past max_seq_len. Their parity and generation cases are the
`positions` rows of tests/features.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from features import feature, feature_spec, frozen
from inputs import make_inputs
from reference import paired_models
from x_transformers import AutoregressiveWrapper


def test_rotary_and_t5_drop_absolute_positions_alibi_keeps_them():
    for name, has_positions in (("rotary", False), ("t5", False), ("alibi", True), ("dynamic", True)):
        _, ours = paired_models(feature_spec(feature(f"positions-{name}"), "Decoder", False))
        assert hasattr(ours, "pos_emb") == has_positions, name


def test_cached_rotary_logits_equal_full_sequence_logits():
    spec = feature_spec(feature("positions-xpos"), "Decoder", False)
    _, ours = paired_models(spec)
    (sequence,) = make_inputs(spec, 2, 9).args
    cache = ours.new_cache(2, 9)
    steps = [ours.decode_step(sequence[:, :4], cache=cache)]
    steps += [ours.decode_step(sequence[:, i:i + 1], cache=cache) for i in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), ours(sequence), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["rotary", "alibi"])
def test_relative_positions_generate_past_max_seq_len(name):
    """Without absolute positions there is no length limit. xtc attends to the whole history;
    x-transformers slides a window of max_seq_len (and its cached and uncached windows differ),
    so tokens agree up to max_seq_len and cached equals uncached beyond it."""
    short = dataclasses.replace(feature(f"positions-{name}"),
                                model=frozen({"use_abs_pos_emb": False, "max_seq_len": 12}))
    spec = feature_spec(short, "Decoder", False)
    reference, ours = paired_models(spec)
    (prompt,) = make_inputs(spec, 2, 5).args
    cached = ours.generate(prompt, 20, temperature=0)
    uncached = ours.generate(prompt, 20, temperature=0, cache=False)
    expected = AutoregressiveWrapper(reference).generate(prompt, 20, temperature=0.0)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, : 12 - 5], expected[:, : 12 - 5])
