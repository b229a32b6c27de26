"""Attention through `torch.nn.functional.scaled_dot_product_attention`, with x-transformers'
masking conventions.

- Causal masks are aligned bottom-right (query i of T sees keys up to i + S - T), as the
  reference does with a cache or memory; SDPA's own `is_causal` is aligned top-left, so it is
  used only when T == S and there is no other mask, where the two agree.
- A query row that may see no key at all (a fully padded sequence) returns zeros, as in the
  reference, rather than the NaN a softmax over nothing would give.
- Keys and values may have fewer heads than the queries (grouped-query attention, Ainslie et
  al. 2023, https://arxiv.org/abs/2305.13245): query head h reads key / value head h % K, the
  tiling x-transformers uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def attend(q: Tensor, k: Tensor, v: Tensor, *, causal: bool, key_mask: Tensor | None = None,
           attn_mask: Tensor | None = None, bias: Tensor | None = None,
           dropout: float = 0.0, scale: float | None = None,
           l2_distance: bool = False) -> Tensor:
    """softmax(q k^T / sqrt(D) + bias) v for q (B, H, T, D), k and v (B, H or K, S, D).

    key_mask (B, S) is True for keys that may be attended to; attn_mask, (T, S), (H, T, S) or
    (B, H, T, S), is True where query i may attend to key j; bias (H, T, S) is added to the
    scaled scores (relative positions); dropout applies to the attention weights (pass 0.0
    outside training); scale replaces 1 / sqrt(D) (qk-norm uses a fixed one). l2_distance
    scores by minus the squared distance of q and k instead (`l2_distance_bias`).
    """
    T, S = q.shape[-2], k.shape[-2]
    if l2_distance:
        bias, scale = l2_distance_bias(q, k, bias, scale)
    if T == 1:  # one query is the newest position: it sees every key
        causal = False  # (a branch, not `causal and T > 1`: with dynamic shapes under
        # torch.compile that would be a symbolic bool, and SDPA's is_causal takes plain ones)
    if k.shape[1] != q.shape[1]:
        if T == 1 and attn_mask is None and bias is None:
            return attend_one_query_grouped(q, k, v, key_mask, dropout, scale)
        k, v = tile_heads(k, q.shape[1]), tile_heads(v, q.shape[1])
    # SDPA's CPU flash kernel takes 2-D or 4-D masks only
    bias = bias[None] if bias is not None and bias.ndim == 3 else bias
    attn_mask = attn_mask[None] if attn_mask is not None and attn_mask.ndim == 3 else attn_mask
    if key_mask is None and attn_mask is None and bias is None and (not causal or T == S):
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal,
                                              scale=scale)
    allowed = causal_mask(T, S, q.device) if causal else None  # (T, S)
    for mask in (key_mask[:, None, None, :] if key_mask is not None else None, attn_mask):
        if mask is not None:
            allowed = mask if allowed is None else allowed & mask  # broadcast to (B, H, T, S)
    if allowed is None:  # a bias alone: SDPA adds it as a float mask
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout,
                                              scale=scale)
    empty = ~allowed.any(dim=-1, keepdim=True)  # rows with no visible key: (..., T, 1)
    scores_mask = allowed | empty
    if bias is not None:
        scores_mask = bias.to(q.dtype).masked_fill(~scores_mask, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=scores_mask, dropout_p=dropout,
                                         scale=scale)
    return out.masked_fill(empty, 0.0)


def attend_one_query_grouped(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None,
                             dropout: float, scale: float | None) -> Tensor:
    """One query position (a decoding step) with K < H key / value heads: the H / K query heads
    that read one key / value head become H / K query rows of it, so the cache is read as it
    is instead of being tiled H / K times at every step."""
    B, H, _, D = q.shape
    K = k.shape[1]
    rows = q.reshape(B, H // K, K, D).transpose(1, 2)  # (B, K, H / K, D): head a * K + b -> (b, a)
    out = attend(rows, k, v, causal=False, key_mask=key_mask, dropout=dropout, scale=scale)
    return out.transpose(1, 2).reshape(B, H, 1, v.shape[-1])  # (B, H, 1, Dv)


def l2_distance_bias(q: Tensor, k: Tensor, bias: Tensor | None,
                     scale: float | None) -> tuple[Tensor, float]:
    """Scores -|q - k|^2 * scale as SDPA computes them: -|q - k|^2 = 2 q.k - |k|^2 - |q|^2, and
    the last term is the same for every key of a row, so the softmax drops it. Returns the
    bias, -|k|^2 * scale per key (plus `bias`), (B, H, T, S), and the scale of q.k, 2 * scale."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    keys = -scale * tile_heads(k, q.shape[1]).pow(2).sum(dim=-1)  # (B, H, S)
    keys = keys[:, :, None, :].expand(-1, -1, q.shape[-2], -1)  # (B, H, T, S)
    return (keys if bias is None else keys + bias), 2 * scale


def orthogonal_part(x: Tensor, y: Tensor) -> Tensor:
    """x minus its projection on y, each batch row flattened whole: (B, ...) tensors of one
    shape, so every position of a row at once (belief attention, x-transformers'
    orthog_project). In float64, as the reference, and back to x's dtype."""
    rows, dtype = x.flatten(1).double(), x.dtype
    unit = F.normalize(y.flatten(1).double(), dim=-1)
    along = (rows * unit).sum(dim=-1, keepdim=True) * unit
    return (rows - along).reshape(x.shape).to(dtype)


def tile_heads(t: Tensor, heads: int) -> Tensor:
    """(B, K, S, D) -> (B, heads, S, D), head h being head h % K."""
    return t if t.shape[1] == heads else t.repeat(1, heads // t.shape[1], 1, 1)


def causal_mask(T: int, S: int, device: torch.device) -> Tensor:
    """(T, S) boolean, True where query i may see key j: j <= i + S - T (bottom-right). Built
    from position comparisons, which every ONNX opset exports (tril needs opset 14)."""
    queries = torch.arange(S - T, S, device=device)
    return torch.arange(S, device=device) <= queries[:, None]


def prefix_mask(T: int, past: int, prefix_attn_len: int | Tensor | None,
                device: torch.device) -> Tensor:
    """A prefix language model's mask over the S = past + T keys, True where query i may see
    key j: the causal mask, and every key within the first prefix_attn_len positions (an int,
    or one per row (B,)), which all queries see (x-transformers' PrefixDecoder). (T, S), or
    (B, 1, T, S) for lengths per row."""
    S = past + T
    allowed = causal_mask(T, S, device)
    if prefix_attn_len is None:
        return allowed
    keys = torch.arange(S, device=device)
    if isinstance(prefix_attn_len, int):
        return allowed | (keys < prefix_attn_len)
    within = keys < prefix_attn_len.to(device)[:, None]  # (B, S)
    return allowed | within[:, None, None, :]


def sliding_window(T: int, S: int, past: int, device: torch.device,
                   slots: int = 0) -> Tensor | None:
    """(T, S) boolean, True where query i may see key j under a sliding window: key j at most
    `past` positions before the query (later keys are the causal mask's business). The queries
    are the last T of the S - slots positions after the first `slots` keys, which are not
    positions (memory slots, a zero key) and stay visible. None where every key is within
    reach of every query: a decoding step over a window's cache, or a short sequence."""
    if S - 1 - slots <= past:  # the last query to the first position
        return None
    keys = torch.arange(S, device=device)
    queries = keys[S - T:]
    return (queries[:, None] - keys <= past) | (keys < slots)  # (T, S)


def l2norm(t: Tensor, groups: int = 1) -> Tensor:
    """Unit length within each of `groups` equal slices of the last dimension (qk-norm: Henry
    et al. 2020, https://arxiv.org/abs/2010.04245)."""
    return F.normalize(t.unflatten(-1, (groups, -1)), dim=-1).flatten(-2)


def attend_explicit(q: Tensor, k: Tensor, v: Tensor, *, causal: bool,
                    key_mask: Tensor | None = None, attn_mask: Tensor | None = None,
                    bias: Tensor | None = None, dropout: float = 0.0, scale: float | None = None,
                    pre_talking_heads: nn.Module | None = None,
                    post_talking_heads: nn.Module | None = None,
                    pre_scale_post_talking_heads: nn.Module | None = None,
                    sparse_topk: int | None = None, topk_straight_through: bool = False,
                    hard: bool = False, prev_scores: Tensor | None = None,
                    softclamp: float | None = None, sink: Tensor | None = None,
                    return_scores: bool = False, sigmoid: bool = False,
                    l2_distance: bool = False,
                    cog_signed: bool = False, inverted: bool = False,
                    query_mask: Tensor | None = None, gumbel: float | None = None,
                    gumbel_hard: bool = True,
                    cope: nn.Module | None = None,
                    selective: bool = False,
                    selective_cache=None) -> Tensor | tuple[Tensor, Tensor]:
    """Attention with the score matrix in hand, for the options that read or rewrite it (SDPA
    never materialises it): talking heads (Shazeer et al. 2020, https://arxiv.org/abs/2003.02436)
    mix it across heads before and after the softmax, and top-k attention (Zhao et al. 2019,
    https://arxiv.org/abs/1912.11637) keeps each row's k largest scores. Residual attention
    (He et al. 2020, https://arxiv.org/abs/2012.11747) adds the previous layer's pre-softmax
    scores (`prev_scores`; `return_scores` hands this layer's on). `softclamp` caps the scores
    smoothly at +-softclamp, `softclamp * tanh(scores / softclamp)`, before masking (Gemma 2,
    https://arxiv.org/abs/2408.00118). `topk_straight_through` keeps top-k's forward and
    takes the gradient of the full softmax (https://arxiv.org/abs/2505.22074); `hard` attends to
    each row's largest score alone, with the softmax's gradient (straight through). `sink` (H,)
    is a learned logit per head put before each row's scores after masking: it takes its share
    of the softmax (top-k and hard included) and carries no value (gpt-oss's attention sink);
    the returned scores include it, as the reference's pre-softmax scores do. `gumbel` (a
    temperature) samples the weights, in eval mode too: a softmax of the scores plus Gumbel noise,
    divided by the temperature (Jang et al. 2016, https://arxiv.org/abs/1611.01144), one-hot on
    its largest entry with the soft weights' gradient where `gumbel_hard`; the noise is drawn
    from torch's global generator, one (B, H, T, S) draw per call. `cope` (contextual
    positions, runtime.positions.ContextualPositions) adds its logits to the masked scores,
    before the sink; `selective` then subtracts `selective_penalty`, whose running sum
    `selective_cache` (the layer's kv cache) carries from step to step. `sigmoid` weighs
    each key by the sigmoid of its score instead of the softmax (sigmoid attention, Ramapuram et
    al. 2024, https://arxiv.org/abs/2409.04431); `l2_distance` scores by minus the squared
    distance of q and k (times the scale); `cog_signed` takes the softmax of the scores'
    magnitudes and gives each weight its score's sign (CoG attention,
    https://arxiv.org/abs/2411.07176). `inverted` takes the softmax over the queries instead,
    padded queries (`query_mask` (B, T), True for real ones) masked before it and masked keys
    after, then normalises each row's weights to sum 1 (inverted cross-attention, as
    x-transformers' inverted_attention). Shapes and masks
    as in `attend`; the order of operations is x-transformers' (Attend.forward in attend.py)."""
    T, S = q.shape[-2], k.shape[-2]
    k, v = tile_heads(k, q.shape[1]), tile_heads(v, q.shape[1])
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.einsum("bhid,bhjd->bhij", q, k)  # (B, H, T, S)
    if l2_distance:  # -|q - k|^2 = 2 q.k - |q|^2 - |k|^2
        scores = 2 * scores - q.pow(2).sum(dim=-1)[..., None] - k.pow(2).sum(dim=-1)[..., None, :]
    scores = scores * scale
    if prev_scores is not None:
        scores = scores + prev_scores
    pre_to_post = pre_scale_post_talking_heads(scores) if pre_scale_post_talking_heads else None
    if pre_talking_heads is not None:
        scores = scores + pre_talking_heads(scores)
    if bias is not None:
        scores = scores + bias
    if softclamp is not None:
        scores = softclamp * torch.tanh(scores / softclamp)
    if cog_signed:  # the softmax of the magnitudes; the signs come back after it
        signs, scores = scores.sign(), scores.abs()
    allowed = causal_mask(T, S, q.device) if causal and T > 1 else None
    for mask in (key_mask[:, None, None, :] if key_mask is not None else None, attn_mask):
        if mask is not None:
            allowed = mask if allowed is None else allowed & mask
    key_allowed = allowed  # rows with no visible key return zeros
    if inverted:  # the queries' padding before the softmax, the keys' after it
        allowed = None if query_mask is None else query_mask[:, None, :, None]  # (B, 1, T, 1)
    lowest = -torch.finfo(scores.dtype).max
    if allowed is not None:
        scores = scores.masked_fill(~allowed, lowest)
    if cope is not None:
        scores = scores + cope(q, scores)
    if selective:
        scores = scores - selective_penalty(scores, selective_cache)
    if sink is not None:  # (B, H, T, 1 + S): never masked
        sinks = sink[:, None, None].expand(*scores.shape[:-1], 1)
        if cog_signed:
            signs, sinks = torch.cat((sinks.sign(), signs), dim=-1), sinks.abs()
        scores = torch.cat((sinks, scores), dim=-1)
    pre_softmax = scores
    if sparse_topk is not None:
        kth = scores.topk(min(sparse_topk, scores.shape[-1]), dim=-1).values[..., -1:]
        weights = scores.masked_fill(~((scores >= kth) & (scores > lowest)), lowest).softmax(dim=-1)
        if topk_straight_through:
            weights = straight_through(weights, scores.softmax(dim=-1))
    elif hard:
        one_hot = torch.zeros_like(scores).scatter(-1, scores.argmax(dim=-1, keepdim=True), 1.0)
        weights = straight_through(one_hot, scores.softmax(dim=-1))
    elif gumbel is not None:
        weights = F.gumbel_softmax(scores, tau=gumbel, hard=gumbel_hard, dim=-2 if inverted else -1)
    elif sigmoid:  # masked keys weigh sigmoid(lowest) = 0
        weights = scores.sigmoid()
    else:
        weights = scores.softmax(dim=-2 if inverted else -1)
    if inverted:  # over the queries: masked keys weigh 0, then each row sums to 1
        if key_allowed is not None:
            weights = weights.masked_fill(~key_allowed, 0.0)
        weights = F.normalize(weights, p=1, dim=-1, eps=1e-8)
    if cog_signed:
        weights = weights * signs
    if sink is not None:
        weights = weights[..., 1:]  # the sink's share goes nowhere
    weights = F.dropout(weights, dropout)
    if post_talking_heads is not None:
        weights = post_talking_heads(weights)
    if pre_to_post is not None:
        weights = weights * pre_to_post
    out = torch.einsum("bhij,bhjd->bhid", weights, v)  # (B, H, T, D)
    if key_allowed is not None:
        out = out.masked_fill(~key_allowed.any(dim=-1, keepdim=True), 0.0)
    return (out, pre_softmax) if return_scores else out


def straight_through(forward: Tensor, soft: Tensor) -> Tensor:
    """`forward`'s values with `soft`'s gradient."""
    return forward.detach() + soft - soft.detach()


def selective_penalty(scores: Tensor, cache=None) -> Tensor:
    """Selective attention (Leviathan et al. 2024, https://arxiv.org/abs/2410.02703, section
    3.3), causal: query i's penalty on key j is the sum, over the earlier queries i' < i, of
    the first head's masked score of i' for j, where positive. A query never penalises its own
    key, nor the first query's (the start of the sequence) or any before it (memory slots, a
    zero key). scores (B, H, T, S), the last T keys the queries' own -> (B, 1, T, S).

    The penalties are a running sum over the queries, so a kv cache carries it: `cache` keeps
    the sum of every cached query's gates per key position, and its queries' penalties go on
    from there (cached steps equal the whole sequence's). A sliding window's cache keeps the
    last positions only, so its first key may come after the start; its new gates are dropped
    all the same, which changes nothing: it is the furthest key the newest queries reach, and
    out of the window of every later one."""
    T, S = scores.shape[-2:]
    carried = None if cache is None else cache.extra.get("selective_penalty")  # (B, L)
    first = S - T - (0 if carried is None else carried.shape[-1])  # the first kept position's key
    keys = torch.arange(S, device=scores.device)
    own = keys == torch.arange(S - T, S, device=scores.device)[:, None]  # (T, S)
    gates = scores[:, 0].relu().masked_fill(own | (keys <= first), 0.0)  # (B, T, S)
    earlier = torch.cat((torch.zeros_like(gates[:, :1]), gates[:, :-1]), dim=1)  # row i: i - 1's
    penalty = earlier.cumsum(dim=1)  # (B, T, S)
    if carried is not None:  # the cached queries' gates, none yet on the new keys
        penalty = penalty + F.pad(carried, (first, T))[:, None]
    if cache is not None:  # every query's so far, per key position of the sequence
        cache.keep("selective_penalty", (penalty[:, -1] + gates[:, -1])[:, first:])
    return penalty[:, None]
