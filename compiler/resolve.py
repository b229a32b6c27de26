"""Spec -> the IR's payloads: every normalised choice a model is made of, computed once.

The spec keeps the reference's keywords as written; this step turns them into the payloads of
the IR's ops (compiler/ir.py: how wide each head is, whether attention is causal, which norm,
which positions), grouped per module, so that no later stage re-derives them: the IR builder
places them, `explain` shows them. A payload field named like a keyword of its section takes the
value as written (`payload`), so a plain new option needs no code here.

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

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from xtc.spec import ModuleSpec, Spec

from .ir import (
    AttentionAttrs,
    CrossAttentionAttrs,
    FeedForwardAttrs,
    LossAttrs,
    PositionBiasAttrs,
    ResidualAttrs,
    RotaryAttrs,
)

CAUSAL_LAYERS = {"Decoder": True, "Encoder": False}


@dataclass(frozen=True)
class ResolvedLayers:
    """An Encoder, Decoder or CrossAttender: the payloads of one block's sublayers and of the
    position ops they share, and how the blocks repeat."""

    key: str
    type: str  # "Encoder", "Decoder" or "CrossAttender"
    dim: int
    depth: int
    norm: str  # "layernorm", "rmsnorm", "scalenorm" or "simple_rmsnorm"
    attention: AttentionAttrs | None  # None for a CrossAttender (cross-attention only)
    cross_attention: CrossAttentionAttrs | None  # cross_attend: true, or a CrossAttender
    feedforward: FeedForwardAttrs
    residual: ResidualAttrs  # every sublayer's, but for its branch and macaron's half step
    rotary: RotaryAttrs | None = None
    position_bias: PositionBiasAttrs | None = None
    sandwich_norm: bool = False  # a norm on each sublayer's output too
    macaron: bool = False  # a half-step feedforward before attention too
    weight_tie: bool = False  # one block's weights for every block (ALBERT)
    layout: tuple[str, ...] = ()  # custom_layers / sandwich_coef / par_ratio: one block of these
    execute_order: tuple[int, ...] = ()  # layers_execute_order: layout indices, repeats share

    @property
    def causal(self) -> bool:
        return CAUSAL_LAYERS.get(self.type, False)

    @property
    def pre_norm(self) -> bool:
        """False: post-norm, x = norm(x + f(x)), and no final norm."""
        return self.residual.pre_norm

    @property
    def drops_absolute_positions(self) -> bool:
        """x-transformers' disable_abs_pos_emb default: T5 bias or rotary
        (AttentionLayers.__init__)."""
        return self.rotary is not None or (self.position_bias is not None
                                           and self.position_bias.scheme == "t5")


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
    loss: LossAttrs | None = None  # a decoder's training options (None for an encoder)


@dataclass(frozen=True)
class ResolvedViT:
    """A ViTransformerWrapper: image patches into an Encoder, mean-pooled into a linear head."""

    key: str
    image_size: int
    patch_size: int
    channels: int
    num_classes: int | None
    post_emb_norm: bool
    emb_dropout: float
    num_register_tokens: int
    layers: ResolvedLayers

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size**2


@dataclass(frozen=True)
class ResolvedContinuous:
    """A ContinuousTransformerWrapper: vectors in, vectors out, bias-free projections."""

    key: str
    max_seq_len: int | None
    dim_in: int | None
    dim_out: int | None
    positions: str
    post_emb_norm: bool
    emb_dropout: float
    num_memory_tokens: int
    layers: ResolvedLayers


@dataclass(frozen=True)
class ResolvedXTransformer:
    """An encoder TransformerWrapper (embeddings only) and a decoder TransformerWrapper that
    cross-attends to it, trained with the next-token loss."""

    key: str
    encoder: ResolvedWrapper
    decoder: ResolvedWrapper
    tie_token_emb: bool
    ignore_index: int
    pad_value: int
    cross_attn_tokens_dropout: float


Resolved = ResolvedWrapper | ResolvedViT | ResolvedContinuous | ResolvedLayers | ResolvedXTransformer


def resolve(spec: Spec) -> Resolved:
    """The resolved model of a single-model spec (composites resolve each component)."""
    assert spec.model is not None, "a composite: resolve_module each component"
    return resolve_module(spec.model)


def resolve_module(model: ModuleSpec) -> Resolved:
    if model.type == "TransformerWrapper":
        return resolve_wrapper(model, model.children["attn_layers"])
    if model.type == "ViTransformerWrapper":
        return resolve_vit(model)
    if model.type == "ContinuousTransformerWrapper":
        return resolve_continuous(model)
    if model.type == "XTransformer":
        return resolve_xtransformer(model)
    return resolve_layers(model)


def resolve_wrapper(model: ModuleSpec, layers_spec: ModuleSpec) -> ResolvedWrapper:
    loss = training_loss(model)
    layers = resolve_layers(layers_spec)
    if loss is not None and loss.add_attn_z_loss:
        layers = with_z_loss(layers)
    tie_scale = model["tie_embedding_scale"]
    scheme = "none" if layers.drops_absolute_positions else positions(model)
    return ResolvedWrapper(
        key=model.key,
        num_tokens=model["num_tokens"],
        max_seq_len=model["max_seq_len"],
        emb_dim=model["emb_dim"] or layers.dim,
        positions=scheme,
        l2norm_embed=model["l2norm_embed"],
        post_emb_norm=model["post_emb_norm"],
        emb_dropout=model["emb_dropout"],
        num_memory_tokens=model["num_memory_tokens"] or 0,
        tie_embedding=model["tie_embedding"],
        tie_embedding_scale=layers.dim ** -0.5 if tie_scale is None else tie_scale,
        layers=layers,
        loss=loss,
    )


def with_z_loss(layers: ResolvedLayers) -> ResolvedLayers:
    """The layers of a model trained with the attention z-loss: each of its attentions, self and
    cross, hands on the log-sum-exp of its scores (TransformerWrapper.forward's
    return_attn_z_loss reads every attention layer's pre-softmax scores)."""
    attention, cross = layers.attention, layers.cross_attention
    return replace(layers, attention=attention and replace(attention, z_loss=True),
                   cross_attention=cross and replace(cross, z_loss=True))


def resolve_vit(model: ModuleSpec) -> ResolvedViT:
    return ResolvedViT(
        key=model.key,
        image_size=model["image_size"],
        patch_size=model["patch_size"],
        channels=model["channels"],
        num_classes=model["num_classes"],
        post_emb_norm=model["post_emb_norm"],
        emb_dropout=model["emb_dropout"],
        num_register_tokens=model["num_register_tokens"],
        layers=resolve_layers(model.children["attn_layers"]),
    )


def resolve_continuous(model: ModuleSpec) -> ResolvedContinuous:
    layers = resolve_layers(model.children["attn_layers"])
    return ResolvedContinuous(
        key=model.key,
        max_seq_len=model["max_seq_len"],
        dim_in=model["dim_in"],
        dim_out=model["dim_out"],
        positions="none" if layers.drops_absolute_positions else positions(model),
        post_emb_norm=model["post_emb_norm"],
        emb_dropout=model["emb_dropout"],
        num_memory_tokens=model["num_memory_tokens"] or 0,
        layers=layers,
    )


def resolve_xtransformer(model: ModuleSpec) -> ResolvedXTransformer:
    """XTransformer passes `dim` to both sides, `cross_attend` to the decoder, and builds the
    encoder wrapper without a logits head (XTransformer.__init__)."""
    sides = {name: with_dim(model.children[name], model["dim"]) for name in ("encoder", "decoder")}
    return ResolvedXTransformer(
        key=model.key,
        encoder=resolve_wrapper(sides["encoder"], sides["encoder"]),
        decoder=resolve_wrapper(sides["decoder"], sides["decoder"]),
        tie_token_emb=model["tie_token_emb"],
        ignore_index=model["ignore_index"],
        pad_value=model["pad_value"],
        cross_attn_tokens_dropout=model["cross_attn_tokens_dropout"],
    )


def with_dim(side: ModuleSpec, dim: int) -> ModuleSpec:
    """An XTransformer side as a module holding both its wrapper and its layer keywords."""
    options = dict(side.options)
    options["dim"] = dim
    options["cross_attend"] = side.type == "Decoder"
    for name, default in WRAPPER_DEFAULTS.items():
        options.setdefault(name, default)
    return replace(side, options=options)


# TransformerWrapper keywords that XTransformer does not route to its sides, at their defaults.
WRAPPER_DEFAULTS = {
    "emb_dim": None, "tie_embedding": False, "tie_embedding_scale": None, "l2norm_embed": False,
    "post_emb_norm": False, "num_memory_tokens": None,
}


def positions(model: ModuleSpec) -> str:
    """Absolute positions unless switched off; scaled sinusoidal ones when asked
    (TransformerWrapper.__init__)."""
    if not model["use_abs_pos_emb"] or not model["max_seq_len"]:
        return "none"
    return "scaled_sinusoidal" if model["scaled_sinu_pos_emb"] else "learned"


def default_block(layers: ModuleSpec) -> tuple[str, ...]:
    """The sublayer types of one default block (AttentionLayers.__init__): ('a', ['c',] 'f'), a
    CrossAttender's ('c', 'f'), with macaron's half-step feedforward in front."""
    block = (("c",) if layers.type == "CrossAttender" else
             ("a", "c") if layers["cross_attend"] else ("a",)) + ("f",)
    return ("f",) + block if layers["macaron"] else block


def layer_layout(layers: ModuleSpec) -> tuple[str, ...]:
    """The sublayer types ('a', 'c', 'f') of a custom layout, as x-transformers derives them
    (AttentionLayers.__init__), or () for the default repeated block."""
    if layers["custom_layers"] is not None:
        return tuple(layers["custom_layers"])
    default = default_block(layers)
    depth = layers["depth"]
    if layers["par_ratio"] is not None:
        par_depth = depth * len(default)
        attention = tuple(t for t in default if t != "f")
        par_attn = par_depth // layers["par_ratio"]
        cut = par_depth * 2 // 3  # the PAR paper's 2/3 cut-off for attention
        width = (cut + cut // par_attn) // par_attn
        head = (attention + ("f",) * (width - len(attention))) * par_attn
        return head + ("f",) * (par_depth - len(head))
    if layers["sandwich_coef"] is not None:
        k = layers["sandwich_coef"]
        return ("a",) * k + default * (depth - k) + ("f",) * k
    if layers["layers_execute_order"] is not None:  # over the default blocks' sublayers
        return default * depth
    return ()


def resolve_layers(layers: ModuleSpec) -> ResolvedLayers:
    only_cross = layers.type == "CrossAttender"
    layout = layer_layout(layers)
    cross = only_cross or layers["cross_attend"] or "c" in layout
    rotary, bias = resolve_rotary(layers), resolve_bias(layers)
    return ResolvedLayers(
        key=layers.key,
        type=layers.type,
        dim=layers["dim"],
        depth=1 if layout else layers["depth"],
        norm=norm_type(layers),
        attention=None if only_cross and "a" not in layout else resolve_attention(layers, rotary, bias),
        cross_attention=resolve_cross_attention(layers) if cross else None,
        feedforward=resolve_feedforward(layers),
        residual=ResidualAttrs(
            layer_dropout=layers["layer_dropout"],
            layerscale=layers["layerscale_init_value"] if layers["use_layerscale"] else None,
            scale_residual=layers["scale_residual"],
            gated=layers["gate_residual"],
            token_shifts=token_shifts(layers),
            pre_norm=layers["pre_norm"],
        ),
        rotary=rotary,
        position_bias=bias,
        sandwich_norm=layers["sandwich_norm"],
        macaron=layers["macaron"],
        weight_tie=layers["weight_tie_layers"],
        layout=layout,
        execute_order=tuple(layers["layers_execute_order"] or ()),
    )


def training_loss(model: ModuleSpec) -> LossAttrs | None:
    """The loss options of a model that has a training wrapper (its `autoregressive:`)."""
    return payload(LossAttrs, model.training) if model.trainer else None


def payload(cls, section: Mapping[str, object], **derived):
    """An IR payload from a spec section: each field named like one of its keywords takes the
    value as written, `derived` gives the others and those the compiler normalises. Only those
    values are read (a check's reads are recorded: spec/partial.py)."""
    names = {f.name for f in fields(cls)} - derived.keys()
    return cls(**{name: section[name] for name in section if name in names}, **derived)


class CrossOptions(Mapping):
    """The `cross_attn:` options, each that `attn:` writes and `cross_attn:` does not taken from
    `attn:` (AttentionLayers.__init__)."""

    def __init__(self, layers: ModuleSpec):
        self.own, self.attn = layers.section("cross_attn"), layers.section("attn")
        given = layers.sections_given
        self.inherited = set(given.get("attn", ())) - set(given.get("cross_attn", ()))

    def __getitem__(self, name: str) -> object:
        return (self.attn if name in self.inherited else self.own)[name]

    def __iter__(self):
        return iter(self.own)

    def __len__(self) -> int:
        return len(self.own)


def token_shifts(layers: ModuleSpec) -> tuple[int, ...]:
    """shift_tokens s: chunks shifted by 0..s (causal) or -s..s (AttentionLayers.__init__)."""
    amount = layers["shift_tokens"]
    if not amount:
        return ()
    low = 0 if CAUSAL_LAYERS.get(layers.type, False) else -amount
    return tuple(range(low, amount + 1))


def resolve_rotary(layers: ModuleSpec) -> RotaryAttrs | None:
    # xPos turns rotary on (AttentionLayers.__init__)
    if not (layers["rotary_pos_emb"] or layers["rotary_xpos"]):
        return None
    dim_head = layers.section("attn")["dim_head"]
    return RotaryAttrs(
        dim=layers["rotary_emb_dim"] or dim_head // 2,
        dim_head=dim_head,
        interpolation_factor=layers["rotary_interpolation_factor"],
        base_rescale_factor=layers["rotary_base_rescale_factor"],
        xpos_scale_base=layers["rotary_xpos_scale_base"] if layers["rotary_xpos"] else None,
    )


def resolve_bias(layers: ModuleSpec) -> PositionBiasAttrs | None:
    """T5 first, then dynamic, then ALiBi, as x-transformers picks them
    (AttentionLayers.__init__). One bias is shared by every self-attention layer."""
    heads, causal = layers["heads"], CAUSAL_LAYERS.get(layers.type, False)
    if layers["rel_pos_bias"]:
        return PositionBiasAttrs("t5", heads, num_buckets=layers["rel_pos_num_buckets"],
                                 max_distance=layers["rel_pos_max_distance"], causal=causal,
                                 dim_head=layers.section("attn")["dim_head"])
    if layers["dynamic_pos_bias"]:
        return PositionBiasAttrs("dynamic", heads, mlp_dim=layers["dim"] // 4,
                                 mlp_depth=layers["dynamic_pos_bias_mlp_depth"],
                                 log_distance=layers["dynamic_pos_bias_log_distance"],
                                 norm=layers["dynamic_pos_bias_norm"])
    if layers["alibi_pos_bias"]:
        return PositionBiasAttrs("alibi", heads, alibi_heads=layers["alibi_num_heads"] or heads)
    return None


def norm_type(layers: ModuleSpec) -> str:
    if layers["use_simple_rmsnorm"]:
        return "simple_rmsnorm"
    if layers["use_rmsnorm"]:
        return "rmsnorm"
    return "scalenorm" if layers["use_scalenorm"] else "layernorm"


def resolve_attention(layers: ModuleSpec, rotary: RotaryAttrs | None,
                      bias: PositionBiasAttrs | None) -> AttentionAttrs:
    """Self-attention: the `attn:` options, with the layers' width, heads and positions."""
    attn, heads = layers.section("attn"), layers["heads"]
    kv_heads, rotate_heads = key_value_heads(layers), layers["rotate_num_heads"]
    return payload(
        AttentionAttrs, attn,
        dim=layers["dim"],
        heads=heads,
        causal=CAUSAL_LAYERS.get(layers.type, False),
        project_out=heads > 1 or attn["on_attn"],  # one head has no output projection
        rotary=rotary is not None,
        bias=bias is not None,
        rotate_heads=0 if rotary is None or rotate_heads in (None, heads) else rotate_heads,
        kv_heads=0 if kv_heads == heads else kv_heads,
        value_dim_head=0 if attn["value_dim_head"] in (None, attn["dim_head"]) else attn["value_dim_head"],
        qk_norm_groups=attn["qk_norm_groups"] if attn["qk_norm"] else 1,  # ignored without it
        qk_norm_dim_scale=attn["qk_norm"] and attn["qk_norm_dim_scale"],
        talking_heads=(attn["pre_talking_heads"], attn["post_talking_heads"],
                       attn["pre_scale_post_talking_heads"]),
        sparse_topk=attn["sparse_topk"] or 0,
        sparse_topk_straight_through=(  # without sparse_topk it does nothing: a warning says so
            bool(attn["sparse_topk"]) and attn["sparse_topk_straight_through"]),
        residual=layers["residual_attn"],
    )


def key_value_heads(layers: ModuleSpec) -> int:
    """How many key / value heads self-attention has: kv_heads, 1 with one_kv_head, else heads."""
    attn = layers.section("attn")
    return 1 if attn["one_kv_head"] else (attn["kv_heads"] or layers["heads"])


def resolve_cross_attention(layers: ModuleSpec) -> CrossAttentionAttrs:
    """Cross-attention takes the `attn:` options, overridden by `cross_attn:`."""
    cross = CrossOptions(layers)
    return payload(
        CrossAttentionAttrs, cross,
        dim=layers["dim"],
        dim_context=cross["dim_context"] or layers["dim"],
        heads=layers["heads"],
        project_out=layers["heads"] > 1,
        residual=layers["cross_residual_attn"],
    )


def resolve_feedforward(layers: ModuleSpec) -> FeedForwardAttrs:
    ff = layers.section("ff")
    # x-transformers picks relu_squared, then swish, then GELU (FeedForward.__init__).
    activation = "relu_squared" if ff["relu_squared"] else "silu" if ff["swish"] else "gelu"
    return payload(
        FeedForwardAttrs, ff,
        dim=layers["dim"],
        inner_dim=int(layers["dim"] * ff["mult"]),
        activation=activation,
        bias=not ff["no_bias"],
    )
