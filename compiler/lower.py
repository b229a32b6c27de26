"""IR graph -> render context: choose the classes, their code and the config of the module.

The graph has one op per norm, attention and feedforward of every block; the emitted module has
one class per concept and a loop over identical blocks, as a person would write it. Lowering
checks that the blocks are identical (an internal invariant today: nothing yet makes them
differ) and reads the shared structure from block 0. Top-level ops become op contexts, rendered
by one template per kind.
"""

from __future__ import annotations

from xtc.spec import Spec
from xtc.spec.names import RESERVED_CLASS_NAMES

from .context import (
    FUNCTIONAL,
    AttentionClass,
    BlockClass,
    BlocksOp,
    BlockStep,
    ConfigField,
    DropoutOp,
    FeedForwardClass,
    LogitsOp,
    MemoryTokensOp,
    ModuleContext,
    NormOp,
    PositionEmbeddingOp,
    ProjectOp,
    StripOp,
    TokenEmbeddingOp,
    WrapperClass,
    runtime,
)
from .ir import Graph, Op, OpKind
from .resolve import ResolvedWrapper, resolve

NORM_INIT = {
    "layernorm": "nn.LayerNorm(config.{width}, bias=False)",
    "rmsnorm": "RMSNorm(config.{width})",
    "scalenorm": "ScaleNorm(config.{width})",
}
NORM_NAME = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "scalenorm": "ScaleNorm"}
NORM_IMPORTS = {"rmsnorm": runtime("norms", "RMSNorm"), "scalenorm": runtime("norms", "ScaleNorm")}
ACTIVATIONS = {
    "gelu": ("nn.GELU()", "GELU"),
    "silu": ("nn.SiLU()", "SiLU"),
    "relu_squared": ("ReluSquared()", "ReLU²"),
}
BRANCH_CLASS = {OpKind.ATTENTION: "Attention", OpKind.FEEDFORWARD: "FeedForward"}
EMITTED_CLASSES = ("Config", "Attention", "FeedForward", "Block")


def lower(spec: Spec, graph: Graph) -> ModuleContext:
    model = resolve(spec)
    layers = model.layers
    assert set(EMITTED_CLASSES) <= RESERVED_CLASS_NAMES, "a spec name could shadow a class"
    classes = (
        attention_class(shared_attrs(graph, OpKind.ATTENTION)),
        feedforward_class(shared_attrs(graph, OpKind.FEEDFORWARD)),
        block_class(graph, layers.pre_norm, layers.layer_dropout > 0),
        wrapper_class(spec, model, graph),
    )
    kind = "decoder-only (GPT-style)" if layers.causal else "encoder-only (BERT-style)"
    article = "a" if layers.causal else "an"
    stack = "Decoder" if layers.causal else "Encoder"
    diagram = (f"tokens (B, T) -> embeddings -> {layers.depth} x Block "
               f"-> logits (B, T, {model.num_tokens})")
    return ModuleContext(
        spec_name=spec.name,
        sha256=spec.sha256,
        class_name=spec.class_name,
        summary=f"{article} {kind} transformer, x-transformers TransformerWrapper + {stack}.",
        diagram=(diagram,),
        config=config_fields(model),
        classes=classes,
    )


def shared_attrs(graph: Graph, kind: OpKind):
    ops = graph.ops(kind)
    assert ops and all(op.attrs == ops[0].attrs for op in ops), f"{kind.value} ops differ"
    return ops[0].attrs


def attention_class(attrs) -> AttentionClass:
    return AttentionClass(attrs.causal, attrs.flash, attrs.project_out, attrs.dropout > 0,
                          attrs.num_mem_kv > 0)


def feedforward_class(attrs) -> FeedForwardClass:
    activation, name = ACTIVATIONS[attrs.activation]
    return FeedForwardClass(activation, name, attrs.glu, attrs.bias, attrs.dropout > 0)


# -- blocks -----------------------------------------------------------------------------------


def block_class(graph: Graph, pre_norm: bool, layer_dropout: bool) -> BlockClass:
    """The residual sublayers of a block, in order, read from block 0 (all blocks agree)."""
    layouts: dict[int, list[BlockStep]] = {}
    norm_types = set()
    for op in graph.ops(OpKind.RESIDUAL):
        step, norm_type = block_step(graph, op, pre_norm)
        layouts.setdefault(op.block, []).append(step)
        norm_types.add(norm_type)
    steps = layouts[0]
    assert all(layout == steps for layout in layouts.values()), "blocks differ in structure"
    imports = frozenset(NORM_IMPORTS[t] for t in norm_types if t in NORM_IMPORTS)
    return BlockClass(pre_norm, layer_dropout, tuple(steps), imports)


def block_step(graph: Graph, residual: Op, pre_norm: bool) -> tuple[BlockStep, str]:
    branch = graph[residual.inputs[1]]
    norm = graph[branch.inputs[0]] if pre_norm else graph.users(residual.name)[0]
    assert norm.kind is OpKind.NORM and norm.block == residual.block
    class_name, norm_name = BRANCH_CLASS[branch.kind], NORM_NAME[norm.attrs.norm_type]
    extra = ", mask=mask" if branch.kind is OpKind.ATTENTION else ""
    if pre_norm:
        update = f"x + self.{branch.role}(self.{norm.role}(x){extra})"
        diagram = f"x + {class_name}({norm_name}(x))"
    else:
        update = f"self.{norm.role}(x + self.{branch.role}(x{extra}))"
        diagram = f"{norm_name}(x + {class_name}(x))"
    step = BlockStep(norm=norm.role, norm_init=NORM_INIT[norm.attrs.norm_type].format(width="dim"),
                     branch=branch.role, branch_init=f"{class_name}(config)", update=update,
                     diagram=diagram)
    return step, norm.attrs.norm_type


# -- the model class --------------------------------------------------------------------------


def wrapper_class(spec: Spec, model: ResolvedWrapper, graph: Graph) -> WrapperClass:
    width, symbol = ("emb_dim", "E") if model.emb_dim != model.layers.dim else ("dim", "C")
    ops, imports, blocks_seen = [], set(), False
    for op in graph.ops():
        if op.block is not None:
            if not blocks_seen:
                ops.append(BlocksOp())
                blocks_seen = True
            continue
        context = top_level_op(op, width, symbol, imports)
        if context is not None:
            ops.append(context)
    limit = "self.config.max_seq_len" if model.positions == "learned" else "None"
    what = "causal language model" if model.layers.causal else "bidirectional encoder"
    docstring = f"The {what}: embeddings, blocks, final norm and the logits head."
    return WrapperClass(spec.class_name, docstring, limit, tuple(ops), frozenset(imports))


def top_level_op(op: Op, width: str, symbol: str, imports: set):
    """The op context of a model-level op, or None for ops that render as part of another
    (the embedding sum, the mask padding, inputs and outputs)."""
    attrs = op.attrs
    if op.kind is OpKind.TOKEN_EMBEDDING:
        if attrs.l2norm:
            imports.add(FUNCTIONAL)
        return TokenEmbeddingOp(width, symbol, attrs.l2norm)
    if op.kind is OpKind.POSITION_EMBEDDING:
        if attrs.scheme == "scaled_sinusoidal":
            imports.add(runtime("positions", "ScaledSinusoidalEmbedding"))
        return PositionEmbeddingOp(attrs.scheme, width, symbol, attrs.l2norm)
    if op.kind is OpKind.NORM:
        norm_width = width if op.role == "post_emb_norm" else "dim"
        if attrs.norm_type in NORM_IMPORTS:
            imports.add(NORM_IMPORTS[attrs.norm_type])
        return NormOp(op.role, NORM_INIT[attrs.norm_type].format(width=norm_width))
    if op.kind is OpKind.DROPOUT:
        return DropoutOp(op.role)
    if op.kind is OpKind.PROJECT:
        return ProjectOp()
    if op.kind is OpKind.MEMORY_TOKENS:
        imports.add(FUNCTIONAL)
        return MemoryTokensOp()
    if op.kind is OpKind.STRIP:
        return StripOp()
    if op.kind is OpKind.LOGITS:
        return LogitsOp(attrs.tied)
    return None


def config_fields(model: ResolvedWrapper) -> tuple[ConfigField, ...]:
    """The literals of the model, each from a validated spec value (repr) or derived from one."""
    layers, attn, ff = model.layers, model.layers.attention, model.layers.feedforward
    fields = [
        ConfigField("num_tokens", "int", repr(model.num_tokens)),
        ConfigField("max_seq_len", "int", repr(model.max_seq_len)),
        ConfigField("dim", "int", repr(layers.dim)),
        ConfigField("depth", "int", repr(layers.depth)),
        ConfigField("heads", "int", repr(attn.heads)),
        ConfigField("dim_head", "int", repr(attn.dim_head)),
        ConfigField("ff_inner_dim", "int", repr(ff.inner_dim), "feedforward width"),
    ]
    optional = [
        (model.emb_dim != layers.dim, "emb_dim", "int", model.emb_dim, "embedding width"),
        (model.emb_dropout > 0, "emb_dropout", "float", model.emb_dropout, ""),
        (attn.dropout > 0, "attn_dropout", "float", attn.dropout, "on attention weights"),
        (ff.dropout > 0, "ff_dropout", "float", ff.dropout, "after the activation"),
        (layers.layer_dropout > 0, "layer_dropout", "float", layers.layer_dropout, "stochastic depth"),
        (attn.num_mem_kv > 0, "num_mem_kv", "int", attn.num_mem_kv, "persistent memory slots"),
        (model.num_memory_tokens > 0, "num_memory_tokens", "int", model.num_memory_tokens, ""),
        (model.tie_embedding, "tie_embedding_scale", "float", model.tie_embedding_scale, ""),
    ]
    fields += [ConfigField(name, type_, repr(value), comment)
               for used, name, type_, value, comment in optional if used]
    return tuple(fields)
