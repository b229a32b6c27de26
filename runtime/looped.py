"""A looped language model (Zhu et al. 2025, Ouro, https://arxiv.org/abs/2510.25741): the same
layers run several times, each loop on the last one's output, and a learned exit gate says
after which loop each token's prediction is good enough. `looped_loss` is how it learns, as
x-transformers' AutoregressiveWrapper computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def looped_loss(loop_logits: Tensor, exit_logits: Tensor, targets: Tensor, *, ignore_index: int,
                threshold: float, slope: float, exit_weight: float) -> Tensor:
    """loop_logits (B, L, T, V): each loop's next-token logits; exit_logits (B, L, T): each
    loop's exit gate; targets (B, T).

    Each loop's cross entropy is weighted by the chance that the token exits at that loop (the
    gate's exit probability there times the chances of going on at every loop before; the last
    loop takes what is left), the weights held constant. The gate learns, by binary cross
    entropy, a soft target per loop: sigmoid(slope * (next loop's loss - this loop's +
    threshold)), near 1 where the next loop would not lower the loss by `threshold`."""
    loops = loop_logits.shape[1]
    real = targets != ignore_index  # (B, T)
    expanded = targets[:, None].expand(-1, loops, -1)  # (B, L, T)
    losses = F.cross_entropy(loop_logits.flatten(0, 2), expanded.flatten(),
                             ignore_index=ignore_index, reduction="none").view_as(expanded)
    with torch.no_grad():
        improvement = losses[:, 1:] - losses[:, :-1]  # (B, L - 1, T)
        exit_target = torch.sigmoid(slope * (improvement + threshold))
        exit_here = F.logsigmoid(exit_logits)
        go_on = F.pad(F.logsigmoid(-exit_logits), (0, 0, 1, -1)).cumsum(dim=1)  # before each loop
        exit_here = F.pad(exit_here[:, :-1], (0, 0, 0, 1))  # the last loop always exits
        exit_chance = (exit_here + go_on).exp()  # (B, L, T)
    gate_loss = F.binary_cross_entropy_with_logits(exit_logits[:, :-1], exit_target,
                                                   reduction="none")
    gate_loss = gate_loss[real[:, None].expand_as(gate_loss)].mean()
    weighted = losses * exit_chance
    real_loops = real[:, None].expand_as(weighted)
    return weighted[real_loops].mean() + gate_loss * exit_weight
