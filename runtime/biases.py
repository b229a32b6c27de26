"""Relative position biases added to the attention logits: ALiBi, T5 buckets, and a learned
MLP over distances. Each returns (heads, T, S) for T queries that are the last T of S keys."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def distances(queries: int, keys: int, device: torch.device) -> Tensor:
    """key position - query position, (T, S), the queries being the last T positions."""
    query_positions = torch.arange(keys - queries, keys, device=device)
    return torch.arange(keys, device=device)[None, :] - query_positions[:, None]


class AlibiBias(nn.Module):
    """-slope_h * |i - j| for the first `alibi_heads` heads, 0 for the rest (Press et al. 2021,
    https://arxiv.org/abs/2108.12409)."""

    def __init__(self, heads: int, alibi_heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.register_buffer("slopes", torch.tensor(alibi_slopes(alibi_heads))[:, None, None],
                             persistent=False)

    def forward(self, queries: int, keys: int) -> Tensor:
        bias = -distances(queries, keys, self.slopes.device).abs() * self.slopes  # (A, T, S)
        return F.pad(bias, (0, 0, 0, 0, 0, self.heads - bias.shape[0]))  # (H, T, S)


def alibi_slopes(heads: int) -> list[float]:
    """Geometric slopes 2^(-8/n), as in the paper, interleaved for non-powers of two."""
    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + power_of_2(2 * closest)[0::2][: heads - closest]


class T5RelativeBias(nn.Module):
    """A learned scalar per head for each bucket of relative distance, exact for small
    distances and logarithmic up to max_distance (Raffel et al. 2019,
    https://arxiv.org/abs/1910.10683), times sqrt(dim_head) as x-transformers scales it."""

    def __init__(self, heads: int, num_buckets: int, max_distance: int, causal: bool,
                 scale: float) -> None:
        super().__init__()
        self.num_buckets, self.max_distance, self.causal, self.scale = num_buckets, max_distance, causal, scale
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def forward(self, queries: int, keys: int) -> Tensor:
        device = self.relative_attention_bias.weight.device
        buckets = self.bucket(distances(queries, keys, device))
        return self.relative_attention_bias(buckets).permute(2, 0, 1) * self.scale  # (H, T, S)

    def bucket(self, relative: Tensor) -> Tensor:
        n, buckets, offset = -relative, self.num_buckets, 0
        if self.causal:
            n = n.clamp(min=0)
        else:
            buckets //= 2
            offset = (n < 0).long() * buckets
            n = n.abs()
        exact = buckets // 2
        large = exact + (torch.log(n.float() / exact) / math.log(self.max_distance / exact)
                         * (buckets - exact)).long()
        return offset + torch.where(n < exact, n, large.clamp(max=buckets - 1))


class DynamicPositionBias(nn.Module):
    """An MLP from relative distance to one bias per head (Wang et al. 2021,
    https://arxiv.org/abs/2108.00154), optionally on sign(d) * log(|d| + 1) and with norms
    after its hidden layers (the first without a bias, as x-transformers builds it)."""

    def __init__(self, dim: int, heads: int, depth: int, log_distance: bool,
                 norm: bool = False) -> None:
        super().__init__()
        self.log_distance = log_distance

        def hidden(dim_in: int, first: bool) -> nn.Sequential:
            norms = [nn.LayerNorm(dim, bias=not first)] if norm else []
            return nn.Sequential(nn.Linear(dim_in, dim), *norms, nn.SiLU())

        layers = [hidden(1, True)] + [hidden(dim, False) for _ in range(depth - 1)]
        self.mlp = nn.ModuleList([*layers, nn.Linear(dim, heads)])

    def forward(self, queries: int, keys: int) -> Tensor:
        device = self.mlp[-1].weight.device
        positions = torch.arange(-keys + 1, keys, device=device).float()[:, None]  # (2S - 1, 1)
        if self.log_distance:
            positions = torch.sign(positions) * torch.log(positions.abs() + 1)
        for layer in self.mlp:
            positions = layer(positions)
        index = -distances(queries, keys, device) + keys - 1  # (T, S) into 2S - 1 distances
        return positions[index].permute(2, 0, 1)  # (H, T, S)
