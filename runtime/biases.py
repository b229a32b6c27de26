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
    https://arxiv.org/abs/2108.12409); the slopes are the paper's unless given, one per head."""

    def __init__(self, heads: int, alibi_heads: int, slopes: tuple[float, ...] | None = None) -> None:
        super().__init__()
        self.heads = heads
        slopes = alibi_slopes(alibi_heads) if slopes is None else list(slopes)
        if len(slopes) != alibi_heads:
            raise ValueError(f"{len(slopes)} ALiBi slopes for {alibi_heads} heads")
        self.register_buffer("slopes", torch.tensor(slopes)[:, None, None], persistent=False)

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


class ProjectedDistanceBias(nn.Module):
    """A bias per head, query and key read from the query's input: the input is projected to
    `num_basis` weights per head, which mix learned curves over the distance back to the key
    (query - key, from 0 to max_distance - 1); keys ahead of the query, or max_distance or more
    behind it, get 0 (x-transformers' RelativeProjPositionalBias, the Inkling model of Thinking
    Machines). Each query's bias depends on its own input alone, so a cached step computes the
    newest query's row exactly."""

    def __init__(self, dim: int, heads: int, num_basis: int, max_distance: int) -> None:
        super().__init__()
        self.heads, self.max_distance = heads, max_distance
        self.to_distance_weights = nn.Linear(dim, heads * num_basis)
        self.distance_bank = nn.Parameter(torch.randn(num_basis, max_distance) * 0.02)

    def forward(self, x: Tensor, keys: int) -> Tensor:
        """x (B, T, C), the last T of `keys` positions -> (B, H, T, S)."""
        back = -distances(x.shape[1], keys, x.device)  # (T, S): query - key
        within = (back >= 0) & (back < self.max_distance)
        curves = self.distance_bank[:, back.clamp(0, self.max_distance - 1)] * within  # (N, T, S)
        weights = self.to_distance_weights(x).unflatten(-1, (self.heads, -1))  # (B, T, H, N)
        return torch.einsum("bthn,nts->bhts", weights, curves)


class DataDependentAlibi(nn.Module):
    """The forgetting transformer's bias (Lin et al. 2025, https://openreview.net/forum?id=q2Lnyegkr8):
    each position gives each head a log forget gate, logsigmoid of a projection of its input
    (times post_log_scale), and query i's bias on key j is the sum of the gates of positions
    j + 1 to i, a data-dependent ALiBi. Bidirectional, a second set of gates sums the other
    way for the keys after the query. Decoding carries the running sum of the gates in the kv
    cache, so a cached step gives the bias of the full sequence exactly."""

    def __init__(self, dim: int, heads: int, causal: bool, bias_init: float,
                 post_log_scale: float) -> None:
        super().__init__()
        self.causal, self.post_log_scale = causal, post_log_scale
        self.to_forget_gates = nn.Linear(dim, heads * (1 if causal else 2))
        nn.init.constant_(self.to_forget_gates.bias, bias_init)

    def forward(self, x: Tensor, cache=None) -> Tensor:
        """x (B, T, C) -> (B, H, T, S), S being T plus the cached positions."""
        gates = F.logsigmoid(self.to_forget_gates(x)).transpose(1, 2) * self.post_log_scale
        sums = gates.cumsum(dim=-1)  # (B, H or 2H, T): the gates up to each position
        if cache is not None:
            sums = cache.extend_running_sum("forget_gates", sums)  # (B, H, S)
        if self.causal:
            return sums[..., -x.shape[1]:, None] - sums[..., None, :]
        ahead, behind = sums.chunk(2, dim=1)  # (B, H, T) each: T == S without a cache
        T = x.shape[1]
        before = causal_mask_like(T, T, x.device)
        return torch.where(before, ahead[..., :, None] - ahead[..., None, :],
                           behind[..., None, :] - behind[..., :, None])


class PerRowDataDependentAlibi(nn.Module):
    """Data-dependent ALiBi with a forget gate per query and key (x-transformers'
    PerRowDataDependentAlibi): logsigmoid of small query-key products (dim_head wide, times
    post_log_scale), and query i's bias on key j the sum of its gates on keys j to i - 1.
    Causal only. Decoding keeps the gates' keys in the kv cache."""

    def __init__(self, dim: int, heads: int, dim_head: int, post_log_scale: float) -> None:
        super().__init__()
        self.heads, self.scale, self.post_log_scale = heads, dim_head**-0.5, post_log_scale
        self.to_forget_gates = nn.Linear(dim, 2 * heads * dim_head, bias=False)

    def forward(self, x: Tensor, cache=None) -> Tensor:
        """x (B, T, C) -> (B, H, T, S), S being T plus the cached positions."""
        q, k = self.to_forget_gates(x).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k = cache.extend("forget_gate_keys", k)  # (B, H, S, d)
        gates = F.logsigmoid(torch.einsum("bhid,bhjd->bhij", q, k) * self.scale)
        gates = gates * self.post_log_scale  # (B, H, T, S)
        T, S = q.shape[2], k.shape[2]
        earlier = causal_mask_like(T, S, x.device, strict=True)  # keys before each query
        gates = gates.masked_fill(~earlier, 0.0)
        return gates.flip(-1).cumsum(dim=-1).flip(-1)  # the gates from key j on


def causal_mask_like(T: int, S: int, device: torch.device, strict: bool = False) -> Tensor:
    """(T, S): True where key j is at or before (strict: before) query i, the queries being the
    last T of S positions."""
    back = -distances(T, S, device)  # query - key
    return back > 0 if strict else back >= 0
