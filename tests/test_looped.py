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


def looped_spec(training: dict | None = None, **options) -> xtc.Spec:
    model = {"type": "TransformerWrapper", "num_tokens": NUM_TOKENS, "max_seq_len": 32,
             "looped": True, "max_looped_steps": LOOPS, **options,
             "attn_layers": layers("Decoder", pre_and_post_norm=True)}
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
