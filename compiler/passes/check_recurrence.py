"""check-recurrence: Transformer-XL memories (`max_mem_len`) and ERNIE-Doc's shift
(`shift_mem_down`) on a TransformerWrapper, and memories on a ContinuousTransformerWrapper or an
XValTransformerWrapper (which have no shift), what they need and what xtc compiles with them.

- shift_mem_down reorders the memories a forward is given: without max_mem_len there are none
  (the forward takes no `mems`), and a shift by a multiple of depth keeps the order. Both do
  nothing: a warning.
- The memories carry relative distances only where positions are relative: learned or sinusoidal
  absolute positions restart at 0 in every segment, so a token of the memory and one of the
  segment can have the same position (the Transformer-XL paper, section 3.3, replaces them with
  relative encodings; x-transformers accepts it): a warning that says so.
- Memory tokens (num_memory_tokens) would be remembered with the tokens, and generation past a
  segment needs the kv cache that they prevent; persistent memory slots (attn.num_mem_kv) with a
  memory differ from the reference: refused, as are custom layouts and macaron blocks, whose
  attention does not read the block's input, inside an XTransformer or a composite (no
  segment-wise methods there), and stacks without self-attention (nothing to remember).
- Belief attention (attn.orthog_projected_values) projects the outputs against the values, which
  then hold the memory's positions too: the reference's forward fails, refused; so does
  data-dependent ALiBi, whose bias spans the segment alone, and polar positions, whose angles do.
- The orthogonal and the mean / variance split residual updates read the whole segment, so
  generation cannot keep the kv cache that the segment-wise generation needs: not compiled yet,
  refused.
- Hyper-connections (num_residual_streams above 1): x-transformers remembers the residual
  streams, B * S rows, and its next forward fails on them: refused; gated_multi_residual's one
  stream is not compiled with memories yet, refused.
- Multi-head latent attention's keys and values (attn.use_latent_kv) would read the memory
  through their latent: not compiled yet, refused. So are value residuals (add_value_residual),
  whose mix would take in the memory's values too (the reference fails with the learned mix).
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from ..resolve import drops_absolute_positions, layer_types, positions
from .check_residual_options import WHOLE_ROW
from .modules import all_modules, diagnostic, each_value

ID = "check-recurrence"

RECURRENT_WRAPPERS = ("TransformerWrapper", "ContinuousTransformerWrapper", "XValTransformerWrapper")

# why memory tokens are refused beside memories, past what every wrapper shares
MEMORY_TOKENS_WHY = {
    "TransformerWrapper": ("; its XLAutoregressiveWrapper.generate fails with them (an einops "
                           "error), and xtc's segment-wise generation needs the kv cache that "
                           "they prevent"),
}

ORTHOG_KEYWORDS = ("orthog_projected_values", "orthog_projected_values_per_head")
LAYOUT_KEYWORDS = ("custom_layers", "par_ratio", "sandwich_coef", "layers_execute_order", "macaron")
# layer keywords xtc does not compile beside memories yet: (code, why)
LAYOUT_WHY = "a block's memory is its input, which its attention must read first"
WHOLE_ROW_WHY = ("the update reads the whole segment, so generation cannot keep the kv cache "
                 "that xtc's segment-wise generation needs")
NOT_YET_WITH_MEMORY = {
    **dict.fromkeys(LAYOUT_KEYWORDS, ("memory-with-custom-layout", LAYOUT_WHY)),
    **dict.fromkeys(WHOLE_ROW, ("memory-with-whole-row-residual", WHOLE_ROW_WHY)),
}


def check_recurrence(spec: Spec) -> list[Diagnostic]:
    found = []
    outer = spec.model
    for module in all_modules(spec):
        if module.type not in RECURRENT_WRAPPERS:
            continue
        key, layers = module.key, module.children.get("attn_layers")
        remembers = module["max_mem_len"] or 0
        shift = module.options.get("shift_mem_down") or 0  # a TransformerWrapper's only
        if shift and not remembers:
            found.append(diagnostic(spec, f"{key}.shift_mem_down", "shift-mem-down-without-memory",
                                    "shift_mem_down has no effect without max_mem_len: there "
                                    "are no memories to shift", "warning"))
        if not remembers or layers is None:
            continue
        if shift and shift % layers["depth"] == 0:
            found.append(diagnostic(spec, f"{key}.shift_mem_down", "shift-mem-down-keeps-order",
                                    f"shift_mem_down {shift} is a multiple of depth "
                                    f"({layers['depth']}): every block reads its own memory, as "
                                    "without it", "warning"))
        found += memory_conflicts(spec, module, layers, outer)
    return found


def memory_conflicts(spec: Spec, module, layers, outer) -> list[Diagnostic]:
    """What max_mem_len meets in this wrapper: errors for what xtc refuses with it, a warning
    for absolute positions."""
    at = f"{module.key}.max_mem_len"
    found = []
    if outer is None or outer is not module:
        where = "a composite" if outer is None else "an XTransformer"
        found.append(diagnostic(spec, at, "memory-needs-top-level-wrapper",
                                f"max_mem_len inside {where} is not supported by xtc yet: "
                                f"compile the {module.type} on its own"))
    if module["num_memory_tokens"]:
        found.append(diagnostic(spec, at, "memory-with-memory-tokens",
                                "max_mem_len cannot be combined with num_memory_tokens: "
                                "x-transformers remembers the memory tokens with the tokens, so "
                                "a segment's memory holds the learned tokens of the one before"
                                + MEMORY_TOKENS_WHY.get(module.type, "")))
    if layers.section("attn")["num_mem_kv"]:
        found.append(diagnostic(spec, at, "memory-with-persistent-memory",
                                "max_mem_len with attn.num_mem_kv is not supported by xtc yet: "
                                "with rotary positions its outputs differ from x-transformers'"))
    for name in ORTHOG_KEYWORDS:
        if layers.section("attn")[name]:
            found.append(diagnostic(spec, at, "memory-with-orthog-projection",
                                    f"max_mem_len cannot be combined with attn.{name}: "
                                    "x-transformers projects the segment's outputs against "
                                    "values that include the memory's, longer than the segment, "
                                    "and its forward fails"))
    if layers["add_value_residual"]:
        found.append(diagnostic(spec, at, "memory-with-value-residual",
                                "max_mem_len with add_value_residual is not supported by xtc "
                                "yet: the memory's values would be mixed with the first "
                                "layer's memory values too, which xtc's memory path does not "
                                "(x-transformers fails with the learned mix)"))
    if any(each_value(layers.section("attn")["use_latent_kv"])):
        found.append(diagnostic(spec, at, "memory-with-latent-kv",
                                "max_mem_len with attn.use_latent_kv is not supported by xtc "
                                "yet: x-transformers projects the memory's keys and values "
                                "through the latent too, which xtc's memory path does not"))
    if layers.section("attn")["data_dependent_alibi"]:
        found.append(diagnostic(spec, at, "memory-with-data-dependent-alibi",
                                "max_mem_len cannot be combined with attn.data_dependent_alibi: "
                                "x-transformers sizes its bias by the segment alone, the keys "
                                "include the memory's, and its forward fails"))
    for name, (code, why) in NOT_YET_WITH_MEMORY.items():
        if layers[name]:
            found.append(diagnostic(spec, at, code,
                                    f"max_mem_len with {name} is not supported by xtc yet: {why}"))
    if layers["gated_multi_residual"] and layers["num_residual_streams"] == 1:
        found.append(diagnostic(spec, at, "memory-with-gated-multi-residual",
                                "max_mem_len with gated_multi_residual is not supported by xtc "
                                "yet: its memory would be the residual stream"))
    if layers["polar_pos_emb"]:
        found.append(diagnostic(spec, at, "memory-with-polar-positions",
                                "max_mem_len cannot be combined with polar_pos_emb: x-transformers "
                                "gives polar angles to the segment's positions alone, the keys "
                                "include the memory's, and its forward fails"))
    if layers["num_residual_streams"] > 1:
        found.append(diagnostic(spec, at, "memory-with-residual-streams",
                                "max_mem_len cannot be combined with num_residual_streams above "
                                "1: x-transformers remembers the streams, B * S rows, and its "
                                "next forward fails on them"))
    if layers.type == "CrossAttender" or "a" not in layer_types(layers):
        found.append(diagnostic(spec, at, "memory-without-self-attention",
                                "max_mem_len needs self-attention: these layers have none to "
                                "remember for"))
    # rotary and the T5 bias turn absolute positions off (AttentionLayers.disable_abs_pos_emb)
    if not drops_absolute_positions(layers) and positions(module) != "none":
        found.append(diagnostic(spec, at, "memory-with-absolute-positions",
                                "max_mem_len with absolute positions: they restart at 0 in each "
                                "segment, so the memory's tokens and the segment's share "
                                "positions; Transformer-XL needs relative positions (rotary, "
                                "ALiBi, the T5 or dynamic bias, with use_abs_pos_emb: false)",
                                "warning"))
    return found
