"""check-layer-layout: x-transformers' rules for custom sublayer layouts (AttentionLayers.__init__).

- A cross-attention sublayer ('c' in custom_layers) needs the layers to cross-attend, and (an
  xtc rule: the reference builds it and ignores the context) layers that cross-attend need a
  cross-attention sublayer: a layout without one (custom_layers, or sandwich_coef equal to
  depth) never reads the context; in an XTransformer's decoder, never reads the source.
- sandwich_coef k puts k attentions first and k feedforwards last: 0 < k <= depth.
- par_ratio spreads attention over depth * block sublayers: 1 < par_ratio <= that, and the
  attention sublayers must fit the resulting width.
- layers_execute_order indexes the sublayers: each index below their number, and (an xtc rule:
  the reference builds sublayers it never runs) every sublayer at least once; with custom_layers
  it replaces depth, which must then be left out.
- The layout comes from custom_layers, else par_ratio, else sandwich_coef: the ones after the
  first given are ignored (a warning, check-ignored-options), not checked.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from ..resolve import default_block, layer_types
from .modules import diagnostic, layer_modules

ID = "check-layer-layout"


def check_layer_layout(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_custom(spec, layers) + check_sandwich(spec, layers) + check_par(spec, layers)
        found += check_execute_order(spec, layers) + check_reads_context(spec, layers)
        found += check_only_attn(spec, layers)
    return found


def check_only_attn(spec: Spec, layers) -> list[Diagnostic]:
    """only_attn drops the feedforwards of the default blocks: a layout that writes one, or an
    execution order over sublayers, contradicts it (x-transformers 2.31.10 asserts both)."""
    if not layers["only_attn"]:
        return []
    found = []
    if "f" in (layers["custom_layers"] or ()):
        found.append(diagnostic(spec, f"{layers.key}.only_attn", "only-attn-with-feedforward-layers",
                                "only_attn drops every feedforward, and custom_layers writes one "
                                "(x-transformers 2.31.10 refuses this too)"))
    if layers["layers_execute_order"] is not None:
        found.append(diagnostic(spec, f"{layers.key}.only_attn", "only-attn-with-execute-order",
                                "only_attn cannot be combined with layers_execute_order "
                                "(x-transformers 2.31.10 refuses this too)"))
    return found


def check_execute_order(spec: Spec, layers) -> list[Diagnostic]:
    """Every index of layers_execute_order names a sublayer (AttentionLayers.__init__)."""
    order = layers["layers_execute_order"]
    if order is None:
        return []
    custom, depth = layers["custom_layers"], layers["depth"]
    if custom is None and depth is None:
        return []  # check-depth-given reports the missing depth
    if custom is not None and depth is not None:
        return [diagnostic(spec, f"{layers.key}.depth", "depth-with-execute-order",
                           "with custom_layers and layers_execute_order the layout is complete: "
                           "leave depth out")]
    if custom is None and layers["par_ratio"] is not None and check_par(spec, layers):
        return []  # check_par reports the ratio; the layout it would give is unknown
    # the sublayers the layout builds: par_ratio's can outnumber depth x the block's
    count = len(custom) if custom is not None else len(layer_types(layers))
    bad = [i for i in order if not 0 <= i < count]
    if bad:
        return [diagnostic(spec, f"{layers.key}.layers_execute_order",
                           "execute-order-index-out-of-range",
                           f"layers_execute_order has {bad[0]}, but there are {count} sublayers "
                           f"(indices 0 to {count - 1})")]
    unused = sorted(set(range(count)) - set(order))
    if unused:  # the reference builds them anyway: parameters that never take part
        return [diagnostic(spec, f"{layers.key}.layers_execute_order", "execute-order-skips-sublayer",
                           f"layers_execute_order never runs sublayer {unused[0]} of {count}; "
                           "every sublayer must run at least once")]
    return []


def check_custom(spec: Spec, layers) -> list[Diagnostic]:
    custom = layers["custom_layers"]
    if custom is None or "c" not in custom or layers.type == "CrossAttender" or layers["cross_attend"]:
        return []
    return [diagnostic(spec, f"{layers.key}.custom_layers", "custom-cross-needs-cross-attend",
                       "custom_layers has cross-attention ('c'): set cross_attend: true so the "
                       "layers take a context")]


def check_reads_context(spec: Spec, layers) -> list[Diagnostic]:
    """Layers that cross-attend have a cross-attention sublayer somewhere in their layout (the
    default block and par_ratio's always do)."""
    if layers.type == "CrossAttender" or not layers["cross_attend"]:
        return []
    k, depth = layers["sandwich_coef"], layers["depth"]
    if layers["custom_layers"] is not None:
        layout = "custom_layers"
    elif layers["par_ratio"] is None and k is not None and depth is not None and 0 < k <= depth:
        layout = "sandwich_coef"  # check_sandwich reports a coefficient past depth
    else:
        return []
    if "c" in layer_types(layers):
        return []
    side = layers.key.rpartition(".")[2]
    what = ("the decoder would never read the encoder's output" if side == "decoder"
            and spec.model is not None and spec.model.type == "XTransformer"
            else "cross_attend: true would do nothing (the context is never read)")
    if layout == "custom_layers":
        message = f"custom_layers has no cross-attention sublayer ('c'), so {what}: add 'c' to it"
    else:
        message = (f"sandwich_coef {k} equals depth: the layout is {k} self-attention, then {k} "
                   f"feedforward sublayers, with no cross-attention ('c'), so {what}: use a "
                   "smaller sandwich_coef, or custom_layers with 'c'")
    return [diagnostic(spec, f"{layers.key}.{layout}", "cross-attend-without-cross-layer", message)]


def check_sandwich(spec: Spec, layers) -> list[Diagnostic]:
    k, depth = layers["sandwich_coef"], layers["depth"]
    overridden = layers["custom_layers"] is not None or layers["par_ratio"] is not None
    if k is None or depth is None or overridden or 0 < k <= depth:
        return []
    return [diagnostic(spec, f"{layers.key}.sandwich_coef", "sandwich-coef-out-of-range",
                       f"sandwich_coef ({k}) must be between 1 and depth ({depth})")]


def check_par(spec: Spec, layers) -> list[Diagnostic]:
    ratio, depth = layers["par_ratio"], layers["depth"]
    if ratio is None or depth is None or layers["custom_layers"] is not None:
        return []
    block = default_block(layers)
    par_depth = depth * len(block)
    if not 1 < ratio <= par_depth:
        return [diagnostic(spec, f"{layers.key}.par_ratio", "par-ratio-out-of-range",
                           f"par_ratio ({ratio}) must be above 1 and at most depth x sublayers "
                           f"per block ({par_depth})")]
    attention = sum(1 for kind in block if kind != "f")
    cut = par_depth * 2 // 3
    width = (cut + cut // (par_depth // ratio)) // (par_depth // ratio)
    if attention > width:
        return [diagnostic(spec, f"{layers.key}.par_ratio", "par-ratio-block-too-large",
                           f"with par_ratio {ratio} each group has {width} sublayers, too few for "
                           f"the block's {attention} attention sublayers")]
    return []
