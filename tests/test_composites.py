"""Composite specs (issue #6): the emitted model against the reference models called by hand
the same way (docs/spec-language.md, "Composites"), outputs, loss and gradients."""

from __future__ import annotations

import pytest
import torch
import yaml
from inputs import padding_mask
from reference import assert_parity, reference_module
from test_model_types import floats, tokens
from torch import nn

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
