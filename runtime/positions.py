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


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021, https://arxiv.org/abs/2104.09864) on the first
    `dim` features of each head, rotating adjacent pairs (GPT-J style), as x-transformers does;
    with xPos (Sun et al. 2022, https://arxiv.org/abs/2212.10554) when `xpos_scale_base` is set.

    `base_rescale_factor` stretches the base (NTK-aware scaling); `interpolation_factor` divides
    the positions (position interpolation, https://arxiv.org/abs/2306.15595).
    """

    def __init__(self, dim: int, base: float = 10000.0, interpolation_factor: float = 1.0,
                 base_rescale_factor: float = 1.0, xpos_scale_base: float | None = None) -> None:
        super().__init__()
        base *= base_rescale_factor ** (dim / (dim - 2))
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, dim, 2).float() / dim))
        self.interpolation_factor = interpolation_factor
        self.xpos_scale_base = xpos_scale_base
        if xpos_scale_base is not None:
            scale = (torch.arange(0, dim, 2) + 0.4 * dim) / (1.4 * dim)
            self.register_buffer("scale", scale)

    def forward(self, length: int) -> tuple[Tensor, Tensor | float]:
        """Angles (length, dim) for positions 0..length-1, and the xPos scale (or 1.0)."""
        positions = torch.arange(length, device=self.inv_freq.device)
        freqs = positions.type_as(self.inv_freq)[:, None] * self.inv_freq / self.interpolation_factor
        freqs = torch.stack((freqs, freqs), dim=-1).flatten(-2)  # each angle for a pair
        if self.xpos_scale_base is None:
            return freqs, 1.0
        power = (positions - length // 2) / self.xpos_scale_base
        scale = self.scale ** power[:, None]
        return freqs, torch.stack((scale, scale), dim=-1).flatten(-2)


def rotate_pairs(x: Tensor) -> Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(t: Tensor, freqs: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """Rotate the first freqs.shape[-1] features of t (B, H, N, D) by the angles of its last N
    positions; the other features pass unchanged."""
    length, width = t.shape[-2], freqs.shape[-1]
    freqs = freqs[-length:]
    scale = scale[-length:] if isinstance(scale, Tensor) else scale
    rotated, rest = t[..., :width], t[..., width:]
    rotated = rotated * freqs.cos() * scale + rotate_pairs(rotated) * freqs.sin() * scale
    return torch.cat((rotated, rest), dim=-1)
