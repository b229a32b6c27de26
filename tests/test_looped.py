"""A looped LM (issue #45): the layers run looped_steps times, each loop on the last one's
output, with an exit gate that the loss trains and generation reads. Forward parity is in the
feature matrix (group `looped`); here the default number of loops, the loss against
x-transformers' AutoregressiveWrapper with its looped_* weights, and generation."""

from __future__ import annotations

import pytest
import torch
import x_transformers
from features import NUM_TOKENS, layers, spec_of
from inputs import padding_mask
from reference import TOLERANCE, assert_same_gradients, paired_models

import xtc

BATCH, LENGTH, LOOPS = 2, 12, 3
LOSS_OPTIONS = {"looped_loss_threshold_exit": 0.1, "looped_loss_slope": 20.0,
                "looped_exit_loss_weight": 0.5}


def looped_spec(training: dict | None = None, layer_options: dict | None = None,
                **options) -> xtc.Spec:
    model = {"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
             "looped": True, "max_looped_steps": LOOPS, **options,
             "attn_layers": layers("Decoder", pre_and_post_norm=True, **(layer_options or {}))}
    return spec_of(model | ({"autoregressive": training} if training else {}))


def tokens(batch: int = BATCH, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(0, NUM_TOKENS, (batch, length), generator=torch.Generator().manual_seed(0))


def test_forward_loops_max_looped_steps_times_by_default():
    reference, ours = paired_models(looped_spec())
    torch.testing.assert_close(ours(tokens()), reference(tokens()), **TOLERANCE)
    assert not torch.allclose(ours(tokens()), ours(tokens(), looped_steps=LOOPS - 1))


@pytest.mark.parametrize("training", [None, LOSS_OPTIONS], ids=["defaults", "weights"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_loss_weighs_each_loop_by_its_exit_chance_as_the_reference(training, masked):
    """Each loop's cross entropy weighted by the chance of exiting there, plus the exit gate's
    binary cross entropy; ignored targets (the end of one row) count in neither."""
    spec = looped_spec(training)
    reference, ours = paired_models(spec)
    wrapper = x_transformers.AutoregressiveWrapper(reference, **(training or {}))
    x = tokens()
    x[1, -3:] = -100
    mask = {"mask": padding_mask(BATCH, LENGTH)} if masked else {}
    actual, expected = ours.loss(x, **mask), wrapper(x, **mask)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    actual.backward(), expected.backward()
    assert_same_gradients(spec, ours, reference)
    assert ours.exit_gate.weight.grad.abs().sum() > 0  # the gate learns from its own loss


def test_tied_embeddings_give_every_loops_logits():
    spec = looped_spec(tie_embedding=True)
    reference, ours = paired_models(spec)
    x = tokens()
    actual, expected = ours.loss(x), x_transformers.AutoregressiveWrapper(reference)(x)
    torch.testing.assert_close(actual, expected, **TOLERANCE)


# -- generation -------------------------------------------------------------------------------
# x-transformers' looped inference runs at batch 1: its cached greedy tokens, row by row, are
# the oracle for xtc's at any batch. Its exit gate starts small, so that every token would run
# every loop; a gate of std 2 spreads the exits over the loops
# (test_the_exits_spread_over_the_loops).


def generating_pair(spec: xtc.Spec | None = None):
    reference, ours = paired_models(spec or looped_spec())
    with torch.no_grad():
        gate = torch.randn(1, ours.exit_gate.weight.shape[1], generator=torch.Generator().manual_seed(1))
        for model in (reference, ours):
            model.exit_gate.weight.copy_(gate * 2.0)
    return x_transformers.AutoregressiveWrapper(reference), ours


def reference_rows(wrapper, prompts: torch.Tensor, n: int, **kwargs) -> torch.Tensor:
    return torch.cat([wrapper.generate(row[None], n, temperature=0.0, **kwargs) for row in prompts])


@pytest.mark.parametrize("threshold", [0.9, 0.3])
@pytest.mark.parametrize("given", [None, 2], ids=["exits", "looped_steps"])
def test_greedy_tokens_equal_the_references_row_by_row(threshold, given):
    """With the cache: each row leaves the loops on its own; a prompt keeps each loop's keys
    and values, a new token those of its exit loop (looped_steps given: the last loop's)."""
    wrapper, ours = generating_pair()
    prompts = tokens(3, 5)
    steps = {} if given is None else {"looped_steps": given}
    expected = reference_rows(wrapper, prompts, 10, cache_kv=True,
                              looped_exit_prob_threshold=threshold, **steps)
    actual = ours.generate(prompts, 10, temperature=0, looped_exit_prob_threshold=threshold, **steps)
    assert torch.equal(actual, expected)


def test_without_the_cache_every_step_runs_every_loop():
    wrapper, ours = generating_pair()
    prompts = tokens(3, 5)
    expected = reference_rows(wrapper, prompts, 8, cache_kv=False)
    assert torch.equal(ours.generate(prompts, 8, temperature=0, cache=False), expected)


def test_a_one_token_prompt_exits_early_too():
    """A prompt of one token is decoded as a new token (the reference's looped inference tells
    a prompt by its length); loops first run at a later step start from the shared positions."""
    wrapper, ours = generating_pair()
    prompts = tokens(3, 1)
    expected = reference_rows(wrapper, prompts, 8, cache_kv=True, looped_exit_prob_threshold=0.3)
    actual = ours.generate(prompts, 8, temperature=0, looped_exit_prob_threshold=0.3)
    assert torch.equal(actual, expected)


def test_the_exits_spread_over_the_loops(monkeypatch):
    """The cases above exercise early exits: rows leave at different loops."""
    from xtc.runtime import looped

    seen = []
    settle = looped.LoopedCache.settle
    monkeypatch.setattr(looped.LoopedCache, "settle",
                        lambda self, exit_loop: (seen.extend(exit_loop.tolist()), settle(self, exit_loop)))
    _, ours = generating_pair()
    ours.generate(tokens(3, 5), 10, temperature=0, looped_exit_prob_threshold=0.3)
    assert set(seen) == set(range(LOOPS))


@pytest.fixture
def reference_rotary_positions(monkeypatch):
    """x-transformers 2.31.10 gives a looped LM's layers the rotary positions of their input's
    length: in cached decoding, the loops after the first get the new token alone, so its
    queries and keys are rotated by position 0, every cached key too. This gives those loops
    the cache's length as their offset, the positions the first loop uses; xtc's loops all
    rotate by the tokens' positions."""
    layers = x_transformers.x_transformers.AttentionLayers
    forward = layers.forward

    def with_offset(self, x, *args, cache=None, seq_pos_offset=None, **kwargs):
        if cache is not None and x.shape[1] <= cache.cache_length:  # a later loop's input
            seq_pos_offset = cache.cache_length
        return forward(self, x, *args, cache=cache, seq_pos_offset=seq_pos_offset, **kwargs)

    monkeypatch.setattr(layers, "forward", with_offset)


def test_rotary_loops_rotate_by_the_tokens_positions(reference_rotary_positions):
    wrapper, ours = generating_pair(looped_spec(layer_options={"rotary_pos_emb": True}))
    prompts = tokens(3, 5)
    expected = reference_rows(wrapper, prompts, 10, cache_kv=True, looped_exit_prob_threshold=0.3)
    assert torch.equal(ours.generate(prompts, 10, temperature=0, looped_exit_prob_threshold=0.3),
                       expected)
