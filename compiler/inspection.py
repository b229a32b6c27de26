"""`xtc inspect`: what a spec builds, before building it.

Everything is read from the compiled IR (no torch): the graph with its shapes, parameters per
component, matmul FLOPs per token for a forward and a training step (conventions in costs.py),
kv-cache bytes per token, and which attention path each layer takes and why. `render.py`'s
siblings in this module turn the `Inspection` into text, JSON, DOT or Mermaid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from xtc.spec import Spec

from . import costs
from .costs import (
    ATTENTION_KINDS,
    default_lengths,
    output_tokens,
    sequence_lengths,
)
from .ir import Graph, Op, OpKind
from .models import models as graph_models
from .state_dict import join, parameter_names, parameter_rules, parameter_shapes


@dataclass(frozen=True)
class AttentionPath:
    """How one attention layer runs: through SDPA or with the score matrix in hand."""

    layer: str  # the module path, `blocks.0.attn`
    path: str  # "sdpa" or "explicit"
    flash: str  # "yes", "without a padding mask" or "no": may SDPA pick its flash kernel
    why: str


@dataclass(frozen=True)
class Block:
    """A run of consecutive blocks of one component with identical sublayers."""

    scope: str  # the submodule that holds the blocks ("" for a single model's own)
    first: int
    last: int
    sublayers: tuple[tuple[str, str, int], ...]  # (role, kind, parameters) of one block
    parameters: int  # of the whole run; 0 for blocks that reuse another's weights
    shape: str


@dataclass(frozen=True)
class StateKey:
    """A tensor of the emitted model's state dict and the x-transformers tensors it holds (rows
    of several stacked, for a fused projection)."""

    key: str
    reference: tuple[str, ...]
    shape: tuple[int, ...] | None = None  # None: one xtc does not compute (state_dict.parameter_shapes)
    owner_parameters: int = 0  # the parameters of the op that holds it (stands in for the shape)


@dataclass
class Inspection:
    name: str
    lengths: dict[str, int]  # symbolic length -> the value the figures assume
    tokens: int  # the positions the per-token figures divide by
    parameters: dict[str, dict[str, int]]  # component -> part -> count
    forward_flops: int
    training_flops: int
    attention_flops: int  # the share of the forward spent on scores and values
    cache_bytes_per_token: int  # self-attention, float32, per generated position
    cross_cache_bytes_per_token: int  # cross-attention, float32, per context position
    cache_layers: int
    # what the self-attention caches keep beside keys and values -> float32 bytes per position
    cache_carried: dict[str, int] = field(default_factory=dict)
    # each cached self-attention layer's float32 bytes per position, and its sliding window
    # (the positions it keeps at most; None: every one)
    cache_layer_bytes: tuple[int, ...] = ()
    cache_windows: tuple[int | None, ...] = ()
    # each cached layer's kv latent width and decoupled-rope key heads (multi-head latent
    # attention, which keeps them in place of keys and values; 0: keys and values)
    cache_latents: tuple[int, ...] = ()
    cache_rope_heads: tuple[int, ...] = ()
    memory_layers: int = 0  # Transformer-XL: blocks that keep a memory of earlier segments
    memory_bytes_per_layer: int = 0  # float32, per sequence, at max_mem_len positions
    attention: list[AttentionPath] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    graph: Graph | None = None
    op_parameters: dict[str, int] = field(default_factory=dict)  # counted (owner) ops only
    warnings: list[str] = field(default_factory=list)  # lengths the emitted model refuses
    state_dict: list[StateKey] = field(default_factory=list)

    def cache_bytes(self, positions: int) -> int:
        """The float32 bytes the self-attention caches hold after `positions` positions: each
        layer's per position, up to its window."""
        return sum(size * (positions if window is None else min(positions, window))
                   for size, window in zip(self.cache_layer_bytes, self.cache_windows))

    @property
    def total_parameters(self) -> int:
        return sum(sum(parts.values()) for parts in self.parameters.values())


def carried_bytes(attention: list[Op]) -> dict[str, int]:
    """What the cached self-attention layers keep per position beside keys and values, by
    what it is: float32 bytes summed over the layers."""
    carried: dict[str, int] = {}
    for op in attention:
        if op.attrs.decodes:
            for what, count in costs.carried_per_position(op.attrs).items():
                carried[what] = carried.get(what, 0) + 4 * count
    return carried


def inspect(spec: Spec, graph: Graph, seq_len: int | None = None,
            context_len: int | None = None, mem_len: int | None = None) -> Inspection:
    """The figures of a compiled spec at sequence length `seq_len` (default: max_seq_len),
    source / context length `context_len` (default: the encoder's max_seq_len, else seq_len)
    and, for Transformer-XL, a memory of `mem_len` positions (default: max_mem_len, the
    memory of every segment after the first)."""
    bindings = default_lengths(graph)
    if seq_len is not None:
        bindings["T"] = seq_len
    if context_len is not None:
        bindings["S"] = context_len
    elif seq_len is not None and not any(m.type == "XTransformer" for m in graph.models.values()):
        bindings["S"] = seq_len  # the context is as long as the sequence unless a source is
    lengths = sequence_lengths(graph, bindings)
    memory = costs.memory_positions(graph, mem_len)
    grads = needs_grad(graph)
    every = [p for op in graph.ops() for p in op_products(graph, op, lengths, grads, memory)]
    scopes = {model.scope for model in graph_models(graph) if model.cacheable}
    cached = [op for op in graph.ops() if op.scope in scopes and op.kind in ATTENTION_KINDS]
    loops = {model.scope: model.loops for model in graph_models(graph)}  # a looped LM's: per loop
    self_cached = [op for op in cached if op.kind is OpKind.ATTENTION
                   for _ in range(loops.get(op.scope, 1))]
    layer_bytes = tuple(costs.cache_bytes_per_token(op, 4) for op in self_cached)
    own = costs.parameters_by_owner(graph)
    recurrent = [model for model in graph_models(graph) if model.recurrent]
    remembered = {"M": max(memory.values())} if memory else {}
    return Inspection(
        name=spec.name,
        lengths={k: v for k, v in bindings.items() if uses_symbol(graph, k)} | remembered,
        tokens=output_tokens(graph, lengths),
        parameters=parameters_by_part(graph, own, spec.name),
        forward_flops=costs.forward_flops(every),
        training_flops=costs.training_flops(every),
        attention_flops=costs.forward_flops([p for p in every if p.scores]),
        cache_bytes_per_token=sum(layer_bytes),
        cross_cache_bytes_per_token=sum(costs.cache_bytes_per_token(op, 4)
                                        for op in cached if op.kind is OpKind.CROSS_ATTENTION),
        cache_layers=len(self_cached),
        cache_carried=carried_bytes(self_cached),
        cache_layer_bytes=layer_bytes,
        cache_windows=tuple(op.attrs.max_attend_past for op in self_cached),
        cache_latents=tuple(op.attrs.dim_latent_kv for op in self_cached),
        cache_rope_heads=tuple(op.attrs.latent_rope_subheads for op in self_cached),
        memory_layers=sum(model.depth for model in recurrent),
        memory_bytes_per_layer=max((costs.memory_bytes_per_layer(model.attrs, model.dim, 4)
                                    for model in recurrent), default=0),
        attention=[attention_path(graph, op) for op in graph.ops() if op.kind in ATTENTION_KINDS],
        blocks=block_runs(graph, own),
        graph=graph,
        op_parameters=own,
        warnings=length_warnings(graph, bindings, {"T": seq_len, "S": context_len}),
        state_dict=state_keys(graph, composite=spec.model is None),
    )


def state_keys(graph: Graph, composite: bool) -> list[StateKey]:
    """The emitted model's state-dict keys, in order, each with the reference's tensors."""
    held: dict[str, list[str]] = {}
    for rule in parameter_rules(graph, components=composite):
        held.setdefault(rule.emitted, []).append(rule.reference)
    shapes: dict[str, tuple[int, ...] | None] = {}
    owners: dict[str, int] = {}
    for op in graph.ops():
        prefix, known = graph.module_path(op), parameter_shapes(op)
        for _, emitted, *_ in parameter_names(op):
            shapes.setdefault(join(prefix, emitted), known.get(emitted))
            owners.setdefault(join(prefix, emitted), costs.op_parameters(op))
    return [StateKey(key, tuple(reference), shapes.get(key), owners.get(key, 0))
            for key, reference in held.items()]


# -- lengths ------------------------------------------------------------------------------------


def length_warnings(graph: Graph, bindings: dict[str, int],
                    given: dict[str, int | None]) -> list[str]:
    """One line per token or feature input longer than its model accepts: the emitted model's
    run-time check refuses it (models.Model.length_limit), though the figures are computed for
    it."""
    found = []
    for model in graph_models(graph):
        limit = model.length_limit
        if limit is None:
            continue
        symbol = model.sequence_input.attrs.shape[1]
        length = bindings[symbol]
        if length > limit:
            found.append(f"{length_source(symbol, length, given)} is longer than "
                         f"{refusal(model.attrs.key, limit)}; the figures are for {length}")
    return found


def refusal(key: str, limit: int) -> str:
    """`model.max_seq_len 1024: the model refuses ...`, naming the module by its last key."""
    return (f"{key}.max_seq_len {limit}: the {key.rpartition('.')[2]} refuses inputs past "
            f"{limit} positions (it has learned absolute positions)")


def length_source(symbol: str, length: int, given: dict[str, int | None]) -> str:
    """Where a length comes from: the option that set it, or the default (the longest limit)."""
    if given.get(symbol) is not None:
        return f"{'--seq-len' if symbol == 'T' else '--context-len'} {length}"
    return f"the default length {symbol}={length} (the longest max_seq_len)"


def uses_symbol(graph: Graph, symbol: str) -> bool:
    """Whether a required input is that long (an optional mask alone does not make it so)."""
    return any(len(op.attrs.shape) > 1 and op.attrs.shape[1] == symbol and not op.attrs.optional
               for op in graph.ops(OpKind.INPUT))


# -- FLOPs --------------------------------------------------------------------------------------


def needs_grad(graph: Graph) -> dict[str, bool]:
    """Whether each op's output depends on a parameter (inputs are data)."""
    grads: dict[str, bool] = {}
    for op in graph.ops():
        grads[op.name] = op.kind is not OpKind.INPUT and (
            costs.op_parameters(op) > 0 or any(grads[i] for i in op.inputs))
    return grads


def op_products(graph: Graph, op: Op, lengths: dict[str, int], grads: dict[str, bool],
                memory: dict[str, int]) -> list[costs.Product]:
    # the rows each product runs over: the input's positions (a patch embedding's: its patches)
    rows = op.name if op.kind is OpKind.PATCH_EMBEDDING or not op.inputs else op.inputs[0]
    sequence = lengths[rows]
    context = lengths[op.inputs[1]] if op.kind is OpKind.CROSS_ATTENTION else 0
    context_grad = grads[op.inputs[1]] if op.kind is OpKind.CROSS_ATTENTION else False
    # an adaptive norm's or layer scale's condition: through its MLP it needs a gradient
    condition = next((i for i in op.inputs[1:] if graph[i].kind is OpKind.CONDITION), None)
    context_grad = grads[condition] if condition is not None else context_grad
    input_grad = grads[op.inputs[0]] if op.inputs else False
    # a memory (data, detached) passes the attention's own pre-norm (in its block: a post-norm
    # before it belongs to the block before): a gain makes it need a gradient
    before = graph[op.inputs[0]] if op.inputs else None
    memory_grad = (before is not None and before.kind is OpKind.NORM
                   and before.block == op.block and costs.op_parameters(before) > 0)
    if op.kind is OpKind.ATTENTION and op.attrs.value_residual and op.name == first_run(graph, op).name:
        # the first attention run sets the values the later ones mix in: it computes no mix
        op = replace(op, attrs=replace(op.attrs, value_residual="half"))
    return costs.op_products(op, costs.Lengths(sequence, context, memory.get(op.name, 0)),
                             input_grad, context_grad, memory_grad)


def first_run(graph: Graph, op: Op) -> Op:
    """The first op of op's kind its model runs."""
    return next(o for o in graph.ops() if o.scope == op.scope and o.kind is op.kind)


# -- parameters ---------------------------------------------------------------------------------


# ops outside the blocks that belong to the layer stack: its shared positions, its reinjection,
# its residual streams, its U-Net skips
STACK_OPS = (OpKind.ROTARY, OpKind.POLAR, OpKind.POSITION_BIAS, OpKind.REINJECT,
             OpKind.STREAMS, OpKind.SKIP_COMBINE)


def parameters_by_part(graph: Graph, own: dict[str, int], model: str) -> dict[str, dict[str, int]]:
    """component -> {"embeddings", "blocks", "head"} -> parameters, in graph order."""
    result: dict[str, dict[str, int]] = {}
    seen_blocks: set[str] = set()
    for op in graph.ops():
        component = op.component or model
        if op.block is not None or op.kind in STACK_OPS:
            part = "blocks"
            seen_blocks.add(op.scope)
        else:
            part = "head" if op.scope in seen_blocks else "embeddings"
        parts = result.setdefault(component, {"embeddings": 0, "blocks": 0, "head": 0})
        parts[part] += own.get(op.name, 0)
    return result


def block_runs(graph: Graph, own: dict[str, int]) -> list[Block]:
    """Consecutive blocks with the same sublayers, collapsed into one row each."""
    blocks: dict[tuple[str, int], list[Op]] = {}
    for op in graph.ops():
        if op.block is not None:
            blocks.setdefault((op.scope, op.block), []).append(op)
    runs: list[Block] = []
    signatures: list[tuple] = []  # of each run's blocks
    for (scope, index), ops in blocks.items():
        sublayers = tuple((op.role or op.kind.value, op.kind.value, own.get(op.name, 0))
                          for op in ops if op.kind is not OpKind.RESIDUAL or own.get(op.name))
        # the same sublayers with the same payloads (per-layer values may make them differ)
        signature = tuple((op.role, op.kind, op.attrs) for op in ops)
        count = sum(own.get(op.name, 0) for op in ops)
        shape = "(" + ", ".join(map(str, ops[-1].shape or ())) + ")"
        previous = runs[-1] if runs else None
        if (previous and previous.scope == scope and previous.last == index - 1
                and signatures[-1] == signature):
            runs[-1] = Block(scope, previous.first, index, previous.sublayers,
                             previous.parameters + count, shape)
        else:
            runs.append(Block(scope, index, index, sublayers, count, shape))
            signatures.append(signature)
    return runs


# -- attention paths ----------------------------------------------------------------------------


def attention_path(graph: Graph, op: Op) -> AttentionPath:
    a = op.attrs
    layer = graph.module_path(op)
    if a.explicit:
        return AttentionPath(layer, "explicit", "no",
                             "; ".join(a.explicit_reasons) + ": the score matrix is materialised")
    against = flash_obstacles(graph, op)
    asked = "flash: true, checked compatible" if a.flash else ""
    if against:
        return AttentionPath(layer, "sdpa", "no", "; ".join(against))
    mask = padding_mask(graph, op)
    if mask:
        why = [asked, f"a {mask} makes SDPA take a boolean mask (memory-efficient kernel)",
               "is_causal serves the causal mask" if getattr(a, "causal", False) else ""]
        return AttentionPath(layer, "sdpa", "without a padding mask", "; ".join(w for w in why if w))
    why = [asked, "no mask tensor" + (" (is_causal)" if getattr(a, "causal", False) else "")]
    return AttentionPath(layer, "sdpa", "yes", "; ".join(w for w in why if w))


def flash_obstacles(graph: Graph, op: Op) -> list[str]:
    """What forces a mask tensor (or unequal head widths) on every call."""
    a = op.attrs
    found = []
    if op.kind in (OpKind.ATTENTION, OpKind.CROSS_ATTENTION) and a.l2_distance:
        found.append("L2-distance scores: the keys' squared norms are an additive float mask")
    if op.kind is OpKind.ATTENTION:
        if a.bias:
            scheme = next(graph[i].attrs.scheme for i in op.inputs
                          if graph[i].kind is OpKind.POSITION_BIAS)
            found.append(f"the {scheme} position bias is an additive float mask")
        if a.use_rel_proj_pos_bias:
            found.append("the projected distance bias is an additive float mask")
        if a.data_dependent_alibi:
            found.append("data-dependent ALiBi is an additive float mask")
        if a.max_attend_past is not None:
            found.append("the sliding window is a boolean band mask (a decoding step over the "
                         "window's cache needs none)")
        if a.prefix:
            found.append("the prefix language model's mask (two-way within the prefix, causal "
                         "after it) is a boolean tensor")
        if a.causal and a.num_mem_kv:
            found.append("memory keys make keys longer than queries: the causal mask is a tensor")
        if a.causal and a.add_zero_kv:
            found.append("the zero key makes keys longer than queries: the causal mask is a tensor")
        if a.causal and a.memory:
            found.append("a Transformer-XL memory makes keys longer than queries: the causal "
                         "mask is a tensor (the first segment, with no memory, may use flash)")
        if a.value_dim_head and a.value_dim_head != a.dim_head:
            found.append("values and keys differ in width")
    return found


def padding_mask(graph: Graph, op: Op) -> str:
    """The optional mask input the layer reads, named ("padding mask", "context mask")."""
    masks = [graph[i] for i in op.inputs[1:] if graph[i].kind in (OpKind.INPUT, OpKind.PAD_MASK)]
    if not masks:
        return ""
    return "context mask" if any(m.kind is OpKind.INPUT and m.attrs.role == "context_mask"
                                 for m in masks) else "padding mask"
