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


def drop_tokens(seq: Tensor, mask: Tensor | None, p: float) -> tuple[Tensor, Tensor | None]:
    """Keep a random int((1 - p) * T) of the T tokens of each sequence (real tokens first), as
    x-transformers' `dropout_seq` does for cross-attention contexts in training."""
    batch, length = seq.shape[:2]
    scores = torch.randn(batch, length, device=seq.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, -torch.finfo(scores.dtype).max)
    keep = max(1, int((1.0 - p) * length))
    indices = scores.topk(keep, dim=1).indices  # (B, keep)
    rows = torch.arange(batch, device=seq.device)[:, None]
    seq = seq[rows, indices]
    if mask is not None:
        kept_counts = torch.ceil(mask.sum(dim=-1) * (1.0 - p)).int()
        mask = mask[rows, indices] & (torch.arange(keep, device=seq.device) < kept_counts[:, None])
    return seq, mask
