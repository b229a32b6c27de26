"""Spec -> IR graph, for a TransformerWrapper around an Encoder or a Decoder.

The graph spells out every op of the model, block by block (pre-norm, x-transformers' default):

    tokens ──► token_emb ─┐
       └────► pos_emb ────┴─► add ─► [ block 0 ] ─► ... ─► [ block depth-1 ] ─► norm ─► logits
                                            ▲
    mask (optional) ────────────────────────┘  (every attention reads it)

    block i:  x ─► attn_norm ─► attention ─► (+x) ─► ff_norm ─► feedforward ─► (+) ─►
              └──────────────────────────────────┘  └─────────────────────────────┘

Each op records the spec key it comes from and the reference module that owns its parameters:
x-transformers numbers sublayers, not blocks, so block i's attention is `attn_layers.layers.{2i}`
and its feedforward `attn_layers.layers.{2i+1}`; `.0.0` is the pre-norm, `.1` the sublayer.
"""

from __future__ import annotations

from xtc.spec import Spec

from .ir import (
    AddAttrs,
    AttentionAttrs,
    FeedForwardAttrs,
    Graph,
    InputAttrs,
    LogitsAttrs,
    NormAttrs,
    OpKind,
    OutputAttrs,
    PositionEmbeddingAttrs,
    ResidualAttrs,
    TokenEmbeddingAttrs,
)
from .resolve import ResolvedLayers, resolve


def build_graph(spec: Spec) -> Graph:
    model = resolve(spec)
    layers = model.layers
    graph = Graph()
    key = model.key
    tokens = graph.add("tokens", OpKind.INPUT, InputAttrs("x", "tokens"), spec_key=key)
    mask = graph.add("mask", OpKind.INPUT, InputAttrs("mask", "mask", optional=True), spec_key=key)
    token_emb = graph.add("token_emb", OpKind.TOKEN_EMBEDDING,
                          TokenEmbeddingAttrs(model.num_tokens, layers.dim), (tokens,),
                          spec_key=f"{key}.num_tokens", ref_path="token_emb.emb", role="token_emb")
    pos_emb = graph.add("pos_emb", OpKind.POSITION_EMBEDDING,
                        PositionEmbeddingAttrs(model.max_seq_len, layers.dim, layers.dim ** -0.5),
                        (tokens,), spec_key=f"{key}.max_seq_len", ref_path="pos_emb.emb",
                        role="pos_emb")
    hidden = graph.add("embed", OpKind.ADD, AddAttrs(), (token_emb, pos_emb), spec_key=key)
    for block in range(layers.depth):
        hidden = add_block(graph, layers, block, hidden, mask)
    hidden = graph.add("norm", OpKind.NORM, NormAttrs(layers.norm, layers.dim), (hidden,),
                       spec_key=layers.key, ref_path="attn_layers.final_norm", role="norm")
    graph.add("embeddings", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))
    logits = graph.add("logits", OpKind.LOGITS, LogitsAttrs(layers.dim, model.num_tokens),
                       (hidden,), spec_key=f"{key}.num_tokens", ref_path="to_logits",
                       role="to_logits")
    graph.add("output", OpKind.OUTPUT, OutputAttrs("logits"), (logits,))
    return graph


def add_block(graph: Graph, layers: ResolvedLayers, block: int, hidden: str, mask: str) -> str:
    attn_ref, ff_ref = f"attn_layers.layers.{2 * block}", f"attn_layers.layers.{2 * block + 1}"
    attention = AttentionAttrs(layers.dim, layers.heads, layers.dim_head, layers.causal,
                               layers.flash, layers.project_out)
    feedforward = FeedForwardAttrs(layers.dim, layers.ff_inner_dim, layers.activation)
    hidden = add_residual(graph, layers, block, hidden, "attn", OpKind.ATTENTION, attention,
                          attn_ref, extra_inputs=(mask,))
    return add_residual(graph, layers, block, hidden, "ff", OpKind.FEEDFORWARD, feedforward, ff_ref)


def add_residual(graph: Graph, layers: ResolvedLayers, block: int, hidden: str, role: str,
                 kind: OpKind, attrs: object, ref: str, extra_inputs: tuple[str, ...] = ()) -> str:
    """x + branch(norm(x)): one pre-norm residual sublayer."""
    prefix = f"block{block}_{role}"
    section_key = f"{layers.key}.{role}"
    normed = graph.add(f"{prefix}_norm", OpKind.NORM, NormAttrs(layers.norm, layers.dim),
                       (hidden,), spec_key=layers.key, ref_path=f"{ref}.0.0", block=block,
                       role=f"{role}_norm")
    branch = graph.add(prefix, kind, attrs, (normed, *extra_inputs), spec_key=section_key,
                       ref_path=f"{ref}.1", block=block, role=role)
    return graph.add(f"{prefix}_residual", OpKind.RESIDUAL, ResidualAttrs(), (hidden, branch),
                     spec_key=layers.key, block=block)
