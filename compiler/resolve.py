"""Derived values, computed once from a Spec: what the IR builder and `explain` read.

The spec keeps the reference's keywords as written; this step turns them into the few
normalised choices a model is made of (how wide each head is, whether attention is causal,
which norm, which positions), so that no later stage re-derives them.

>>> import xtc
>>> spec = xtc.loads_spec('''
... xtc: 1
... name: tiny
... model: {type: TransformerWrapper, num_tokens: 256, max_seq_len: 64,
...         attn_layers: {type: Decoder, dim: 32, depth: 2, heads: 4, use_rmsnorm: true}}
... ''')
>>> r = resolve(spec)
>>> (r.layers.attention.dim_head, r.layers.causal, r.layers.feedforward.inner_dim, r.layers.norm)
(64, True, 128, 'rmsnorm')
>>> (r.positions, r.emb_dim, r.tie_embedding)
('learned', 32, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from xtc.spec import ModuleSpec, Spec

CAUSAL_LAYERS = {"Decoder": True, "Encoder": False}


@dataclass(frozen=True)
class ResolvedAttention:
    heads: int
    dim_head: int  # 64 by default whatever dim is (x-transformers' DEFAULT_DIM_HEAD)
    flash: bool
    project_out: bool  # heads > 1: with one head the reference has no output projection
    dropout: float
    num_mem_kv: int


@dataclass(frozen=True)
class ResolvedFeedForward:
    inner_dim: int  # int(dim * mult)
    activation: str  # "gelu", "silu" or "relu_squared"
    glu: bool
    bias: bool  # of the non-GLU input projection and of the output projection
    dropout: float


@dataclass(frozen=True)
class ResolvedLayers:
    """An Encoder or Decoder stack."""

    key: str
    dim: int
    depth: int
    causal: bool
    norm: str  # "layernorm", "rmsnorm" or "scalenorm"
    pre_norm: bool  # False: post-norm, x = norm(x + f(x)), and no final norm
    layer_dropout: float
    attention: ResolvedAttention
    feedforward: ResolvedFeedForward


@dataclass(frozen=True)
class ResolvedWrapper:
    """A TransformerWrapper around its layers."""

    key: str
    num_tokens: int
    max_seq_len: int
    emb_dim: int
    positions: str  # "learned", "scaled_sinusoidal" or "none"
    l2norm_embed: bool
    post_emb_norm: bool
    emb_dropout: float
    num_memory_tokens: int
    tie_embedding: bool
    tie_embedding_scale: float
    layers: ResolvedLayers


def resolve(spec: Spec) -> ResolvedWrapper:
    model = spec.model
    assert model is not None and model.type == "TransformerWrapper", "checked by the schema"
    layers = resolve_layers(model.children["attn_layers"])
    tie_scale = model["tie_embedding_scale"]
    return ResolvedWrapper(
        key=model.key,
        num_tokens=model["num_tokens"],
        max_seq_len=model["max_seq_len"],
        emb_dim=model["emb_dim"] or layers.dim,
        positions=positions(model),
        l2norm_embed=model["l2norm_embed"],
        post_emb_norm=model["post_emb_norm"],
        emb_dropout=model["emb_dropout"],
        num_memory_tokens=model["num_memory_tokens"] or 0,
        tie_embedding=model["tie_embedding"],
        tie_embedding_scale=layers.dim ** -0.5 if tie_scale is None else tie_scale,
        layers=layers,
    )


def positions(model: ModuleSpec) -> str:
    """Absolute positions unless switched off; scaled sinusoidal ones when asked (I:4031-4038)."""
    if not model["use_abs_pos_emb"]:
        return "none"
    return "scaled_sinusoidal" if model["scaled_sinu_pos_emb"] else "learned"


def resolve_layers(layers: ModuleSpec) -> ResolvedLayers:
    return ResolvedLayers(
        key=layers.key,
        dim=layers["dim"],
        depth=layers["depth"],
        causal=CAUSAL_LAYERS[layers.type],
        norm=norm_type(layers),
        pre_norm=layers["pre_norm"],
        layer_dropout=layers["layer_dropout"],
        attention=resolve_attention(layers),
        feedforward=resolve_feedforward(layers),
    )


def norm_type(layers: ModuleSpec) -> str:
    if layers["use_rmsnorm"]:
        return "rmsnorm"
    return "scalenorm" if layers["use_scalenorm"] else "layernorm"


def resolve_attention(layers: ModuleSpec) -> ResolvedAttention:
    attn = layers.section("attn")
    return ResolvedAttention(
        heads=layers["heads"],
        dim_head=attn["dim_head"],
        flash=attn["flash"],
        project_out=layers["heads"] > 1,
        dropout=attn["dropout"],
        num_mem_kv=attn["num_mem_kv"],
    )


def resolve_feedforward(layers: ModuleSpec) -> ResolvedFeedForward:
    ff = layers.section("ff")
    # x-transformers picks relu_squared, then swish, then GELU (FeedForward I:1790-1800).
    activation = "relu_squared" if ff["relu_squared"] else "silu" if ff["swish"] else "gelu"
    return ResolvedFeedForward(
        inner_dim=int(layers["dim"] * ff["mult"]),
        activation=activation,
        glu=ff["glu"],
        bias=not ff["no_bias"],
        dropout=ff["dropout"],
    )
