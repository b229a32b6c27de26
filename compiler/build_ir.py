"""Spec -> IR graph, for a TransformerWrapper around an Encoder or a Decoder.

The graph spells out every op of the model, block by block; optional ops appear only when the
spec uses them ([brackets]):

    tokens ─► token_emb ─┬─ [+ pos_emb] ─► [post_emb_norm] ─► [dropout] ─► [project_emb]
                                         ─► [memory tokens] ─► block 0 ... block depth-1
                                         ─► [final norm] ─► [strip memory] ─► logits
    mask (optional) ─► [pad over memory tokens] ─► every attention

    pre-norm block (default)                  post-norm block (pre_norm: false)
      x = x + Attention(Norm(x))                x = Norm(x + Attention(x))
      x = x + FeedForward(Norm(x))              x = Norm(x + FeedForward(x))

Each op records the spec key it comes from and the reference module that owns its parameters:
x-transformers numbers sublayers, not blocks, so block i's attention is `attn_layers.layers.{2i}`
and its feedforward `attn_layers.layers.{2i+1}`; `.0.0` is the pre-norm, `.0.2` the post-norm,
`.1` the sublayer itself.
"""

from __future__ import annotations

from xtc.spec import Spec

from .ir import (
    AddAttrs,
    AttentionAttrs,
    DropoutAttrs,
    FeedForwardAttrs,
    Graph,
    InputAttrs,
    LogitsAttrs,
    MemoryTokensAttrs,
    NormAttrs,
    OpKind,
    OutputAttrs,
    PadMaskAttrs,
    PositionEmbeddingAttrs,
    ProjectAttrs,
    ResidualAttrs,
    StripAttrs,
    TokenEmbeddingAttrs,
)
from .resolve import ResolvedLayers, ResolvedWrapper, resolve


def build_graph(spec: Spec) -> Graph:
    model = resolve(spec)
    graph = Graph()
    tokens = graph.add("tokens", OpKind.INPUT, InputAttrs("x", "tokens"), spec_key=model.key)
    mask = graph.add("mask", OpKind.INPUT, InputAttrs("mask", "mask", optional=True),
                     spec_key=model.key)
    hidden = add_embeddings(graph, model, tokens)
    if model.num_memory_tokens:
        count = model.num_memory_tokens
        hidden = graph.add("memory_tokens", OpKind.MEMORY_TOKENS,
                           MemoryTokensAttrs(count, model.layers.dim), (hidden,),
                           spec_key=f"{model.key}.num_memory_tokens", ref_path="memory_tokens",
                           role="memory_tokens")
        mask = graph.add("memory_mask", OpKind.PAD_MASK, PadMaskAttrs(count), (mask,),
                         spec_key=f"{model.key}.num_memory_tokens")
    hidden = add_layers(graph, model.layers, hidden, mask)
    if model.num_memory_tokens:
        hidden = graph.add("strip_memory", OpKind.STRIP, StripAttrs(model.num_memory_tokens),
                           (hidden,), spec_key=f"{model.key}.num_memory_tokens")
    graph.add("embeddings", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))
    add_logits(graph, model, hidden)
    return graph


def add_embeddings(graph: Graph, model: ResolvedWrapper, tokens: str) -> str:
    """Token (+ position) embeddings, then the optional norm, dropout and projection, in the
    reference's order (TransformerWrapper.forward I:4280-4352)."""
    key, emb_dim = model.key, model.emb_dim
    hidden = graph.add("token_emb", OpKind.TOKEN_EMBEDDING,
                       TokenEmbeddingAttrs(model.num_tokens, emb_dim, model.l2norm_embed),
                       (tokens,), spec_key=f"{key}.num_tokens", ref_path="token_emb.emb",
                       role="token_emb")
    if model.positions != "none":
        positions = graph.add("pos_emb", OpKind.POSITION_EMBEDDING,
                              PositionEmbeddingAttrs(model.positions, model.max_seq_len, emb_dim,
                                                     model.l2norm_embed),
                              (tokens,), spec_key=f"{key}.max_seq_len",
                              ref_path="pos_emb.emb" if model.positions == "learned" else "pos_emb",
                              role="pos_emb")
        hidden = graph.add("embed", OpKind.ADD, AddAttrs(), (hidden, positions), spec_key=key)
    if model.post_emb_norm:
        hidden = graph.add("post_emb_norm", OpKind.NORM,
                           NormAttrs("layernorm", emb_dim, unit_offset=False), (hidden,),
                           spec_key=f"{key}.post_emb_norm", ref_path="post_emb_norm",
                           role="post_emb_norm")
    if model.emb_dropout:
        hidden = graph.add("emb_dropout", OpKind.DROPOUT, DropoutAttrs(model.emb_dropout),
                           (hidden,), spec_key=f"{key}.emb_dropout", role="emb_dropout")
    if emb_dim != model.layers.dim:
        hidden = graph.add("project_emb", OpKind.PROJECT, ProjectAttrs(emb_dim, model.layers.dim),
                           (hidden,), spec_key=f"{key}.emb_dim", ref_path="project_emb",
                           role="project_emb")
    return hidden


def add_layers(graph: Graph, layers: ResolvedLayers, hidden: str, mask: str) -> str:
    for block in range(layers.depth):
        hidden = add_block(graph, layers, block, hidden, mask)
    if layers.pre_norm:  # post-norm stacks have no final norm (I:3155)
        hidden = graph.add("norm", OpKind.NORM, NormAttrs(layers.norm, layers.dim), (hidden,),
                           spec_key=layers.key, ref_path="attn_layers.final_norm", role="norm")
    return hidden


def add_logits(graph: Graph, model: ResolvedWrapper, hidden: str) -> None:
    key, dim = model.key, model.layers.dim
    if model.tie_embedding:
        attrs = LogitsAttrs(dim, model.num_tokens, tied=True, scale=model.tie_embedding_scale)
        logits = graph.add("logits", OpKind.LOGITS, attrs, (hidden, "token_emb"),
                           spec_key=f"{key}.tie_embedding", role="to_logits")
    else:
        logits = graph.add("logits", OpKind.LOGITS, LogitsAttrs(dim, model.num_tokens),
                           (hidden,), spec_key=f"{key}.num_tokens", ref_path="to_logits",
                           role="to_logits")
    graph.add("output", OpKind.OUTPUT, OutputAttrs("logits"), (logits,))


def add_block(graph: Graph, layers: ResolvedLayers, block: int, hidden: str, mask: str) -> str:
    attn, ff = layers.attention, layers.feedforward
    attention = AttentionAttrs(layers.dim, attn.heads, attn.dim_head, layers.causal, attn.flash,
                               attn.project_out, attn.dropout, attn.num_mem_kv)
    feedforward = FeedForwardAttrs(layers.dim, ff.inner_dim, ff.activation, ff.glu, ff.bias,
                                   ff.dropout)
    hidden = add_sublayer(graph, layers, block, 2 * block, hidden, "attn", OpKind.ATTENTION,
                          attention, extra_inputs=(mask,))
    return add_sublayer(graph, layers, block, 2 * block + 1, hidden, "ff", OpKind.FEEDFORWARD,
                        feedforward)


def add_sublayer(graph: Graph, layers: ResolvedLayers, block: int, index: int, hidden: str,
                 role: str, kind: OpKind, attrs: object, extra_inputs: tuple[str, ...] = ()) -> str:
    """One residual sublayer, pre-norm `x + f(norm(x))` or post-norm `norm(x + f(x))`."""
    prefix, ref = f"block{block}_{role}", f"attn_layers.layers.{index}"
    norm = NormAttrs(layers.norm, layers.dim)
    provenance = {"spec_key": layers.key, "block": block}
    branch_input = hidden
    if layers.pre_norm:
        branch_input = graph.add(f"{prefix}_norm", OpKind.NORM, norm, (hidden,),
                                 ref_path=f"{ref}.0.0", role=f"{role}_norm", **provenance)
    branch = graph.add(prefix, kind, attrs, (branch_input, *extra_inputs),
                       spec_key=f"{layers.key}.{role}", ref_path=f"{ref}.1", block=block, role=role)
    out = graph.add(f"{prefix}_residual", OpKind.RESIDUAL, ResidualAttrs(layers.layer_dropout),
                    (hidden, branch), **provenance)
    if not layers.pre_norm:
        out = graph.add(f"{prefix}_norm", OpKind.NORM, norm, (out,), ref_path=f"{ref}.0.2",
                        role=f"{role}_norm", **provenance)
    return out
