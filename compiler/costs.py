"""What a model costs, read from the IR alone (no torch): parameters (grouped into contributors),
matmul FLOPs, cache bytes, activations. The lengths they assume default to the models'
max_seq_len (`default_lengths`). The parameter budget (passes/check_resource_budget.py) and
`xtc inspect` (inspection.py) both read them here.

Conventions, chosen so that the figures can be checked against PyTorch's own counter
(`torch.utils.flop_counter.FlopCounterMode`, under the math SDPA backend):

- FLOPs are those of matrix products (linear layers, attention scores and values, 1x1
  convolutions), 2 per multiply-add; norms, activations, softmax and the optimizer are left out.
- Attention is counted over the full T x S score square: SDPA's math path computes every score
  and masks afterwards, so a causal mask does not halve the work (the flash kernel skips the
  masked half on GPU; its saving is not claimed here).
- A training step is the forward and the backward: each product costs once more for every
  operand that needs a gradient (weights always; activations unless they come straight from
  the input data).

>>> from .ir import FeedForwardAttrs, Op, OpKind
>>> ff = Op("ff", OpKind.FEEDFORWARD, FeedForwardAttrs(dim=64, inner_dim=256, activation="gelu"))
>>> op_parameters(ff)
33088
>>> [(m.flops, m.grads) for m in op_products(ff, Lengths(sequence=10), True)]
[(327680, 2), (327680, 2)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .ir import Graph, Op, OpKind
from .models import models


@dataclass(frozen=True)
class Lengths:
    """The sequence lengths an op works on: its own, and that of its context or its keys."""

    sequence: int
    context: int = 0  # cross-attention: the context's length
    memory: int = 0  # Transformer-XL: remembered positions the keys span before the sequence


@dataclass(frozen=True)
class Product:
    """One matrix product: its forward FLOPs and how many operands need a gradient."""

    flops: int
    grads: int  # 0, 1 or 2: the backward computes one product of the same size per gradient
    scores: bool = False  # q k^T, weights v (grow with the key length), CoPE's position logits:
    # the attention's batched products


def linear(rows: int, dim_in: int, dim_out: int, input_grad: bool) -> Product:
    return Product(2 * rows * dim_in * dim_out, 1 + input_grad)


# -- parameters ---------------------------------------------------------------------------------


def op_parameters(op: Op) -> int:
    """Trainable parameters the op owns (buffers such as rotary frequencies are not counted)."""
    a, kind = op.attrs, op.kind
    if kind is OpKind.TOKEN_EMBEDDING:
        return a.num_tokens * a.dim
    if kind is OpKind.NAMED_EMBEDDINGS:  # a table per name
        return sum(size for _, size in a.sizes) * a.dim
    if kind is OpKind.POSITION_EMBEDDING:
        return 1 if a.scheme == "scaled_sinusoidal" else a.max_seq_len * a.dim
    if kind is OpKind.NORM and a.condition:  # an adaptive norm's gain: a map of the condition
        return a.condition * a.dim
    if kind is OpKind.NORM:
        # DyT: alpha, a gain and a bias; Derf: alpha, a shift, a gain and a bias
        return {"simple_rmsnorm": 0, "scalenorm": 1, "dynamic_tanh": 1 + 2 * a.dim,
                "derf": 2 + 2 * a.dim}.get(a.norm_type, a.dim)
    if kind is OpKind.CONDITION:  # its MLP's Linear, without a bias
        return a.dim * a.hidden
    if kind is OpKind.PROJECT:
        return a.dim_in * a.dim + (a.dim if a.bias else 0)
    if kind is OpKind.LOOP:  # the start's recycled_proj (dim x dim) or exit_gate (dim x 1)
        return 0 if a.end else a.dim * (a.dim if a.recycled else 1)
    if kind is OpKind.PATCH_EMBEDDING:  # LayerNorm (gain), Linear with bias, LayerNorm (gain)
        return a.patch_dim + a.patch_dim * a.dim + a.dim + a.dim
    if kind is OpKind.DEEP_EMBED:
        return a.num_tokens * a.depth * a.dim
    if kind is OpKind.NEXT_EMBED:  # two bias-free dim x dim maps
        return 2 * a.dim * a.dim
    if kind is OpKind.MEMORY_TOKENS:
        return a.count * a.dim
    if kind is OpKind.POSITION_BIAS:
        return position_bias_parameters(a)
    if kind is OpKind.POLAR:  # the keys' phases
        return a.heads * a.dim_head
    if kind is OpKind.ATTENTION:
        return attention_parameters(a)
    if kind is OpKind.CROSS_ATTENTION:
        inner = a.heads * a.dim_head
        norms = (a.q_rmsnorm + a.k_rmsnorm + a.value_rmsnorm) * inner
        return (a.dim * inner + 2 * a.dim_context * inner + (inner * a.dim if a.project_out else 0)
                + 2 * a.heads * a.num_mem_kv * a.dim_head + value_gates_parameters(a, inner)
                + norms + (a.heads if a.head_learned_sink else 0))
    if kind is OpKind.FEEDFORWARD:
        into = a.dim * a.inner_dim * (2 if a.glu else 1) + (a.inner_dim * (2 if a.glu else 1)
                                                             if a.glu or a.bias else 0)
        gains = a.post_act_ln + a.mult_bias + (a.activation == "solu")  # each inner_dim wide
        return into + gains * a.inner_dim + a.inner_dim * a.dim + (a.dim if a.bias else 0)
    if kind is OpKind.RESIDUAL:
        return residual_parameters(op)
    if kind is OpKind.REINJECT:  # the input's projection, and its gate's
        return a.dim * a.dim + (a.dim if a.gated else 0)
    if kind is OpKind.AGGREGATE:  # three RMSNorm gains, the query's low-rank down and up maps
        return 3 * a.dim + a.dim * a.lora_rank + a.lora_rank * a.views * a.dim
    if kind is OpKind.LAYER_MIX:  # an RMSNorm gain, the weights' map with its bias
        return a.dim + (a.dim + 1) * a.views * a.layers
    if kind is OpKind.SKIP_COMBINE:  # the projection from 2 * dim to dim, without a bias
        return 2 * a.dim * a.dim
    if kind is OpKind.STREAMS:  # the streams' embeddings (summing them back has none)
        return 0 if a.merge or a.streams == 1 else a.streams * a.dim
    if kind is OpKind.STREAM_MIX and a.rank:  # GatedMultiResidual: gains, the gates' constants,
        # the shared bottleneck and the read and write maps out of it, a scale
        width = a.streams * a.dim
        return width + a.views * width + a.streams + width * a.rank + a.rank * a.views * width + a.rank * a.streams + 1
    if kind is OpKind.STREAM_MIX:  # HyperConnection: a norm's gain, the read's constant, map and
        # scale, the write's constant, map and scale
        return 2 * a.dim + a.streams * a.views + a.dim * a.views + a.streams + 2
    if kind is OpKind.LOGITS:  # (num_output_heads: as many maps)
        return 0 if a.tied else a.heads * a.dim * a.num_tokens + (a.num_tokens if a.bias else 0)
    if kind is OpKind.ATTENTION_POOL:
        return attention_pool_parameters(a)
    return 0


def attention_pool_parameters(a) -> int:
    """The queries and a bias-free cross-attention; a deeper pool's blocks each add two norm
    gains and a 4 * dim GELU feedforward with biases, and a final norm's gain."""
    inner = a.heads * a.dim_head
    attention = 2 * a.dim * inner + 2 * a.dim_context * inner
    if a.depth == 1:
        return a.queries * a.dim + attention
    feedforward = 2 * 4 * a.dim * a.dim + 4 * a.dim + a.dim
    return a.queries * a.dim + a.depth * (2 * a.dim + attention + feedforward) + a.dim


def attention_parameters(a) -> int:
    kv_heads = a.kv_heads or a.heads
    value_dim = a.value_dim_head or a.dim_head
    count = sum(dim_in * dim_out for dim_in, dim_out, _ in qkv_projections(a))
    if a.project_out:
        count += a.out_width * a.dim * (2 if a.on_attn else 1)
    count += kv_heads * a.num_mem_kv * (a.dim_head + value_dim)
    count += (a.heads + kv_heads) * a.dim_head if a.qk_norm_dim_scale else 0
    count += value_gates_parameters(a, a.heads * value_dim)
    count += a.heads if a.head_scale else 0
    count += (a.dim + 1) * a.heads if a.value_residual == "learned" else 0  # the mix's gate
    count += (a.heads * a.q_rmsnorm + kv_heads * a.k_rmsnorm + a.heads * a.value_rmsnorm) * a.dim_head
    count += a.heads if a.head_learned_sink else 0
    count += a.cope_max_pos * a.dim_head + a.cope_talking_heads * a.heads**2 if a.use_cope else 0
    if a.use_rel_proj_pos_bias:  # the weights' projection (with a bias), the distance curves
        basis = a.rel_proj_num_distance_basis
        count += (a.dim + 1) * a.heads * basis + basis * a.rel_proj_max_dist
    if a.data_dependent_alibi_per_row:  # gate queries and keys, without a bias
        count += a.dim * 2 * a.heads * a.data_dependent_alibi_per_row_dim_head
    elif a.data_dependent_alibi:  # a gate per head (and one more for the other way), with a bias
        count += (a.dim + 1) * a.heads * (1 if a.causal else 2)
    return count + sum(a.talking_heads) * a.heads**2


def qkv_projections(a) -> list[tuple[int, int, bool]]:
    """(input width, output width, whether it reads a latent) of the self-attention's query,
    key and value projections, with multi-head latent attention's latents and decoupled-rope
    keys where it has them."""
    kv_heads, rope_heads = a.kv_heads or a.heads, a.latent_rope_subheads
    shapes = [(a.dim, a.dim_latent_q, False)] if a.dim_latent_q else []
    shapes += [(a.dim, a.dim_latent_kv, False)] if a.dim_latent_kv else []
    shapes += [(a.dim, rope_heads * a.dim_head, False)] if rope_heads else []
    q_in, kv_in = a.dim_latent_q or a.dim, a.dim_latent_kv or a.dim
    return shapes + [(q_in, a.heads * a.dim_head, bool(a.dim_latent_q)),
                     (kv_in, (kv_heads - rope_heads) * a.dim_head, bool(a.dim_latent_kv)),
                     (kv_in, kv_heads * (a.value_dim_head or a.dim_head), bool(a.dim_latent_kv))]


def value_gates_parameters(a, value_dim: int) -> int:
    """The value gates of an attention whose merged heads are value_dim wide."""
    count = (a.dim + 1) * a.heads if a.gate_value_heads else 0  # with a bias
    return count + sum(
        rank * (width_in + width_out) if rank else width_in * width_out
        for width_in, width_out, rank in value_gate_shapes(a, value_dim))


def value_gate_shapes(a, value_dim: int) -> list[tuple[int, int, int]]:
    """(input width, logits, rank or 0) of the input and the output gate used."""
    shapes = [(a.dim, a.heads if a.gate_values_headwise else value_dim, a.gate_values_rank)] \
        if a.gate_values else []
    return shapes + ([(value_dim, a.heads if a.output_gate_headwise else value_dim,
                       a.output_gate_rank)] if a.output_gate else [])


def position_bias_parameters(a) -> int:
    if a.scheme == "t5":
        return a.num_buckets * a.heads
    if a.scheme != "dynamic":
        return 0  # ALiBi slopes are fixed
    m = a.mlp_dim
    count = (1 * m + m) + (m if a.norm else 0)  # Linear(1, m); the first norm has no bias
    count += (a.mlp_depth - 1) * (m * m + m + (2 * m if a.norm else 0))
    return count + m * a.heads + a.heads


def residual_parameters(op: Op) -> int:
    a, dim = op.attrs, op.shape[-1] if op.shape else 0
    count = dim if a.layerscale is not None else 0
    count += a.layerscale_condition * dim + dim if a.layerscale_condition else 0  # adaLN-Zero's gate
    count += dim if a.scale_residual else 0
    if a.mv_split:  # two gains: vectors, or Linear(dim, dim) maps of the output's mean
        count += 2 * (dim * dim + dim if a.mv_split_learned else dim)
    return count + (2 * 3 * dim * dim + 2 * 3 * dim if a.gated else 0)  # GRUCell(dim, dim)


def parameters_by_owner(graph: Graph) -> dict[str, int]:
    """op name -> parameters, for the ops that own them (each shared set counted once)."""
    return {op.name: op_parameters(op) for op in parameter_owners(graph)}


def parameter_owners(graph: Graph) -> list[Op]:
    """One op per set of parameters: tied blocks and a shared token table are counted once."""
    seen, owners = set(), []
    for op in graph.ops():
        if op.shares:
            continue
        key = (graph.module_path(op), op.kind, op.role, getattr(op.attrs, "branch", ""))
        if key not in seen:
            seen.add(key)
            owners.append(op)
    return owners


# -- contributors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """A value that scales a contributor's parameters: the spec key that sets it (`key`; '' for a
    count that no one key sets), how the formula names it (`ff.mult`), its value in this model,
    and whether the parameters fall as it grows (`inverse`: ViT's patch_size for its positions)."""

    key: str
    name: str
    value: float
    inverse: bool = False

    def text(self) -> str:
        return f"{self.name} {number_text(self.value)}" if self.key else f"{self.value} {self.name}"


@dataclass(frozen=True)
class Contributor:
    """Parameters of one kind: a sublayer kind over the blocks of a layer stack (`blocks.ff`,
    `decoder.blocks.attn`) or one module outside them (`token_emb`, `to_logits`), with its share
    of the model's parameters and the factors its count is a product of, constants and powers
    left out: two matrices of dim x dim * ff.mult make `dim x ff.mult`."""

    name: str
    parameters: int
    share: float
    factors: tuple[Factor, ...]

    @property
    def formula(self) -> str:
        """`dim 64 x ff.mult 4 x depth 2`; inverse factors divide: `image_size 256 /
        patch_size 32`."""
        product = " x ".join(f.text() for f in self.factors if not f.inverse)
        return product + "".join(f" / {f.text()}" for f in self.factors if f.inverse)


# The group of a sublayer kind inside the blocks, named like the block's attribute.
BLOCK_GROUPS = {OpKind.ATTENTION: "attn", OpKind.CROSS_ATTENTION: "cross_attn",
                OpKind.FEEDFORWARD: "ff", OpKind.NORM: "norms", OpKind.RESIDUAL: "residuals",
                OpKind.AGGREGATE: "aggregates", OpKind.LAYER_MIX: "layer_mixes",
                OpKind.STREAM_MIX: "streams"}


def contributors(graph: Graph) -> list[Contributor]:
    """The model's parameters grouped into contributors, largest first (graph order on ties);
    groups without parameters are left out."""
    own = parameters_by_owner(graph)
    total = sum(own.values()) or 1
    groups: dict[str, list[Op]] = {}
    for op in parameter_owners(graph):
        if own[op.name]:
            groups.setdefault(contributor_name(op), []).append(op)
    found = []
    for name, ops in groups.items():
        count = sum(own[op.name] for op in ops)
        found.append(Contributor(name, count, count / total, scaling_factors(graph, ops)))
    return sorted(found, key=lambda c: -c.parameters)


def contributor_name(op: Op) -> str:
    # (a module of a list outside the blocks, `skip_combines.1`, counts with the list)
    local = (f"blocks.{BLOCK_GROUPS[op.kind]}" if op.block is not None
             else (op.role or op.kind.value).partition(".")[0])
    return ".".join(part for part in (op.scope, local) if part)


@dataclass(frozen=True)
class StackKeys:
    """Where the size keys of a scope's layer stack are written, and its width."""

    layers: str  # the stack's spec key: `model.attn_layers`
    dim: str  # the key of its dim: `model.attn_layers.dim`, or an XTransformer's `model.dim`
    width: int


def stack_keys(graph: Graph, scope: str) -> StackKeys:
    # a residual op sits in every block and carries the stack's key
    residual = next(op for op in graph.ops(OpKind.RESIDUAL) if op.scope == scope)
    layers = residual.spec_key
    dim = f"{layers}.dim"
    if any(op.scope == scope and op.spec_key == f"{layers}.num_tokens"
           for op in graph.ops(OpKind.TOKEN_EMBEDDING)):
        # an XTransformer side holds wrapper and layer keys in one mapping; its dim is the
        # XTransformer's own
        dim = f"{layers.rpartition('.')[0]}.dim"
    return StackKeys(layers, dim, residual.shape[-1])


def scaling_factors(graph: Graph, ops: list[Op]) -> tuple[Factor, ...]:
    """The factors of a group's parameter count, read from its first op and how many there are."""
    op = ops[0]
    stack = stack_keys(graph, op.scope)
    if op.block is not None:
        return block_factors(op, stack) + repeat_factors(stack, ops)
    return module_factors(graph, op, stack)


def block_factors(op: Op, stack: StackKeys) -> tuple[Factor, ...]:
    """One sublayer's factors: width, then heads and head width, or the feedforward's mult."""
    a, keys = op.attrs, stack.layers
    dim = Factor(stack.dim, "dim", stack.width)
    if op.kind is OpKind.ATTENTION:
        return (dim, Factor(f"{keys}.heads", "heads", a.heads),
                Factor(f"{keys}.attn.dim_head", "attn.dim_head", a.dim_head))
    if op.kind is OpKind.CROSS_ATTENTION:
        context = Factor(f"{keys}.cross_attn.dim_context", "cross_attn.dim_context", a.dim_context)
        return (dim, Factor(f"{keys}.heads", "heads", a.heads),
                Factor(f"{keys}.cross_attn.dim_head", "cross_attn.dim_head", a.dim_head),
                *((context,) if a.dim_context != a.dim else ()))
    if op.kind is OpKind.FEEDFORWARD:  # inner_dim is int(dim * mult)
        return dim, Factor(f"{keys}.ff.mult", "ff.mult", a.inner_dim / a.dim)
    if op.kind is OpKind.AGGREGATE:  # the query's low-rank maps, dim x lora_rank each
        return dim, Factor(f"{keys}.attn_aggregated_residual_kwargs.lora_rank", "lora_rank",
                           a.lora_rank)
    if op.kind is OpKind.RESIDUAL and (a.gated or a.mv_split_learned):  # dim x dim matrices
        return dim, dim
    return (dim,)  # norm gains, LayerScale and residual scales: one value per feature


def repeat_factors(stack: StackKeys, ops: list[Op]) -> tuple[Factor, ...]:
    """How many copies of the sublayer's weights there are: one per block (`depth`; a single
    one under weight tying), times the sublayers of the kind within a block (macaron's two
    feedforwards; a custom layout is one block of them all)."""
    blocks = len({op.block for op in ops})
    per_block = len(ops) // blocks
    if blocks == 1:
        return (Factor("", "sublayers", per_block),) if per_block > 1 else ()
    depth = Factor(f"{stack.layers}.depth", "depth", blocks)
    return (depth, Factor("", "per block", per_block)) if per_block > 1 else (depth,)


def module_factors(graph: Graph, op: Op, stack: StackKeys) -> tuple[Factor, ...]:
    """The factors of a module outside the blocks: its own key (`spec_key`) and the width."""
    a, kind, own = op.attrs, op.kind, op.spec_key.rpartition(".")[2]
    wrapper = op.spec_key.rpartition(".")[0]
    dim = Factor(stack.dim, "dim", stack.width)
    if kind is OpKind.TOKEN_EMBEDDING:
        return Factor(op.spec_key, own, a.num_tokens), embedding_width(graph, op, stack)
    if kind is OpKind.NAMED_EMBEDDINGS:  # the tables' rows, all names together
        rows = sum(size for _, size in a.sizes)
        return Factor(op.spec_key, f"{own} (summed)", rows), embedding_width(graph, op, stack)
    if kind is OpKind.POSITION_EMBEDDING and a.scheme == "patches":  # (image / patch)^2 positions
        image, patches = graph[op.inputs[0]].attrs.shape[2], patch_size(graph, op.scope)
        return (dim, Factor(op.spec_key, own, image),
                Factor(f"{wrapper}.patch_size", "patch_size", patches, inverse=True))
    if kind is OpKind.POSITION_EMBEDDING:  # learned: max_seq_len x width; sinusoidal: one scale
        if a.scheme != "learned":
            return ()
        return Factor(op.spec_key, own, a.max_seq_len), embedding_width(graph, op, stack)
    if kind is OpKind.LOGITS and a.heads > 1:  # num_output_heads maps of dim x width
        return (dim, Factor(op.spec_key, own, a.num_tokens),
                Factor(f"{wrapper}.num_output_heads", "num_output_heads", a.heads))
    if kind is OpKind.LOGITS:
        return dim, Factor(op.spec_key, own, a.num_tokens)
    if kind is OpKind.PATCH_EMBEDDING:  # channels * patch_size^2 features per patch, to dim
        return (Factor(op.spec_key, own, a.patch_size),
                Factor(f"{wrapper}.channels", "channels", a.channels), dim)
    if kind is OpKind.PROJECT and op.role == "to_numerical_output":  # one number per position
        return (dim,)
    if kind is OpKind.PROJECT and op.role in ("to_mixture", "combine_mixture"):
        # a mixture of softmaxes: dim x K components of dim, and dim x K mixture weights
        k = Factor(f"{wrapper}.mixture_of_softmax_k", "mixture_of_softmax_k", a.dim // a.dim_in
                   if op.role == "to_mixture" else a.dim)
        return (dim, dim, k) if op.role == "to_mixture" else (dim, k)
    if kind is OpKind.LOOP:  # recycled_proj: dim x dim; exit_gate: dim x 1
        return (dim, dim) if a.recycled else (dim,)
    if kind is OpKind.PROJECT:  # emb_dim / dim_in into the stack, or the stack out to its size
        into = op.role in ("project_emb", "project_in")
        outer = Factor(op.spec_key, own, a.dim_in if into else a.dim)
        return (outer, dim) if into else (dim, outer)
    if kind is OpKind.MEMORY_TOKENS:
        return Factor(op.spec_key, own, a.count), dim
    if kind is OpKind.NEXT_EMBED:  # two maps of dim x dim
        return dim, dim
    if kind is OpKind.DEEP_EMBED:  # a dim-wide gain per token and block
        return (Factor(f"{wrapper}.num_tokens", "num_tokens", a.num_tokens),
                Factor(f"{stack.layers}.depth", "depth", a.depth), dim)
    if kind is OpKind.STREAMS:  # one embedding per residual stream
        return Factor(op.spec_key, own, a.streams), dim
    if kind is OpKind.SKIP_COMBINE:  # one 2 * dim x dim projection per block of the second half
        skips = sum(1 for other in graph.ops(kind) if other.scope == op.scope)
        return dim, dim, Factor("", "blocks of the second half", skips)
    if kind is OpKind.POSITION_BIAS:
        return position_bias_factors(a, stack)
    if kind is OpKind.ATTENTION_POOL:  # its cross-attentions (and feedforwards), depth of them
        depth = Factor(f"{wrapper}.attn_pool_depth", "attn_pool_depth", a.depth)
        return (dim, Factor(f"{stack.layers}.heads", "heads", a.heads),
                Factor(f"{stack.layers}.attn.dim_head", "attn.dim_head", a.dim_head),
                *((depth,) if a.depth > 1 else ()))
    if kind is OpKind.POLAR:  # the keys' phases: one per head and feature
        return (Factor(f"{stack.layers}.heads", "heads", a.heads),
                Factor(f"{stack.layers}.attn.dim_head", "attn.dim_head", a.dim_head))
    if op.role == "post_emb_norm":  # a norm's gains, at the embeddings' width or the stack's
        return (embedding_width(graph, op, stack),)
    return (dim,)


def embedding_width(graph: Graph, op: Op, stack: StackKeys) -> Factor:
    """The width of the embeddings: emb_dim where a projection brings it to dim."""
    for project in graph.ops(OpKind.PROJECT):
        if project.scope == op.scope and project.role == "project_emb":
            return Factor(project.spec_key, "emb_dim", project.attrs.dim_in)
    return Factor(stack.dim, "dim", stack.width)


def patch_size(graph: Graph, scope: str) -> int:
    return next(op.attrs.patch_size for op in graph.ops(OpKind.PATCH_EMBEDDING)
                if op.scope == scope)


def position_bias_factors(a, stack: StackKeys) -> tuple[Factor, ...]:
    heads = Factor(f"{stack.layers}.heads", "heads", a.heads)
    if a.scheme == "t5":
        buckets = Factor(f"{stack.layers}.rel_pos_num_buckets", "rel_pos_num_buckets", a.num_buckets)
        return buckets, heads
    # dynamic: an MLP of dim // 4 features, dynamic_pos_bias_mlp_depth layers deep
    return (Factor(stack.dim, "dim", stack.width),
            Factor(f"{stack.layers}.dynamic_pos_bias_mlp_depth", "dynamic_pos_bias_mlp_depth",
                   a.mlp_depth), heads)


def percent(share: float) -> str:
    """A share rounded down to 0.1%: a contributor of 99.96% is not shown as the whole model."""
    return f"{math.floor(share * 1000) / 10:.1f}%"


def number_text(value: float) -> str:
    """A factor's value: integers in full up to 10 digits, else 3 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e10:
        value = int(value)
    if isinstance(value, int) and abs(value) < 10**10:
        return str(value)
    return f"{value:.3g}"


# -- lengths and activations ---------------------------------------------------------------------

DEFAULT_LENGTH = 1024  # for models without a max_seq_len (bare layers, continuous ones)
ATTENTION_KINDS = (OpKind.ATTENTION, OpKind.CROSS_ATTENTION)


def default_lengths(graph: Graph) -> dict[str, int]:
    """T: the target / token length, S: the source or context length, P: run-time prepended
    embeddings (none). Each is the max_seq_len of the model that reads it, where it has one (an
    XTransformer's encoder reads S, its decoder T)."""
    found: dict[str, int] = {}
    for model in models(graph):
        if model.attrs.max_seq_len:
            symbol = model.sequence_input.attrs.shape[1]
            found[symbol] = max(found.get(symbol, 0), model.attrs.max_seq_len)
    bindings = {"T": found.get("T", DEFAULT_LENGTH), "P": 0}
    bindings["S"] = found.get("S", bindings["T"])
    return bindings


def sequence_lengths(graph: Graph, bindings: dict[str, int]) -> dict[str, int]:
    """The number of positions each op's output has, under the given symbol values."""
    lengths: dict[str, int] = {}
    for op in graph.ops():
        lengths[op.name] = length_of(graph, op, lengths, bindings)
    return lengths


def length_of(graph: Graph, op: Op, lengths: dict[str, int], bindings: dict[str, int]) -> int:
    a, kind = op.attrs, op.kind
    first = lengths[op.inputs[0]] if op.inputs else 0
    if kind is OpKind.INPUT:
        return 0 if a.role in ("image", "prefix_length", "passes") else bindings.get(a.shape[1], 0)
    if kind is OpKind.PATCH_EMBEDDING:
        _, _, height, width = graph[op.inputs[0]].attrs.shape
        return (height // a.patch_size) * (width // a.patch_size)
    if kind is OpKind.POSITION_EMBEDDING and a.scheme == "patches":
        return a.max_seq_len
    if kind is OpKind.MEMORY_TOKENS and a.every is not None:  # whole chunks, each with count more
        return -(-first // a.every) * (a.every + a.count)
    if kind is OpKind.MEMORY_TOKENS:
        return first + a.count
    if kind is OpKind.PREPEND:
        return first + lengths[op.inputs[1]]
    if kind is OpKind.PAD_MASK:
        return first + (a.count or lengths[op.inputs[1]])
    if kind is OpKind.STRIP:
        return first - a.count if a.every is None else lengths[op.inputs[1]]
    if kind is OpKind.POOL:
        return a.first or 1
    if kind is OpKind.ATTENTION_POOL:
        return a.queries
    return first


def output_tokens(graph: Graph, lengths: dict[str, int]) -> int:
    """Positions of the model's final embeddings (the sink's): what per-token figures divide by.
    Pooled embeddings count the positions they are the mean of."""
    outputs = [op for op in graph.ops(OpKind.OUTPUT) if op.attrs.name == "embeddings"]
    final = graph[outputs[-1].inputs[0]]
    if final.kind is OpKind.POOL:
        final = graph[final.inputs[0]]
    return max(1, lengths[final.name])


def activation_values(graph: Graph, lengths: dict[str, int],
                      memory: dict[str, int] | None = None) -> int:
    """Values one forward pass of one sequence produces: every op's output (batch 1, each
    symbolic length at its value) and each attention layer's T x S scores per head, which SDPA's
    math path materialises (the flash kernel does not); S counts the `memory` positions of
    each op (`memory_positions`)."""
    memory = memory or {}
    total = 0
    for op in graph.ops():
        if op.kind in (OpKind.INPUT, OpKind.OUTPUT) or not op.shape:
            continue
        size = 1
        for extent in op.shape:
            # (B leads, but for the views of attention's q, k and v: (3, B, T, C))
            size *= extent if isinstance(extent, int) else 1 if extent == "B" else lengths[op.name]
        total += size
        if op.kind in ATTENTION_KINDS:
            keys = score_keys(op, lengths) + memory.get(op.name, 0)
            total += op.attrs.heads * lengths[op.inputs[0]] * keys
    return total


def score_keys(op: Op, lengths: dict[str, int]) -> int:
    keys = lengths[op.inputs[1 if op.kind is OpKind.CROSS_ATTENTION else 0]]
    return keys + op.attrs.num_mem_kv


def memory_positions(graph: Graph, memory: int | None = None) -> dict[str, int]:
    """Transformer-XL: the remembered positions each op's keys span before the sequence, by op
    name: a recurrent model's self-attention layers and the position bias they share. Each
    model's memory is full (max_mem_len), unless `memory` says how long it is (0: the first
    segment's figures)."""
    found: dict[str, int] = {}
    for model in models(graph):
        if not model.recurrent:
            continue
        length = model.attrs.max_mem_len if memory is None else memory
        found.update((op.name, length) for op in model.ops
                     if (op.kind is OpKind.ATTENTION and op.attrs.memory)
                     or op.kind is OpKind.POSITION_BIAS)
    return found


# -- FLOPs ----------------------------------------------------------------------------------------


def op_products(op: Op, lengths: Lengths, input_grad: bool, context_grad: bool = True,
                memory_grad: bool = False) -> list[Product]:
    """The matrix products of one forward of the op. `input_grad` (`context_grad`,
    `memory_grad`): its main input (its context, its Transformer-XL memory) depends on a
    parameter, so the backward computes a gradient for it."""
    a, kind, n = op.attrs, op.kind, lengths.sequence
    if kind is OpKind.PROJECT:
        return [linear(n, a.dim_in, a.dim, input_grad)]
    if kind is OpKind.PATCH_EMBEDDING:  # the patches pass a LayerNorm with a gain first
        return [linear(n, a.patch_dim, a.dim, True)]
    if kind is OpKind.ATTENTION:
        return attention_products(a, n, input_grad, lengths.memory, memory_grad)
    if kind is OpKind.CROSS_ATTENTION:
        return cross_attention_products(a, n, lengths.context, input_grad, context_grad)
    if kind is OpKind.FEEDFORWARD:
        return [linear(n, a.dim, a.inner_dim * (2 if a.glu else 1), input_grad),
                linear(n, a.inner_dim, a.dim, True)]
    # the condition's maps run once per sequence (a (B, D) condition; `context_grad`: it needs
    # a gradient, having passed its MLP)
    if kind is OpKind.NORM and a.condition:  # an adaptive norm's gain
        return [linear(1, a.condition, a.dim, context_grad)]
    if kind is OpKind.RESIDUAL and a.layerscale_condition:  # adaLN-Zero's gate, then the join's
        gate = linear(1, a.layerscale_condition, op.shape[-1], context_grad)
        return [gate, *op_products(replace(op, attrs=replace(a, layerscale_condition=0)), lengths,
                                   input_grad)]
    if kind is OpKind.CONDITION and a.hidden:  # the condition's MLP
        return [linear(1, a.dim, a.hidden, False)]
    if kind is OpKind.RESIDUAL and a.gated:  # GRUCell: input and hidden products, 3 gates each
        return [linear(n, op.shape[-1], 3 * op.shape[-1], True)] * 2
    if kind is OpKind.REINJECT:  # the input's projection, and its gate's
        return [linear(n, a.dim, a.dim, input_grad)] + ([linear(n, a.dim, 1, input_grad)] if a.gated else [])
    if kind is OpKind.STREAM_MIX and a.rank:  # the shared bottleneck, the read and write gates' maps
        width = a.streams * a.dim
        return [linear(n, width, a.rank, input_grad), linear(n, a.rank, a.views * width, True),
                linear(n, a.rank, a.streams, True)]
    if kind is OpKind.STREAM_MIX:  # the read's map of each stream (the mix itself: elementwise)
        return [linear(n * a.streams, a.dim, a.views, input_grad)]
    if kind is OpKind.AGGREGATE:  # the query's low-rank update (the softmax over layers: no matmul)
        return [linear(n, a.dim, a.lora_rank, True), linear(n, a.lora_rank, a.views * a.dim, True)]
    if kind is OpKind.RESIDUAL and a.mv_split_learned:  # the two gains of the output's mean
        return [linear(1, op.shape[-1], op.shape[-1], True)] * 2
    if kind is OpKind.LOGITS:  # (a mixture of softmaxes maps each of its K components; each of
        # num_output_heads maps every position)
        return [linear(n * max(a.mixture, 1), a.dim, a.num_tokens, input_grad)] * a.heads
    if kind is OpKind.LAYER_MIX:  # the weights' map, then the weighted sum over the layers: a
        # batched product, counted with the attention's (over one layer einsum only scales it)
        return [linear(n, a.dim, a.views * a.layers, True)] + (
            [Product(2 * n * a.views * a.layers * a.dim, 2, scores=True)] if a.layers > 1 else [])
    if kind is OpKind.SKIP_COMBINE:
        return [linear(n, 2 * a.dim, a.dim, True)]
    if kind is OpKind.POSITION_BIAS and a.scheme == "dynamic":
        return dynamic_bias_products(a, lengths.memory + n)
    if kind is OpKind.ATTENTION_POOL:
        return attention_pool_products(a, n, input_grad)
    return []


def attention_pool_products(a, n: int, input_grad: bool) -> list[Product]:
    """Each cross-attention of the pool: its queries (learned: they need a gradient) read the
    n hidden states; a deeper pool's blocks add their feedforwards on the queries."""
    inner, queries = a.heads * a.dim_head, a.queries
    attention = [linear(queries, a.dim, inner, True), linear(n, a.dim_context, inner, input_grad),
                 linear(n, a.dim_context, inner, input_grad),
                 *scores_products(a.heads, queries, n, a.dim_head, a.dim_head),
                 linear(queries, inner, a.dim, True)]
    if a.depth == 1:
        return attention
    feedforward = [linear(queries, a.dim, 4 * a.dim, True), linear(queries, 4 * a.dim, a.dim, True)]
    return (attention + feedforward) * a.depth


def attention_products(a, n: int, input_grad: bool, memory: int = 0,
                       memory_grad: bool = False) -> list[Product]:
    """A Transformer-XL memory adds `memory` keys and values, projected apart from the
    sequence's. It is detached: its projections' input needs a gradient only where it passes
    the attention's pre-norm, and that norm has a gain."""
    kv_heads = a.kv_heads or a.heads
    value_dim = a.value_dim_head or a.dim_head
    keys = memory + n + a.num_mem_kv + a.add_zero_kv  # a learned sink is no key: no product
    # (a projection of a latent needs its input's gradient: the latent is computed)
    products = [linear(n, dim_in, dim_out, input_grad or from_latent)
                for dim_in, dim_out, from_latent in qkv_projections(a)]
    if memory:
        products += [linear(memory, a.dim, kv_heads * a.dim_head, memory_grad),
                     linear(memory, a.dim, kv_heads * value_dim, memory_grad)]
    # polar positions make queries and keys 2 D wide: (m cos, m sin) of each feature
    products += scores_products(a.heads, n, keys, a.dim_head * (2 if a.polar else 1), value_dim)
    products += [Product(2 * a.heads * a.heads * n * keys, 2)] * sum(a.talking_heads)
    if a.use_cope:  # each query's logit of every position; its talking heads mix the scores
        products += [Product(2 * a.heads * n * a.cope_max_pos * a.dim_head, 2, scores=True)]
        products += [Product(2 * a.heads * a.heads * n * keys, 2)] * a.cope_talking_heads
    products += value_gates_products(a, n, a.heads * value_dim, input_grad)
    if a.value_residual == "learned":  # the gate of its own values, per token and head
        products += [linear(n, a.dim, a.heads, input_grad)]
    if a.data_dependent_alibi_per_row:  # the gates' queries and keys, then their products
        width = a.data_dependent_alibi_per_row_dim_head
        products += [linear(n, a.dim, 2 * a.heads * width, input_grad),
                     Product(2 * a.heads * n * n * width, 2, scores=True)]
    elif a.data_dependent_alibi:
        products += [linear(n, a.dim, a.heads * (1 if a.causal else 2), input_grad)]
    if a.use_rel_proj_pos_bias:  # the curves' weights, then their mix for each query and key
        basis, bias_keys = a.rel_proj_num_distance_basis, memory + n
        products += [linear(n, a.dim, a.heads * basis, input_grad),
                     Product(2 * a.heads * n * bias_keys * basis, 2, scores=True)]
    if a.project_out:
        # (belief attention's projection is elementwise: no matrix product of its own)
        products.append(linear(n, a.out_width, a.dim * (2 if a.on_attn else 1), True))
    return products


def value_gates_products(a, n: int, value_dim: int, input_grad: bool) -> list[Product]:
    """The value gates' projections: the input gates' read x, the output gate reads the
    attention's output (which always needs a gradient); a low-rank gate's `up` reads `down`'s."""
    products = [linear(n, a.dim, a.heads, input_grad)] if a.gate_value_heads else []
    for (width_in, width_out, rank), needs in zip(value_gate_shapes(a, value_dim),
                                                  (input_grad, True) if a.gate_values else (True,)):
        products += ([linear(n, width_in, rank, needs), linear(n, rank, width_out, True)] if rank
                     else [linear(n, width_in, width_out, needs)])
    return products


def cross_attention_products(a, n: int, context: int, input_grad: bool,
                             context_grad: bool) -> list[Product]:
    inner = a.heads * a.dim_head
    products = [linear(n, a.dim, inner, input_grad),
                linear(context, a.dim_context, inner, context_grad),
                linear(context, a.dim_context, inner, context_grad)]
    keys = context + a.num_mem_kv + a.add_zero_kv
    products += scores_products(a.heads, n, keys, a.dim_head, a.dim_head)
    products += value_gates_products(a, n, inner, input_grad)
    if a.project_out:
        products.append(linear(n, inner, a.dim, True))
    return products


def scores_products(heads: int, queries: int, keys: int, dim_head: int, value_dim: int) -> list[Product]:
    """q k^T and weights v over the full square; both operands of each need gradients."""
    return [Product(2 * heads * queries * keys * dim_head, 2, scores=True),
            Product(2 * heads * queries * keys * value_dim, 2, scores=True)]


def dynamic_bias_products(a, keys: int) -> list[Product]:
    """The MLP runs on the 2S - 1 relative distances; the first layer's input is data."""
    rows, m = 2 * keys - 1, a.mlp_dim
    return ([linear(rows, 1, m, False)] + [linear(rows, m, m, True)] * (a.mlp_depth - 1)
            + [linear(rows, m, a.heads, True)])


def forward_flops(products: list[Product]) -> int:
    return sum(p.flops for p in products)


def training_flops(products: list[Product]) -> int:
    return sum(p.flops * (1 + p.grads) for p in products)


# -- kv cache ---------------------------------------------------------------------------------


def cache_bytes_per_token(op: Op, dtype_bytes: int) -> int:
    """What generation keeps per position: self-attention keys and values per generated token
    (grouped-query attention stores the kv heads only), and what some scores carry beside them;
    cross-attention's per context token."""
    a = op.attrs
    if op.kind is OpKind.ATTENTION and a.decodes:
        if a.dim_latent_kv:  # multi-head latent attention: the latent and the rope key heads
            widths = a.dim_latent_kv + a.latent_rope_subheads * a.dim_head
        else:
            widths = (a.kv_heads or a.heads) * (a.dim_head + (a.value_dim_head or a.dim_head))
        return (widths + sum(carried_per_position(a).values())) * dtype_bytes
    if op.kind is OpKind.CROSS_ATTENTION:
        return a.heads * 2 * a.dim_head * dtype_bytes
    return 0


def carried_per_position(a) -> dict[str, int]:
    """The numbers a causal attention's cache keeps per position beside its keys and values,
    by what they are: data-dependent ALiBi's gate keys (per row) or its gates' running sums
    (one per head), and selective attention's penalty sums (one per key)."""
    carried = {}
    if a.data_dependent_alibi_per_row:
        carried["data-dependent ALiBi's gate keys"] = a.heads * a.data_dependent_alibi_per_row_dim_head
    elif a.data_dependent_alibi:
        carried["data-dependent ALiBi's gate sums"] = a.heads
    if a.selective:
        carried["selective attention's penalty sums"] = 1
    return carried


# -- Transformer-XL memories -------------------------------------------------------------------


def memory_bytes_per_layer(model_attrs, dim: int, dtype_bytes: int) -> int:
    """What one layer's memory holds per sequence at most: max_mem_len positions of its input,
    `dim` wide (0 without recurrence)."""
    return model_attrs.max_mem_len * dim * dtype_bytes
