"""The schema layer: closed keys, strict types, ranges, unsupported options, and the Spec."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT
from xtc.spec.keywords import ROUTED_SECTIONS, XTRANSFORMER_SIDES, Section, keyword_table
from xtc.spec.load import read_spec

import xtc

GPT = """xtc: 1
name: tiny_lm
model:
  type: TransformerWrapper
  num_tokens: 256
  max_seq_len: 128
  attn_layers:
    type: Decoder
    dim: 64
    depth: 2
    heads: 4
    attn: {dim_head: 16, flash: true}
"""


def diagnostics(text: str) -> list:
    return read_spec(text, "spec.yaml")[1]


def codes(text: str) -> list[tuple[str, str]]:
    return [(d.key, d.code) for d in diagnostics(text)]


def test_valid_spec_becomes_a_spec():
    spec = xtc.loads_spec(GPT, "gpt.yaml")
    layers = spec.model.children["attn_layers"]
    assert (spec.name, spec.class_name, spec.version, spec.path) == ("tiny_lm", "TinyLm", 1, "gpt.yaml")
    assert spec.model.type == "TransformerWrapper" and spec.model["num_tokens"] == 256
    assert layers.type == "Decoder" and layers["heads"] == 4 and layers.given == ("dim", "depth", "heads")
    assert layers["rotary_pos_emb"] is False  # defaults are filled in
    assert layers.section("attn")["dim_head"] == 16 and layers.section("attn")["dropout"] == 0.0
    assert spec.location("model.attn_layers.heads") == (11, 5)
    assert len(spec.sha256) == 64


def test_spec_round_trips_through_yaml():
    spec = xtc.loads_spec(GPT)
    again = xtc.loads_spec(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    assert again.to_dict() == spec.to_dict()
    assert again.model == spec.model


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_round_trips_through_to_dict(path):
    """An XTransformer's sides too (to_dict once left them out: they have no `type`)."""
    spec = xtc.load_spec(path)
    again = xtc.loads_spec(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    assert (again.model, again.components) == (spec.model, spec.components)
    assert [(c.source, c.target, c.argument) for c in again.connections] == [
        (c.source, c.target, c.argument) for c in spec.connections]


def test_examples_are_valid_with_distinct_names():
    names = [xtc.load_spec(example).name for example in sorted((ROOT / "examples").glob("*.yaml"))]
    assert len(set(names)) == len(names) > 0


def test_every_problem_is_reported_in_one_run_sorted_by_line():
    text = GPT.replace("depth: 2", "depth: 0").replace("heads: 4", "heads: \"4\"") \
              .replace("num_tokens: 256", "num_tokens: 256\n  emb_dropuot: 0.1")
    with pytest.raises(xtc.SpecError) as caught:
        xtc.loads_spec(text, "gpt.yaml")
    found = caught.value.diagnostics
    assert [(d.line, d.key, d.code) for d in found] == [
        (6, "model.emb_dropuot", "unknown-key"),
        (11, "model.attn_layers.depth", "out-of-range"),
        (12, "model.attn_layers.heads", "expected-type"),
        (6, "", "checks-skipped"),  # last: the checks that read the depth and the heads wait
    ]
    assert "did you mean 'emb_dropout'?" in found[0].message
    assert isinstance(caught.value, ValueError)
    assert "gpt.yaml:6:3: error[unknown-key] model.emb_dropuot" in str(caught.value)


@pytest.mark.parametrize("edit, key, code", [
    (("flash: true", "flash: 1"), "model.attn_layers.attn.flash", "expected-type"),
    (("dim_head: 16", "dim_head: 16.0"), "model.attn_layers.attn.dim_head", "expected-type"),
    (("dim_head: 16", "dim_head: null"), "model.attn_layers.attn.dim_head", "expected-type"),
    (("dim_head: 16", "dim_hed: 16"), "model.attn_layers.attn.dim_hed", "unknown-key"),
    (("depth: 2", "depth: [1, 2]"), "model.attn_layers.depth", "expected-type"),
    (("max_seq_len: 128", "max_seq_len: 128\n  emb_dropout: 1.0"), "model.emb_dropout", "out-of-range"),
    (("max_seq_len: 128", "max_seq_len: 128\n  emb_dropout: -0.1"), "model.emb_dropout", "out-of-range"),
    (("max_seq_len: 128", "max_seq_len: 0"), "model.max_seq_len", "out-of-range"),
    (("type: Decoder", "type: Decodr"), "model.attn_layers.type", "unknown-type"),
    # the XL wrapper's test-time training: a keyword xtc does not compile
    (("max_seq_len: 128", ("max_seq_len: 128\n  max_mem_len: 4\n  use_abs_pos_emb: false\n"
      "  autoregressive: {ttt_lr: 0.1}")), "model.autoregressive.ttt_lr", "unsupported-option"),
    (("type: TransformerWrapper", "type: 7"), "model.type", "unknown-type"),
    (("name: tiny_lm", "name: Tiny"), "name", "invalid-name"),
    (("name: tiny_lm", "name: exception"), "name", "invalid-name"),
    (("name: tiny_lm", "name: model_cache"), "name", "invalid-name"),
    (("name: tiny_lm", "name: " + "a" * 65), "name", "invalid-name"),
    (("xtc: 1", "xtc: 1.0"), "xtc", "unsupported-version"),
    (("xtc: 1", "xtc: 1\ndescription: 5"), "description", "expected-type"),
    (("xtc: 1", "xtc: 1\nmodle: {}"), "modle", "unknown-key"),
])
def test_schema_rejections(edit, key, code):
    assert codes(GPT.replace(*edit)) == [(key, code)]


def test_did_you_mean_for_a_type():
    d, = diagnostics(GPT.replace("type: Decoder", "type: Decodr"))
    assert "did you mean 'Decoder'?" in d.message


def test_per_layer_lists_are_typed_item_by_item():
    spec_text = GPT.replace("flash: true}", "flash: true, dropout: [0.1, 0.2]}")
    assert codes(spec_text) == []
    kv_heads = GPT.replace("flash: true}", "flash: true, kv_heads: [1, 2]}")
    assert codes(kv_heads) == [("model.attn_layers.attn.kv_heads", "unsupported-option")]
    for edit in (("flash: true", "flash: [true, false]"), ("dim_head: 16", "dim_head: [16, 16]")):
        key = "flash" if "flash: [" in edit[1] else "dim_head"
        assert codes(GPT.replace(*edit)) == [(f"model.attn_layers.attn.{key}", "not-per-layer")]
    bad = GPT.replace("flash: true}", "flash: true, dropout: [0.1, 1.2]}")
    assert codes(bad) == [("model.attn_layers.attn.dropout", "out-of-range")]
    wrong = GPT.replace("flash: true}", "flash: true, dropout: [0.1, x]}")
    assert codes(wrong) == [("model.attn_layers.attn.dropout", "expected-type")]


def test_layer_types_and_execution_order_lists():
    custom = GPT.replace("depth: 2", "custom_layers: [a, f, z]")
    assert codes(custom) == [("model.attn_layers.custom_layers", "expected-type")]
    order = GPT.replace("depth: 2", "depth: 2\n    layers_execute_order: [0, 1, x]")
    assert codes(order) == [("model.attn_layers.layers_execute_order", "expected-type")]


def test_default_values_are_accepted_for_unsupported_keywords():
    """Writing a keyword at its default changes nothing, so it is not an unsupported option."""
    text = GPT.replace("depth: 2", "depth: 2\n    rotary_pos_emb: false\n    pre_norm: true")
    assert diagnostics(text) == []


def test_vit_takes_only_an_encoder():
    vit = """xtc: 1
name: vit
model:
  type: ViTransformerWrapper
  image_size: 32
  patch_size: 8
  num_classes: 10
  attn_layers: {type: Encoder, dim: 64, depth: 2, heads: 4}
"""
    assert codes(vit) == []
    assert codes(vit.replace("type: Encoder", "type: Decoder")) == [
        ("model.attn_layers.type", "unknown-type")]


def test_xtransformer_sides_are_flat_and_closed():
    text = """xtc: 1
name: seq2seq
model:
  type: XTransformer
  dim: 64
  tie_token_emb: true
  encoder: {num_tokens: 256, max_seq_len: 64, depth: 2, heads: 4, attn: {flash: true}}
  decoder: {num_tokens: 256, max_seq_len: 64, depth: 2, heads: 4, cross_attend: true}
"""
    found = codes(text)
    assert found == [("model.decoder.cross_attend", "unknown-key")]
    encoder_post_norm = text.replace("attn: {flash: true}}", "post_emb_norm: true}")
    assert ("model.encoder.post_emb_norm", "unknown-key") in codes(encoder_post_norm)
    missing_side = text.replace("  decoder: {num_tokens: 256, max_seq_len: 64, depth: 2, heads: 4, cross_attend: true}\n", "")
    assert ("model.decoder", "missing-key") in codes(missing_side)


def test_composite_structure_is_checked():
    text = """xtc: 1
name: captioner
components:
  encoder: {type: ViTransformerWrapper, image_size: 32, patch_size: 8,
            attn_layers: {type: Encoder, dim: 64, depth: 1, heads: 2}}
  decoder: {type: TransformerWrapper, num_tokens: 256, max_seq_len: 64,
            attn_layers: {type: Decoder, dim: 64, depth: 1, heads: 2, cross_attend: true}}
connections:
  - {from: encoder, to: decoder.context}
  - {from: encoder, to: "decoder"}
"""
    assert codes(text) == [("connections", "invalid-connection")]
    assert codes(text.replace('  - {from: encoder, to: "decoder"}\n', "")) == []
    both = text.replace("components:", "model: {type: Decoder, dim: 8}\ncomponents:")
    assert ("components", "conflicting-keys") in codes(both)


def test_missing_model():
    assert codes("xtc: 1\nname: x\n") == [("model", "missing-key")]


def test_warnings_do_not_reject(monkeypatch):
    spec, problems = read_spec(GPT, "spec.yaml")
    assert spec is not None and all(p.severity == "warning" for p in problems)


# -- a key written in another section of its model ---------------------------------------------

# A small valid model of each shape; a wrapper's entry names its layer class.
LAYERS = {"dim": 64, "depth": 2, "heads": 4}
MODELS = {
    "TransformerWrapper": {"type": "TransformerWrapper", "num_tokens": 256, "max_seq_len": 64,
                           "attn_layers": {"type": "Decoder", **LAYERS}},
    "ViTransformerWrapper": {"type": "ViTransformerWrapper", "image_size": 32, "patch_size": 8,
                             "attn_layers": {"type": "Encoder", **LAYERS}},
    "ContinuousTransformerWrapper": {"type": "ContinuousTransformerWrapper", "dim_in": 8,
                                     "max_seq_len": 64, "attn_layers": {"type": "Encoder", **LAYERS}},
    "Encoder": {"type": "Encoder", **LAYERS},
    "Decoder": {"type": "Decoder", **LAYERS},
    "CrossAttender": {"type": "CrossAttender", **LAYERS},
    "XTransformer": {"type": "XTransformer", "dim": 64,
                     "encoder": {"num_tokens": 256, "max_seq_len": 64, "depth": 2, "heads": 4},
                     "decoder": {"num_tokens": 256, "max_seq_len": 64, "depth": 2, "heads": 4}},
}
TITLES = {"attn": "attention", "cross_attn": "cross-attention", "ff": "feedforward"}


def sections_of(model: str) -> tuple[Section, ...]:
    layer_type = MODELS[model].get("attn_layers", {}).get("type")
    return keyword_table().sections(MODELS[model]["type"], layer_type)


def misplaced_key(sections: tuple[Section, ...], source: Section, target: Section) -> str | None:
    """The first key the hint must send from source to target (None if there is none): one that
    target takes and source does not, that no layer class of the model sets itself, that
    cross_attn: does not inherit from the attn: beside it, and, from inside one XTransformer side
    to the other, that neither the source's side nor the top takes."""
    keys = target.keys - source.keys - frozenset().union(*(s.fixed for s in sections))
    keys -= {s.path[-1] for s in sections if s.path}  # keywords, not the nested mappings
    for other in sections:
        inherited = target.name == "cross_attn" and other.path == (*target.path[:-1], "attn")
        side = source.path[:1]
        nearer = (side and side[0] in XTRANSFORMER_SIDES and target.path[:1] not in ((), side)
                  and other.path[:1] in ((), side))
        if inherited or nearer:
            keys -= other.keys
    return min(keys, default=None)


def misplaced_cases():
    for model in MODELS:
        sections = sections_of(model)
        for source in sections:
            for target in sections:
                key = misplaced_key(sections, source, target) if target != source else None
                if key is not None:
                    ids = "->".join(".".join(s.path) or "top" for s in (source, target))
                    yield pytest.param(model, source, target, key, id=f"{model}:{ids}:{key}")


MISPLACED = list(misplaced_cases())


def test_every_pair_of_sections_with_a_misplaced_key_is_covered():
    """Each wrapper: 5 sections, 20 ordered pairs, less layers -> cross_attn (what cross_attn:
    takes and the layers do not, attn: takes too) and cross_attn -> attn (cross_attn: takes every
    keyword attn: does, inverted_attention included). Each bare layer class: 4 sections, 12
    pairs, less the same two. XTransformer: 9 sections, 72 pairs, less encoder ->
    encoder.cross_attn and decoder -> decoder.cross_attn, each side's cross_attn -> attn (the
    same reasons), the 16 from the encoder's side into the decoder's (the decoder takes nothing
    the encoder does not) and the 12 from the decoder's side into the encoder's attn:,
    cross_attn: and ff: (its own take the same keys)."""
    assert len(MISPLACED) == 3 * 18 + 3 * 10 + (72 - 2 - 2 - 16 - 12)


def misplaced_error(model: str, path: tuple[str, ...], value: object = 2):
    """The one error of MODELS[model] with value written at path, and the spec's text."""
    document = {"xtc": 1, "name": "m", "model": copy.deepcopy(MODELS[model])}
    mapping = document["model"]
    for step in path[:-1]:
        mapping = mapping.setdefault(step, {})
    mapping[path[-1]] = value
    text = yaml.safe_dump(document, sort_keys=False)
    errors = [d for d in diagnostics(text) if d.severity == "error"]
    assert [(d.key, d.code) for d in errors] == [(".".join(("model", *path)), "unknown-key")]
    return errors[0], text


@pytest.mark.parametrize("model, source, target, key", MISPLACED)
def test_a_key_in_another_section_says_where_to_write_it(model, source, target, key):
    error, text = misplaced_error(model, (*source.path, key))
    assert text.splitlines()[error.line - 1][error.col - 1:].startswith(f"{key}: 2")
    message = error.message
    assert "did you mean" not in message
    assert f" {TITLES.get(target.name, target.name)}" in message.partition(": write")[0]
    routed = target.name in ROUTED_SECTIONS
    assert (f"{target.name}: {{{key}: 2}}" if routed else f"{key}: 2") in message
    holder = target.path[:-1] if routed else target.path
    if source.path[:len(holder)] == holder != source.path:  # an enclosing mapping
        assert f"beside {source.path[len(holder)]}:" in message
    elif holder != source.path:  # a nested mapping or the other XTransformer side
        assert f"{holder[-1]}:" in message.partition(": write")[2]


@pytest.mark.parametrize("model, path, value, hint", [
    # the reference's prefixes: attn_ on the layers, enc_ / dec_ on an XTransformer
    ("Decoder", ("attn_kv_heads",), 2,
     "attn_kv_heads is an attention option: write attn: {kv_heads: 2}"),
    ("XTransformer", ("enc_depth",), 2, "enc_depth is an encoder option: write depth: 2 in encoder:"),
    # every place that takes the key
    ("TransformerWrapper", ("dropout",), 0.1, ("dropout is an attention and feedforward option: "
     "write attn: {dropout: 0.1} or ff: {dropout: 0.1} in attn_layers:")),
    ("XTransformer", ("depth",), 2,
     "depth is an encoder and decoder option: write depth: 2 in encoder: and decoder:"),
    # inside a side, the other side only when nothing nearer takes the key
    ("XTransformer", ("decoder", "attn", "depth"), 2,
     "depth is a decoder option, not an attention one: write depth: 2 beside attn:"),
    ("XTransformer", ("decoder", "num_memory_tokens"), 2, ("num_memory_tokens is an encoder "
     "option, not a decoder one: write num_memory_tokens: 2 in encoder:")),
    # the value as written when it is a short scalar
    ("Decoder", ("kv_heads",), [1, 2], "write attn: {kv_heads: ...}"),
    ("Decoder", ("kv_heads",), "two heads", "write attn: {kv_heads: ...}"),
    ("Decoder", ("kv_heads",), "two", "write attn: {kv_heads: 'two'}"),
    # what a layer class sets itself, wherever it is written
    ("TransformerWrapper", ("causal",), True, "Decoder sets 'causal' itself here"),
    ("Decoder", ("attn", "causal"), True, "Decoder sets 'causal' itself here"),
    ("XTransformer", ("causal",), True, "Encoder and Decoder set 'causal' themselves here"),
    ("XTransformer", ("decoder", "cross_attend"), True, "Decoder sets 'cross_attend' itself here"),
    # ... unless some layers take it
    ("CrossAttender", ("attn", "causal"), True, "causal is a layers and cross-attention option"),
])
def test_misplaced_key_hints(model, path, value, hint):
    error, _ = misplaced_error(model, path, value)
    assert hint in error.message and "did you mean" not in error.message
