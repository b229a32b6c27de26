"""check-resource-budget: refuse, before anything is allocated, a model too large to mean it
(docs/security.md, E7).

A graph check (GRAPH_CHECKS): it reads the compiled IR, which validation builds for it after the
spec checks (passes/__init__.py, `OnGraph`), and the spec only to locate and name what it blames.
The parameter count is exact (the IR's, as `xtc inspect` reports it; check-sizes has already
bounded the graph's size), and the limit is `--max-params` / `XTC_MAX_PARAMS`, 1e11 by default.

The error is located at what makes the model large: within the largest contributor
(`costs.contributors`: the feedforward blocks, the attention blocks, an embedding, the logits
head, ...), the factor furthest above its usual value, as a ratio. The usual value is the
keyword table's default or, for keys without one (dim, depth, num_tokens, ...), the value in
examples/gpt.yaml (examples/vit.yaml's for images). The message names the largest contributors
with their share and formula, and what one sequence of max_seq_len costs in activations, so
that the author sees both sides of the model's size.

>>> approx(16 * 10**18), approx(7 * 10**400)
('1.6e+19', '7e+400')
>>> limit_from_text("2.5e9")
2500000000
>>> limit_from_text("many")
Traceback (most recent call last):
ValueError: XTC_MAX_PARAMS must be a positive number such as 1e11, got 'many'
"""

from __future__ import annotations

import math
import os

from xtc.spec import Diagnostic, ModuleSpec, Spec
from xtc.spec.keywords import LAYER_TYPES, keyword_table

from ..costs import (
    Contributor,
    Factor,
    activation_values,
    contributors,
    default_lengths,
    memory_positions,
    number_text,
    output_tokens,
    parameters_by_owner,
    percent,
    sequence_lengths,
)
from ..ir import Graph
from .modules import all_modules, diagnostic

ID = "check-resource-budget"
DEFAULT_MAX_PARAMS = 10**11
ENVIRONMENT = "XTC_MAX_PARAMS"
# The usual value of a size key whose keyword-table default is not a positive number:
# examples/gpt.yaml's (its dim for every width), examples/vit.yaml's for images,
# examples/memory.yaml's for memory tokens. A key with none is measured against 1, unnamed.
EXAMPLE_VALUES = {"dim": 512, "depth": 6, "heads": 8, "num_tokens": 20000, "max_seq_len": 1024,
                  "emb_dim": 512, "dim_in": 512, "dim_out": 512, "dim_context": 512,
                  "image_size": 256, "patch_size": 32, "num_classes": 1000,
                  "num_memory_tokens": 20}
SHOWN_CONTRIBUTORS = 3  # at most, in the message: the largest, then those of 1% or more


def limit_from_text(text: str, source: str = ENVIRONMENT) -> int:
    """A parameter limit written as an integer or a float such as 1e11."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (1 <= value < math.inf):
        raise ValueError(f"{source} must be a positive number such as 1e11, got {text!r}")
    return int(value)


def default_limit() -> int:
    text = os.environ.get(ENVIRONMENT)
    return DEFAULT_MAX_PARAMS if text is None else limit_from_text(text)


class ResourceBudget:
    """The graph check, with its limit: None reads XTC_MAX_PARAMS (or the default) at each call."""

    __module__ = __name__

    def __init__(self, max_params: int | None = None) -> None:
        self.max_params = max_params

    def __repr__(self) -> str:
        return f"ResourceBudget({self.max_params!r})"

    def __call__(self, graph: Graph, spec: Spec) -> list[Diagnostic]:
        limit = self.max_params if self.max_params is not None else default_limit()
        count = sum(parameters_by_owner(graph).values())
        if count <= limit:
            return []
        groups = contributors(graph)
        cause = blamed_factor(spec, groups[0])
        key = written_key(spec, cause.key) if cause else next(iter(all_modules(spec))).key
        over = (f"the model has {approx(count)} parameters, over the limit of {approx(limit)} "
                f"(--max-params / {ENVIRONMENT})")
        largest = "largest contributors: " + ", ".join(map(contributor_text, shown(groups)))
        parts = (over, cause_text(spec, cause), largest, activations_text(graph))
        return [diagnostic(spec, key, "parameter-budget", "; ".join(p for p in parts if p))]


def blamed_factor(spec: Spec, largest: Contributor) -> Factor | None:
    """The factor of the largest contributor furthest above its usual value (on a tie, one the
    spec writes); None when no factor has a key."""
    candidates = [f for f in largest.factors if f.key]
    if not candidates:
        return None

    def unusual(factor: Factor) -> tuple[float, bool]:
        return ratio(spec, factor), written_key(spec, factor.key) in spec.locations

    return max(candidates, key=unusual)


def ratio(spec: Spec, factor: Factor) -> float:
    """How far the factor is above its usual value, in the direction that adds parameters."""
    usual = usual_value(spec, factor.key) or 1
    return usual / factor.value if factor.inverse else factor.value / usual


def usual_value(spec: Spec, key: str) -> float | None:
    """The keyword table's default where it is a positive number, else EXAMPLE_VALUES'."""
    module, name = module_and_name(spec, key)
    default = keyword_default(module, name) if module else None
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
        return default
    return EXAMPLE_VALUES.get(name.rpartition(".")[2])


def module_and_name(spec: Spec, key: str) -> tuple[ModuleSpec | None, str]:
    """The innermost module that holds a dotted key, and the key within it (`ff.mult`)."""
    best = None
    for module in all_modules(spec):
        if key.startswith(f"{module.key}.") and (best is None or len(module.key) > len(best.key)):
            best = module
    return best, key[len(best.key) + 1:] if best else key


def keyword_default(module: ModuleSpec, name: str) -> object:
    table = keyword_table()
    section, _, word = name.rpartition(".")
    if section:
        keywords = table.routed(section)
    elif module.type in LAYER_TYPES:
        keywords = table.layers(module.type)
    else:
        keywords = table.wrapper(module.type)
    entry = keywords.get(word)
    return entry.default if entry else None


def written_key(spec: Spec, key: str) -> str:
    """The key as the spec writes it: cross-attention takes what `attn:` sets unless
    `cross_attn:` overrides it."""
    inherited = key.replace(".cross_attn.", ".attn.")
    if key not in spec.locations and inherited in spec.locations:
        return inherited
    return key


def cause_text(spec: Spec, factor: Factor | None) -> str:
    """`ff.mult 10000000 is 2.5e+06 times its usual 4`; nothing when no factor is unusual or
    the key has no usual value."""
    if factor is None or ratio(spec, factor) <= 1 or usual_value(spec, factor.key) is None:
        return ""
    usual = number_text(usual_value(spec, factor.key))
    if factor.inverse:
        return f"{factor.text()} is 1/{ratio(spec, factor):.3g} of its usual {usual}"
    return f"{factor.text()} is {ratio(spec, factor):.3g} times its usual {usual}"


def shown(groups: list[Contributor]) -> list[Contributor]:
    return [c for i, c in enumerate(groups[:SHOWN_CONTRIBUTORS]) if i == 0 or c.share >= 0.01]


def contributor_text(group: Contributor) -> str:
    formula = f" ({group.formula})" if group.factors else ""
    return f"{group.name} {percent(group.share)}{formula}"


def activations_text(graph: Graph) -> str:
    """What one input of every model's max_seq_len makes in a forward pass (costs.py, as
    `xtc inspect` counts it)."""
    lengths = sequence_lengths(graph, default_lengths(graph))
    values = activation_values(graph, lengths, memory_positions(graph))
    positions = number_text(output_tokens(graph, lengths))
    return (f"one full-length input ({positions} positions) would also make about "
            f"{approx(values)} activation values in a forward pass "
            f"({approx(4 * values)} bytes in float32)")


def approx(count: int) -> str:
    """3 significant digits; past a float's range, the leading digit and the power of ten
    (formatting such an int as a float would raise OverflowError)."""
    if count < 10**300:
        return f"{count:.3g}"
    text = str(count)  # at most a few hundred digits: spec integers are at most 30 digits long
    return f"{text[0]}e+{len(text) - 1}"


check_resource_budget = ResourceBudget()
