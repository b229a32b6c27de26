"""Position encodings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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
    `dim` of the `head_dim` features of each head, rotating adjacent pairs (GPT-J style), as
    x-transformers does; with xPos (Sun et al. 2022, https://arxiv.org/abs/2212.10554) when
    `xpos_scale_base` is set.

    `base_rescale_factor` stretches the base (NTK-aware scaling); `interpolation_factor` divides
    the positions (position interpolation, https://arxiv.org/abs/2306.15595).

    The cosines and sines are computed once per forward for every layer, already as wide as a
    head (cos 1 and sin 0 past `dim`, so the other features pass unchanged without a split and
    a concatenation) and with the sign of the pair rotation in the sines.
    """

    def __init__(self, dim: int, head_dim: int | None = None, base: float = 10000.0,
                 interpolation_factor: float = 1.0, base_rescale_factor: float = 1.0,
                 xpos_scale_base: float | None = None) -> None:
        super().__init__()
        head_dim = dim if head_dim is None else head_dim
        self.width = head_dim - head_dim % 2  # whole pairs: an odd head's last feature stays
        base *= base_rescale_factor ** (dim / (dim - 2))
        self.register_buffer("inv_freq", 1.0 / base ** (torch.arange(0, dim, 2).float() / dim))
        self.interpolation_factor = interpolation_factor
        self.xpos_scale_base = xpos_scale_base
        if xpos_scale_base is not None:
            scale = (torch.arange(0, dim, 2) + 0.4 * dim) / (1.4 * dim)
            self.register_buffer("scale", scale)

    def forward(self, length: int) -> tuple[Tensor, Tensor, Tensor | float]:
        """cos and signed sin (length, width) of positions 0..length-1, and the xPos scale
        (length, width), or 1.0 without xPos; width is head_dim rounded down to whole pairs."""
        positions = torch.arange(length, device=self.inv_freq.device)
        freqs = positions.type_as(self.inv_freq)[:, None] * self.inv_freq / self.interpolation_factor
        cos, sin = freqs.cos(), freqs.sin()  # (length, dim / 2): one angle per pair
        # rotating pair (a, b) gives (-b, a): swap_pairs(t) * (-sin, sin)
        cos = self.pad(torch.stack((cos, cos), dim=-1).flatten(-2), 1.0)
        sin = self.pad(torch.stack((-sin, sin), dim=-1).flatten(-2), 0.0)
        if self.xpos_scale_base is None:
            return cos, sin, 1.0
        power = (positions - length // 2) / self.xpos_scale_base
        scale = self.scale ** power[:, None]
        return cos, sin, self.pad(torch.stack((scale, scale), dim=-1).flatten(-2), 1.0)

    def pad(self, t: Tensor, value: float) -> Tensor:
        """(length, dim) -> (length, width): `value` for the features rotary leaves alone."""
        return F.pad(t, (0, self.width - t.shape[-1]), value=value)


def swap_pairs(x: Tensor) -> Tensor:
    """(x0, x1, x2, x3, ...) -> (x1, x0, x3, x2, ...)."""
    return x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)


def apply_rotary(t: Tensor, cos: Tensor, sin: Tensor, scale: Tensor | float = 1.0) -> Tensor:
    """Rotate t (B, H, N, D) by the angles of the last N positions of cos and sin (from
    RotaryEmbedding), scaled by xPos' scale where it is a tensor. They span D, or D - 1 for an
    odd D, whose last feature passes unchanged."""
    width = cos.shape[-1]
    if width < t.shape[-1]:
        return torch.cat((apply_rotary(t[..., :width], cos, sin, scale), t[..., width:]), dim=-1)
    length = t.shape[-2]
    cos, sin = cos[-length:], sin[-length:]
    if isinstance(scale, Tensor):  # multiplied last, in x-transformers' order
        scale = scale[-length:]
        return t * cos * scale + swap_pairs(t) * sin * scale
    return t * cos + swap_pairs(t) * sin


class PolarEmbedding(nn.Module):
    """Polar position embedding (PoPE: Gopalakrishnan et al. 2025, https://arxiv.org/abs/2509.10534).
    Each of a head's D features gets an angle, position * base ** (-d / D), and its softplus
    magnitude: a query or key becomes 2 D wide, (m cos angle, m sin angle). A key's angles are
    shifted by a learned phase per head and feature, kept within [-2 pi, 0], so a score is
    sum_d m_q m_k cos(angle_q - angle_k - phase): it depends on the distance alone."""

    def __init__(self, dim_head: int, heads: int, bias_uniform_init: bool = False,
                 base: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer("inv_freq", base ** -(torch.arange(dim_head).float() / dim_head))
        self.learned_bias = nn.Parameter(torch.zeros(heads, 1, dim_head))
        if bias_uniform_init:  # phases spread over the whole circle instead of all 0
            nn.init.uniform_(self.learned_bias, -2 * math.pi, 0.0)

    def forward(self, length: int) -> tuple[Tensor, Tensor]:
        """The angles of positions 0..length-1 (length, D) and the keys' phases (H, 1, D)."""
        positions = torch.arange(length, device=self.inv_freq.device).type_as(self.inv_freq)
        return positions[:, None] * self.inv_freq, self.learned_bias.clamp(-2 * math.pi, 0.0)


def apply_polar(t: Tensor, angles: Tensor) -> Tensor:
    """t (B, H, N, D) -> (B, H, N, 2 D): softplus(t) at the angles of the last N positions,
    (..., N, D) (a key's: shifted by its head's phases, (H, N, D)); in float32, as the reference
    computes it whatever the input's type."""
    angles = angles[..., -t.shape[-2] :, :]
    magnitude = F.softplus(t.float())
    return torch.cat((magnitude * angles.cos(), magnitude * angles.sin()), dim=-1).type(t.dtype)


class ContextualPositions(nn.Module):
    """Contextual position encoding (CoPE: Golovneva et al. 2024, https://arxiv.org/abs/2405.18719,
    appendix B), for causal attention. A key's position, seen from a query, is the sum of the
    sigmoid gates of its masked score and of every later key's (masked keys count 0), clamped
    to max_pos - 1; the query's logit of that position, interpolated between the learned
    embeddings of the two integer positions around it, is added to the score. With
    `talking_heads` the gates read the scores mixed across heads (a 1x1 convolution), the
    future masked again, as x-transformers' cope_talking_heads."""

    def __init__(self, dim_head: int, heads: int, max_pos: int, talking_heads: bool = False) -> None:
        super().__init__()
        self.max_pos = max_pos
        self.pos_emb = nn.Parameter(torch.zeros(max_pos, dim_head))
        self.talking_heads = nn.Conv2d(heads, heads, 1, bias=False) if talking_heads else None

    def forward(self, q: Tensor, scores: Tensor) -> Tensor:
        """q (B, H, T, D), the masked scores (B, H, T, S) -> what to add to them."""
        if self.talking_heads is not None:
            T, S = scores.shape[-2:]
            queries = torch.arange(S - T, S, device=q.device)[:, None]
            future = torch.arange(S, device=q.device) > queries  # (T, S), aligned bottom-right
            scores = self.talking_heads(scores).masked_fill(future, -torch.finfo(scores.dtype).max)
        gates = scores.sigmoid()
        positions = gates.flip(-1).cumsum(dim=-1).flip(-1).clamp(max=self.max_pos - 1)
        logits = torch.einsum("bhid,pd->bhip", q, self.pos_emb)  # (B, H, T, max_pos)
        floor = positions.floor().long()
        fraction = positions - floor
        upper = logits.gather(-1, positions.ceil().long())
        return upper * fraction + logits.gather(-1, floor) * (1 - fraction)
