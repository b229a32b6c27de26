"""Attention pooling: learned queries read a sequence's outputs by cross-attention and become
its summary, a few vectors per sequence (x-transformers' AttentionPool, which
TransformerWrapper's attn_pool builds on an Encoder)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import attend


class PoolingAttention(nn.Module):
    """Queries (B, N, dim) attend to a context (B, T, dim_context): bias-free projections of
    heads * dim_head, no positions, no causal mask."""

    def __init__(self, dim: int, dim_context: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim_context, inner, bias=False)
        self.to_v = nn.Linear(dim_context, inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, N or T, D)
                   for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        out = attend(q, k, v, causal=False, key_mask=mask)  # (B, H, N, D)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, N, dim)


class PoolingBlock(nn.Module):
    """A pre-norm block of the deeper pool: cross-attention to the context, then a GELU
    feedforward (4 * dim wide, with biases), each added to its input."""

    def __init__(self, dim: int, dim_context: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, bias=False)
        self.attn = PoolingAttention(dim, dim_context, heads, dim_head)
        self.ff_norm = nn.LayerNorm(dim, bias=False)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.attn_norm(x), context, mask)
        return x + self.ff(self.ff_norm(x))


class AttentionPool(nn.Module):
    """num_queries learned queries (dim wide) read the context (B, T, dim_context), the padding
    mask (B, T) marking its real positions: (B, num_queries, dim). Depth 1 is one
    cross-attention, its output as it is; deeper pools are pre-norm blocks and a final norm
    (x-transformers' CrossAttender)."""

    def __init__(self, dim: int, dim_context: int, num_queries: int, depth: int, heads: int,
                 dim_head: int) -> None:
        super().__init__()
        self.depth = depth
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 1e-2)
        if depth == 1:
            self.attn = PoolingAttention(dim, dim_context, heads, dim_head)
        else:
            self.blocks = nn.ModuleList(PoolingBlock(dim, dim_context, heads, dim_head)
                                        for _ in range(depth))
            self.norm = nn.LayerNorm(dim, bias=False)

    def forward(self, context: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.queries.expand(context.shape[0], -1, -1)  # (B, N, dim)
        if self.depth == 1:
            return self.attn(x, context, mask)
        for block in self.blocks:
            x = block(x, context, mask)
        return self.norm(x)
