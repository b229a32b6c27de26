"""fuse-qkv: every self-attention projects its input to queries, keys and values with one
matrix (`to_qkv`) instead of three.

The three projections read the same input, so one Linear of their summed widths computes the
same numbers with one matrix product, one weight read and one module call instead of three: in
a cached decoding step, where each product is one token against a weight matrix, the
benchmark's GPT generated 1.12x as fast with it (A/A 1.05x) and its llama-style config 1.06x
(A/A 1.02x; `benchmarks/bench.py --rewrites`, docs/performance.md). Cross-attention keeps its
projections apart: its keys and values read the context, its queries the sequence; so do
multi-head latent attention, whose projections read latents of the input, and attention whose
queries, keys and values read their own mixes of the residual streams
(qkv_receive_diff_residuals).

Checkpoints keep working: the emitted attention registers a load hook that concatenates the
`to_q`, `to_k` and `to_v` weights of a state dict saved before, and state_dict.py maps the
reference's three weights onto rows of the one (`Rule.rows`).

>>> from xtc.compiler.ir import Graph, OpKind, AttentionAttrs
>>> g = Graph()
>>> _ = g.add("attn", OpKind.ATTENTION, AttentionAttrs(64, 4, 16, True, True, True, kv_heads=2))
>>> attrs = fuse_qkv(g)["attn"].attrs
>>> attrs.fused_qkv, attrs.qkv_widths
(True, (64, 32, 32))
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, OpKind

ID = "fuse-qkv"


def fuse_qkv(graph: Graph) -> Graph:
    for op in graph.ops():
        # with a Transformer-XL memory, keys and values read more positions than the queries;
        # multi-head latent attention projects them from latents, not from the input; with
        # qkv_receive_diff_residuals each reads its own input
        if (op.kind is OpKind.ATTENTION and not op.attrs.memory and not latent(op.attrs)
                and not op.attrs.qkv_views):
            graph.replace(replace(op, attrs=replace(op.attrs, fused_qkv=True)))
    return graph


def latent(attrs) -> bool:
    """Whether queries or keys and values read a latent of the input (multi-head latent
    attention) rather than the input itself."""
    return bool(attrs.dim_latent_q or attrs.dim_latent_kv)
