"""check-per-layer-values: a list gives one value per layer, so it has one per layer.

x-transformers splits a tuple-valued `attn_*`, `cross_attn_*` or `ff_*` keyword one element per
layer only when its length is the number of self-attention, cross-attention or feedforward
layers (a custom layout's included); `layer_dropout` and `shift_tokens` take one value per
layer of every kind (AttentionLayers.__init__). A list of any other length is taken there as
one value for every layer (a boolean list then counts as true), its extra entries ignored, or
too few layers built: here it is refused, naming both lengths. With `weight_tie_layers` every
block runs the first block's weights, so per-layer values cannot apply.

Which keywords take a list at all is the schema's rule (spec/support.py, PER_LAYER_KEYWORDS).
"""

from __future__ import annotations

from xtc.spec import Diagnostic, ModuleSpec, Spec
from xtc.spec.support import PER_LAYER_KEYWORDS

from ..resolve import EVERY_LAYER, SECTION_LAYERS
from ..resolve import layer_types as stack_layer_types
from .check_layer_layout import check_custom, check_par, check_sandwich
from .modules import diagnostic, layer_modules

ID = "check-per-layer-values"


def check_per_layer_values(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        if not any(per_layer_lists(layers)):
            continue
        types = layer_types(spec, layers)
        if types is not None:
            found += check_lengths(spec, layers, types)
    return found


# The other checks read these values one layer at a time: they wait for the lengths.
check_per_layer_values.stops_on_error = "lists they would read one layer at a time"


def layer_types(spec: Spec, layers: ModuleSpec) -> tuple[str, ...] | None:
    """The type of every layer the stack builds, in order (None without a depth, or with a
    layout that check-layer-layout refuses: its errors are the ones to fix first)."""
    if layers["custom_layers"] is None and layers["depth"] is None:
        return None
    if check_custom(spec, layers) + check_sandwich(spec, layers) + check_par(spec, layers):
        return None
    return stack_layer_types(layers)


def per_layer_lists(layers: ModuleSpec):
    """(dotted key, list, layer type or "" for every layer) of each list the stack holds."""
    for name in EVERY_LAYER:  # the schema admits a list nowhere else (PER_LAYER_KEYWORDS)
        if isinstance(layers[name], tuple):
            yield name, layers[name], ""
    for section, (kind, _) in SECTION_LAYERS.items():
        for name in PER_LAYER_KEYWORDS[section] & set(layers.sections_given.get(section, ())):
            value = layers.section(section)[name]
            if isinstance(value, tuple):
                yield f"{section}.{name}", value, kind


def check_lengths(spec: Spec, layers: ModuleSpec, types: tuple[str, ...]) -> list[Diagnostic]:
    found = []
    for key, values, kind in per_layer_lists(layers):
        if layers["weight_tie_layers"]:
            found.append(diagnostic(spec, f"{layers.key}.{key}", "per-layer-with-tied-weights",
                                    f"{key} gives a value per layer, but weight_tie_layers runs "
                                    "the first block's weights in every block"))
            continue
        wanted = types.count(kind) if kind else len(types)
        if len(values) == wanted:
            continue
        layer = f"{SECTION_LAYERS[key.split('.')[0]][1]} layer" if kind else "layer"
        found.append(diagnostic(spec, f"{layers.key}.{key}", "per-layer-length",
                                f"{key} has {counted(len(values), 'value')}, one per layer, but "
                                f"this stack has {counted(wanted, layer)}"
                                + ("" if kind else " (of every kind)")))
    return found


def counted(count: int, noun: str) -> str:
    """`1 value`, `3 values`."""
    return f"{count} {noun}{'s' * (count != 1)}"
