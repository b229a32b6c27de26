"""Choosing the next token from logits: filters, temperature, sampling. And the next vector of
a probabilistic continuous model, from its means and variances.

Filters run before the temperature, as in x-transformers' AutoregressiveWrapper, and can be
chained (top-k, then top-p, then min-p). Each returns logits with the removed entries at -inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def top_k(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row."""
    k = min(k, logits.shape[-1])
    values, indices = torch.topk(logits, k)
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def top_p(logits: Tensor, p: float) -> Tensor:
    """Nucleus sampling (Holtzman et al. 2019, https://arxiv.org/abs/1904.09751): keep the most
    likely tokens whose probabilities sum to p, and the one that crosses it."""
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    remove = F.pad(cumulative > p, (1, -1), value=False)
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return sorted_logits.scatter(-1, order, sorted_logits)


def min_p(logits: Tensor, p: float) -> Tensor:
    """Keep tokens at least p times as likely as the most likely one (Nguyen et al. 2024,
    https://arxiv.org/abs/2407.01082)."""
    probs = logits.softmax(dim=-1)
    limit = p * probs.amax(dim=-1, keepdim=True)
    return torch.where(probs < limit, float("-inf"), logits)


def sample(logits: Tensor, temperature: float = 1.0, top_k_: int | None = None,
           top_p_: float | None = None, min_p_: float | None = None,
           generator: torch.Generator | None = None) -> Tensor:
    """One token per row of logits (B, V) -> (B, 1). temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    if top_k_ is not None:
        logits = top_k(logits, top_k_)
    if top_p_ is not None:
        logits = top_p(logits, top_p_)
    if min_p_ is not None:
        logits = min_p(logits, min_p_)
    probs = F.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def sample_normal(mean: Tensor, variance: Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """A draw from N(mean, variance), the standard deviation times temperature; temperature 0
    is the mean. Variances are clamped to 1e-5 first, as x-transformers does."""
    if temperature == 0:
        return mean
    std = variance.clamp(min=1e-5).sqrt()
    return torch.normal(mean, std * temperature, generator=generator)
