"""Norms as x-transformers computes them, with the gain stored as itself (init 1).

x-transformers normalises with `F.normalize` (x / max(||x||, 1e-12)) and rescales by sqrt(dim),
which equals x / rms(x) without the usual epsilon inside the square root; these classes do the
same, so that outputs match to the last bits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def unit(x: Tensor) -> Tensor:
    """x / max(||x||, 1e-12) over the last dimension: F.normalize's result, bit for bit, in
    three tensor operations instead of four (norms run twice per block per decoding step)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class RMSNorm(nn.Module):
    """x / rms(x) * weight. Zhang & Sennrich 2019, "Root Mean Square Layer Normalization",
    https://arxiv.org/abs/1910.07467."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return unit(x) * self.scale * self.weight


class ScaleNorm(nn.Module):
    """x / ||x|| * sqrt(dim) * g with one learned scalar g. Nguyen & Salazar 2019,
    "Transformers without Tears", https://arxiv.org/abs/1910.05895."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return unit(x) * self.scale * self.weight


class SimpleRMSNorm(nn.Module):
    """x / rms(x), with no learned gain (Qi et al. 2023, https://arxiv.org/abs/2307.14995)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5

    def forward(self, x: Tensor) -> Tensor:
        return unit(x) * self.scale


class HeadRMSNorm(nn.Module):
    """x / rms(x) * weight over each head's features, with a gain per head and feature, for
    queries, keys or values of shape (B, heads, T, dim) (x-transformers' MultiheadRMSNorm, its
    qk_rmsnorm, k_rmsnorm and value_rmsnorm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.weight = nn.Parameter(torch.ones(heads, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return unit(x) * self.scale * self.weight


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm whose gain comes from a condition (DiT's adaptive LayerNorm, Peebles & Xie
    2022, https://arxiv.org/abs/2212.09748): 1 + a linear map of it, zero at first, so the norm
    starts as a plain LayerNorm. condition: (B, 1, D) for the whole sequence, or (B, T, D)."""

    def __init__(self, dim: int, dim_condition: int) -> None:
        super().__init__()
        self.to_gain = nn.Linear(dim_condition, dim, bias=False)
        nn.init.zeros_(self.to_gain.weight)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        normed = nn.functional.layer_norm(x, x.shape[-1:])
        return normed * (self.to_gain(condition) + 1.0)


class AdaptiveRMSNorm(nn.Module):
    """RMSNorm whose gain comes from a condition, as AdaptiveLayerNorm's."""

    def __init__(self, dim: int, dim_condition: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.to_gain = nn.Linear(dim_condition, dim, bias=False)
        nn.init.zeros_(self.to_gain.weight)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        return unit(x) * self.scale * (self.to_gain(condition) + 1.0)


class DynamicTanh(nn.Module):
    """tanh(alpha * x) * weight + bias, one learned scalar alpha, in place of a norm (DyT: Zhu
    et al. 2025, "Transformers without Normalization", https://arxiv.org/abs/2503.10622)."""

    def __init__(self, dim: int, init_alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(init_alpha))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.alpha).tanh() * self.weight + self.bias


class Derf(nn.Module):
    """erf(alpha * x + shift) * weight + bias, learned scalars alpha and shift, in place of a
    norm (Derf, https://arxiv.org/abs/2512.10938)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.shift = nn.Parameter(torch.tensor(0.0))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.erf(x * self.alpha + self.shift) * self.weight + self.bias


class EpsRMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * weight: the mean and the root in float32, the result cast
    back to the input's dtype before the gain, as Hugging Face's LlamaRMSNorm computes it (its
    rms_norm_eps). What norm_eps, an xtc extension, makes of every RMSNorm of a stack."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.square().mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)
