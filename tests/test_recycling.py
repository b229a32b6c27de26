"""Recycling (issue #45): the layers run recycle_steps times, each pass on the embeddings plus a
projection of the last pass's output. Eval-mode parity and cached-free generation are in the
feature matrix (group `recycling`); here training, where the reference runs the passes before
the last without gradients, the number of passes drawn when none is given, the refusal
outside training, and Transformer-XL memories taken from the last pass."""

from __future__ import annotations

import pytest
import torch
from features import NUM_TOKENS, layers, spec_of
from reference import TOLERANCE, assert_same_gradients, paired_models

import xtc

BATCH, LENGTH, MAX_STEPS = 2, 12, 3


def recycling_spec(**options) -> xtc.Spec:
    return spec_of({"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
                    "recycling": True, "train_max_recycle_steps": MAX_STEPS, **options,
                    "attn_layers": layers("Decoder")})


def tokens() -> torch.Tensor:
    return torch.randint(0, NUM_TOKENS, (BATCH, LENGTH), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("steps", [1, 3])
def test_training_learns_from_the_last_pass_alone(steps):
    """In training mode every gradient equals the reference's, whose earlier passes run under
    no_grad (xtc detaches their outputs instead). With one pass recycled_proj gets none."""
    spec = recycling_spec()
    reference, ours = paired_models(spec)
    reference.train(), ours.train()
    actual, expected = ours(tokens(), recycle_steps=steps), reference(tokens(), recycle_steps=steps)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    actual.mean().backward(), expected.mean().backward()
    if steps == 1:  # recycled_proj did not run in either model
        for weight in (ours.recycled_proj.weight, reference.recycled_proj.weight):
            assert weight.grad is None
            weight.grad = torch.zeros_like(weight)
    assert_same_gradients(spec, ours, reference)


def test_training_draws_the_passes_from_torchs_generator():
    """Without recycle_steps, training runs 1 to train_max_recycle_steps passes, drawn so that
    torch.manual_seed repeats them; each draw is one of the counts given explicitly."""
    model = xtc.build(recycling_spec()).train()
    explicit = [model(tokens(), recycle_steps=n) for n in range(1, MAX_STEPS + 1)]
    drawn = []
    for seed in range(8):
        torch.manual_seed(seed)
        first = model(tokens())
        torch.manual_seed(seed)
        torch.testing.assert_close(model(tokens()), first, rtol=0, atol=0)
        drawn.append(next(n for n, out in enumerate(explicit, 1) if torch.equal(out, first)))
    assert len(set(drawn)) > 1  # 8 draws of 3 counts: all equal has probability 3 / 3**8


def test_outside_training_the_passes_must_be_given():
    model = xtc.build(recycling_spec()).eval()
    with pytest.raises(ValueError, match="recycle_steps must be a positive int outside training"):
        model(tokens())
    with pytest.raises(ValueError, match="got 0"):
        model(tokens(), recycle_steps=0)
    with pytest.raises(ValueError, match="recycle_steps"):
        model.generate(tokens()[:, :4], 2, temperature=0)


def test_memories_come_from_the_last_pass():
    """Transformer-XL: the memories returned are the last pass's block inputs, as the
    reference's (its recycling loop leaves the last pass's hiddens)."""
    spec = recycling_spec(max_mem_len=8)
    reference, ours = paired_models(spec)
    expected, expected_mems = reference(tokens(), recycle_steps=2, return_mems=True)
    actual, actual_mems = ours(tokens(), recycle_steps=2, return_mems=True)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    for mine, theirs in zip(actual_mems, expected_mems, strict=True):
        torch.testing.assert_close(mine, theirs, **TOLERANCE)
