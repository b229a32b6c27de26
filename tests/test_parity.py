"""Parity with x-transformers 2.31.10: same weights, same outputs, same gradients."""

from __future__ import annotations

import pytest
import torch
import yaml
from reference import assert_parity, paired_models

import xtc


def spec_text(layers: str, flash: bool, heads: int = 4, dim: int = 32, dim_head: int | None = 16,
              depth: int = 2) -> str:
    attn = f"flash: {str(flash).lower()}" + (f", dim_head: {dim_head}" if dim_head else "")
    return f"""
xtc: 1
name: tiny
model:
  type: TransformerWrapper
  num_tokens: 64
  max_seq_len: 32
  attn_layers: {{type: {layers}, dim: {dim}, depth: {depth}, heads: {heads}, attn: {{{attn}}}}}
"""


def tokens(batch: int = 2, length: int = 12) -> torch.Tensor:
    return torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(1))


def padding_mask(batch: int = 2, length: int = 12) -> torch.Tensor:
    lengths = torch.tensor([length, length - 5])[:batch]
    return torch.arange(length)[None, :] < lengths[:, None]


@pytest.mark.parametrize("layers", ["Decoder", "Encoder"])
@pytest.mark.parametrize("flash", [False, True])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_forward_and_gradients_match(layers, flash, masked):
    spec = xtc.loads_spec(spec_text(layers, flash))
    kwargs = {"mask": padding_mask()} if masked else {}
    assert_parity(spec, tokens(), **kwargs)
    if flash:
        assert_parity(spec, tokens(), flash_only=True, **kwargs)


@pytest.mark.parametrize("layers", ["Decoder", "Encoder"])
def test_return_embeddings_match(layers):
    spec = xtc.loads_spec(spec_text(layers, flash=True))
    assert_parity(spec, tokens(), mask=padding_mask(), return_embeddings=True)


def test_default_head_width_is_64_whatever_dim_is():
    spec = xtc.loads_spec(spec_text("Decoder", flash=False, dim_head=None, heads=2))
    _, ours = paired_models(spec)
    assert ours.blocks[0].attn.to_q.weight.shape == (2 * 64, 32)
    assert_parity(spec, tokens())


def test_one_head_as_wide_as_the_model_has_no_output_projection():
    spec = xtc.loads_spec(spec_text("Encoder", flash=True, heads=1, dim_head=32))
    _, ours = paired_models(spec)
    assert not hasattr(ours.blocks[0].attn, "to_out")
    assert_parity(spec, tokens(), mask=padding_mask())


def test_fully_padded_sequence_gives_zeros_not_nan():
    spec = xtc.loads_spec(spec_text("Encoder", flash=True))
    mask = padding_mask()
    mask[1] = False
    assert_parity(spec, tokens(), mask=mask, return_embeddings=True)


def test_full_length_sequence():
    spec = xtc.loads_spec(spec_text("Decoder", flash=True))
    assert_parity(spec, tokens(length=32))


def test_initialisation_matches_the_reference_distributions():
    spec = xtc.loads_spec(spec_text("Decoder", flash=True, dim=64).replace("num_tokens: 64", "num_tokens: 4096"))
    torch.manual_seed(0)
    ours = xtc.build(spec)
    assert ours.token_emb.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.05)
    assert ours.pos_emb.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert torch.equal(ours.blocks[0].attn_norm.weight, torch.ones(64))
    bound = 64 ** -0.5  # nn.Linear's kaiming-uniform bound
    assert ours.blocks[0].attn.to_q.weight.abs().max().item() <= bound


# -- the option matrix (issue #4): each option alone, and combined ------------------------------

OPTIONS = {
    "emb_dim": {"model": {"emb_dim": 24}},
    "emb_dropout": {"model": {"emb_dropout": 0.1}},
    "tie_embedding": {"model": {"tie_embedding": True}},
    "tie_embedding_scale": {"model": {"tie_embedding": True, "tie_embedding_scale": 0.5}},
    "no_abs_pos_emb": {"model": {"use_abs_pos_emb": False}},
    "scaled_sinu_pos_emb": {"model": {"scaled_sinu_pos_emb": True}},
    "l2norm_embed": {"model": {"l2norm_embed": True}},
    "post_emb_norm": {"model": {"post_emb_norm": True}},
    "num_memory_tokens": {"model": {"num_memory_tokens": 3}},
    "layer_dropout": {"layers": {"layer_dropout": 0.1}},
    "use_scalenorm": {"layers": {"use_scalenorm": True}},
    "use_rmsnorm": {"layers": {"use_rmsnorm": True}},
    "post_norm": {"layers": {"pre_norm": False}},
    "attn_dropout": {"attn": {"dropout": 0.1}},
    "num_mem_kv": {"attn": {"num_mem_kv": 2}},
    "ff_mult": {"ff": {"mult": 2.5}},
    "ff_dropout": {"ff": {"dropout": 0.1}},
    "glu": {"ff": {"glu": True}},
    "swiglu": {"ff": {"glu": True, "swish": True}},
    "no_bias": {"ff": {"no_bias": True}},
    "relu_squared": {"ff": {"relu_squared": True}},
    "combined_pre_norm": {
        "model": {"emb_dim": 24, "post_emb_norm": True, "num_memory_tokens": 2, "emb_dropout": 0.1},
        "layers": {"use_rmsnorm": True, "layer_dropout": 0.1},
        "attn": {"num_mem_kv": 2, "dropout": 0.1},
        "ff": {"glu": True, "swish": True, "mult": 2, "no_bias": True},
    },
    "combined_post_norm": {
        "model": {"tie_embedding": True, "l2norm_embed": True, "use_abs_pos_emb": False},
        "layers": {"pre_norm": False, "use_scalenorm": True},
        "attn": {"num_mem_kv": 1},
        "ff": {"relu_squared": True, "dropout": 0.1},
    },
}


def option_spec(option: str, layers: str, flash: bool) -> xtc.Spec:
    fragment = OPTIONS[option]
    attn = {"dim_head": 16, "flash": flash, **fragment.get("attn", {})}
    stack = {"type": layers, "dim": 32, "depth": 2, "heads": 4, "attn": attn,
             **fragment.get("layers", {})}
    if "ff" in fragment:
        stack["ff"] = fragment["ff"]
    model = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 32,
             **fragment.get("model", {}), "attn_layers": stack}
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": model}, sort_keys=False))


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("layers", ["Decoder", "Encoder"])
@pytest.mark.parametrize("flash", [False, True], ids=["math", "flash"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_option_parity(option, layers, flash, masked):
    spec = option_spec(option, layers, flash)
    kwargs = {"mask": padding_mask()} if masked else {}
    assert_parity(spec, tokens(), flash_only=flash, **kwargs)


def test_dropouts_are_active_in_training_and_off_in_eval():
    spec = option_spec("combined_pre_norm", "Decoder", flash=False)
    _, model = paired_models(spec)
    x = tokens()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_layer_dropout_compiles_in_one_graph():
    spec = option_spec("layer_dropout", "Decoder", flash=True)
    _, model = paired_models(spec)
    model.train()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    assert compiled(tokens()).shape == (2, 12, 64)
