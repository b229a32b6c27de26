"""Per-layer values: a list gives each layer of its kind its own value. What the emitted module
looks like (one class per kind of layer, numbers in Config tuples) and the rules' messages;
parity with the reference is in the feature matrix (tests/features.py, the per_layer rows)."""

from __future__ import annotations

import pytest
from features import layers, spec_of

import xtc


def lm(**options) -> xtc.Spec:
    """A tiny decoder language model of depth 2 with `options` on its layers."""
    return spec_of({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                    "attn_layers": layers("Decoder", **options)})


def class_names(source: str) -> list[str]:
    return [line.split()[1].split("(")[0].rstrip(":") for line in source.splitlines()
            if line.startswith("class ")]


def test_numbers_per_layer_are_config_tuples_of_one_class():
    source = xtc.compile(lm(ff={"mult": [2, 4]}, layer_dropout=[0.0, 0.1, 0.2, 0.3]))
    assert class_names(source) == ["Config", "Attention", "FeedForward", "Block", "Tiny"]
    assert "ff_inner_dim: tuple[int, ...] = (64, 128)  # feedforward width, per layer" in source
    assert "inner_dim = config.ff_inner_dim[layer]  # this layer's width" in source
    assert "layer_dropout: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)" in source
    assert "self.layer_dropout = config.layer_dropout[2 * layer : 2 * layer + 2]" in source
    assert "nn.ModuleList([Block(config, layer) for layer in range(config.depth)])" in source


def test_a_submodule_per_layer_makes_a_class_per_kind_of_layer_and_block():
    source = xtc.compile(lm(ff={"glu": [False, True]}))
    assert class_names(source) == ["Config", "Attention", "FeedForward", "FeedForward2", "Block",
                                   "Block2", "Tiny"]
    assert "Block(config),\n                Block2(config),\n" in source
    assert "ff_inner_dim: int = 128" in source  # the width is the same in both


def test_equal_values_in_a_list_change_nothing():
    plain = xtc.compile(lm(attn={"dim_head": 16, "head_scale": True}))
    listed = xtc.compile(lm(attn={"dim_head": 16, "head_scale": [True, True]}))
    strip = lambda source: source.split("\n", 1)[1]  # the banner names the spec's hash
    assert strip(listed) == strip(plain)


@pytest.mark.parametrize("options, key, message", [
    ({"ff": {"mult": [2, 4, 4]}}, "ff.mult",
     "ff.mult has 3 values, one per layer, but this stack has 2 feedforward layers"),
    ({"shift_tokens": [1, 0]}, "shift_tokens",
     "shift_tokens has 2 values, one per layer, but this stack has 4 layers (of every kind)"),
    ({"custom_layers": ["a", "f", "a"], "depth": None, "attn": {"dim_head": 16, "dropout": [0.1]}},
     "attn.dropout",
     "attn.dropout has 1 value, one per layer, but this stack has 2 self-attention layers"),
])
def test_a_list_of_another_length_names_both_lengths(options, key, message):
    with pytest.raises(xtc.SpecError) as error:
        lm(**options)
    found, = (d for d in error.value.diagnostics if d.severity == "error")
    assert (found.key, found.code, found.message) == (
        f"model.attn_layers.{key}", "per-layer-length", message)
    assert found.line > 0


@pytest.mark.parametrize("attn, key", [({"dim_head": [16, 16]}, "dim_head"),
                                       ({"dim_head": 16, "flash": [True, False]}, "flash")])
def test_keywords_read_whole_take_no_list(attn, key):
    with pytest.raises(xtc.SpecError) as error:
        lm(attn=attn)
    found, = (d for d in error.value.diagnostics if d.severity == "error")
    assert (found.key, found.code) == (f"model.attn_layers.attn.{key}", "not-per-layer")
