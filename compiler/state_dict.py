"""Which reference parameter becomes which parameter of the emitted model.

The emitted model uses plain `nn.LayerNorm(dim, bias=False)`, whose weight is the gain itself;
x-transformers stores norm gains inside its layer stacks with a unit offset (`gamma`, used as
`gamma + 1`, initialised to 0). Conversion adds the 1, so both models compute the same function
and receive the same gradients.

>>> from .ir import NormAttrs
>>> g = Graph()
>>> _ = g.add("n", OpKind.NORM, NormAttrs("layernorm", 8), ref_path="attn_layers.layers.0.0.0",
...           block=0, role="attn_norm")
>>> parameter_rules(g)
[Rule(reference='attn_layers.layers.0.0.0.gamma', emitted='blocks.0.attn_norm.weight', add_one=True)]
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import Graph, Op, OpKind


@dataclass(frozen=True)
class Rule:
    reference: str
    emitted: str
    add_one: bool = False  # the reference stores gamma - 1


def parameter_rules(graph: Graph) -> list[Rule]:
    rules = []
    for op in graph.ops():
        prefix = graph.module_path(op)
        for reference, emitted, add_one in parameter_names(op):
            rules.append(Rule(f"{op.ref_path}.{reference}", f"{prefix}.{emitted}", add_one))
    return rules


def parameter_names(op: Op) -> list[tuple[str, str, bool]]:
    """(reference suffix, emitted suffix, add one) for each parameter an op owns."""
    if op.kind in (OpKind.TOKEN_EMBEDDING, OpKind.POSITION_EMBEDDING, OpKind.LOGITS):
        return [("weight", "weight", False)]
    if op.kind is OpKind.NORM:
        return [("gamma", "weight", True)]
    if op.kind is OpKind.ATTENTION:
        names = ["to_q", "to_k", "to_v"] + (["to_out"] if op.attrs.project_out else [])
        return [(f"{name}.weight", f"{name}.weight", False) for name in names]
    if op.kind is OpKind.FEEDFORWARD:
        return [(f"ff.0.0.{p}", f"proj_in.{p}", False) for p in ("weight", "bias")] + \
               [(f"ff.2.{p}", f"proj_out.{p}", False) for p in ("weight", "bias")]
    return []

