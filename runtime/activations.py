"""Activations that torch.nn does not have."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ReluSquared(nn.Module):
    """relu(x) ** 2. So et al. 2021, "Primer: Searching for Efficient Transformers for Language
    Modeling", https://arxiv.org/abs/2109.08668."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x) ** 2
