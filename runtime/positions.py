"""Position encodings."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ScaledSinusoidalEmbedding(nn.Module):
    """Fixed sinusoids [sin(p w), cos(p w)] times one learned scale (init dim ** -0.5).
    Hua et al. 2022, "Transformer Quality in Linear Time", https://arxiv.org/abs/2202.10447."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"scaled sinusoidal positions need an even width, got {dim}")
        self.scale = nn.Parameter(torch.ones(1) * dim**-0.5)
        half = dim // 2
        inv_freq = theta ** -(torch.arange(half).float() / half)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        angles = positions.float()[..., None] * self.inv_freq  # (..., T, dim / 2)
        return torch.cat((angles.sin(), angles.cos()), dim=-1) * self.scale  # (..., T, dim)
