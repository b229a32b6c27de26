"""check-position-options: the rules x-transformers asserts for its positional schemes
(AttentionLayers.__init__, RotaryEmbedding.__init__), as located errors.

- xPos rescales queries and keys by their distance from the sequence's middle: causal only.
- Rotary rotates at most the whole head: rotary_emb_dim <= dim_head.
- Position interpolation divides positions: rotary_interpolation_factor >= 1.
- Rotary on some heads: rotate_num_heads <= heads, and not with grouped key / value heads
  (Attention.__init__).
- Rotary goes with ALiBi but not with the T5 or dynamic bias: the reference fails in the forward.
- T5 buckets: rel_pos_num_buckets <= rel_pos_max_distance (even with the bias off, as the
  reference asserts it; so are the two rules above for rotary width and xPos).
- ALiBi on some heads: alibi_num_heads <= heads.
(At most one of ALiBi, T5 and dynamic bias is check-exclusive-features' `at-most-one-position-bias`.)
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from ..resolve import key_value_heads
from .modules import diagnostic, layer_modules

ID = "check-position-options"


def check_position_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_rotary(spec, layers) + check_biases(spec, layers)
    return found


def check_rotary(spec: Spec, layers) -> list[Diagnostic]:
    """All but the last hold whether or not rotary is on: the reference asserts them regardless
    (AttentionLayers.__init__, Attention.__init__)."""
    found, key = [], layers.key
    if layers["rotary_xpos"] and layers.type != "Decoder":
        built = " (built so; its forward masks the attention)" if layers.type == "PrefixDecoder" else ""
        found.append(diagnostic(spec, f"{key}.rotary_xpos", "xpos-needs-causal",
                                f"rotary_xpos is defined for causal attention only; {layers.type} "
                                f"is bidirectional{built}"))
    dim_head = layers.section("attn")["dim_head"]
    if layers["rotary_emb_dim"] is not None and layers["rotary_emb_dim"] > dim_head:
        found.append(diagnostic(spec, f"{key}.rotary_emb_dim", "rotary-dim-exceeds-head",
                                f"rotary_emb_dim ({layers['rotary_emb_dim']}) must be at most "
                                f"attn.dim_head ({dim_head})"))
    rotate, heads = layers["rotate_num_heads"], layers["heads"]
    if rotate is not None and rotate > heads:
        found.append(diagnostic(spec, f"{key}.rotate_num_heads", "rotate-heads-exceed-heads",
                                f"rotate_num_heads ({rotate}) must be at most heads ({heads})"))
    kv_heads = key_value_heads(layers)
    custom = layers["custom_layers"]  # a layout of feedforwards builds no attention to rotate
    attends = custom is None or any(kind in custom for kind in ("a", "c"))
    if rotate is not None and rotate < heads and kv_heads < heads and attends:
        found.append(diagnostic(spec, f"{key}.rotate_num_heads", "partial-rotary-with-gqa",
                                f"rotary on {rotate} of {heads} heads cannot be combined with "
                                f"grouped key / value heads ({kv_heads}); x-transformers does not "
                                "support it yet"))
    if not (layers["rotary_pos_emb"] or layers["rotary_xpos"]):  # xPos turns rotary on
        return found
    for bias in ("rel_pos_bias", "dynamic_pos_bias"):
        if layers[bias]:
            found.append(diagnostic(spec, f"{key}.{bias}", "rotary-with-relative-bias",
                                    f"rotary positions cannot be combined with {bias}: "
                                    "x-transformers 2.31.10 builds it and then fails in the forward "
                                    "(only ALiBi goes with rotary there)"))
    if layers["rotary_interpolation_factor"] < 1:
        found.append(diagnostic(spec, f"{key}.rotary_interpolation_factor",
                                "interpolation-factor-below-one",
                                "rotary_interpolation_factor must be >= 1 (it divides positions)"))
    return found


def check_biases(spec: Spec, layers) -> list[Diagnostic]:
    found, key = [], layers.key
    # asserted by the reference whether or not the T5 bias is on
    if layers["rel_pos_num_buckets"] > layers["rel_pos_max_distance"]:
        found.append(diagnostic(spec, f"{key}.rel_pos_num_buckets", "buckets-exceed-max-distance",
                                f"rel_pos_num_buckets ({layers['rel_pos_num_buckets']}) must be at "
                                f"most rel_pos_max_distance ({layers['rel_pos_max_distance']})"))
    alibi_heads = layers["alibi_num_heads"]
    if layers["alibi_pos_bias"] and alibi_heads is not None and alibi_heads > layers["heads"]:
        found.append(diagnostic(spec, f"{key}.alibi_num_heads", "alibi-heads-exceed-heads",
                                f"alibi_num_heads ({alibi_heads}) must be at most heads "
                                f"({layers['heads']})"))
    return found
