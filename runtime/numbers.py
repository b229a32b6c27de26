"""What an xVal model returns besides tensors (https://arxiv.org/abs/2310.02989): named tuples with
the fields of x-transformers' XValAutoregressiveWrapper, so that code written for it reads them
by the same names."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class LossBreakdown(NamedTuple):
    """The two terms of an xVal loss at each predicted position, (B, T - 1) each: zero where a
    target is ignored (and the squared error where the target is not a number)."""

    cross_entropy_loss: Tensor
    numerical_mse_loss: Tensor


class NumberGeneration(NamedTuple):
    """What an xVal model's generate returns, (B, n_new) each: the new token ids, the number
    predicted at each (NaN where the token is not the number token), and where it is."""

    sampled_token_ids: Tensor
    sampled_numbers: Tensor
    is_number_mask: Tensor
