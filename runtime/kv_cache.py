"""Key / value caches for generation.

Each self-attention layer keeps its keys and values in buffers preallocated for the whole
generation (prompt + new tokens), so a decoding step writes one slot and reads a view: no
re-allocation or copy of the past at every step, as torch.cat would do (see the benchmark notes
in the README); a sliding window's layer keeps the window's positions only, copying them
forward at each step instead of growing. Cross-attention keys and values depend only on the
context: they are computed at the first step and reused.
"""

from __future__ import annotations

import torch
from torch import Tensor


class PositionCache:
    """What a self-attention layer's cache keeps whatever form its keys take: the positions seen
    (`length`), its sliding window (None: every position is kept), and other per-position
    tensors beside the keys (`extra`: data-dependent ALiBi's gates, selective attention's
    penalties), trimmed to the window as the keys are."""

    def __init__(self, window: int | None = None) -> None:
        self.window = window
        self.length = 0  # positions seen, kept or not
        self.extra: dict[str, Tensor] = {}

    def extend(self, name: str, t: Tensor) -> Tensor:
        """Append t (B, H, T, ...) to a per-position tensor the layer keeps beside its keys
        (data-dependent ALiBi's gate keys); return every kept position's and these."""
        previous = self.extra.get(name)
        t = t if previous is None else torch.cat((previous, t), dim=2)
        self.keep(name, t, dim=2)
        return t

    def extend_running_sum(self, name: str, sums: Tensor) -> Tensor:
        """Append running sums (B, H, T) of new positions, continued from the last one kept
        (data-dependent ALiBi's forget gates); return every kept position's and these."""
        previous = self.extra.get(name)
        if previous is not None:
            sums = torch.cat((previous, previous[..., -1:] + sums), dim=-1)
        self.keep(name, sums, dim=-1)
        return sums

    def keep(self, name: str, t: Tensor, dim: int = -1) -> None:
        """Keep t, a tensor over the positions (along `dim`) seen so far, beside the keys: a
        sliding window's cache keeps its last `window` positions, as it does keys."""
        if self.window is not None and t.shape[dim] > self.window:
            t = t.narrow(dim, t.shape[dim] - self.window, self.window)
        self.extra[name] = t


class KVCache(PositionCache):
    """Preallocated keys and values of one self-attention layer: (B, H, capacity, D). A
    sliding window's layer (`window`: max_attend_past) keeps the last `window` positions only,
    whatever the capacity: no later query can see further back."""

    def __init__(self, batch: int, heads: int, capacity: int, dim_head: int,
                 device: torch.device, dtype: torch.dtype, value_dim_head: int | None = None,
                 window: int | None = None) -> None:
        super().__init__(window)
        capacity = capacity if window is None else min(capacity, window)
        self.keys = torch.empty(batch, heads, capacity, dim_head, device=device, dtype=dtype)
        value_dim_head = dim_head if value_dim_head is None else value_dim_head
        self.values = torch.empty(batch, heads, capacity, value_dim_head, device=device, dtype=dtype)

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append k and v (B, H, T, D); return every position cached so far, (B, H, length, D),
        or, for a sliding window, the kept ones and these."""
        if self.window is not None:
            return self.slide(k, v)
        start, end = self.length, self.length + k.shape[2]
        if end > self.keys.shape[2]:
            raise ValueError(f"kv cache full: {end} positions, capacity {self.keys.shape[2]}")
        # narrow is one view op where [:, :, start:end] is three: this runs per layer per token
        self.keys.narrow(2, start, k.shape[2]).copy_(k)
        self.values.narrow(2, start, v.shape[2]).copy_(v)
        self.length = end
        return self.keys.narrow(2, 0, end), self.values.narrow(2, 0, end)

    def slide(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """A sliding window's update: the kept positions and k, v (B, H, T, D) together, of
        which the last `window` are kept. The step's keys are a new tensor (the kept ones
        then these); the buffers never hold more than the window."""
        kept = min(self.length, self.window)
        keys = torch.cat((self.keys.narrow(2, 0, kept), k), dim=2)  # (B, H, kept + T, D)
        values = torch.cat((self.values.narrow(2, 0, kept), v), dim=2)
        keep = min(self.window, keys.shape[2])
        if keep > self.keys.shape[2]:
            raise ValueError(f"kv cache full: {self.length + k.shape[2]} positions, capacity "
                             f"{self.keys.shape[2]}")
        self.keys.narrow(2, 0, keep).copy_(keys[:, :, keys.shape[2] - keep:])
        self.values.narrow(2, 0, keep).copy_(values[:, :, values.shape[2] - keep:])
        self.length += k.shape[2]
        return keys, values

    @property
    def buffers(self) -> tuple[Tensor, ...]:
        """The preallocated tensors, for whoever counts the cache's memory."""
        return self.keys, self.values


class LatentCache(PositionCache):
    """Multi-head latent attention's cache (DeepSeek-V2, https://arxiv.org/abs/2405.04434): the
    latent its keys and values are projected from, (B, capacity, L), and with decoupled rope
    the key heads that come from the input itself, unrotated, (B, R, capacity, D); the layer
    re-projects every key and value from the latent at each step. L + R * D numbers a position
    instead of 2 * H * D."""

    def __init__(self, batch: int, capacity: int, latent_dim: int, rope_heads: int, dim_head: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()  # (a sliding window keeps keys and values: not with a latent)
        self.latent = torch.empty(batch, capacity, latent_dim, device=device, dtype=dtype)
        self.rope_keys = (torch.empty(batch, rope_heads, capacity, dim_head, device=device, dtype=dtype)
                          if rope_heads else None)

    @property
    def buffers(self) -> tuple[Tensor, ...]:
        return (self.latent,) if self.rope_keys is None else (self.latent, self.rope_keys)

    def update(self, latent: Tensor, rope_keys: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Append latent (B, T, L) and the rope keys (B, R, T, D) if kept; return everything
        cached so far, (B, length, L) and (B, R, length, D) or None."""
        start, end = self.length, self.length + latent.shape[1]
        if end > self.latent.shape[1]:
            raise ValueError(f"kv cache full: {end} positions, capacity {self.latent.shape[1]}")
        self.latent.narrow(1, start, latent.shape[1]).copy_(latent)
        self.length = end
        if self.rope_keys is None:
            return self.latent.narrow(1, 0, end), None
        self.rope_keys.narrow(2, start, rope_keys.shape[2]).copy_(rope_keys)
        return self.latent.narrow(1, 0, end), self.rope_keys.narrow(2, 0, end)


class ContextCache:
    """Cross-attention keys and values, computed from the context once."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None


class LayerCache:
    """The caches of one block: its self-attention's and, if it has one, its cross-attention's
    (a block of a custom layout that runs more of one kind than the other leaves a slot None)."""

    def __init__(self, self_attn: PositionCache | None, cross_attn: ContextCache | None = None) -> None:
        self.self_attn = self_attn
        self.cross_attn = cross_attn
        self.shifted: dict[int, Tensor] = {}  # token shifting: sublayer -> its last inputs


class ModelCache:
    """The caches of every block of a model; `length` is the number of positions cached, the
    first `prefix` of them prepended embeddings and the rest tokens. A
    custom layout is one block that runs several attention sublayers: it reads `self_attn` and
    `cross_attn`, one cache per sublayer run, in the order they run."""

    def __init__(self, layers: list[LayerCache]) -> None:
        self.layers = layers
        self.prefix = 0  # positions in front of the tokens: embeddings prepended at the first step
        self.counted = 0  # the positions seen, where no self-attention cache holds them
        self.shifted: dict[int, Tensor] = {}  # a custom layout's token shifting, as LayerCache's

    @property
    def length(self) -> int:
        first = self.layers[0].self_attn
        return first.length if first is not None else self.counted

    def advance(self, positions: int) -> None:
        """Count positions that layers without self-attention saw (they keep no keys)."""
        self.counted += positions

    @property
    def self_attn(self) -> list[PositionCache]:
        return [layer.self_attn for layer in self.layers if layer.self_attn is not None]

    @property
    def cross_attn(self) -> list[ContextCache]:
        return [layer.cross_attn for layer in self.layers if layer.cross_attn is not None]

    @classmethod
    def allocate(cls, batch: int, heads: int, capacity: int, dim_head: int, device: torch.device,
                 dtype: torch.dtype, *, self_layers: int, cross_layers: int = 0,
                 value_dim_head: int | None = None,
                 windows: int | tuple[int | None, ...] | None = None,
                 latent_dims: int | tuple[int, ...] = 0,
                 rope_heads: int | tuple[int, ...] = 0) -> ModelCache:
        """Buffers for `self_layers` self-attention runs and `cross_layers` cross-attention
        runs; `heads` are the key / value heads (fewer than the query heads with GQA). The
        last three give every self-attention run's value, or each run's:
        `windows`: its sliding window (None: it sees every position), whose buffers then hold
        that many positions at most; `latent_dims`: with a width (multi-head latent
        attention), the run keeps that latent and `rope_heads` key heads instead of keys and
        values (LatentCache), 0: keys and values (KVCache)."""
        windows, latent_dims, rope_heads = (
            value if isinstance(value, tuple) else (value,) * self_layers
            for value in (windows, latent_dims, rope_heads))

        def self_attn(index: int) -> PositionCache:
            if latent_dims[index]:
                return LatentCache(batch, capacity, latent_dims[index], rope_heads[index],
                                   dim_head, device, dtype)
            return KVCache(batch, heads, capacity, dim_head, device, dtype, value_dim_head,
                           windows[index])

        return cls([
            LayerCache(
                self_attn(index) if index < self_layers else None,
                ContextCache() if index < cross_layers else None)
            for index in range(max(self_layers, cross_layers))
        ])
