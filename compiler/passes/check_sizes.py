"""check-sizes: sizes xtc must bound before it builds anything from a spec (bad-inputs R1).

The IR has a node per sublayer and the emitted module a loop over them: `depth: 100000` would
take half a minute and half a gigabyte to compile, and a layout derived from a huge depth
(`par_ratio`, `sandwich_coef`) would be built as a tuple of that many letters. So each layer stack
runs at most MAX_SUBLAYERS sublayers: twice what the deepest published models use (DeepNet,
arXiv 2203.00555, 1000 blocks). Token shifting splits the features into one chunk per shift, so
there can be at most `dim` shifts. The feedforward's width is int(dim * mult): it must be a
whole number of features, at least one (mult 1e308 overflows it, mult 1e-300 makes it 0).

Everything here is arithmetic on the spec's integers: nothing is built at their size.
"""

from __future__ import annotations

import math

from xtc.spec import Diagnostic, Spec

from ..resolve import default_block
from .modules import diagnostic, each_value, layer_modules

ID = "check-sizes"
MAX_SUBLAYERS = 4096


def check_sizes(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_sublayer_count(spec, layers) + check_token_shifts(spec, layers)
        found += check_feedforward_width(spec, layers)
    return found


# The other checks, and everything after them, may build structures of these sizes.
check_sizes.stops_on_error = "sizes too large to check further"


def sublayer_count(layers) -> tuple[int, str] | None:
    """How many sublayers the stack runs, and the key that decides it (None without a depth)."""
    if layers["layers_execute_order"] is not None:
        return len(layers["layers_execute_order"]), "layers_execute_order"
    if layers["custom_layers"] is not None:
        return len(layers["custom_layers"]), "custom_layers"
    depth = layers["depth"]
    if depth is None:
        return None  # check-depth-given reports it
    return depth * len(default_block(layers)), "depth"


def check_sublayer_count(spec: Spec, layers) -> list[Diagnostic]:
    counted = sublayer_count(layers)
    if counted is None or counted[0] <= MAX_SUBLAYERS:
        return []
    count, key = counted
    return [diagnostic(spec, f"{layers.key}.{key}", "too-many-layers",
                       f"this stack would run {count} sublayers; xtc builds at most "
                       f"{MAX_SUBLAYERS} per stack (the deepest published models have about 2000)")]


def check_token_shifts(spec: Spec, layers) -> list[Diagnostic]:
    dim = layers["dim"]
    amount = max(each_value(layers["shift_tokens"]))
    if not amount or dim is None:
        return []
    chunks = amount + 1 if layers.type == "Decoder" else 2 * amount + 1
    if chunks <= dim:
        return []
    return [diagnostic(spec, f"{layers.key}.shift_tokens", "too-many-token-shifts",
                       f"shift_tokens {amount} splits the features into {chunks} chunks, "
                       f"more than dim ({dim}) has features")]


def check_feedforward_width(spec: Spec, layers) -> list[Diagnostic]:
    dim, mults = layers["dim"], each_value(layers.section("ff")["mult"])
    if dim is None or None in mults:
        return []
    bad = [mult for mult in mults if not (math.isfinite(dim * mult) and dim * mult >= 1)]
    if not bad:
        return []
    mult = bad[0]
    inner = dim * mult
    width = f"int({dim} * {mult!r}) = {int(inner)}" if math.isfinite(inner) else "overflow"
    return [diagnostic(spec, f"{layers.key}.ff.mult", "feedforward-width",
                       f"the feedforward's width is int(dim * ff.mult): {width}; it needs at least "
                       "1 feature")]
