"""What a model costs, read from the IR alone (no torch): parameters, matmul FLOPs, cache bytes.

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

from dataclasses import dataclass

from .ir import Graph, Op, OpKind


@dataclass(frozen=True)
class Lengths:
    """The sequence lengths an op works on: its own, and that of its context or its keys."""

    sequence: int
    context: int = 0  # cross-attention: the context's length


@dataclass(frozen=True)
class Product:
    """One matrix product: its forward FLOPs and how many operands need a gradient."""

    flops: int
    grads: int  # 0, 1 or 2: the backward computes one product of the same size per gradient
    scores: bool = False  # q k^T or weights v: grows with the key length


def linear(rows: int, dim_in: int, dim_out: int, input_grad: bool) -> Product:
    return Product(2 * rows * dim_in * dim_out, 1 + input_grad)


# -- parameters ---------------------------------------------------------------------------------


def op_parameters(op: Op) -> int:
    """Trainable parameters the op owns (buffers such as rotary frequencies are not counted)."""
    a, kind = op.attrs, op.kind
    if kind is OpKind.TOKEN_EMBEDDING:
        return a.num_tokens * a.dim
    if kind is OpKind.POSITION_EMBEDDING:
        return 1 if a.scheme == "scaled_sinusoidal" else a.max_seq_len * a.dim
    if kind is OpKind.NORM:
        return {"simple_rmsnorm": 0, "scalenorm": 1}.get(a.norm_type, a.dim)
    if kind is OpKind.PROJECT:
        return a.dim_in * a.dim + (a.dim if a.bias else 0)
    if kind is OpKind.PATCH_EMBEDDING:  # LayerNorm (gain), Linear with bias, LayerNorm (gain)
        return a.patch_dim + a.patch_dim * a.dim + a.dim + a.dim
    if kind is OpKind.MEMORY_TOKENS:
        return a.count * a.dim
    if kind is OpKind.POSITION_BIAS:
        return position_bias_parameters(a)
    if kind is OpKind.ATTENTION:
        return attention_parameters(a)
    if kind is OpKind.CROSS_ATTENTION:
        inner = a.heads * a.dim_head
        return (a.dim * inner + 2 * a.dim_context * inner + (inner * a.dim if a.project_out else 0)
                + 2 * a.heads * a.num_mem_kv * a.dim_head)
    if kind is OpKind.FEEDFORWARD:
        into = a.dim * a.inner_dim * (2 if a.glu else 1) + (a.inner_dim * (2 if a.glu else 1)
                                                             if a.glu or a.bias else 0)
        return into + (a.inner_dim if a.post_act_ln else 0) + a.inner_dim * a.dim + (
            a.dim if a.bias else 0)
    if kind is OpKind.RESIDUAL:
        return residual_parameters(op)
    if kind is OpKind.LOGITS:
        return 0 if a.tied else a.dim * a.num_tokens
    return 0


def attention_parameters(a) -> int:
    kv_heads = a.kv_heads or a.heads
    value_dim = a.value_dim_head or a.dim_head
    count = a.dim * (a.heads * a.dim_head + kv_heads * a.dim_head + kv_heads * value_dim)
    if a.project_out:
        count += a.heads * value_dim * a.dim * (2 if a.on_attn else 1)
    count += kv_heads * a.num_mem_kv * (a.dim_head + value_dim)
    count += (a.heads + kv_heads) * a.dim_head if a.qk_norm_dim_scale else 0
    count += a.dim * a.heads * value_dim if a.gate_values else 0
    count += a.heads if a.head_scale else 0
    return count + sum(a.talking_heads) * a.heads**2


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
    count += dim if a.scale_residual else 0
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


# -- FLOPs ----------------------------------------------------------------------------------------


def op_products(op: Op, lengths: Lengths, input_grad: bool, context_grad: bool = True) -> list[Product]:
    """The matrix products of one forward of the op. `input_grad` (`context_grad`): its main
    input (its context) depends on a parameter, so the backward computes a gradient for it."""
    a, kind, n = op.attrs, op.kind, lengths.sequence
    if kind is OpKind.PROJECT:
        return [linear(n, a.dim_in, a.dim, input_grad)]
    if kind is OpKind.PATCH_EMBEDDING:  # the patches pass a LayerNorm with a gain first
        return [linear(n, a.patch_dim, a.dim, True)]
    if kind is OpKind.ATTENTION:
        return attention_products(a, n, input_grad)
    if kind is OpKind.CROSS_ATTENTION:
        return cross_attention_products(a, n, lengths.context, input_grad, context_grad)
    if kind is OpKind.FEEDFORWARD:
        return [linear(n, a.dim, a.inner_dim * (2 if a.glu else 1), input_grad),
                linear(n, a.inner_dim, a.dim, True)]
    if kind is OpKind.RESIDUAL and a.gated:  # GRUCell: input and hidden products, 3 gates each
        return [linear(n, op.shape[-1], 3 * op.shape[-1], True)] * 2
    if kind is OpKind.LOGITS:
        return [linear(n, a.dim, a.num_tokens, input_grad)]
    if kind is OpKind.POSITION_BIAS and a.scheme == "dynamic":
        return dynamic_bias_products(a, n)
    return []


def attention_products(a, n: int, input_grad: bool) -> list[Product]:
    kv_heads = a.kv_heads or a.heads
    value_dim = a.value_dim_head or a.dim_head
    keys = n + a.num_mem_kv
    products = [linear(n, a.dim, a.heads * a.dim_head, input_grad),
                linear(n, a.dim, kv_heads * a.dim_head, input_grad),
                linear(n, a.dim, kv_heads * value_dim, input_grad)]
    products += scores_products(a.heads, n, keys, a.dim_head, value_dim)
    products += [Product(2 * a.heads * a.heads * n * keys, 2)] * sum(a.talking_heads)
    if a.gate_values:
        products.append(linear(n, a.dim, a.heads * value_dim, input_grad))
    if a.project_out:
        products.append(linear(n, a.heads * value_dim, a.dim * (2 if a.on_attn else 1), True))
    return products


def cross_attention_products(a, n: int, context: int, input_grad: bool,
                             context_grad: bool) -> list[Product]:
    inner = a.heads * a.dim_head
    products = [linear(n, a.dim, inner, input_grad),
                linear(context, a.dim_context, inner, context_grad),
                linear(context, a.dim_context, inner, context_grad)]
    products += scores_products(a.heads, n, context + a.num_mem_kv, a.dim_head, a.dim_head)
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
    (grouped-query attention stores the kv heads only); cross-attention's per context token."""
    a = op.attrs
    if op.kind is OpKind.ATTENTION and a.causal:
        return (a.kv_heads or a.heads) * (a.dim_head + (a.value_dim_head or a.dim_head)) * dtype_bytes
    if op.kind is OpKind.CROSS_ATTENTION:
        return a.heads * 2 * a.dim_head * dtype_bytes
    return 0
