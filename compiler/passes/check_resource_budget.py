"""check-resource-budget: refuse, before anything is allocated, a model too large to mean it
(docs/security.md, E7).

The parameter count is exact (the IR's, as `xtc inspect` reports it; check-sizes has already
bounded the graph's size), and the limit is `--max-params` / `XTC_MAX_PARAMS`, 1e11 by default.
The message also states what one sequence of max_seq_len costs in activations, so that the
author sees both sides of the model's size.

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

from xtc.spec import Diagnostic, Spec

from ..costs import parameters_by_owner
from .modules import all_modules, diagnostic

ID = "check-resource-budget"
DEFAULT_MAX_PARAMS = 10**11
ENVIRONMENT = "XTC_MAX_PARAMS"
# Keywords that scale the parameter count: the largest value written is named as the cause.
SIZE_KEYWORDS = ("dim", "num_tokens", "depth", "max_seq_len", "heads", "dim_head", "emb_dim",
                 "image_size", "num_classes", "dim_in", "dim_out", "dim_context", "kv_heads",
                 "value_dim_head", "num_mem_kv", "num_memory_tokens", "num_register_tokens",
                 "rel_pos_num_buckets", "logits_dim", "mult")


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
    """The check, with its limit: None reads XTC_MAX_PARAMS (or the default) at each call."""

    __module__ = __name__
    needs_valid_spec = True  # it builds the IR, which a rejected spec may not describe

    def __init__(self, max_params: int | None = None) -> None:
        self.max_params = max_params

    def __call__(self, spec: Spec) -> list[Diagnostic]:
        from .. import compile_graph  # the passes are imported by the package that builds graphs

        limit = self.max_params if self.max_params is not None else default_limit()
        graph = compile_graph(spec)
        count = sum(parameters_by_owner(graph).values())
        if count <= limit:
            return []
        key = largest_size_key(spec)
        return [diagnostic(spec, key, "parameter-budget",
                           f"the model has {approx(count)} parameters, over the limit of {approx(limit)} "
                           f"(--max-params / {ENVIRONMENT}); {activations_text(spec, graph)}")]


def largest_size_key(spec: Spec) -> str:
    """The size keyword with the largest value written in the spec: the likely cause."""
    best, best_key = -1, ""
    for module in all_modules(spec):
        for name in SIZE_KEYWORDS:
            value = module.options.get(name) if name in module.given else None
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > best:
                best, best_key = value, f"{module.key}.{name}"
    if best_key:
        return best_key
    return next(iter(all_modules(spec))).key


def activations_text(spec: Spec, graph) -> str:
    from ..inspection import (
        activation_values,
        default_lengths,
        output_tokens,
        resolved_models,
        sequence_lengths,
    )

    lengths = sequence_lengths(graph, default_lengths(resolved_models(spec)))
    values = activation_values(graph, lengths)
    return (f"one full-length input ({approx(output_tokens(graph, lengths))} positions) would also "
            f"make about {approx(values)} activation values in a forward pass "
            f"({approx(4 * values)} bytes in float32)")


def approx(count: int) -> str:
    """3 significant digits; past a float's range, the leading digit and the power of ten
    (formatting such an int as a float would raise OverflowError)."""
    if count < 10**300:
        return f"{count:.3g}"
    text = str(count)  # at most a few hundred digits: spec integers are at most 30 digits long
    return f"{text[0]}e+{len(text) - 1}"


check_resource_budget = ResourceBudget()
