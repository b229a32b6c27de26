"""Parity with x-transformers 2.31.10: same weights, same outputs, same gradients. The option
matrix is tests/features.py, run by tests/test_features.py; here are the cases that check
something more than parity, on rows of it."""

from __future__ import annotations

import pytest
import torch
from features import feature, feature_spec, layers, spec_of
from inputs import make_inputs, padding_mask
from reference import assert_parity, paired_models

import xtc


def parity_inputs(spec: xtc.Spec, length: int = 12, masked: bool = True):
    inputs = make_inputs(spec, 2, length, masked=masked)
    return inputs.args, inputs.kwargs


@pytest.mark.parametrize("layers", ["Decoder", "Encoder"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_flash_spec_matches_under_the_default_backend(layers, masked):
    # the matrix runs flash specs under the flash-only backend; SDPA may pick another kernel
    spec = feature_spec(feature("options-plain"), layers, flash=True)
    args, kwargs = parity_inputs(spec, masked=masked)
    assert_parity(spec, *args, **kwargs)


@pytest.mark.parametrize("layers", ["Decoder", "Encoder"])
def test_return_embeddings_match(layers):
    spec = feature_spec(feature("options-plain"), layers, flash=True)
    args, kwargs = parity_inputs(spec)
    assert_parity(spec, *args, return_embeddings=True, **kwargs)


def test_default_head_width_is_64_whatever_dim_is():
    spec = feature_spec(feature("options-default_head_width"), "Decoder", flash=False)
    _, ours = paired_models(spec)
    assert ours.blocks[0].attn.to_qkv.weight.shape == (3 * 2 * 64, 32)  # q, k, v stacked
    args, _ = parity_inputs(spec, masked=False)
    assert_parity(spec, *args)


def test_one_head_as_wide_as_the_model_has_no_output_projection():
    spec = feature_spec(feature("options-one_wide_head"), "Encoder", flash=True)
    _, ours = paired_models(spec)
    assert not hasattr(ours.blocks[0].attn, "to_out")
    args, kwargs = parity_inputs(spec)
    assert_parity(spec, *args, **kwargs)


def test_fully_padded_sequence_gives_zeros_not_nan():
    spec = feature_spec(feature("options-plain"), "Encoder", flash=True)
    args, _ = parity_inputs(spec, masked=False)
    mask = padding_mask(2, 12)
    mask[1] = False
    assert_parity(spec, *args, mask=mask, return_embeddings=True)


def test_full_length_sequence():
    spec = feature_spec(feature("options-plain"), "Decoder", flash=True)
    args, _ = parity_inputs(spec, length=32, masked=False)
    assert args[0].shape == (2, 32)
    assert_parity(spec, *args)


def test_initialisation_matches_the_reference_distributions():
    spec = spec_of({"type": "TransformerWrapper", "num_tokens": 4096, "max_seq_len": 32,
                    "attn_layers": layers("Decoder", dim=64, attn={"dim_head": 16, "flash": True})})
    torch.manual_seed(0)
    ours = xtc.build(spec)
    assert ours.token_emb.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.05)
    assert ours.pos_emb.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert torch.equal(ours.blocks[0].attn_norm.weight, torch.ones(64))
    bound = 64 ** -0.5  # nn.Linear's kaiming-uniform bound
    assert ours.blocks[0].attn.to_qkv.weight.abs().max().item() <= bound


def init_spec(**options) -> xtc.Spec:
    return spec_of({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                    "attn_layers": layers("Decoder", dim=64, heads=4, **options)})


@pytest.mark.parametrize("layout", [{"depth": 3}, {"custom_layers": ["a", "f", "a", "f"]}],
                         ids=["blocks", "custom-layout"])
def test_depth_scale_residual_draws_the_output_projections_by_depth(layout):
    """depth_scale_residual: true draws each output projection with std 1 / sqrt(2 * fan_in *
    depth), the depth its block's (a layout counts each sublayer a block), as the reference."""
    from reference import reference_model

    spec = init_spec(depth_scale_residual=True, **layout)
    torch.manual_seed(0)
    ours, reference = xtc.build(spec), reference_model(spec)
    if "custom_layers" in layout:
        outputs = [ours.block.attn0.to_out, ours.block.ff1.proj_out, ours.block.attn2.to_out,
                   ours.block.ff3.proj_out]
    else:
        outputs = [out for block in ours.blocks for out in (block.attn.to_out, block.ff.proj_out)]
    theirs = [layer[1].to_out if hasattr(layer[1], "to_out") else layer[1].ff[-1]
              for layer in reference.attn_layers.layers]
    width = 2 if "custom_layers" not in layout else 1  # sublayers per depth
    for index, (out, their) in enumerate(zip(outputs, theirs)):
        std = (2 * out.in_features * (index // width + 1)) ** -0.5
        assert out.weight.std().item() == pytest.approx(std, rel=0.1), index
        assert their.weight.std().item() == pytest.approx(std, rel=0.1), index


def test_zero_init_branch_output_starts_every_branch_at_zero():
    model = xtc.build(init_spec(zero_init_branch_output=True, cross_attend=True))
    for block in model.blocks:
        for out in (block.attn.to_out, block.cross_attn.to_out, block.ff.proj_out):
            assert all(torch.count_nonzero(p) == 0 for p in out.parameters())
        assert torch.count_nonzero(block.ff.proj_in.weight) > 0


def test_dropouts_are_active_in_training_and_off_in_eval():
    spec = feature_spec(feature("options-combined_pre_norm"), "Decoder", flash=False)
    _, model = paired_models(spec)
    (x,), _ = parity_inputs(spec, masked=False)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_layer_dropout_compiles_in_one_graph():
    spec = feature_spec(feature("options-layer_dropout"), "Decoder", flash=True)
    _, model = paired_models(spec)
    model.train()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    (x,), _ = parity_inputs(spec, masked=False)
    assert compiled(x).shape == (2, 12, 64)
