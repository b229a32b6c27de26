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

from dataclasses import dataclass, replace

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
    dim_context: int | None = None  # cross-attention: the width of the context (default dim)
    kv_heads: int = 0  # grouped-query attention (0: as many as heads)
    value_dim_head: int = 0  # 0: dim_head
    qk_norm: bool = False
    qk_norm_groups: int = 1
    qk_norm_scale: float = 10.0  # the attention scale under qk-norm without dim scale
    qk_norm_dim_scale: bool = False  # learned per-feature scales; the scale is dim_head ** -0.5
    on_attn: bool = False  # attention on attention: a GLU output projection
    gate_values: bool = False  # sigmoid gates on the merged heads, before the projection
    head_scale: bool = False  # NormFormer: a learned scale per head
    talking_heads: tuple[bool, bool, bool] = (False, False, False)  # pre, post, pre-scale-post
    sparse_topk: int = 0  # keep the k largest scores of each row (0: all)
    residual: bool = False  # residual attention: add the previous layer's scores


@dataclass(frozen=True)
class ResolvedFeedForward:
    inner_dim: int  # int(dim * mult)
    activation: str  # "gelu", "silu" or "relu_squared"
    glu: bool
    bias: bool  # of the non-GLU input projection and of the output projection
    dropout: float
    post_act_ln: bool = False  # a LayerNorm after the activation (NormFormer)


@dataclass(frozen=True)
class ResolvedRotary:
    dim: int  # rotated features per head: rotary_emb_dim, default dim_head // 2
    interpolation_factor: float
    base_rescale_factor: float
    xpos_scale_base: float | None  # set when rotary_xpos
    rotate_heads: int = 0  # rotate_num_heads: only the last heads are rotated (0: all)


@dataclass(frozen=True)
class ResolvedBias:
    """A relative position bias shared by every self-attention layer."""

    scheme: str  # "alibi", "t5" or "dynamic"
    heads: int
    alibi_heads: int = 0
    num_buckets: int = 32
    max_distance: int = 128
    causal: bool = False
    scale: float = 1.0  # T5: dim_head ** 0.5
    mlp_dim: int = 0  # dynamic: dim // 4
    mlp_depth: int = 2
    log_distance: bool = False
    norm: bool = False  # dynamic: norms in the MLP


@dataclass(frozen=True)
class ResolvedLayers:
    """An Encoder or Decoder stack."""

    key: str
    dim: int
    depth: int
    causal: bool
    norm: str  # "layernorm", "rmsnorm", "scalenorm" or "simple_rmsnorm"
    pre_norm: bool  # False: post-norm, x = norm(x + f(x)), and no final norm
    layer_dropout: float
    attention: ResolvedAttention | None  # None for a CrossAttender (cross-attention only)
    cross_attention: ResolvedAttention | None  # cross_attend: true, or a CrossAttender
    feedforward: ResolvedFeedForward
    rotary: ResolvedRotary | None = None
    position_bias: ResolvedBias | None = None
    sandwich_norm: bool = False  # a norm on each sublayer's output too
    layerscale: float | None = None  # use_layerscale: the initial per-feature branch scale
    scale_residual: bool = False
    gate_residual: bool = False
    token_shifts: tuple[int, ...] = ()  # shift_tokens: the shift of each feature chunk
    macaron: bool = False  # a half-step feedforward before attention too
    weight_tie: bool = False  # one block's weights for every block (ALBERT)
    layout: tuple[str, ...] = ()  # custom_layers / sandwich_coef / par_ratio: one block of these
    execute_order: tuple[int, ...] = ()  # layers_execute_order: layout indices, repeats share

    @property
    def uses_previous_tokens(self) -> bool:
        """Token shifting reads earlier positions' inputs, which a kv cache does not keep."""
        return bool(self.token_shifts)

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
    layers = resolve_layers(layers_spec)
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
    )


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
    return ResolvedLayers(
        key=layers.key,
        dim=layers["dim"],
        depth=1 if layout else layers["depth"],
        causal=CAUSAL_LAYERS.get(layers.type, False),
        norm=norm_type(layers),
        pre_norm=layers["pre_norm"],
        layer_dropout=layers["layer_dropout"],
        attention=None if only_cross and "a" not in layout else resolve_attention(layers),
        cross_attention=resolve_cross_attention(layers) if cross else None,
        feedforward=resolve_feedforward(layers),
        rotary=resolve_rotary(layers),
        position_bias=resolve_bias(layers),
        sandwich_norm=layers["sandwich_norm"],
        layerscale=layers["layerscale_init_value"] if layers["use_layerscale"] else None,
        scale_residual=layers["scale_residual"],
        gate_residual=layers["gate_residual"],
        token_shifts=token_shifts(layers),
        macaron=layers["macaron"],
        weight_tie=layers["weight_tie_layers"],
        layout=layout,
        execute_order=tuple(layers["layers_execute_order"] or ()),
    )


def token_shifts(layers: ModuleSpec) -> tuple[int, ...]:
    """shift_tokens s: chunks shifted by 0..s (causal) or -s..s (AttentionLayers.__init__)."""
    amount = layers["shift_tokens"]
    if not amount:
        return ()
    low = 0 if CAUSAL_LAYERS.get(layers.type, False) else -amount
    return tuple(range(low, amount + 1))


def resolve_rotary(layers: ModuleSpec) -> ResolvedRotary | None:
    # xPos turns rotary on (AttentionLayers.__init__)
    if not (layers["rotary_pos_emb"] or layers["rotary_xpos"]):
        return None
    dim_head = layers.section("attn")["dim_head"]
    return ResolvedRotary(
        dim=layers["rotary_emb_dim"] or dim_head // 2,
        interpolation_factor=layers["rotary_interpolation_factor"],
        base_rescale_factor=layers["rotary_base_rescale_factor"],
        xpos_scale_base=layers["rotary_xpos_scale_base"] if layers["rotary_xpos"] else None,
        rotate_heads=0 if layers["rotate_num_heads"] in (None, layers["heads"])
        else layers["rotate_num_heads"],
    )


def resolve_bias(layers: ModuleSpec) -> ResolvedBias | None:
    """T5 first, then dynamic, then ALiBi, as x-transformers picks them
    (AttentionLayers.__init__)."""
    heads, causal = layers["heads"], CAUSAL_LAYERS.get(layers.type, False)
    if layers["rel_pos_bias"]:
        return ResolvedBias("t5", heads, num_buckets=layers["rel_pos_num_buckets"],
                            max_distance=layers["rel_pos_max_distance"], causal=causal,
                            scale=layers.section("attn")["dim_head"] ** 0.5)
    if layers["dynamic_pos_bias"]:
        return ResolvedBias("dynamic", heads, mlp_dim=layers["dim"] // 4,
                            mlp_depth=layers["dynamic_pos_bias_mlp_depth"],
                            log_distance=layers["dynamic_pos_bias_log_distance"],
                            norm=layers["dynamic_pos_bias_norm"])
    if layers["alibi_pos_bias"]:
        return ResolvedBias("alibi", heads, alibi_heads=layers["alibi_num_heads"] or heads)
    return None


def norm_type(layers: ModuleSpec) -> str:
    if layers["use_simple_rmsnorm"]:
        return "simple_rmsnorm"
    if layers["use_rmsnorm"]:
        return "rmsnorm"
    return "scalenorm" if layers["use_scalenorm"] else "layernorm"


def resolve_attention(layers: ModuleSpec) -> ResolvedAttention:
    attn = layers.section("attn")
    heads = layers["heads"]
    kv_heads = key_value_heads(layers)
    return ResolvedAttention(
        heads=heads,
        dim_head=attn["dim_head"],
        flash=attn["flash"],
        project_out=heads > 1 or attn["on_attn"],
        dropout=attn["dropout"],
        num_mem_kv=attn["num_mem_kv"],
        kv_heads=0 if kv_heads == heads else kv_heads,
        value_dim_head=0 if attn["value_dim_head"] in (None, attn["dim_head"]) else attn["value_dim_head"],
        qk_norm=attn["qk_norm"],
        qk_norm_groups=attn["qk_norm_groups"] if attn["qk_norm"] else 1,  # ignored without it
        qk_norm_scale=attn["qk_norm_scale"],
        qk_norm_dim_scale=attn["qk_norm"] and attn["qk_norm_dim_scale"],
        on_attn=attn["on_attn"],
        gate_values=attn["gate_values"],
        head_scale=attn["head_scale"],
        talking_heads=(attn["pre_talking_heads"], attn["post_talking_heads"],
                       attn["pre_scale_post_talking_heads"]),
        sparse_topk=attn["sparse_topk"] or 0,
        residual=layers["residual_attn"],
    )


def key_value_heads(layers: ModuleSpec) -> int:
    """How many key / value heads self-attention has: kv_heads, 1 with one_kv_head, else heads."""
    attn = layers.section("attn")
    return 1 if attn["one_kv_head"] else (attn["kv_heads"] or layers["heads"])


def resolve_cross_attention(layers: ModuleSpec) -> ResolvedAttention:
    """Cross-attention takes the `attn:` options, overridden by `cross_attn:`
    (AttentionLayers.__init__)."""
    attn, given = layers.section("attn"), layers.sections_given.get("attn", ())
    cross = {**{k: attn[k] for k in given}, **{k: layers.section("cross_attn")[k]
                                               for k in layers.sections_given.get("cross_attn", ())}}
    defaults = layers.section("cross_attn")
    option = lambda name: cross.get(name, defaults[name])
    return ResolvedAttention(
        heads=layers["heads"],
        dim_head=option("dim_head"),
        flash=option("flash"),
        project_out=layers["heads"] > 1,
        dropout=option("dropout"),
        num_mem_kv=option("num_mem_kv"),
        dim_context=option("dim_context") or layers["dim"],
        residual=layers["cross_residual_attn"],
    )


def resolve_feedforward(layers: ModuleSpec) -> ResolvedFeedForward:
    ff = layers.section("ff")
    # x-transformers picks relu_squared, then swish, then GELU (FeedForward.__init__).
    activation = "relu_squared" if ff["relu_squared"] else "silu" if ff["swish"] else "gelu"
    return ResolvedFeedForward(
        inner_dim=int(layers["dim"] * ff["mult"]),
        activation=activation,
        glu=ff["glu"],
        bias=not ff["no_bias"],
        dropout=ff["dropout"],
        post_act_ln=ff["post_act_ln"],
    )
