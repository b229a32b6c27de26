"""infer-shapes: annotate every op with the shape it produces, symbolic in batch and length.

>>> from xtc.compiler.ir import Graph, OpKind, InputAttrs, TokenEmbeddingAttrs, OutputAttrs
>>> g = Graph()
>>> t = g.add("tokens", OpKind.INPUT, InputAttrs("x", "tokens"))
>>> e = g.add("emb", OpKind.TOKEN_EMBEDDING, TokenEmbeddingAttrs(256, 64), (t,))
>>> o = g.add("out", OpKind.OUTPUT, OutputAttrs("embeddings"), (e,))
>>> infer_shapes(g)["emb"].shape
('B', 'T', 64)
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Op, OpKind

ID = "infer-shapes"
SEQUENCE = ("B", "T")


def infer_shapes(graph: Graph) -> Graph:
    for op in graph.ops():
        graph.replace(replace(op, shape=shape_of(graph, op)))
    return graph


def shape_of(graph: Graph, op: Op) -> tuple:
    source = graph[op.inputs[0]].shape if op.inputs else None
    kind, attrs = op.kind, op.attrs
    if kind is OpKind.INPUT:
        return attrs.shape
    if kind is OpKind.PATCH_EMBEDDING or getattr(attrs, "scheme", "") == "patches":
        return ("B", "N", attrs.dim)  # read from the image (B, C, H, W): one row per patch
    if kind in (OpKind.TOKEN_EMBEDDING, OpKind.POSITION_EMBEDDING, OpKind.NAMED_EMBEDDINGS):
        return (*source[:2], attrs.dim)
    if kind is OpKind.PROJECT and op.role == "to_mixture":  # K components of each position
        return (*source[:-1], attrs.dim // attrs.dim_in, attrs.dim_in)
    if kind is OpKind.PROJECT and attrs.probabilistic:  # stacked means and variances
        return (2, *source[:-1], attrs.dim // 2)
    if kind is OpKind.ATTENTION and attrs.qkv_views:  # three views in, (B, T, C) out
        return (*source[1:-1], attrs.dim)
    if kind in (OpKind.ATTENTION, OpKind.CROSS_ATTENTION, OpKind.FEEDFORWARD, OpKind.PROJECT):
        return (*source[:-1], attrs.dim)
    if kind in (OpKind.MEMORY_TOKENS, OpKind.PAD_MASK, OpKind.PREPEND):
        return (source[0], added_length(op, source[1]), *source[2:])
    if kind is OpKind.STRIP and attrs.every is not None:
        return (source[0], graph[op.inputs[1]].shape[1], *source[2:])  # the padding goes too
    if kind is OpKind.STRIP:
        added = f"+{attrs.count}" if attrs.at_end else f"{attrs.count}+"
        return (source[0], source[1].replace(added, "", 1), *source[2:])
    if kind is OpKind.ROTARY:
        return ("S", attrs.dim)
    if kind is OpKind.POLAR:  # the angles; the keys' phases are (heads, 1, dim_head)
        return ("S", attrs.dim_head)
    if kind is OpKind.POSITION_BIAS:
        return (attrs.heads, "T", "S")
    if kind is OpKind.POOL and attrs.first > 1:  # the CLS tokens' outputs
        return (source[0], attrs.first, source[-1])
    if kind is OpKind.POOL:
        return (source[0], source[-1])
    if kind is OpKind.ATTENTION_POOL:  # one output per learned query
        return (source[0], attrs.queries, attrs.dim)
    if kind is OpKind.LOGITS:  # (a mixture's components, (..., K, C), mixed into one)
        lead = source[:-2] if attrs.mixture else source[:-1]
        return tuple(lead) if attrs.squeeze else (*lead, attrs.num_tokens)
    if kind is OpKind.LOSS:
        return ()
    if kind is OpKind.STREAMS and not attrs.merge:  # (B, T, S, C): S residual streams
        return (*source[:-1], attrs.streams, source[-1])
    if kind is OpKind.STREAMS or kind is OpKind.STREAM_MIX and attrs.views == 1:  # streams mixed
        return (*source[:-2], source[-1])
    if kind is OpKind.STREAM_MIX:  # one mix per view: (V, B, T, C)
        return (attrs.views, *source[:-2], source[-1])
    if kind in (OpKind.AGGREGATE, OpKind.LAYER_MIX) and attrs.views > 1:  # one sum per view: (V, B, T, C)
        return (attrs.views, *source)
    if kind is OpKind.DEEP_EMBED:  # each token's gains for every block
        return (*source, attrs.depth, attrs.dim)
    if kind is OpKind.CONDITION:  # one per sequence (per token: (B, T, D), T the sequence's)
        return (source[0], 1, attrs.hidden or attrs.dim)
    return source  # norm, add, dropout, residual, output keep their input's shape


def added_length(op: Op, length: str) -> str:
    """The symbolic length after tokens are added: `2+T` in front, `T+4` at the end, `P+T`
    for embeddings whose number is known only at run time, and `6*ceil(T/4)` for two in front
    of every four positions."""
    count = getattr(op.attrs, "count", 0) or "P"
    every = getattr(op.attrs, "every", None)
    if every is not None:  # the length padded to whole chunks, each with `count` tokens more
        whole = f"({length})" if "+" in length else length
        return f"{every + count}*ceil({whole}/{every})"
    return f"{length}+{count}" if getattr(op.attrs, "at_end", False) else f"{count}+{length}"
