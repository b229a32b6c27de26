"""Every model type of x-transformers' usage section (issue #5): encoder-decoder, ViT,
cross-attention, prepended embeddings, continuous inputs and bare layer stacks; and xVal
(issue #38). Their parity
cases are rows of tests/features.py (groups cross, bare, vit, continuous, xtransformer); here
are the inputs beyond the matrix and the run-time input checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import x_transformers.xval
from conftest import ROOT
from features import FEATURES, feature, feature_spec, frozen, layers, spec_of
from inputs import make_inputs, padding_mask
from reference import (
    TOLERANCE,
    assert_parity,
    assert_same_gradients,
    assert_same_greedy_tokens,
    paired_models,
)

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
    ("prefix length type", {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                            "attn_layers": layers("PrefixDecoder")},
     lambda: ((tokens(),), {"prefix_attn_len": 2.5}), TypeError, "prefix_attn_len must be an int"),
    ("prefix lengths per row", layers("PrefixDecoder"),
     lambda: ((floats(2, 10, 32),), {"prefix_attn_len": torch.tensor([1, 2, 3])}), ValueError,
     r"prefix_attn_len must be an integer tensor \(2,\)"),
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


# -- xVal: numbers beside the tokens --------------------------------------------------------------
# (forward parity and greedy generation of every option: the rows of group xval)


def xval_spec(name: str = "plain", kind: str = "Decoder") -> xtc.Spec:
    return feature_spec(feature(f"xval-{name}"), kind, flash=False)


def xval_batch(spec: xtc.Spec, length: int = 12, masked: bool = True):
    inputs = make_inputs(spec, 3, length, masked=masked)
    return inputs.args, inputs.kwargs.get("mask")


def assert_same_loss(spec, reference, ours, args, mask, **wrapper_options) -> None:
    """The loss, its breakdown and the gradients of every parameter equal the reference
    XValAutoregressiveWrapper's with the same options."""
    wrapper = x_transformers.xval.XValAutoregressiveWrapper(reference, **wrapper_options)
    kwargs = {} if mask is None else {"mask": mask}
    expected, (ce, mse) = wrapper(*args, return_loss_breakdown=True, **kwargs)
    actual, breakdown = ours.loss(*args, return_loss_breakdown=True, **kwargs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    torch.testing.assert_close(breakdown.cross_entropy_loss, ce, **TOLERANCE)
    torch.testing.assert_close(breakdown.numerical_mse_loss, mse, **TOLERANCE)
    expected.backward()
    actual.backward()
    assert_same_gradients(spec, ours, reference)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_xval_loss_is_the_reference_wrappers(masked):
    spec = xval_spec()
    args, mask = xval_batch(spec, masked=masked)
    assert_same_loss(spec, *paired_models(spec), args, mask if masked else None)


def test_xval_loss_options_are_the_specs():
    """autoregressive: {ignore_index, numerical_loss_weight} reach the emitted Config, and the
    loss equals the reference wrapper's with them."""
    options = frozen({"ignore_index": 5, "numerical_loss_weight": 10.0})
    spec = feature_spec(dataclasses.replace(feature("xval-plain"), autoregressive=options),
                        "Decoder", flash=False)
    source = xtc.compile(spec)
    assert "ignore_index: int = 5" in source and "numerical_loss_weight: float = 10.0" in source
    reference, ours = paired_models(spec)
    args, mask = xval_batch(spec)
    args[0][:, 1::4] = 5  # targets the loss skips
    assert_same_loss(spec, reference, ours, args, mask, ignore_index=5, numerical_loss_weight=10.0)


def test_xval_numbers_are_read_only_at_the_number_token():
    spec = xval_spec()
    _, ours = paired_models(spec)
    (x, numbers), _ = xval_batch(spec, masked=False)
    logits, predicted = ours(x, numbers)
    assert logits.shape == (3, 12, 64) and predicted.shape == (3, 12)
    elsewhere = numbers.masked_fill(x != 3, 123.0)
    assert torch.equal(ours(x, elsewhere)[1], predicted)
    assert not torch.equal(ours(x, numbers * 2)[1], predicted)
    assert ours(x, numbers, return_embeddings=True).shape == (3, 12, 32)


def test_xval_generation_returns_the_references_fields():
    spec = xval_spec("no_positions_cross")
    _, ours = paired_models(spec)
    (x, numbers), _ = xval_batch(spec, length=5, masked=False)
    out = ours.generate(x, numbers, 6, temperature=0, context=floats(3, 7, 32))
    assert out._fields == ("sampled_token_ids", "sampled_numbers", "is_number_mask")
    assert torch.equal(out.is_number_mask, out.sampled_token_ids == 3)
    assert torch.equal(out.sampled_numbers.isnan(), ~out.is_number_mask)


def test_xval_prompts_of_other_lengths_generate_as_alone():
    """Prompts padded at the end (prompt_lens): each row's tokens and numbers as if it were
    generated alone."""
    spec = xval_spec()
    _, ours = paired_models(spec)
    with torch.no_grad():
        ours.to_logits.bias[3] += 1.5  # numbers are generated, and fed back
    (x, numbers), _ = xval_batch(spec, length=5, masked=False)
    lens = torch.tensor([5, 3, 4])
    padded = ours.generate(x, numbers, 4, temperature=0, prompt_lens=lens)
    assert padded.is_number_mask.any()
    for row, n in enumerate(lens.tolist()):
        alone = ours.generate(x[row:row + 1, :n], numbers[row:row + 1, :n], 4, temperature=0)
        assert torch.equal(padded.sampled_token_ids[row], alone.sampled_token_ids[0])
        torch.testing.assert_close(padded.sampled_numbers[row], alone.sampled_numbers[0],
                                   equal_nan=True, **TOLERANCE)


def test_xval_encoder_neither_generates_nor_has_a_loss():
    _, ours = paired_models(xval_spec("plain", "Encoder"))
    assert not hasattr(ours, "generate") and not hasattr(ours, "loss")


XVAL_BAD_INPUTS = [
    ("numbers shape", lambda x, n: ((x, n[:, :-1]), {}), ValueError, r"x_num shape \(3, 11\)"),
    ("integer numbers", lambda x, n: ((x, x), {}), TypeError, "x_num must be a floating-point"),
]


@pytest.mark.parametrize("name, make, error, message", XVAL_BAD_INPUTS,
                         ids=[c[0] for c in XVAL_BAD_INPUTS])
def test_xval_bad_input_raises(name, make, error, message):
    spec = xval_spec()
    model = xtc.build(spec).eval()
    args, kwargs = make(*xval_batch(spec, masked=False)[0])
    with pytest.raises(error, match=message):
        model(*args, **kwargs)
    with pytest.raises(ValueError, match="numbers must be a floating-point tensor shaped like"):
        model.generate(args[0][:, :4], args[0][:, :4], 2)


def test_the_example_runner_reports_every_output_of_an_xval_model():
    """scripts/run_examples.py (the installed-package check) runs models that return two."""
    import runpy

    runner = runpy.run_path(str(ROOT / "scripts" / "run_examples.py"))
    line = runner["run"](ROOT / "examples" / "xval.yaml")
    assert line.endswith("-> (2, 16, 4), (2, 16)"), line


# -- the prefix language model (PrefixDecoder): the forms of prefix_attn_len, and generate's rule


PREFIX_LM = "prefix-rotary"  # its rows give one length per row (tests/inputs.py)


@pytest.mark.parametrize("prefix_attn_len", [None, 0, 4, 10], ids=["none", "zero", "four", "whole"])
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_prefix_attn_len_as_an_int_or_none(prefix_attn_len, masked):
    """Without it the stack is causal (the reference's mask alone); an int is every row's."""
    spec = feature_spec(feature(PREFIX_LM), "PrefixDecoder", flash=False)
    kwargs = {"mask": padding_mask(2, 10)} if masked else {}
    assert_parity(spec, tokens(), prefix_attn_len=prefix_attn_len, **kwargs)


def test_a_prefix_decoder_without_a_prefix_is_a_decoder():
    """Without prefix_attn_len the outputs are a Decoder's with the same weights."""
    prefixed = xtc.build(feature_spec(feature(PREFIX_LM), "PrefixDecoder", flash=False)).eval()
    causal = xtc.build(feature_spec(feature(PREFIX_LM), "Decoder", flash=False)).eval()
    causal.load_state_dict(prefixed.state_dict())
    x = tokens()
    torch.testing.assert_close(prefixed(x), causal(x), **TOLERANCE)
    assert not torch.allclose(prefixed(x, prefix_attn_len=5), causal(x))


@pytest.mark.parametrize("prefix_attn_len", [3, torch.tensor([2, 6])], ids=["int", "per-row"])
def test_prefix_decoder_generates_after_an_int_or_per_row_prefix(prefix_attn_len):
    """The cached tokens equal the reference's uncached ones (its cached path asserts)."""
    spec = feature_spec(feature(PREFIX_LM), "PrefixDecoder", flash=False)
    assert_same_greedy_tokens(spec, tokens(length=6), 5, reference_cache=False,
                              prefix_attn_len=prefix_attn_len)


@pytest.mark.parametrize("prefix_attn_len", [7, torch.tensor([2, 7])], ids=["int", "per-row"])
def test_prefix_decoder_refuses_a_prefix_beyond_the_prompt(prefix_attn_len):
    model = xtc.build(feature_spec(feature(PREFIX_LM), "PrefixDecoder", flash=False))
    with pytest.raises(ValueError, match=r"prefix_attn_len \(7\) must be at most the prompt's"):
        model.generate(tokens(length=6), 3, prefix_attn_len=prefix_attn_len)


def test_prefix_decoder_generates_from_prompts_of_different_lengths():
    """Left-aligned prompts (prompt_lens): the prefix counts the aligned positions, padding
    included, as the reference's does."""
    spec = feature_spec(feature(PREFIX_LM), "PrefixDecoder", flash=False)
    assert_same_greedy_tokens(spec, tokens(length=6), 4, reference_cache=False,
                              prompt_lens=torch.tensor([4, 6]), prefix_attn_len=3)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_prefix_decoder_after_prepended_embeddings(masked):
    """PaLI-style: embeddings in front of the tokens count in the prefix, as the reference's."""
    spec = feature_spec(feature(PREFIX_LM), "PrefixDecoder", flash=False)
    kwargs = {"mask": padding_mask(2, 10)} if masked else {}
    assert_parity(spec, tokens(), prepend_embeds=floats(2, 3, 32),
                  prefix_attn_len=torch.tensor([5, 3]), **kwargs)
    assert_same_greedy_tokens(spec, tokens(length=4), 4, reference_cache=False,
                              prepend_embeds=floats(2, 3, 32), prefix_attn_len=7)
