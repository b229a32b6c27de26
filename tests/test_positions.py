"""Positional schemes (issue #8) beyond parity: which schemes keep absolute positions, cached
rotary logits, and generating past max_seq_len. Their parity and generation cases are the
`positions` rows of tests/features.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from features import feature, feature_spec, frozen
from inputs import make_inputs
from reference import paired_models
from x_transformers import AutoregressiveWrapper

import xtc


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


def test_polar_uniform_init_builds_without_no_grad():
    """The reference draws the keys' phases in place on a leaf parameter, which autograd
    refuses outside torch.no_grad(); xtc's model builds as any other, its phases in [-2 pi, 0]."""
    spec = feature_spec(feature("positions-polar_uniform_init"), "Decoder", False)
    phases = xtc.build(spec).polar.learned_bias
    assert phases.requires_grad and phases.min() >= -2 * math.pi and phases.max() <= 0
    assert phases.std() > 1  # drawn, not all 0
