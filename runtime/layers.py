"""Helpers for residual sublayers."""

from __future__ import annotations

import torch
from torch import Tensor


def layer_drop(new: Tensor, old: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: in training, keep the sublayer's result with probability 1 - p, else
    the input unchanged (one draw per call, as x-transformers does). Huang et al. 2016, "Deep
    Networks with Stochastic Depth", https://arxiv.org/abs/1603.09382.

    A tensor select rather than a Python branch, so that torch.compile traces one graph.
    """
    if not training or p == 0.0:
        return new
    keep = torch.rand((), device=new.device) >= p
    return torch.where(keep, new, old)
