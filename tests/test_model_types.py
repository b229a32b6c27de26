"""Parity for every model type of x-transformers' usage section (issue #5): encoder-decoder,
ViT, cross-attention, prepended embeddings, continuous inputs and bare layer stacks."""

from __future__ import annotations

import pytest
import torch
import yaml
from reference import assert_parity, paired_models

import xtc

GEN = torch.Generator().manual_seed(3)


def spec_of(model: dict) -> xtc.Spec:
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": model}, sort_keys=False))


def layers(kind: str = "Encoder", **options) -> dict:
    return {"type": kind, "dim": 32, "depth": 2, "heads": 4, "attn": {"dim_head": 16}, **options}


def floats(*shape) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN)


def tokens(batch=2, length=10, vocab=64) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=GEN)


def lengths_mask(lengths, length) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


def assert_token_parity(spec, masked: bool, **kwargs) -> None:
    """Parity on 12 tokens, the second sequence padded after 7 when masked."""
    mask = {"mask": lengths_mask([12, 7], 12)} if masked else {}
    assert_parity(spec, tokens(length=12), **mask, **kwargs)


# -- cross-attention, prepended embeddings ------------------------------------------------------

CROSS = {
    "plain": {},
    "wide_context": {"cross_attn": {"dim_context": 24}},
    "cross_options": {"cross_attn": {"dim_context": 24, "dim_head": 8, "num_mem_kv": 2,
                                     "dropout": 0.1}},
    "inherits_attn": {"attn": {"dim_head": 16, "num_mem_kv": 1, "flash": True}},
    "post_norm_rmsnorm": {"pre_norm": False, "use_rmsnorm": True},
}


@pytest.mark.parametrize("options", sorted(CROSS))
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_decoder_cross_attends_to_a_context(options, masked):
    width = CROSS[options].get("cross_attn", {}).get("dim_context", 32)
    stack = layers("Decoder", cross_attend=True, **CROSS[options])
    spec = spec_of({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                    "attn_layers": stack})
    kwargs = {"context": floats(2, 7, width)}
    if masked:
        kwargs |= {"mask": lengths_mask([10, 6], 10), "context_mask": lengths_mask([7, 3], 7)}
    assert_parity(spec, tokens(), **kwargs)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_prepend_embeds(masked):
    spec = spec_of({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                    "num_memory_tokens": 2, "attn_layers": layers("Decoder")})
    kwargs = {"prepend_embeds": floats(2, 3, 32)}
    if masked:
        kwargs["mask"] = lengths_mask([10, 5], 10)
    assert_parity(spec, tokens(), **kwargs)


@pytest.mark.parametrize("kind", ["Encoder", "Decoder"])
@pytest.mark.parametrize("flash", [False, True])
def test_bare_layer_stack(kind, flash):
    spec = spec_of(layers(kind, attn={"dim_head": 16, "flash": flash}))
    assert_parity(spec, floats(2, 9, 32), mask=lengths_mask([9, 4], 9), flash_only=flash)


def test_bare_decoder_with_cross_attention():
    spec = spec_of(layers("Decoder", cross_attend=True, cross_attn={"dim_context": 20}))
    assert_parity(spec, floats(2, 9, 32), context=floats(2, 5, 20),
                  context_mask=lengths_mask([5, 2], 5))


def test_cross_attender():
    spec = spec_of({"type": "CrossAttender", "dim": 32, "depth": 2, "heads": 4,
                    "cross_attn": {"dim_head": 16}})
    _, ours = paired_models(spec)
    assert not hasattr(ours.blocks[0], "attn")
    assert_parity(spec, floats(2, 9, 32), context=floats(2, 5, 32),
                  mask=lengths_mask([9, 3], 9), context_mask=lengths_mask([5, 4], 5))


# -- ViT and continuous inputs ------------------------------------------------------------------

VIT = {
    "plain": {},
    "registers_post_norm_dropout": {"num_register_tokens": 3, "post_emb_norm": True,
                                    "emb_dropout": 0.1, "channels": 1},
}


@pytest.mark.parametrize("options", sorted(VIT))
@pytest.mark.parametrize("embeddings", [False, True], ids=["logits", "embeddings"])
def test_vit(options, embeddings):
    spec = spec_of({"type": "ViTransformerWrapper", "image_size": 16, "patch_size": 4,
                    "num_classes": 5, **VIT[options], "attn_layers": layers("Encoder")})
    channels = VIT[options].get("channels", 3)
    assert_parity(spec, floats(2, channels, 16, 16), return_embeddings=embeddings)


def test_vit_without_a_head_returns_embeddings():
    spec = spec_of({"type": "ViTransformerWrapper", "image_size": 8, "patch_size": 4,
                    "attn_layers": layers("Encoder")})
    assert_parity(spec, floats(2, 3, 8, 8))


CONTINUOUS = {
    "projections": {"dim_in": 12, "dim_out": 7, "max_seq_len": 16},
    "no_positions": {"dim_in": 12, "use_abs_pos_emb": False},
    "identity_width": {"max_seq_len": 16, "post_emb_norm": True, "emb_dropout": 0.1,
                       "num_memory_tokens": 2},
}


@pytest.mark.parametrize("options", sorted(CONTINUOUS))
@pytest.mark.parametrize("kind", ["Encoder", "Decoder"])
def test_continuous(options, kind):
    spec = spec_of({"type": "ContinuousTransformerWrapper", **CONTINUOUS[options],
                    "attn_layers": layers(kind)})
    width = CONTINUOUS[options].get("dim_in", 32)
    assert_parity(spec, floats(2, 10, width), mask=lengths_mask([10, 7], 10))


# -- XTransformer -------------------------------------------------------------------------------

XT = {
    "readme": {"tie_token_emb": True},
    "untied_options": {"ignore_index": 0, "pad_value": 1,
                       "encoder_extra": {"num_memory_tokens": 2, "use_rmsnorm": True},
                       "decoder_extra": {"attn": {"num_mem_kv": 1}, "ff": {"glu": True}}},
}


def xtransformer_spec(options: dict) -> xtc.Spec:
    options = dict(options)
    side = {"num_tokens": 64, "max_seq_len": 16, "depth": 2, "heads": 4, "attn": {"dim_head": 16}}
    encoder = {**side, **options.pop("encoder_extra", {})}
    decoder = {**side, **options.pop("decoder_extra", {})}
    return spec_of({"type": "XTransformer", "dim": 32, **options, "encoder": encoder,
                    "decoder": decoder})


@pytest.mark.parametrize("options", sorted(XT))
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_xtransformer_loss_and_gradients(options, masked):
    spec = xtransformer_spec(XT[options])
    tgt = tokens(length=9)
    tgt[1, 6:] = -100 if "ignore_index" not in XT[options] else 0
    kwargs = {"mask": lengths_mask([10, 7], 10)} if masked else {}
    assert_parity(spec, tokens(), tgt, **kwargs)


def test_xtransformer_with_prepended_source_embeddings():
    spec = xtransformer_spec(XT["readme"])
    assert_parity(spec, tokens(), tokens(length=9), mask=lengths_mask([10, 7], 10),
                  src_prepend_embeds=floats(2, 3, 32))


def test_xtransformer_attn_mask():
    spec = xtransformer_spec(XT["readme"])
    attn_mask = torch.ones(10, 10, dtype=torch.bool).tril(2)
    assert_parity(spec, tokens(), tokens(length=9), attn_mask=attn_mask)


def test_tied_token_embedding_is_one_table():
    _, ours = paired_models(xtransformer_spec(XT["readme"]))
    assert ours.decoder.token_emb is ours.encoder.token_emb


# -- run-time input checks of the new types -----------------------------------------------------

BAD_INPUTS = [
    ("vit image size", {"type": "ViTransformerWrapper", "image_size": 16, "patch_size": 4,
                        "attn_layers": layers("Encoder")},
     lambda: ((floats(2, 3, 8, 8),), {}), ValueError, r"img must be \(batch, 3, 16, 16\)"),
    ("vit integer image", {"type": "ViTransformerWrapper", "image_size": 16, "patch_size": 4,
                           "attn_layers": layers("Encoder")},
     lambda: ((torch.zeros(2, 3, 16, 16, dtype=torch.long),), {}), TypeError, "floating-point"),
    ("missing context", {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                         "attn_layers": layers("Decoder", cross_attend=True)},
     lambda: ((tokens(),), {}), TypeError, "context is required"),
    ("context width", {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                       "attn_layers": layers("Decoder", cross_attend=True)},
     lambda: ((tokens(),), {"context": floats(2, 5, 31)}), ValueError, r"context must be \(2, length, 32\)"),
    ("context mask shape", {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                            "attn_layers": layers("Decoder", cross_attend=True)},
     lambda: ((tokens(),), {"context": floats(2, 5, 32), "context_mask": lengths_mask([4, 4], 4)}),
     ValueError, r"mask shape \(2, 4\) != tokens shape \(2, 5\)"),
    ("prepend width", {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                       "attn_layers": layers("Decoder")},
     lambda: ((tokens(),), {"prepend_embeds": floats(2, 3, 16)}), ValueError, "prepend_embeds must be"),
    ("continuous width", {"type": "ContinuousTransformerWrapper", "dim_in": 12, "max_seq_len": 16,
                          "attn_layers": layers("Encoder")},
     lambda: ((floats(2, 10, 32),), {}), ValueError, r"x must be \(batch, length, 12\)"),
    ("continuous length", {"type": "ContinuousTransformerWrapper", "max_seq_len": 8,
                           "attn_layers": layers("Encoder")},
     lambda: ((floats(2, 10, 32),), {}), ValueError, "exceeds max_seq_len 8"),
    ("bare stack tokens", layers("Encoder"),
     lambda: ((tokens(),), {}), TypeError, "floating-point"),
]


@pytest.mark.parametrize("name, model, make, error, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_raises(name, model, make, error, message):
    built = xtc.build(spec_of(model)).eval()
    args, kwargs = make()
    with pytest.raises(error, match=message):
        built(*args, **kwargs)


def test_xtransformer_checks_source_and_target_ids():
    model = xtc.build(xtransformer_spec(XT["readme"])).eval()
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 64\)"):
        model(torch.full((2, 5), 64), tokens())
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 64\)"):
        model(tokens(), torch.full((2, 5), 70))


def test_cross_attn_tokens_dropout_drops_context_in_training_only():
    spec = xtransformer_spec({"tie_token_emb": True, "cross_attn_tokens_dropout": 0.5})
    model = xtc.build(spec)
    src, tgt, mask = tokens(), tokens(length=9), lengths_mask([10, 7], 10)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(src, tgt, mask=mask), model(src, tgt, mask=mask))
        model.train()
        losses = {model(src, tgt, mask=mask).item() for _ in range(5)}
    assert len(losses) > 1
