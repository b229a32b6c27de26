"""Continuous decoders learn and generate (issue #38): loss() against x-transformers'
ContinuousAutoregressiveWrapper (mean squared error, use_l1_loss, equal_loss_weight_batch,
Gaussian negative log-likelihood for probabilistic outputs), with and without a padding mask,
value and gradients; generate() with the kv cache on and off, sampled draws with the
reference's noise. Forward parity and greedy generation of each option are rows of
tests/features.py (group continuous).

The wrapper options are the spec's `autoregressive:` mapping, fields of the model's loss op
(LossAttrs).

x-transformers' `rollout_steps > 1` (ContinuousAutoregressiveWrapper.forward_rollout) is not
offered: in 2.31.10 every step after the first sees only the previous prediction (the cache it
builds is never passed back), a padding mask is dropped, `lens` raises a NameError, and a
probabilistic model's predictions are concatenated along the batch.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import yaml
from features import DEPTH, DIM, DIM_HEAD, HEADS, spec_of
from inputs import padding_mask
from reference import TOLERANCE, assert_same_gradients, assert_same_vectors, paired_models
from x_transformers.continuous import ContinuousAutoregressiveWrapper
from xtc.compiler import compile_graph, compile_spec
from xtc.compiler.ir import OpKind

import xtc

WIDTH, LENGTH, BATCH = 8, 12, 3


def continuous(kind: str = "Decoder", **options) -> xtc.Spec:
    layers = {"type": kind, "dim": DIM, "depth": DEPTH, "heads": HEADS,
              "attn": {"dim_head": DIM_HEAD}, **options.pop("layers", {})}
    return spec_of({"type": "ContinuousTransformerWrapper", "dim_in": WIDTH, "dim_out": WIDTH,
                    "max_seq_len": 16, **options, "attn_layers": layers})


def assert_same_loss(spec: xtc.Spec, masked: bool) -> None:
    """The loss and its gradients equal those of ContinuousAutoregressiveWrapper with the
    spec's `autoregressive:` options."""
    reference, ours = paired_models(spec)
    options = {name: spec.model.training[name] for name in spec.model.training_given}
    width = spec.model["dim_in"] or DIM
    x = torch.randn(BATCH, LENGTH, width, generator=torch.Generator().manual_seed(1))
    kwargs = {"mask": padding_mask(BATCH, LENGTH)} if masked else {}
    expected = ContinuousAutoregressiveWrapper(reference, **options)(x, **kwargs)
    actual = ours.loss(x, **kwargs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    actual.backward()
    expected.backward()
    assert_same_gradients(spec, ours, reference)


LOSSES = {
    "mse": ({}, {}),
    "l1": ({}, {"use_l1_loss": True}),
    "equal_loss_weight_batch": ({}, {"equal_loss_weight_batch": True}),
    "l1_equal_weight": ({}, {"use_l1_loss": True, "equal_loss_weight_batch": True}),
    "gaussian_nll": ({"probabilistic": True}, {}),
    # the reference picks the Gaussian likelihood before use_l1_loss; so does the template
    "gaussian_nll_over_l1": ({"probabilistic": True}, {"use_l1_loss": True}),
    "gaussian_nll_equal_weight": ({"probabilistic": True}, {"equal_loss_weight_batch": True}),
    # vectors as wide as the model: no projections
    "rotary_no_projections": ({"dim_in": None, "dim_out": None,
                               "layers": {"rotary_pos_emb": True}}, {}),
}


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_the_reference_wrapper(name, masked):
    options, training = LOSSES[name]
    spec = continuous(**options, **({"autoregressive": training} if training else {}))
    assert_same_loss(spec, masked)


def test_the_ir_says_which_models_have_a_loss():
    """A loss op (and loss / generate / decode_step) only for a decoder whose outputs are as
    wide as its inputs: the next input is the last output."""
    def has_loss(spec):
        return bool(compile_graph(spec).ops(OpKind.LOSS))
    assert has_loss(continuous())
    assert not has_loss(continuous("Encoder"))
    assert not has_loss(continuous(dim_out=5))
    for spec, generates in ((continuous(), True), (continuous("Encoder"), False),
                            (continuous(dim_out=5), False)):
        model = xtc.build(spec)
        assert all(hasattr(model, name) == generates
                   for name in ("loss", "generate", "decode_step", "new_cache"))


# -- generation -------------------------------------------------------------------------------

def start(batch: int = 2, length: int = 5) -> torch.Tensor:
    return torch.randn(batch, length, WIDTH, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_probabilistic_draws_equal_the_reference_with_its_noise(cache):
    """torch.normal(mean, std * temperature) on torch's global generator, as the reference
    draws: the same seed gives the same vectors, at temperature 1 and 0.5."""
    spec = continuous(probabilistic=True)
    for temperature in (1.0, 0.5):
        assert_same_vectors(spec, start(), 6, cache=cache, temperature=temperature, seed=3)


def test_cached_generation_equals_uncached():
    for spec in (continuous(), continuous(probabilistic=True),
                 continuous(layers={"rotary_pos_emb": True, "attn": {"dim_head": DIM_HEAD,
                                                                      "kv_heads": 2}})):
        _, model = paired_models(spec)
        sampling = {"temperature": 0.0} if spec.model["probabilistic"] else {}
        cached = model.generate(start(), 8, cache=True, **sampling)
        torch.testing.assert_close(model.generate(start(), 8, cache=False, **sampling), cached,
                                   **TOLERANCE)


def test_a_sequence_without_a_batch_and_a_random_generator():
    _, model = paired_models(continuous(probabilistic=True))
    one = start(1)
    assert model.generate(one[0], 4, temperature=0).shape == (4, WIDTH)
    torch.testing.assert_close(model.generate(one[0], 4, temperature=0),
                               model.generate(one, 4, temperature=0)[0])
    draws = [model.generate(one, 4, generator=torch.Generator().manual_seed(seed))
             for seed in (7, 7, 8)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_only_a_probabilistic_model_takes_a_temperature():
    """A deterministic model's reference generate ignores its temperature: xtc's has none."""
    plain = inspect.signature(xtc.build(continuous()).generate).parameters
    sampled = inspect.signature(xtc.build(continuous(probabilistic=True)).generate).parameters
    assert list(plain) == ["start", "n", "cache"]
    assert list(sampled) == ["start", "n", "temperature", "cache", "generator"]


@pytest.mark.parametrize("args, message", [
    ((torch.randn(2, 5, WIDTH + 1), 3), r"must be \(batch, length, 8\)"),
    ((torch.randn(2, 5, WIDTH), 0), "n must be >= 1"),
    ((torch.randn(2, 10, WIDTH), 7), r"start \(10\) \+ n \(7\) = 17 exceeds max_seq_len 16"),
    ((torch.randn(WIDTH), 3), r"start must be \(batch, length, width\)"),
])
def test_generate_refuses_bad_arguments(args, message):
    model = xtc.build(continuous())
    with pytest.raises(ValueError, match=message):
        model.generate(*args)


# -- the spec ----------------------------------------------------------------------------------

def test_the_explanation_of_a_probabilistic_model_is_the_same_model():
    spec = continuous(probabilistic=True)
    text = xtc.explain(spec)
    assert yaml.safe_load(text)["model"]["probabilistic"] is True
    explained = xtc.loads_spec(text)
    assert compile_spec(explained).splitlines()[1:] == compile_spec(spec).splitlines()[1:]
