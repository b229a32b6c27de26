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
    if op.kind is OpKind.INPUT:
        return SEQUENCE
    if op.kind in (OpKind.TOKEN_EMBEDDING, OpKind.POSITION_EMBEDDING):
        return (*SEQUENCE, op.attrs.dim)
    if op.kind in (OpKind.ATTENTION, OpKind.FEEDFORWARD, OpKind.PROJECT):
        return (*source[:-1], op.attrs.dim)
    if op.kind is OpKind.MEMORY_TOKENS:
        return (source[0], f"{op.attrs.count}+{source[1]}", *source[2:])
    if op.kind is OpKind.PAD_MASK:
        return (source[0], f"{op.attrs.count}+{source[1]}")
    if op.kind is OpKind.STRIP:
        return (source[0], source[1].removeprefix(f"{op.attrs.count}+"), *source[2:])
    if op.kind is OpKind.LOGITS:
        return (*source[:-1], op.attrs.num_tokens)
    return source  # norm, add, dropout, residual, output keep their input's shape
