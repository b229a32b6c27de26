"""Every model type of x-transformers' usage section (issue #5): encoder-decoder, ViT,
cross-attention, prepended embeddings, continuous inputs and bare layer stacks. Their parity
cases are rows of tests/features.py (groups cross, bare, vit, continuous, xtransformer); here
are the inputs beyond the matrix and the run-time input checks."""

from __future__ import annotations

import pytest
import torch
from features import FEATURES, feature, feature_spec, layers, spec_of
from inputs import make_inputs, padding_mask
from reference import assert_parity, assert_same_greedy_tokens, paired_models

import xtc

GEN = torch.Generator().manual_seed(3)


def floats(*shape) -> torch.Tensor:
    """Random values for inputs the input maker does not make (prepended embeddings)."""
    return torch.randn(*shape, generator=GEN)


def tokens(batch=2, length=10, vocab=64) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=GEN)


def xtransformer_spec(name: str = "readme") -> xtc.Spec:
    return feature_spec(feature(f"xtransformer-{name}"), "XTransformer", flash=False)


# -- prepended embeddings, a cross attender, ViT embeddings -----------------------------------
# (parity of every model type and option: the rows of tests/features.py)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_prepend_embeds(masked):
    spec = feature_spec(feature("decoder-memory_tokens"), "Decoder", flash=False)
    kwargs = {"prepend_embeds": floats(2, 3, 32)}
    if masked:
        kwargs["mask"] = padding_mask(2, 10)
    assert_parity(spec, tokens(), **kwargs)


INTERSPERSED = "decoder-memory_tokens_interspersed"  # two memory tokens before every 4 positions


@pytest.mark.parametrize("length", [1, 7, 8])
def test_interspersed_memory_tokens_chunk_a_prefix_with_the_tokens(length):
    """A prefix of whole chunks is chunked with the tokens, as the reference does; the last chunk
    is padded (7 tokens) or full (8)."""
    spec = feature_spec(feature(INTERSPERSED), "Decoder", flash=False)
    assert_parity(spec, tokens(length=length), prepend_embeds=floats(2, 8, 32))


def test_interspersed_memory_tokens_generate_after_a_prefix():
    spec = feature_spec(feature(INTERSPERSED), "Decoder", flash=False)
    assert_same_greedy_tokens(spec, tokens(length=5), 6, cache=False,
                              prepend_embeds=floats(2, 4, 32))


def test_interspersed_memory_tokens_refuse_what_the_reference_cannot_chunk():
    """x-transformers has no mask for the interleaved sequence (its forward fails on a shape),
    so generate's prompt_lens has none either; its padding counts the tokens alone, so a
    prefix must fill whole chunks (it fails to split others). Ours say so."""
    reference, ours = paired_models(feature_spec(feature(INTERSPERSED), "Decoder", flash=False))
    x, mask = tokens(), padding_mask(2, 10)
    with pytest.raises(RuntimeError):
        reference(x, mask=mask)
    with pytest.raises(ValueError, match="takes no padding mask"):
        ours(x, mask=mask)
    with pytest.raises(ValueError, match="takes no padding mask"):
        ours.generate(x, 2, temperature=0, cache=False, prompt_lens=torch.tensor([10, 6]))
    prefix = floats(2, 3, 32)
    with pytest.raises(Exception, match="divide"):
        reference(x, prepend_embeds=prefix)
    with pytest.raises(ValueError, match="whole chunks of memory_tokens_interspersed_every = 4"):
        ours(x, prepend_embeds=prefix)


def test_cross_attender_has_no_self_attention():
    spec = feature_spec(feature("bare-cross_attender"), "CrossAttender", flash=False)
    _, ours = paired_models(spec)
    assert not hasattr(ours.blocks[0], "attn")
    inputs = make_inputs(spec, 2, 9, masked=True, context_length=5)
    assert set(inputs.kwargs) == {"mask", "context", "context_mask"}
    assert_parity(spec, *inputs.args, **inputs.kwargs)


@pytest.mark.parametrize("name", [f.name for f in FEATURES if f.group == "vit"])
def test_vit_returns_embeddings(name):
    spec = feature_spec(feature(f"vit-{name}"), "Encoder", flash=False)
    inputs = make_inputs(spec, 2, 16)
    assert_parity(spec, *inputs.args, return_embeddings=True)


# -- XTransformer -------------------------------------------------------------------------------


def test_xtransformer_with_prepended_source_embeddings():
    spec = xtransformer_spec()
    assert_parity(spec, tokens(), tokens(length=9), mask=padding_mask(2, 10),
                  src_prepend_embeds=floats(2, 3, 32))


def test_xtransformer_attn_mask():
    spec = xtransformer_spec()
    attn_mask = torch.ones(10, 10, dtype=torch.bool).tril(2)
    assert_parity(spec, tokens(), tokens(length=9), attn_mask=attn_mask)


def test_tied_token_embedding_is_one_table():
    _, ours = paired_models(xtransformer_spec())
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
     lambda: ((tokens(),), {"context": floats(2, 5, 32), "context_mask": padding_mask(2, 4)}),
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
    model = xtc.build(xtransformer_spec()).eval()
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 64\)"):
        model(torch.full((2, 5), 64), tokens())
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 64\)"):
        model(tokens(), torch.full((2, 5), 70))


def test_cross_attn_tokens_dropout_drops_context_in_training_only():
    model = xtc.build(xtransformer_spec("cross_attn_tokens_dropout"))
    src, tgt, mask = tokens(), tokens(length=9), padding_mask(2, 10)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(src, tgt, mask=mask), model(src, tgt, mask=mask))
        model.train()
        losses = {model(src, tgt, mask=mask).item() for _ in range(5)}
    assert len(losses) > 1
