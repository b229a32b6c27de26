"""A looped language model (Zhu et al. 2025, Ouro, https://arxiv.org/abs/2510.25741): the same
layers run several times, each loop on the last one's output, and a learned exit gate says
after which loop each token's prediction is good enough. `looped_loss` is how it learns, as
x-transformers' AutoregressiveWrapper computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kv_cache import LayerCache, ModelCache


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
    # targets and weights, held constant (detached: standalone modules have no `with`)
    held, gates = losses.detach(), exit_logits.detach()
    exit_target = torch.sigmoid(slope * (held[:, 1:] - held[:, :-1] + threshold))  # (B, L - 1, T)
    go_on = F.pad(F.logsigmoid(-gates), (0, 0, 1, -1)).cumsum(dim=1)  # before each loop
    exit_here = F.pad(F.logsigmoid(gates)[:, :-1], (0, 0, 0, 1))  # the last loop always exits
    exit_chance = (exit_here + go_on).exp()  # (B, L, T)
    gate_loss = F.binary_cross_entropy_with_logits(exit_logits[:, :-1], exit_target,
                                                   reduction="none")
    gate_loss = gate_loss[real[:, None].expand_as(gate_loss)].mean()
    weighted = losses * exit_chance
    real_loops = real[:, None].expand_as(weighted)
    return weighted[real_loops].mean() + gate_loss * exit_weight


class EarlyExit:
    """Which rows of a one-token decoding step have left the loops, as x-transformers' looped
    inference decides for its one row: after each loop but the last, a row's exit gate adds
    its chance of exiting there (the gate's sigmoid times the chances of going on at every loop
    before) to the row's running sum, and the row leaves once that reaches `threshold`; the
    last loop lets out every row still in. threshold None: no early exit (a loop count given).

    A row that has left keeps the output of its exit loop; the loops after it still run on
    the whole batch, their outputs for it discarded."""

    def __init__(self, batch: int, threshold: float | None, device: torch.device) -> None:
        self.threshold = threshold
        self.exit_chance = torch.zeros(batch, device=device)  # summed over the loops so far
        self.go_on = torch.zeros(batch, device=device)  # log chance of having gone on so far
        self.loop = torch.full((batch,), -1, device=device)  # where each row left; -1: not yet
        # the last loop's outputs (B, 1, C), each row that has left keeping its exit loop's
        self.left: Tensor | None = None

    @property
    def all_left(self) -> bool:
        return bool((self.loop >= 0).all())

    def after_loop(self, h: Tensor, gate: nn.Module, loop: int, last: bool) -> Tensor:
        """h (B, 1, C): loop `loop`'s output; returns it with the rows that left before keeping
        their own."""
        staying = self.loop < 0
        if self.left is not None:
            h = torch.where(staying[:, None, None], h, self.left)
        if last:
            leaving = staying
        elif self.threshold is None:
            leaving = torch.zeros_like(staying)
        else:
            logit = gate(h)[:, -1, 0].float()  # (B,)
            self.exit_chance = self.exit_chance + (self.go_on + F.logsigmoid(logit)).exp()
            self.go_on = self.go_on + F.logsigmoid(-logit)
            leaving = staying & (self.exit_chance >= self.threshold)
        self.loop = torch.where(leaving, loop, self.loop)
        self.left = h
        return h


class LoopedCache(ModelCache):
    """A looped LM's kv cache: the layers' caches once per loop (`select` picks the one a loop
    reads and writes). A prompt's positions keep each loop's own keys and values; a position
    decoded one token at a time keeps those of the loop where its row left (`settle`), which
    every loop of later tokens reads: the cache x-transformers' looped inference keeps for its
    one row (its prompt cache per loop, and each new token's from its exit loop)."""

    def __init__(self, args: tuple, kwargs: dict, loops: int) -> None:
        self.args, self.kwargs = args, kwargs  # ModelCache.allocate's: one loop's layers
        self.loops = [self.new_loop() for _ in range(loops)]
        self.shared = 0  # positions every loop holds alike (settled)
        super().__init__(self.loops[0])

    @classmethod
    def allocate(cls, *args, loops: int, **kwargs) -> LoopedCache:
        """ModelCache.allocate's arguments, for each of `loops` loops' layers (more are made
        if a generation runs more loops)."""
        return cls(args, kwargs, loops)

    def new_loop(self) -> list[LayerCache]:
        """Empty caches for one loop's layers."""
        return ModelCache.allocate(*self.args, **self.kwargs).layers

    def select(self, loop: int) -> None:
        """Read and write loop `loop`'s caches. A loop run for the first time after positions
        that every loop shares (settled one-token steps, as after a one-token prompt) starts
        with the first loop's of those."""
        for _ in range(len(self.loops), loop + 1):
            self.loops.append(copied(self.loops[0], self.new_loop(), self.shared))
        self.layers = self.loops[loop]

    def settle(self, exit_loop: Tensor) -> None:
        """After a one-token step: each row's new keys and values, in every loop, are those of
        the loop it left at (exit_loop (B,)); every loop then holds the same positions."""
        end = self.length
        rows = torch.arange(exit_loop.shape[0], device=exit_loop.device)
        for index in range(len(self.layers)):
            caches = [loop[index].self_attn for loop in self.loops]
            ran = [cache for cache in caches if cache.length == end]  # the loops run, in order
            for kind in range(2):  # keys, then values: (B, H, capacity, D) each
                chosen = torch.stack([c.buffers[kind][:, :, end - 1] for c in ran])[exit_loop, rows]
                for cache in caches:
                    cache.buffers[kind][:, :, end - 1] = chosen  # (B, H, D)
            for cache in caches:
                cache.length = end
        self.shared = end if self.shared == end - 1 else self.shared


def copied(layers: list[LayerCache], fresh: list[LayerCache], positions: int) -> list[LayerCache]:
    """`fresh`, a new loop's caches, holding the first `positions` of what `layers` hold."""
    for new, old in zip(fresh, layers, strict=True):
        for mine, theirs in zip(new.self_attn.buffers, old.self_attn.buffers, strict=True):
            mine.narrow(2, 0, positions).copy_(theirs.narrow(2, 0, positions))
        new.self_attn.length = positions
    return fresh
