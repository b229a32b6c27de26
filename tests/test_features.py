"""The feature matrix (tests/features.py) against x-transformers 2.31.10: every row's parity
(same weights, same outputs, same gradients) and greedy generation.

The default run checks each row once: built with one of its kinds (rows alternate between
theirs, so both Encoders and Decoders are built), flash where the row allows it, with padding
masks where it takes them, and, where it generates, greedy tokens with the kv cache. Under
`-m slow` runs the rest of the cross-product: every kind x math/flash x mask/no-mask, and
generation x math/flash x cache/no-cache. The two runs together cover it once.
"""

from __future__ import annotations

import copy

import pytest
import torch
from features import FEATURES, Feature, feature_spec, generated_kinds
from inputs import Inputs, embed_ids, make_inputs, padding_mask
from reference import (
    assert_parity,
    assert_same_greedy_tokens,
    assert_same_loss,
    assert_same_seq2seq_tokens,
    assert_same_vectors,
    assert_same_xl_tokens,
    assert_same_xval_generation,
    drawn,
)

import xtc

# a batch of 3 pads the first row and a later one (tests/inputs.py); a context of another length
# than the tokens shows a mix-up of the two
BATCH, LENGTH, CONTEXT_LENGTH = 3, 12, 7
PROMPT_BATCH, PROMPT_LENGTH, NEW_TOKENS = 2, 5, 10
SOURCE_LENGTH = 10  # an encoder-decoder's source, masked


def flash_settings(feature: Feature) -> tuple[bool, ...]:
    return (False, True) if feature.flash else (False,)


def mask_settings(feature: Feature) -> tuple[bool, ...]:
    return (False, True) if feature.takes_mask else (False,)


def parity_id(feature: Feature, kind: str, flash: bool, masked: bool) -> str:
    return f"{feature.id}-{kind}-{'flash' if flash else 'math'}-{'mask' if masked else 'no-mask'}"


def generation_id(feature: Feature, flash: bool, cache: bool) -> str:
    return f"{feature.id}-{'flash' if flash else 'math'}-{'cache' if cache else 'no-cache'}"


def default_kind(index: int, feature: Feature) -> str:
    """The kind a row is built with in the default run: rows alternate between their kinds."""
    return feature.kinds[index % len(feature.kinds)]


def parity_cases() -> list:
    """The default run's case of each row (flash if allowed, masked if it takes a mask), and the
    rest of its cross-product marked slow."""
    cases = []
    for index, feature in enumerate(FEATURES):
        default = (default_kind(index, feature), feature.flash, feature.takes_mask)
        for kind in feature.kinds:
            for flash in flash_settings(feature):
                for masked in mask_settings(feature):
                    marks = () if (kind, flash, masked) == default else pytest.mark.slow
                    cases.append(pytest.param(feature, kind, flash, masked, marks=marks,
                                              id=parity_id(feature, kind, flash, masked)))
    return cases


def generation_cases() -> list:
    """Each generating row with the kv cache (and flash if allowed) by default; without the
    cache and under the other attention setting, slow."""
    cases = []
    for feature in FEATURES:
        if not generated_kinds(feature):
            continue
        for flash in flash_settings(feature):
            # XL: always cached; a sampling model's cached tokens cannot equal the reference's
            caches = (True,) if feature.recurrent else (False,) if feature.samples else (True, False)
            for cache in caches:
                marks = () if (flash, cache) == (feature.flash, caches[0]) else pytest.mark.slow
                cases.append(pytest.param(feature, flash, cache, marks=marks,
                                          id=generation_id(feature, flash, cache)))
    return cases


def loss_cases() -> list:
    """The rows with training-wrapper options, by default; every other token decoder, slow."""
    cases = []
    for feature in FEATURES:
        if feature.wrapper != "TransformerWrapper" or not set(generated_kinds(feature)) & {
                "Decoder", "PrefixDecoder"}:
            continue
        marks = () if feature.autoregressive else pytest.mark.slow
        cases.append(pytest.param(feature, False, marks=marks, id=feature.id))
        if feature.autoregressive.get("add_attn_z_loss"):  # padded keys are out of the z-loss too
            cases.append(pytest.param(feature, True, id=f"{feature.id}-masked"))
    return cases


def feature_inputs(spec: xtc.Spec, masked: bool) -> Inputs:
    inputs = make_inputs(spec, BATCH, LENGTH, masked=masked, context_length=CONTEXT_LENGTH)
    if spec.model.type == "XTransformer":  # it returns its loss: padded targets are ignored
        target = inputs.args[1]
        target[~padding_mask(*target.shape)] = spec.model["ignore_index"]
    return inputs


@pytest.mark.parametrize("feature, kind, flash, masked", parity_cases())
def test_parity(feature, kind, flash, masked):
    spec = feature_spec(feature, kind, flash)
    inputs = feature_inputs(spec, masked)
    assert_parity(spec, *inputs.args, flash_only=flash, **inputs.kwargs)


@pytest.mark.parametrize("feature, flash, cache", generation_cases())
def test_greedy_generation(feature, flash, cache):
    (kind,) = generated_kinds(feature)
    spec = feature_spec(feature, kind, flash)
    if kind == "XTransformer":
        inputs = make_inputs(spec, PROMPT_BATCH, SOURCE_LENGTH, masked=True)
        source, target = inputs.args
        assert_same_seq2seq_tokens(spec, source, target[:, :1], NEW_TOKENS, cache=cache,
                                   reference_cache=cache and feature.reference_cache,
                                   mask=inputs.kwargs["mask"])
        return
    if feature.wrapper == "ContinuousTransformerWrapper":  # vectors: the means, if sampled
        inputs = make_inputs(spec, PROMPT_BATCH, PROMPT_LENGTH, masked=False)
        condition = {k: v for k, v in inputs.kwargs.items() if k == "condition"}
        assert_same_vectors(spec, inputs.args[0], NEW_TOKENS, cache=cache,
                            reference_cache=cache and feature.reference_cache, **condition)
        return
    inputs = make_inputs(spec, PROMPT_BATCH, PROMPT_LENGTH, masked=True,
                         context_length=CONTEXT_LENGTH)
    context = {k: v for k, v in inputs.kwargs.items()
               if k in ("context", "context_mask", "condition", "prefix_attn_len", "recycle_steps")}
    # the ids of further embeddings: of the prompt and of every new position
    context |= embed_ids(spec.model, PROMPT_BATCH, PROMPT_LENGTH + NEW_TOKENS,
                         torch.Generator().manual_seed(0))
    if feature.recurrent:
        assert_same_xl_tokens(spec, inputs.args[0], NEW_TOKENS, **context)
        return
    if feature.wrapper == "XValTransformerWrapper":  # tokens and their numbers
        assert_same_xval_generation(spec, *inputs.args, NEW_TOKENS, cache=cache, **context)
        return
    assert_same_greedy_tokens(spec, inputs.args[0], NEW_TOKENS, cache=cache,
                              reference_cache=cache and feature.reference_cache, **context)


@pytest.mark.parametrize(("feature", "masked"), loss_cases())
def test_loss(feature, masked):
    """Next-token loss and its gradients equal the training wrapper's; the targets hold the
    ignored id at the end of one row."""
    (kind,) = generated_kinds(feature)
    spec = feature_spec(feature, kind, flash=feature.flash)
    inputs = make_inputs(spec, BATCH, LENGTH, masked=masked, context_length=CONTEXT_LENGTH)
    tokens = inputs.args[0]
    # XLAutoregressiveWrapper feeds inputs as they are: there the ignored id is only a label
    ignored = 1 if spec.model.trainer == "XLAutoregressiveWrapper" else 3
    tokens[1, -ignored:] = spec.model.training["ignore_index"]
    assert_same_loss(spec, tokens, **inputs.kwargs)


CONDITIONED = [f for f in FEATURES if f.group == "conditioned"]


@pytest.mark.parametrize("feature", CONDITIONED, ids=lambda feature: feature.id)
def test_a_condition_per_token(feature):
    """Adaptive norms and layer scales also take a condition per token (B, T, dim_condition),
    with a padding mask; without one the model names what it needs."""
    spec = feature_spec(feature, feature.kinds[0], flash=False)
    inputs = make_inputs(spec, BATCH, LENGTH, masked=feature.takes_mask)
    whole = inputs.kwargs["condition"]
    generator = torch.Generator().manual_seed(1)
    tokens = inputs.args[0].shape[1]
    per_token = torch.randn(BATCH, tokens, whole.shape[-1], generator=generator)
    assert_parity(spec, *inputs.args, **(inputs.kwargs | {"condition": per_token}))
    model, rest = xtc.build(spec), {k: v for k, v in inputs.kwargs.items() if k != "condition"}
    with pytest.raises(TypeError, match="condition is required"):
        model(*inputs.args, **rest)
    with pytest.raises(ValueError, match="condition must be"):
        model(*inputs.args, **rest, condition=per_token[:, :1])


@pytest.mark.parametrize("feature", FEATURES, ids=lambda feature: feature.id)
def test_every_model_can_be_deep_copied(feature):
    """EMA and model soups copy a model whole (x-transformers' low-rank gates cannot be copied):
    the copy owns tensors of its own and computes what the original does."""
    spec = feature_spec(feature, feature.kinds[0], flash=False)
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    twin = copy.deepcopy(model)
    pairs = list(zip(model.state_dict(keep_vars=True).values(),
                     twin.state_dict(keep_vars=True).values(), strict=True))
    assert all(a.data_ptr() != b.data_ptr() and torch.equal(a, b) for a, b in pairs)
    inputs = make_inputs(spec, BATCH, LENGTH, masked=False, context_length=CONTEXT_LENGTH)
    with torch.no_grad():
        torch.testing.assert_close(drawn(twin, *inputs.args, **inputs.kwargs),
                                   drawn(model, *inputs.args, **inputs.kwargs))


def test_every_case_of_the_matrix_runs_once():
    """The default run and `-m slow` split the cross-product: no case is in both, none lost."""
    ids = [p.id for p in parity_cases()]
    assert len(ids) == len(set(ids))
    default = [p for p in parity_cases() if not p.marks]
    assert sorted(p.values[0].id for p in default) == sorted(f.id for f in FEATURES)
    generating = [f.id for f in FEATURES if generated_kinds(f)]
    default = [p.values[0].id for p in generation_cases() if not p.marks]
    assert sorted(default) == sorted(generating)
