"""Composite specs (issue #6): the emitted model against the reference models called by hand
the same way (docs/spec-language.md, "Composites"), outputs, loss and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import x_transformers.xval
import yaml
from inputs import padding_mask
from reference import assert_parity, paired_models, reference_module
from test_model_types import floats, tokens
from torch import nn
from x_transformers import AutoregressiveWrapper

import xtc

VIT = {"type": "ViTransformerWrapper", "image_size": 16, "patch_size": 4,
       "attn_layers": {"type": "Encoder", "dim": 32, "depth": 1, "heads": 2, "attn": {"dim_head": 16}}}
CAPTION_DECODER = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                   "attn_layers": {"type": "Decoder", "dim": 32, "depth": 2, "heads": 2,
                                   "cross_attend": True, "attn": {"dim_head": 16}}}
PALI = {"type": "XTransformer", "dim": 32, "tie_token_emb": True,
        "encoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 2},
        "decoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 2}}


def composite(components: dict, connections: list) -> xtc.Spec:
    document = {"xtc": 1, "name": "combo", "components": components, "connections": connections}
    return xtc.loads_spec(yaml.safe_dump(document, sort_keys=False))


class HandWired(nn.ModuleDict):
    """The reference components, called the way docs/spec-language.md says the composite calls
    them: a producer with return_embeddings=True, its output into the consumer's argument."""

    def __init__(self, spec: xtc.Spec, forward):
        super().__init__({name: reference_module(module) for name, module in spec.components.items()})
        self.wired = forward

    def forward(self, *args, **kwargs):
        return self.wired(self, *args, **kwargs)


def test_image_to_caption():
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])

    def by_hand(ref, img, x, decoder_mask=None):
        context = ref["encoder"](img, return_embeddings=True)
        return ref["decoder"](x, context=context, mask=decoder_mask)

    assert_parity(spec, floats(2, 3, 16, 16), tokens(), reference=HandWired(spec, by_hand),
                  decoder_mask=padding_mask(2, 10))


def test_image_to_numbers():
    """An xVal reader of an image: its forward returns logits and numbers, its loss and generate
    those of the reference's XValAutoregressiveWrapper, after the encoder."""
    reader = {**CAPTION_DECODER, "type": "XValTransformerWrapper", "numerical_token_id": 3}
    spec = composite({"encoder": VIT, "reader": reader},
                     [{"from": "encoder", "to": "reader.context"}])

    def by_hand(ref, img, x, x_num, reader_mask=None):
        context = ref["encoder"](img, return_embeddings=True)
        return ref["reader"](x, x_num, context=context, mask=reader_mask)

    image, x, numbers = floats(2, 3, 16, 16), tokens(), floats(2, 10)
    assert_parity(spec, image, x, numbers, reference=HandWired(spec, by_hand),
                  reader_mask=padding_mask(2, 10))
    reference, ours = paired_models(spec, reference=HandWired(spec, by_hand))
    context = reference["encoder"](image, return_embeddings=True)
    wrapper = x_transformers.xval.XValAutoregressiveWrapper(reference["reader"])
    torch.testing.assert_close(ours.loss(image, x, numbers),
                               wrapper(x, numbers, context=context), rtol=1e-4, atol=1e-5)
    expected = wrapper.generate(x[:, :4], numbers[:, :4], 5, filter_kwargs={"k": 1},
                                context=context)
    actual = ours.generate(image, x[:, :4], numbers[:, :4], 5, temperature=0)
    assert torch.equal(actual.sampled_token_ids, expected.sampled_token_ids)


def test_text_encoder_passes_its_mask_as_the_context_mask():
    encoder = {**CAPTION_DECODER, "attn_layers": {**CAPTION_DECODER["attn_layers"],
                                                  "type": "Encoder", "cross_attend": False}}
    spec = composite({"text": encoder, "decoder": CAPTION_DECODER},
                     [{"from": "text", "to": "decoder.context"}])

    def by_hand(ref, src, x, text_mask=None):
        context = ref["text"](src, mask=text_mask, return_embeddings=True)
        return ref["decoder"](x, context=context, context_mask=text_mask)

    model = xtc.build(spec)
    assert "decoder_context_mask" not in model.forward.__code__.co_varnames
    assert_parity(spec, tokens(), tokens(length=8), reference=HandWired(spec, by_hand),
                  text_mask=padding_mask(2, 10))


def test_pali():
    spec = composite({"vit": VIT, "pali": PALI}, [{"from": "vit", "to": "pali.src_prepend_embeds"}])

    def by_hand(ref, img, src, tgt, pali_mask=None):
        image = ref["vit"](img, return_embeddings=True)
        return ref["pali"](src, tgt, mask=pali_mask, src_prepend_embeds=image)

    src, tgt = tokens(), tokens(length=9)
    assert_parity(spec, floats(2, 3, 16, 16), src, tgt, reference=HandWired(spec, by_hand),
                  pali_mask=padding_mask(2, 10))


def test_pali_learns_with_one_loss_call():
    spec = composite(*PALI_MODEL)
    model = xtc.build(spec)
    assert model.loss == model.forward  # an encoder-decoder's output is its loss
    img, src, tgt = floats(2, 3, 16, 16), tokens(), tokens(length=9)
    model.loss(img, src, tgt).backward()
    assert model.vit.patch_to_embedding[1].weight.grad is not None  # the image encoder learns too


def test_composite_forward_signature():
    spec = composite({"vit": VIT, "pali": PALI}, [{"from": "vit", "to": "pali.src_prepend_embeds"}])
    source = xtc.compile(spec)
    assert "        img: Tensor,\n        src: Tensor,\n        tgt: Tensor,\n        *,\n" \
           "        pali_mask: Tensor | None = None,\n        pali_attn_mask: Tensor | None = None,\n" in source


def test_convert_state_dict_of_a_composite_names_component_keys():
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    with pytest.raises(ValueError, match=r"missing keys \['decoder\."):
        xtc.convert_state_dict(spec, {"encoder": reference_module(spec.components["encoder"]).state_dict(),
                                      "decoder": {}})
    assert torch.is_tensor(next(iter(xtc.convert_state_dict(spec, {
        name: reference_module(module).state_dict() for name, module in spec.components.items()
    }).values())))


# -- a composite that ends in a generating model generates and learns (issue #36) -------------

CAPTIONER = ({"encoder": VIT, "decoder": CAPTION_DECODER}, [{"from": "encoder", "to": "decoder.context"}])
PALI_MODEL = ({"vit": VIT, "pali": PALI}, [{"from": "vit", "to": "pali.src_prepend_embeds"}])


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_a_captioner_captions_with_one_generate_call(cache):
    spec = composite(*CAPTIONER)
    reference, ours = paired_models(spec, reference=HandWired(spec, None))
    img, prompt = floats(2, 3, 16, 16), tokens(length=3)
    context = reference["encoder"](img, return_embeddings=True)
    expected = AutoregressiveWrapper(reference["decoder"]).generate(
        prompt, 8, context=context, temperature=0.0, cache_kv=cache)
    actual = ours.generate(img, prompt, 8, temperature=0, cache=cache)
    assert actual.shape == (2, 8) and torch.equal(actual, expected)
    two_steps = ours.decoder.generate(prompt, 8, context=ours.encoder(img, return_embeddings=True),
                                      temperature=0, cache=cache)
    assert torch.equal(actual, two_steps)


def test_a_captioner_learns_with_one_loss_call():
    spec = composite(*CAPTIONER)
    reference, ours = paired_models(spec, reference=HandWired(spec, None))
    img, text = floats(2, 3, 16, 16), tokens(length=10)
    text[1, 7:] = -100  # ignored targets, as the reference's wrapper ignores them
    context = reference["encoder"](img, return_embeddings=True)
    expected = AutoregressiveWrapper(reference["decoder"])(text, context=context)
    torch.testing.assert_close(ours.loss(img, text), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_pali_generates_with_one_call_like_the_manual_path(masked):
    """The reference's XTransformer.generate refuses src_prepend_embeds, so its path is manual:
    the image embeddings in front of the source, the source mask padded with True for them."""
    spec = composite(*PALI_MODEL)
    reference, ours = paired_models(spec, reference=HandWired(spec, None))
    img, src, start = floats(2, 3, 16, 16), tokens(length=10), tokens(length=1)
    mask = padding_mask(2, 10) if masked else None
    image = reference["vit"](img, return_embeddings=True)
    encoded = reference["pali"].encoder(src, mask=mask, prepend_embeds=image, return_embeddings=True)
    context_mask = None if mask is None else F.pad(mask, (image.shape[1], 0), value=True)
    expected = reference["pali"].decoder.generate(start, 8, context=encoded,
                                                  context_mask=context_mask, temperature=0.0)
    actual = ours.generate(img, src, start, 8, pali_mask=mask, temperature=0)
    assert actual.shape == (2, 8) and torch.equal(actual, expected)


CONDITIONED_DECODER = {**CAPTION_DECODER, "attn_layers": {
    **CAPTION_DECODER["attn_layers"], "use_adaptive_layernorm": True, "use_adaptive_layerscale": True,
    "dim_condition": 8}}


def test_a_conditioned_component_takes_its_condition_by_name():
    """A component's condition is the composite's `<component>_condition`: in forward, loss and
    generate, as the reference decoder takes it after the encoder."""
    spec = composite({"encoder": VIT, "decoder": CONDITIONED_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    condition = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))

    def by_hand(ref, img, x, decoder_condition=None):
        context = ref["encoder"](img, return_embeddings=True)
        return ref["decoder"](x, context=context, condition=decoder_condition)

    img, text = floats(2, 3, 16, 16), tokens()
    assert_parity(spec, img, text, reference=HandWired(spec, by_hand), decoder_condition=condition)
    reference, ours = paired_models(spec, reference=HandWired(spec, None))
    context = reference["encoder"](img, return_embeddings=True)
    decoder = AutoregressiveWrapper(reference["decoder"])
    expected = decoder.generate(text[:, :3], 6, context=context, condition=condition,
                                temperature=0.0)
    assert torch.equal(ours.generate(img, text[:, :3], 6, temperature=0, decoder_condition=condition),
                       expected)
    torch.testing.assert_close(ours.loss(img, text, decoder_condition=condition),
                               decoder(text, context=context, condition=condition),
                               rtol=1e-4, atol=1e-5)
