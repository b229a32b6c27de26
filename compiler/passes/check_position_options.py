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
- Polar positions (PoPE) exclude rotary (asserted); the reference fails in the forward beside
  the T5 or dynamic bias, grouped key / value heads (2 <= kv_heads < heads), persistent memory
  and CoPE (keys 2 D wide against D-wide memory keys and position embeddings).
- rel_pos_kwargs go to the bias' class beside the keywords AttentionLayers passes: T5's and the
  dynamic bias' take none; ALiBi's takes `slopes`, one number per ALiBi head (other lengths:
  xtc refuses them), and swallows any other key (a warning); without a bias they do nothing.
(At most one of ALiBi, T5 and dynamic bias is check-exclusive-features' `at-most-one-position-bias`.)
"""

from __future__ import annotations

import math

from xtc.spec import Diagnostic, Spec

from ..resolve import key_value_heads
from .modules import diagnostic, each_value, layer_modules

ID = "check-position-options"


def check_position_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_rotary(spec, layers) + check_biases(spec, layers)
        found += check_polar(spec, layers) + check_rel_pos_kwargs(spec, layers)
    return found


def check_polar(spec: Spec, layers) -> list[Diagnostic]:
    found, key, attn = [], layers.key, layers.section("attn")
    if not layers["polar_pos_emb"]:
        if "polar_bias_uniform_init" in layers.given:
            found.append(diagnostic(spec, f"{key}.polar_bias_uniform_init", "polar-init-without-polar",
                                    "polar_bias_uniform_init has no effect without polar_pos_emb: "
                                    "true", "warning"))
        return found
    if layers["rotary_pos_emb"] or layers["rotary_xpos"]:
        found.append(diagnostic(spec, f"{key}.polar_pos_emb", "polar-with-rotary",
                                "polar_pos_emb and rotary positions (rotary_pos_emb, rotary_xpos) "
                                "exclude each other: x-transformers asserts it"))
    for bias in ("rel_pos_bias", "dynamic_pos_bias"):
        if layers[bias]:
            found.append(diagnostic(spec, f"{key}.{bias}", "polar-with-relative-bias",
                                    f"polar positions cannot be combined with {bias}: "
                                    "x-transformers passes their positions to it, and only ALiBi "
                                    "takes them (it fails in the forward)"))
    kv_heads, heads = key_value_heads(layers), layers["heads"]
    if 1 < kv_heads < heads:
        found.append(diagnostic(spec, f"{key}.attn.kv_heads", "polar-with-grouped-kv-heads",
                                f"polar positions give each of the {heads} query heads its keys' "
                                f"phases, which {kv_heads} key heads cannot take (x-transformers "
                                "fails in the forward; one key head, or as many as heads, can)"))
    for name, what in (("num_mem_kv", "persistent memory keys"),
                       ("use_cope", "CoPE's position embeddings")):
        if any(each_value(attn[name])):
            found.append(diagnostic(spec, f"{key}.attn.{name}", "polar-key-width",
                                    f"polar positions make keys 2 * dim_head wide, and {what} "
                                    "stay dim_head wide: x-transformers fails in the forward"))
    return found


# the keywords AttentionLayers passes to each bias' class itself (rel_pos_kwargs may not repeat
# them), and those the class takes besides
BIAS_KWARGS = {"rel_pos_bias": ("RelativePositionBias", ()),
               "dynamic_pos_bias": ("DynamicPositionBias", ()),
               "alibi_pos_bias": ("AlibiPositionalBias", ("slopes",))}


def check_rel_pos_kwargs(spec: Spec, layers) -> list[Diagnostic]:
    kwargs, key = layers["rel_pos_kwargs"] or {}, f"{layers.key}.rel_pos_kwargs"
    if not kwargs:
        return []
    scheme = next((name for name in BIAS_KWARGS if layers[name]), None)
    if scheme is None:
        return [diagnostic(spec, key, "rel-pos-kwargs-ignored",
                           "rel_pos_kwargs has no effect without a position bias (alibi_pos_bias, "
                           "rel_pos_bias or dynamic_pos_bias)", "warning")]
    cls, takes = BIAS_KWARGS[scheme]
    found = []
    for name, value in kwargs.items():
        if name in takes:
            found += check_alibi_slopes(spec, layers, f"{key}.{name}", value)
        elif scheme == "alibi_pos_bias" and name not in ("heads", "total_heads"):
            found.append(diagnostic(spec, f"{key}.{name}", "rel-pos-kwargs-ignored",
                                    f"rel_pos_kwargs.{name} has no effect: {cls} takes only "
                                    "slopes (and swallows other keys)", "warning"))
        else:
            allowed = f"takes only {', '.join(takes)}" if takes else "takes none"
            found.append(diagnostic(spec, f"{key}.{name}", "rel-pos-kwargs",
                                    f"rel_pos_kwargs.{name}: with {scheme}, rel_pos_kwargs {allowed} "
                                    f"(x-transformers sets {cls}'s other keywords itself, and fails "
                                    "building it)"))
    return found


def check_alibi_slopes(spec: Spec, layers, key: str, value) -> list[Diagnostic]:
    """One finite number per ALiBi head (alibi_num_heads, else heads)."""
    alibi_heads = layers["alibi_num_heads"] or layers["heads"]
    numbers = isinstance(value, (list, tuple)) and all(
        isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) for s in value)
    if numbers and len(value) == alibi_heads:
        return []
    return [diagnostic(spec, key, "rel-pos-kwargs",
                       f"rel_pos_kwargs.slopes must be a list of {alibi_heads} finite numbers, one "
                       "per ALiBi head (alibi_num_heads, else heads)")]


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
