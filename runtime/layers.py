"""Helpers for residual sublayers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import orthogonal_part
from .norms import RMSNorm


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


def recycle_count(recycle_steps: int | None, training: bool, train_max_steps: int) -> int:
    """How many times a recycling model runs its layers: recycle_steps where given; in
    training without it, 1 to train_max_steps drawn from torch's generator (so that
    torch.manual_seed repeats it; x-transformers draws from Python's `random`)."""
    if recycle_steps is None and training:
        return int(torch.randint(1, train_max_steps + 1, ()))
    if isinstance(recycle_steps, bool) or not isinstance(recycle_steps, int) or recycle_steps < 1:
        got = "none" if recycle_steps is None else f"{recycle_steps!r}"
        raise ValueError(f"recycle_steps must be a positive int outside training (the passes "
                         f"through the layers), got {got}")
    return recycle_steps


def forgetful_mask(batch: int, length: int, p: float, device: torch.device | str) -> Tensor:
    """Forgetful causal masking (Liu et al. 2022, https://arxiv.org/abs/2210.13432): a key mask
    (B, T), True where kept, that hides min(int(T * p), T - 1) keys of each row chosen
    uniformly at random, never the first (every query still sees a key)."""
    hidden = min(int(length * p), length - 1)
    scores = torch.rand(batch, length, device=device)
    scores[:, 0] = -1.0  # below every draw: never among the hidden
    indices = scores.topk(hidden, dim=-1).indices  # (B, hidden)
    kept = torch.ones(batch, length, dtype=torch.bool, device=device)
    return kept.scatter(1, indices, False)


class Residual(torch.nn.Module):
    """out + x for a sublayer's output and its input, with the residual options the spec
    uses: a learned per-feature scale of x (NormFormer, https://arxiv.org/abs/2110.09456), a
    constant one (scale_residual_constant), a GRU gate instead of the sum (GTrXL, Parisotto et
    al. 2019, https://arxiv.org/abs/1910.06764) or x plus the part of out orthogonal to x (Oh et
    al. 2025, https://arxiv.org/abs/2505.11881), each batch row flattened whole as
    x-transformers' orthog_project does: every position of a row, later and padded ones
    included, shapes each output.
    """

    def __init__(self, dim: int, *, scale_residual: bool = False, constant: float = 1.0,
                 gated: bool = False, orthogonal: bool = False) -> None:
        super().__init__()
        self.residual_scale = torch.nn.Parameter(torch.ones(dim)) if scale_residual else None
        self.constant = constant
        self.gru = torch.nn.GRUCell(dim, dim) if gated else None
        self.orthogonal = orthogonal

    def forward(self, out: Tensor, x: Tensor) -> Tensor:
        if self.residual_scale is not None:
            x = x * self.residual_scale
        if self.constant != 1.0:
            x = x * self.constant
        if self.orthogonal:
            return x + orthogonal_part(out, x)
        if self.gru is None:
            return out + x
        return self.gru(out.flatten(0, -2), x.flatten(0, -2)).view_as(out)  # per token


class MeanSplitResidual(torch.nn.Module):
    """The mean / variance split residual update (Lu 2026, https://arxiv.org/abs/2605.06169;
    x-transformers' MVSplitResidualUpdate): the sublayer's output is split along the sequence
    into its mean and the centered rest, which join x with their own per-feature gains,

        x + beta * (out - mean(out)) + alpha * (mean(out) - mean(x))

    the means over each row's real tokens (the padding mask). alpha and beta are learned
    vectors, or (`learned`) Linear maps of mean(out). A mean reads every position of the row:
    in a Decoder each output reads later tokens.
    """

    def __init__(self, dim: int, *, init_alpha: float = 0.0, init_beta: float = 0.03,
                 learned: bool = False) -> None:
        super().__init__()
        if learned:  # zero weights: the biases hold the initial gains
            self.to_alpha, self.to_beta = nn.Linear(dim, dim), nn.Linear(dim, dim)
            for gain, value in ((self.to_alpha, init_alpha), (self.to_beta, init_beta)):
                nn.init.zeros_(gain.weight)
                nn.init.constant_(gain.bias, value)
        else:
            self.alpha = nn.Parameter(torch.full((dim,), float(init_alpha)))
            self.beta = nn.Parameter(torch.full((dim,), float(init_beta)))
        self.learned = learned

    def forward(self, out: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        mean_out, mean_x = sequence_mean(out, mask), sequence_mean(x, mask)  # (B, 1, C)
        if self.learned:
            alpha, beta = self.to_alpha(mean_out), self.to_beta(mean_out)
        else:
            alpha, beta = self.alpha, self.beta
        return x + (out - mean_out) * beta + (mean_out - mean_x) * alpha


class LayerMix(nn.Module):
    """Layer-integrated memory (x-transformers' DynamicLIMe; Gerasimov et al. 2025,
    https://arxiv.org/abs/2502.09245): a sublayer's input is, at each position, a weighted sum
    of the inputs of the `layers` sublayers so far, the weights a linear map of the normed
    latest, normalised over the layers by a softmax (else only kept non-negative, by a ReLU).
    `views` weightings give as many sums (three: attention's queries, keys and values each
    read their own).
    """

    def __init__(self, dim: int, layers: int, views: int = 1, softmax: bool = True) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.to_weights = nn.Linear(dim, views * layers)
        self.views, self.softmax = views, softmax

    def forward(self, hiddens: list[Tensor]) -> Tensor:
        """-> (B, T, C), or (V, B, T, C) for V views."""
        logits = self.to_weights(self.norm(hiddens[-1])).unflatten(-1, (self.views, -1))
        weights = logits.softmax(dim=-1) if self.softmax else logits.relu()  # (B, T, V, L)
        mixed = torch.einsum("lbtc,btvl->vbtc", torch.stack(hiddens), weights)
        return mixed[0] if self.views == 1 else mixed


class SkipCombine(nn.Module):
    """A U-Net skip (x-transformers' ConcatCombine; unet_skips): a block of the stack's second
    half reads its input concatenated after the input of its mirror in the first half,
    projected from 2 * dim back to dim."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.proj(torch.cat((skip, x), dim=-1))


class LayerAttention(nn.Module):
    """Attention over the layers (x-transformers' AttentionResidual;
    https://arxiv.org/abs/2601.21582, https://arxiv.org/abs/2603.15031): a sublayer's input is,
    at each position, a softmax-weighted sum of the inputs of every sublayer so far. The query
    is the latest input plus a low-rank map of it (zero at first), normed; the keys are the
    normed inputs. `views` queries give as many sums (three: attention's queries, keys and
    values each read their own).
    """

    def __init__(self, dim: int, rank: int, views: int = 1) -> None:
        super().__init__()
        self.key_norm = nn.RMSNorm(dim)
        self.query_norm = nn.RMSNorm(dim)
        self.down = nn.Linear(dim, rank, bias=False)
        self.up = nn.Linear(rank, views * dim, bias=False)
        nn.init.zeros_(self.up.weight)
        self.norm = nn.RMSNorm(dim)
        self.views = views

    def forward(self, hiddens: list[Tensor]) -> Tensor:
        """-> (B, T, C), or (V, B, T, C) for V views."""
        stacked, latest = torch.stack(hiddens), hiddens[-1]  # (L, B, T, C), (B, T, C)
        update = self.up(self.down(self.query_norm(latest))).unflatten(-1, (self.views, -1))
        query = self.norm(latest.unsqueeze(-2) + update).movedim(-2, 0)  # (V, B, T, C)
        keys = self.key_norm(stacked)  # (L, B, T, C)
        scores = (query[:, None] * keys).sum(dim=-1) * latest.shape[-1] ** -0.5  # (V, L, B, T)
        weights = scores.softmax(dim=1)  # over the layers
        mixed = (weights[..., None] * stacked).sum(dim=1)  # (V, B, T, C)
        return mixed[0] if self.views == 1 else mixed


class Reinjection(nn.Module):
    """The layer stack's input, projected and, `gated`, scaled per position by a learned
    sigmoid of it: every sublayer's input takes it added (input reinjection, DEQ,
    https://arxiv.org/abs/1909.01377; x-transformers' reinject_input)."""

    def __init__(self, dim: int, *, gated: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Linear(dim, 1, bias=False) if gated else None

    def forward(self, x: Tensor) -> Tensor:
        inject = self.proj(x)
        return inject if self.gate is None else inject * self.gate(x).sigmoid()


class HyperConnection(nn.Module):
    """A sublayer's connection to S residual streams (hyper-connections, Zhu et al. 2024,
    https://arxiv.org/abs/2409.19606, their dynamic form; x-transformers' HyperConnection).

    `read` gives the sublayer's input: a mix of the streams, its weights per position a sigmoid
    of a learned constant plus a small learned map of the normed streams (one mix per view:
    three views give attention's queries, keys and values their own). `forward` writes the
    output back: every stream becomes the sum of all the streams plus the output times its own
    per-position gate, in (0, 2). The sum is what x-transformers 2.31.10 computes: its
    Sinkhorn-normalised stream mixing always comes out all ones.
    """

    def __init__(self, dim: int, *, streams: int, views: int = 1, layer: int = 0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, bias=False)
        read = torch.zeros(streams, views)
        read[layer % streams] = 1.0  # at first each view reads the layer's own stream
        self.read = nn.Parameter(read)
        self.read_proj = nn.Parameter(torch.zeros(dim, views))
        self.read_scale = nn.Parameter(torch.tensor(1e-2))
        self.write = nn.Parameter(torch.ones(streams))
        self.write_proj = nn.Parameter(torch.zeros(dim))
        self.write_scale = nn.Parameter(torch.tensor(1e-2))
        self.views = views

    def prepare(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, T, S, C) -> the sublayer's input (B, T, C), or (V, B, T, C) for V views; the
        streams' sum (B, T, 1, C); the write gates (B, T, S)."""
        normed = self.norm(x)
        weights = (self.read + normed @ self.read_proj * self.read_scale).sigmoid()  # (B, T, S, V)
        mixed = (weights.unsqueeze(-1) * x.unsqueeze(-2)).sum(dim=-3)  # (B, T, V, C)
        mixed = mixed.squeeze(-2) if self.views == 1 else mixed.movedim(-2, 0)
        gates = (self.write + (normed @ self.write_proj).sigmoid() * 2 * self.write_scale).sigmoid() * 2
        return mixed, x.sum(dim=-2, keepdim=True), gates

    def forward(self, out: Tensor, summed: Tensor, gates: Tensor) -> Tensor:
        """out: (B, T, C), the sublayer's output -> the streams (B, T, S, C)."""
        return write_streams(out, summed, gates)


class GatedMultiResidual(nn.Module):
    """A sublayer's connection to S residual streams through gates (x-transformers'
    GatedMultiResidual, after Qwen's gated residual): `read` gives the sublayer's input, the mean
    over the streams of the RMS-normed streams (a learned gain per stream and feature) times an
    elementwise sigmoid gate, a learned constant plus a low-rank map of them (one gate per view);
    `forward` adds the output to each stream times its own per-position gate in (0, 2). The
    read and write gates share the low-rank bottleneck; their maps start at zero.
    """

    def __init__(self, dim: int, *, streams: int, rank: int, views: int = 1, layer: int = 0) -> None:
        super().__init__()
        self.read_norm = nn.RMSNorm(dim, elementwise_affine=False)
        self.read_gain = nn.Parameter(torch.ones(streams, dim))
        read = torch.zeros(views, streams, dim)
        read[:, layer % streams] = 1.0  # at first each view leans on the layer's own stream
        self.read = nn.Parameter(read)
        self.write = nn.Parameter(torch.zeros(streams))  # gates of 1 at first
        self.down = nn.Linear(streams * dim, rank, bias=False)
        self.to_read = nn.Linear(rank, views * streams * dim, bias=False)
        self.to_write = nn.Linear(rank, streams, bias=False)
        nn.init.zeros_(self.to_read.weight)
        nn.init.zeros_(self.to_write.weight)
        self.scale = nn.Parameter(torch.tensor(1e-2))

    def prepare(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, T, S, C) -> the sublayer's input (B, T, C), or (V, B, T, C) for V views; the
        streams as they are; the write gates (B, T, S)."""
        streams = x.shape[-2]
        normed = self.read_norm(x) * self.read_gain
        shared = torch.nn.functional.silu(self.down(normed.flatten(-2) / streams)) * self.scale
        gates = (self.to_read(shared).unflatten(-1, self.read.shape) + self.read).sigmoid()  # (B, T, V, S, C)
        mixed = (gates * normed.unsqueeze(-3)).sum(dim=-2) / streams  # (B, T, V, C)
        mixed = mixed.squeeze(-2) if self.read.shape[0] == 1 else mixed.movedim(-2, 0)
        return mixed, x, (self.to_write(shared) + self.write).sigmoid() * 2

    def forward(self, out: Tensor, x: Tensor, gates: Tensor) -> Tensor:
        """out: (B, T, C), the sublayer's output -> the streams (B, T, S, C)."""
        return write_streams(out, x, gates)


def write_streams(out: Tensor, streams: Tensor, gates: Tensor) -> Tensor:
    """Each stream (B, T, S, C) plus the output (B, T, C) times its own gate (B, T, S)."""
    return streams + out.unsqueeze(-2) * gates.unsqueeze(-1)


def sequence_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """The mean of x (B, T, C) over its real positions (mask (B, T), True where real):
    (B, 1, C). A row without any real position gives zeros."""
    if mask is None:
        return x.mean(dim=-2, keepdim=True)
    kept = mask[..., None].to(x.dtype)  # (B, T, 1)
    count = kept.sum(dim=-2, keepdim=True).clamp(min=1e-5)
    return (x * kept).sum(dim=-2, keepdim=True) / count


def shift_tokens(x: Tensor, shifts: tuple[int, ...], mask: Tensor | None = None,
                 past: dict[int, Tensor] | None = None, sublayer: int = 0) -> Tensor:
    """Token shifting (RWKV-style; x-transformers' ShiftTokens): the features are cut into
    len(shifts) equal chunks (any remainder stays), chunk i moves shifts[i] positions along the
    sequence (positive: later), padding with zeros; a moved chunk's padded positions are
    zeroed first. past: when decoding with a cache, the inputs of this `sublayer` at the last
    max(shifts) positions (masked), which x's first positions shift in; it is updated."""
    if past is not None:
        return shift_after(x, shifts, mask, past, sublayer)
    width = x.shape[-1] // len(shifts)
    chunks = x.split(width, dim=-1)
    moved = [shift(chunk, amount, mask) for chunk, amount in zip(chunks, shifts)]
    return torch.cat((*moved, *chunks[len(shifts):]), dim=-1)


def shift_after(x: Tensor, shifts: tuple[int, ...], mask: Tensor | None,
                past: dict[int, Tensor], sublayer: int) -> Tensor:
    """shift_tokens of x (B, T, C), or (V, B, T, C), following the cached positions (causal
    shifts only)."""
    keep = max(shifts)
    if keep == 0:
        return x
    length = x.shape[-2]
    current = x if mask is None else x.masked_fill(~mask[:, -length:, None], 0.0)
    before = past.get(sublayer)
    if before is None:  # the first step: zeros before the sequence, as without a cache
        before = x.new_zeros(*x.shape[:-2], keep, x.shape[-1])
    joined = torch.cat((before, current), dim=-2)  # (B, keep + T, C)
    past[sublayer] = joined[..., -keep:, :]
    width = x.shape[-1] // len(shifts)
    chunks, joined_chunks = x.split(width, dim=-1), joined.split(width, dim=-1)
    moved = [chunk if amount == 0 else whole.narrow(-2, keep - amount, length)
             for chunk, whole, amount in zip(chunks, joined_chunks, shifts)]
    return torch.cat((*moved, *chunks[len(shifts):]), dim=-1)


def shift(t: Tensor, amount: int, mask: Tensor | None = None) -> Tensor:
    """Move along the sequence (dim -2) by `amount`, zeros filling in."""
    if amount == 0:
        return t
    if mask is not None:
        t = t.masked_fill(~mask[..., None], 0.0)
    amount = min(amount, t.shape[-2])
    return torch.nn.functional.pad(t, (0, 0, amount, -amount))


def padding_first(t: Tensor, prefix: int, seq_start_pos: Tensor) -> Tensor:
    """Rows [prefix, padding, tokens] of t (B, L, ...) reordered [padding, prefix, tokens]: a
    left-padded prompt's prefix then sits next to its first token, as it would unpadded, so
    relative positions see no gap between them. seq_start_pos (B,): each row's padding."""
    j = torch.arange(t.shape[1], device=t.device)
    start = seq_start_pos[:, None]
    source = torch.where(j < start, prefix + j, torch.where(j < start + prefix, j - start, j))
    index = source if t.ndim == 2 else source[..., None].expand(-1, -1, t.shape[-1])
    return t.gather(1, index)


def stack_qkv_weights(module: nn.Module, state_dict: dict, prefix: str, *_) -> None:
    """A load_state_dict pre-hook of an attention with one q / k / v projection (`to_qkv`): a
    state dict with three (`to_q`, `to_k`, `to_v`, as xtc emitted them before it fused them)
    loads too, their weights stacked in that order."""
    names = [f"{prefix}to_{part}.weight" for part in ("q", "k", "v")]
    if all(name in state_dict for name in names):
        state_dict[f"{prefix}to_qkv.weight"] = torch.cat([state_dict.pop(name) for name in names])
