"""Derived values, computed once from a Spec: what the IR builder and `explain` read.

The spec keeps the reference's keywords as written; this step turns them into the few
normalised choices a model is made of (how wide each head is, whether attention is causal,
which positions), so that no later stage re-derives them.

>>> import xtc
>>> spec = xtc.loads_spec('''
... xtc: 1
... name: tiny
... model: {type: TransformerWrapper, num_tokens: 256, max_seq_len: 64,
...         attn_layers: {type: Decoder, dim: 32, depth: 2, heads: 4}}
... ''')
>>> r = resolve(spec)
>>> (r.layers.dim_head, r.layers.causal, r.layers.ff_inner_dim, r.layers.project_out)
(64, True, 128, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from xtc.spec import ModuleSpec, Spec

# The reference's constants (x_transformers.py): DEFAULT_DIM_HEAD = 64 regardless of dim, and the
# feedforward is `mult` (4) times as wide as the model.
CAUSAL_LAYERS = {"Decoder": True, "Encoder": False}


@dataclass(frozen=True)
class ResolvedLayers:
    """An Encoder or Decoder stack."""

    key: str
    dim: int
    depth: int
    heads: int
    dim_head: int
    causal: bool
    flash: bool
    project_out: bool  # heads > 1: with one head the reference has no output projection
    ff_inner_dim: int
    norm: str = "layernorm"
    activation: str = "gelu"


@dataclass(frozen=True)
class ResolvedWrapper:
    """A TransformerWrapper around its layers."""

    key: str
    num_tokens: int
    max_seq_len: int
    layers: ResolvedLayers
    positions: str = "absolute"  # learned, scaled by dim ** -0.5


def resolve(spec: Spec) -> ResolvedWrapper:
    model = spec.model
    assert model is not None and model.type == "TransformerWrapper", "checked by the schema"
    return ResolvedWrapper(
        key=model.key,
        num_tokens=model["num_tokens"],
        max_seq_len=model["max_seq_len"],
        layers=resolve_layers(model.children["attn_layers"]),
    )


def resolve_layers(layers: ModuleSpec) -> ResolvedLayers:
    attn, ff = layers.section("attn"), layers.section("ff")
    heads = layers["heads"]
    return ResolvedLayers(
        key=layers.key,
        dim=layers["dim"],
        depth=layers["depth"],
        heads=heads,
        dim_head=attn["dim_head"],
        causal=CAUSAL_LAYERS[layers.type],
        flash=attn["flash"],
        project_out=heads > 1,
        ff_inner_dim=int(layers["dim"] * ff["mult"]),
    )
