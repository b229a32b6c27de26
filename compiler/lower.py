"""IR graph -> render context: choose the classes, their code and the config of the module.

The graph has one op per norm, attention and feedforward of every block; the emitted module has
one class per concept and a loop over identical blocks, as a person would write it. Lowering
checks that the blocks are identical (an internal invariant today: nothing yet makes them
differ) and reads the shared structure from block 0.
"""

from __future__ import annotations

from xtc.spec import Spec
from xtc.spec.names import RESERVED_CLASS_NAMES

from .context import (
    AttentionClass,
    BlockClass,
    BlockStep,
    ConfigField,
    FeedForwardClass,
    ModuleContext,
    WrapperClass,
)
from .ir import Graph, Op, OpKind
from .resolve import resolve

NORM_INIT = {"layernorm": "nn.LayerNorm(config.dim, bias=False)"}
NORM_NAME = {"layernorm": "LayerNorm"}
ACTIVATIONS = {"gelu": ("nn.GELU()", "GELU")}
BRANCH_CLASS = {OpKind.ATTENTION: "Attention", OpKind.FEEDFORWARD: "FeedForward"}


def lower(spec: Spec, graph: Graph) -> ModuleContext:
    model = resolve(spec)
    layers = model.layers
    attention = shared_attrs(graph, OpKind.ATTENTION)
    feedforward = shared_attrs(graph, OpKind.FEEDFORWARD)
    activation, activation_name = ACTIVATIONS[feedforward.activation]
    classes = (
        AttentionClass(attention.causal, attention.flash, attention.project_out),
        FeedForwardClass(activation, activation_name, feedforward.inner_dim),
        BlockClass(block_steps(graph)),
        WrapperClass(spec.class_name, wrapper_docstring(layers.causal), NORM_INIT[layers.norm]),
    )
    assert {"Config", "Attention", "FeedForward", "Block"} <= RESERVED_CLASS_NAMES
    if layers.causal:
        summary = "a decoder-only (GPT-style) transformer, x-transformers TransformerWrapper + Decoder."
    else:
        summary = "an encoder-only (BERT-style) transformer, x-transformers TransformerWrapper + Encoder."
    diagram = (f"tokens (B, T) -> token + position embedding -> {layers.depth} x Block "
               f"-> LayerNorm -> logits (B, T, {model.num_tokens})")
    return ModuleContext(
        spec_name=spec.name,
        sha256=spec.sha256,
        class_name=spec.class_name,
        summary=summary,
        diagram=(diagram,),
        config=config_fields(model),
        classes=classes,
    )


def shared_attrs(graph: Graph, kind: OpKind):
    ops = graph.ops(kind)
    assert ops and all(op.attrs == ops[0].attrs for op in ops), f"{kind.value} ops differ"
    return ops[0].attrs


def block_steps(graph: Graph) -> tuple[BlockStep, ...]:
    """The residual sublayers of a block, in order, read from block 0 (all blocks agree)."""
    layouts = {}
    for op in graph.ops(OpKind.RESIDUAL):
        layouts.setdefault(op.block, []).append(step_of(graph, op))
    steps = layouts[0]
    assert all(layout == steps for layout in layouts.values()), "blocks differ in structure"
    return tuple(steps)


def step_of(graph: Graph, residual: Op) -> BlockStep:
    branch = graph[residual.inputs[1]]
    norm = graph[branch.inputs[0]]
    class_name = BRANCH_CLASS[branch.kind]
    extra = ", mask=mask" if branch.kind is OpKind.ATTENTION else ""
    return BlockStep(
        norm=norm.role,
        norm_init=NORM_INIT[norm.attrs.norm_type],
        branch=branch.role,
        branch_init=f"{class_name}(config)",
        call=f"self.{branch.role}(self.{norm.role}(x){extra})",
        diagram=f"{class_name}({NORM_NAME[norm.attrs.norm_type]}(x))",
    )


def config_fields(model) -> tuple[ConfigField, ...]:
    layers = model.layers
    return (
        ConfigField("num_tokens", "int", repr(model.num_tokens)),
        ConfigField("max_seq_len", "int", repr(model.max_seq_len)),
        ConfigField("dim", "int", repr(layers.dim)),
        ConfigField("depth", "int", repr(layers.depth)),
        ConfigField("heads", "int", repr(layers.heads)),
        ConfigField("dim_head", "int", repr(layers.dim_head)),
        ConfigField("ff_inner_dim", "int", repr(layers.ff_inner_dim), "feedforward width"),
    )


def wrapper_docstring(causal: bool) -> str:
    what = "causal language model" if causal else "bidirectional encoder"
    return f"The {what}: embeddings, blocks, final norm and the logits head."
