"""Activations that torch.nn does not have."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ReluSquared(nn.Module):
    """relu(x) ** 2. So et al. 2021, "Primer: Searching for Efficient Transformers for Language
    Modeling", https://arxiv.org/abs/2109.08668."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x) ** 2


def softclamp(t: Tensor, value: float) -> Tensor:
    """t smoothly capped at +-value: value * tanh(t / value) (Gemma 2's soft-capping)."""
    return value * torch.tanh(t / value)


class SoLU(nn.Module):
    """x * softmax(x) over the features, then a bias-free LayerNorm. Elhage et al. 2022,
    "Softmax Linear Units", https://transformer-circuits.pub/2022/solu/index.html."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x * x.softmax(dim=-1))
