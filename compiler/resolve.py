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
>>> (r.layers.attention.dim_head, r.layers.causal, r.layers.feedforward.inner_dim, r.layers.norm.norm_type)
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
    AttentionPoolAttrs,
    ConditionAttrs,
    CrossAttentionAttrs,
    FeedForwardAttrs,
    LossAttrs,
    NormAttrs,
    PolarAttrs,
    PositionBiasAttrs,
    ReinjectAttrs,
    ResidualAttrs,
    RotaryAttrs,
)

# (a PrefixDecoder is built bidirectional, as the reference builds it: its forward's mask makes
# it causal after the prefix)
CAUSAL_LAYERS = {"Decoder": True, "Encoder": False, "PrefixDecoder": False}
# The layer type each routed section's per-layer list has one value per, and what those
# layers are called; `layer_dropout` and `shift_tokens` have one per layer of every type.
SECTION_LAYERS = {"attn": ("a", "self-attention"), "cross_attn": ("c", "cross-attention"),
                  "ff": ("f", "feedforward")}
EVERY_LAYER = ("layer_dropout", "shift_tokens")


@dataclass(frozen=True)
class ResolvedLayers:
    """An Encoder, Decoder or CrossAttender: the payloads of one block's sublayers and of the
    position ops they share, and how the blocks repeat."""

    key: str
    type: str  # "Encoder", "Decoder", "PrefixDecoder" or "CrossAttender"
    dim: int
    depth: int
    norm: NormAttrs  # every norm of the stack's
    final_norm: bool  # a norm on the stack's output
    softclamp: float | None  # softclamp_output: the output kept within +-this before that norm
    # One payload per layer of the kind, in the order the layers are built: a per-layer list
    # (x-transformers' tuple-valued keywords) gives each its own value. No self-attention
    # for a CrossAttender, no cross-attention without cross_attend.
    attentions: tuple[AttentionAttrs, ...]
    cross_attentions: tuple[CrossAttentionAttrs, ...]
    feedforwards: tuple[FeedForwardAttrs, ...]
    # every layer's, of every kind, but for its branch and macaron's half step
    residuals: tuple[ResidualAttrs, ...]
    context_dim: int | None = None  # the width of the context it takes (cross_attend), if any
    rotary: RotaryAttrs | None = None
    polar: PolarAttrs | None = None
    position_bias: PositionBiasAttrs | None = None
    sandwich_norm: bool = False  # a norm on each sublayer's output too
    macaron: bool = False  # a half-step feedforward before attention too
    weight_tie: bool = False  # one block's weights for every block (ALBERT)
    depth_scaled_init: bool = False  # output projections drawn by their block's depth
    reinject: ReinjectAttrs | None = None  # the stack's input added to every sublayer's input
    types: tuple[str, ...] = ()  # every layer's type ('a', 'c', 'f'), in order
    layout: tuple[str, ...] = ()  # custom_layers / sandwich_coef / par_ratio: one block of these
    execute_order: tuple[int, ...] = ()  # layers_execute_order: layout indices, repeats share
    # attn_aggregated_residuals: each sublayer's input attends over every sublayer's input so
    # far (AttentionResidual), with a query of this low-rank update (0: no aggregation)
    aggregate_rank: int = 0
    # integrate_layers: each sublayer's input a weighted sum of every sublayer's input so far,
    # its weights a map of the latest (DynamicLIMe), normalised by a softmax, else a ReLU
    integrate: bool = False
    integrate_softmax: bool = True
    unet_skips: bool = False  # the second half's blocks also read their mirror's input (U-Net)
    streams: int = 0  # residual streams passed between sublayers (hyper-connections, gated); 0: none
    # adaptive norms or layer scales: the condition they read (dim_condition, its MLP); None: none
    condition: ConditionAttrs | None = None
    drops_absolute_positions: bool = False  # the wrapper builds none (drops_absolute_positions())
    read_gate_rank: int = 0  # gated_multi_residual: its gates' rank (its streams, 1 or more)

    @property
    def causal(self) -> bool:
        return CAUSAL_LAYERS.get(self.type, False)

    @property
    def attention(self) -> AttentionAttrs | None:
        """The first self-attention layer's payload (the one of every layer but for per-layer
        values), or None without self-attention."""
        return self.attentions[0] if self.attentions else None

    @property
    def cross_attention(self) -> CrossAttentionAttrs | None:
        return self.cross_attentions[0] if self.cross_attentions else None

    @property
    def feedforward(self) -> FeedForwardAttrs | None:
        return self.feedforwards[0] if self.feedforwards else None

    @property
    def residual(self) -> ResidualAttrs:
        return self.residuals[0]

    @property
    def pre_norm(self) -> bool:
        """False: post-norm, x = norm(x + f(x)), and no final norm."""
        return self.residual.pre_norm



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
    max_mem_len: int = 0  # Transformer-XL: positions of each layer's input kept as its memory
    shift_mem_down: int = 0  # ERNIE-Doc: layer l reads the memory of layer l + shift_mem_down
    loss: LossAttrs | None = None  # a decoder's training options (None for an encoder)
    memory_tokens_interspersed_every: int | None = None  # memory tokens before every n positions
    average_pool_embed: bool = False  # the head reads the mean over the real positions: (B, C)
    num_cls_tokens: int = 0  # learned tokens prepended; the head reads their outputs alone
    # attn_pool: learned queries read the final hidden states, their outputs the model's
    attention_pool: AttentionPoolAttrs | None = None
    logits_dim: int | None = None  # the logits head's width; None: no head (return_only_embed)
    squeeze_out_last_dim: bool = False  # a head of width 1 gives (B, T)
    sigsoftmax: bool = False  # sigsoftmax_logits: each logit plus its log-sigmoid
    mixture: int = 0  # mixture_of_softmax: this many softmaxes mixed; forward gives log-probs
    output_heads: int = 1  # num_output_heads: forward gives this many heads' logits, a tuple
    next_embed: bool = False  # add_continuous_pred_head: predicts each next initial embedding
    emb_frac_gradient: float = 1.0  # the share of the gradient the embeddings get
    ff_deep_embed: bool = False  # per-token gains of each block's feedforward output
    # embed_num_tokens: further embedding tables, (name, vocabulary size) in the spec's order
    embed_num_tokens: tuple[tuple[str, int], ...] = ()
    recycle_steps: int | None = None  # recycling: at most this many passes in training
    looped_steps: int | None = None  # a looped LM: this many passes by default

    @property
    def next_token_head(self) -> bool:
        """Whether the output is one logit per token of the vocabulary: what `loss` and
        `generate` read."""
        return self.logits_dim == self.num_tokens


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
    probabilistic: bool  # a mean and a variance per output (Gaussian, for its likelihood loss)
    layers: ResolvedLayers
    training: LossAttrs | None = None  # its training wrapper's options, where it has one
    average_pool_embed: bool = False  # the output of the mean over the real positions: (B, dim_out)
    max_mem_len: int = 0  # Transformer-XL: positions of each layer's input kept as its memory
    generates: bool = False  # generates_vectors: it has a loss and generates

    @property
    def loss(self) -> LossAttrs | None:
        """What `loss` computes, for a model that generates."""
        return self.training if self.generates else None



@dataclass(frozen=True)
class ResolvedXVal:
    """An XValTransformerWrapper (https://arxiv.org/abs/2310.02989): token ids and one number per
    token in, logits and a predicted number per position out, trained as the reference's
    XValAutoregressiveWrapper (its loss options from the spec's `autoregressive:`)."""

    key: str
    num_tokens: int
    max_seq_len: int
    numerical_token_id: int
    logits_dim: int
    positions: str
    emb_dropout: float
    num_memory_tokens: int
    tie_embedding: bool
    layers: ResolvedLayers
    loss: LossAttrs | None = None  # a decoder's training options (None for an encoder)
    max_mem_len: int = 0  # Transformer-XL: positions of each layer's input kept as its memory


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


Resolved = (ResolvedWrapper | ResolvedViT | ResolvedContinuous | ResolvedXVal | ResolvedLayers
            | ResolvedXTransformer)


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
    if model.type == "XValTransformerWrapper":
        return resolve_xval(model)
    if model.type == "XTransformer":
        return resolve_xtransformer(model)
    return resolve_layers(model)


def resolve_wrapper(model: ModuleSpec, layers_spec: ModuleSpec) -> ResolvedWrapper:
    """A model without a next-token head (logits_dim other than num_tokens, return_only_embed)
    has no loss: its output is not a distribution over the next token."""
    width = head_width(model)
    loss = training_loss(model) if width == model["num_tokens"] else None
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
        layers=with_memory(layers) if model["max_mem_len"] else layers,
        max_mem_len=model["max_mem_len"] or 0,
        # the shift reorders memories: without them it does nothing (check-recurrence warns)
        shift_mem_down=(model["shift_mem_down"] or 0) if model["max_mem_len"] else 0,
        loss=loss,
        memory_tokens_interspersed_every=model["memory_tokens_interspersed_every"],
        # (an XTransformer side has no such keyword)
        average_pool_embed=bool(model.options.get("average_pool_embed")),
        num_cls_tokens=model.options.get("num_cls_tokens", 1) if model.options.get("use_cls_token") else 0,
        attention_pool=attention_pool(model, layers_spec, layers.dim),
        logits_dim=width,
        squeeze_out_last_dim=model["squeeze_out_last_dim"] and width == 1,
        sigsoftmax=model["sigsoftmax_logits"] and width is not None,
        mixture=model["mixture_of_softmax_k"] if model["mixture_of_softmax"] and width else 0,
        output_heads=model["num_output_heads"] if width is not None else 1,
        next_embed=model["add_continuous_pred_head"],
        emb_frac_gradient=min(model["emb_frac_gradient"], 1.0),
        ff_deep_embed=model["ff_deep_embed"],
        embed_num_tokens=tuple((model["embed_num_tokens"] or {}).items()),
        recycle_steps=model["train_max_recycle_steps"] if model["recycling"] else None,
        looped_steps=model["max_looped_steps"] if model["looped"] else None,
    )


def attention_pool(model: ModuleSpec, layers: ModuleSpec, dim: int) -> AttentionPoolAttrs | None:
    """TransformerWrapper.__init__'s AttentionPool: the layers' heads and head width, None
    without attn_pool (an XTransformer side has no such keyword)."""
    if not model.options.get("attn_pool"):
        return None
    return AttentionPoolAttrs(model["dim_pooled_tokens"] or dim, dim, model["num_pooled_tokens"],
                              model["attn_pool_depth"], layers["heads"],
                              layers.section("attn")["dim_head"])


def head_width(model: ModuleSpec) -> int | None:
    """The logits head's width (TransformerWrapper.__init__): none with return_only_embed, one
    per token when tied (logits_dim is ignored then: a warning says so), else logits_dim. An
    attention-pooled model has none it returns: its output is the pooled tokens (the
    reference computes logits it never returns)."""
    if model["return_only_embed"] or model.options.get("attn_pool"):
        return None
    if model["tie_embedding"]:
        return model["num_tokens"]
    return model["logits_dim"] or model["num_tokens"]


def with_z_loss(layers: ResolvedLayers) -> ResolvedLayers:
    """The layers of a model trained with the attention z-loss: each of its attentions, self and
    cross, hands on the log-sum-exp of its scores (TransformerWrapper.forward's
    return_attn_z_loss reads every attention layer's pre-softmax scores)."""
    return replace(layers, attentions=tuple(replace(a, z_loss=True) for a in layers.attentions),
                   cross_attentions=tuple(replace(c, z_loss=True)
                                          for c in layers.cross_attentions))


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
        dim_in=None if identity_in(model) else model["dim_in"],
        dim_out=None if identity_out(model) else model["dim_out"],
        positions="none" if layers.drops_absolute_positions else positions(model),
        post_emb_norm=model["post_emb_norm"],
        emb_dropout=model["emb_dropout"],
        num_memory_tokens=model["num_memory_tokens"] or 0,
        probabilistic=model["probabilistic"],
        average_pool_embed=bool(model["average_pool_embed"]),
        layers=with_memory(layers) if model["max_mem_len"] else layers,
        training=training_loss(model),
        max_mem_len=model["max_mem_len"] or 0,
        generates=generates_vectors(model),
    )


def identity_in(model: ModuleSpec) -> bool:
    """use_identity_if_same_dim: no project_in where dim_in is the stack's dim (the reference
    builds an nn.Identity, ContinuousTransformerWrapper.__init__)."""
    dim = model.children["attn_layers"]["dim"]
    return bool(model["use_identity_if_same_dim"]) and model["dim_in"] == dim


def identity_out(model: ModuleSpec) -> bool:
    """use_identity_if_same_dim: no project_out where its width (dim_out, twice that when
    probabilistic) is the stack's dim."""
    dim = model.children["attn_layers"]["dim"]
    dim_out = model["dim_out"]
    width = dim_out * (2 if model["probabilistic"] else 1) if dim_out is not None else None
    return bool(model["use_identity_if_same_dim"]) and width == dim


def generates_vectors(model: ModuleSpec) -> bool:
    """A continuous decoder whose outputs are as wide as its inputs, so that each output can be
    the next input (not one per sequence: average_pool_embed): it has a loss and generates (x-transformers' ContinuousAutoregressiveWrapper
    fails on others). Read from the spec alone, so that checks can ask it of any spec."""
    layers = model.children["attn_layers"]
    dim = layers["dim"]
    return layers.type == "Decoder" and (model["dim_in"] or dim) == (model["dim_out"] or dim) \
        and not model["average_pool_embed"]


def resolve_xval(model: ModuleSpec) -> ResolvedXVal:
    """The tied output layer ignores logits_dim (a warning says so); emb_dim can only be dim
    (check_embedding_options)."""
    layers = resolve_layers(model.children["attn_layers"])
    tied = model["tie_embedding"]
    return ResolvedXVal(
        key=model.key,
        num_tokens=model["num_tokens"],
        max_seq_len=model["max_seq_len"],
        numerical_token_id=model["numerical_token_id"],
        logits_dim=model["num_tokens"] if tied else model["logits_dim"] or model["num_tokens"],
        positions="none" if layers.drops_absolute_positions else positions(model),
        emb_dropout=model["emb_dropout"],
        num_memory_tokens=model["num_memory_tokens"] or 0,
        tie_embedding=tied,
        layers=with_memory(layers) if model["max_mem_len"] else layers,
        loss=training_loss(model),
        max_mem_len=model["max_mem_len"] or 0,
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
    "post_emb_norm": False, "num_memory_tokens": None, "max_mem_len": 0, "shift_mem_down": 0,
    "memory_tokens_interspersed_every": None, "logits_dim": None, "return_only_embed": False,
    "squeeze_out_last_dim": False, "sigsoftmax_logits": False, "mixture_of_softmax": False,
    "mixture_of_softmax_k": 4, "num_output_heads": 1, "add_continuous_pred_head": False,
    "emb_frac_gradient": 1.0, "attn_z_loss_weight": 1e-4,
    "ff_deep_embed": False, "embed_num_tokens": {},
    "input_not_include_cache": False, "recycling": False, "train_max_recycle_steps": 4,
    "looped": False, "max_looped_steps": 4,
}


def positions(model: ModuleSpec) -> str:
    """Absolute positions unless switched off; scaled sinusoidal ones when asked
    (TransformerWrapper.__init__)."""
    if not model["use_abs_pos_emb"] or not model["max_seq_len"]:
        return "none"
    return "scaled_sinusoidal" if model["scaled_sinu_pos_emb"] else "learned"


def cross_only(layers: ModuleSpec) -> bool:
    """Whether the default block cross-attends without self-attention: a CrossAttender's, or
    layers with only_cross and cross_attend (only_cross alone changes nothing)."""
    return layers.type == "CrossAttender" or bool(layers["cross_attend"] and layers["only_cross"])


def default_block(layers: ModuleSpec) -> tuple[str, ...]:
    """The sublayer types of one default block (AttentionLayers.__init__): ('a', ['c',] 'f'),
    ('c', 'f') where it cross-attends only, with macaron's half-step feedforward in front;
    only_attn drops the feedforwards."""
    block = (("c",) if cross_only(layers) else
             ("a", "c") if layers["cross_attend"] else ("a",)) + ("f",)
    block = ("f",) + block if layers["macaron"] else block
    return tuple(kind for kind in block if kind != "f") if layers["only_attn"] else block


def layer_layout(layers: ModuleSpec) -> tuple[str, ...]:
    """The sublayer types ('a', 'c', 'f') of a custom layout, as x-transformers derives them
    (AttentionLayers.__init__), or () for the default repeated block; only_attn drops every
    feedforward of it."""
    layout = derived_layout(layers)
    return tuple(kind for kind in layout if kind != "f") if layers["only_attn"] else layout


def derived_layout(layers: ModuleSpec) -> tuple[str, ...]:
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


def layer_types(layers: ModuleSpec) -> tuple[str, ...]:
    """The type ('a', 'c' or 'f') of every layer the stack builds, in order: its layout, or
    depth default blocks."""
    return layer_layout(layers) or default_block(layers) * layers["depth"]


def resolve_layers(layers: ModuleSpec) -> ResolvedLayers:
    only_cross = cross_only(layers)
    layout, types = layer_layout(layers), layer_types(layers)
    cross = only_cross or layers["cross_attend"] or "c" in layout
    rotary, bias = resolve_rotary(layers), resolve_bias(layers)
    attention = not (only_cross and "a" not in layout)
    return ResolvedLayers(
        key=layers.key,
        type=layers.type,
        dim=layers["dim"],
        depth=1 if layout else layers["depth"],
        norm=resolve_norm(layers),
        final_norm=final_norm(layers),
        softclamp=float(layers["softclamp_output_value"]) if layers["softclamp_output"] else None,
        attentions=tuple(resolve_attention(layers, rotary, bias, index)
                         for index in range(types.count("a") if attention else 0)),
        cross_attentions=tuple(resolve_cross_attention(layers, index)
                               for index in range(types.count("c") if cross else 0)),
        feedforwards=tuple(resolve_feedforward(layers, index) for index in range(types.count("f"))),
        residuals=tuple(resolve_residual(layers, index) for index in range(len(types))),
        context_dim=resolve_cross_attention(layers).dim_context if cross else None,
        rotary=rotary,
        polar=resolve_polar(layers),
        position_bias=bias,
        sandwich_norm=layers["sandwich_norm"],
        macaron=layers["macaron"],
        weight_tie=layers["weight_tie_layers"],
        depth_scaled_init=depth_scaled_init(layers),
        reinject=ReinjectAttrs(layers["dim"], layers["learned_reinject_input_gate"])
        if layers["reinject_input"] else None,
        types=types,
        layout=layout,
        execute_order=tuple(layers["layers_execute_order"] or ()),
        aggregate_rank=0 if layers["integrate_layers"] else aggregate_rank(layers),
        integrate=layers["integrate_layers"],
        integrate_softmax=layers["layer_integrate_use_softmax"],
        unet_skips=layers["unet_skips"],
        streams=stream_count(layers),
        read_gate_rank=read_gate_rank(layers),
        condition=resolve_condition(layers),
        drops_absolute_positions=drops_absolute_positions(layers),
    )


def qkv_views(layers: ModuleSpec, index: int) -> bool:
    """Whether self-attention layer `index` reads three inputs, for q, k and v: under
    qkv_receive_diff_residuals, which integrate_layers turns on but for the first self-attention
    (x-transformers' AttentionLayers.__init__)."""
    integrate = layers["integrate_layers"]
    return bool(layers["qkv_receive_diff_residuals"] or integrate) and not (integrate and index == 0)


def drops_absolute_positions(layers: ModuleSpec) -> bool:
    """x-transformers' disable_abs_pos_emb: as written, else on under rotary or polar positions
    (xPos turns rotary on) or the T5 bias (AttentionLayers.__init__), which give positions of
    their own."""
    written = layers["disable_abs_pos_emb"]
    if written is not None:
        return bool(written)
    return bool(layers["rotary_pos_emb"] or layers["rotary_xpos"] or layers["polar_pos_emb"]
                or layers["rel_pos_bias"])


def resolve_condition(layers: ModuleSpec) -> ConditionAttrs | None:
    """What adaptive norms and layer scales read: a condition dim_condition wide (dim where
    null), through Linear(D, D * expansion) and SiLU with adaptive_condition_mlp; None where
    nothing reads one (its options then do nothing: a warning says so)."""
    if not needs_condition(layers):
        return None
    dim = layers["dim_condition"] or layers["dim"]
    hidden = dim * layers["adaptive_condition_mlp_expansion"] if layers["adaptive_condition_mlp"] else 0
    return ConditionAttrs(dim, hidden)


# the options that make a layer stack read a condition
ADAPTIVE = ("use_adaptive_layernorm", "use_adaptive_rmsnorm", "use_adaptive_layerscale")


def needs_condition(layers: ModuleSpec) -> bool:
    return any(layers[name] for name in ADAPTIVE)


def condition_width(layers: ModuleSpec) -> int:
    """The width of what the adaptive modules read: the condition, or its MLP's output."""
    condition = resolve_condition(layers)
    return 0 if condition is None else condition.hidden or condition.dim


# x-transformers' DEFAULT_ATTN_RESIDUAL_LORA_RANK
AGGREGATE_LORA_RANK = 64


def aggregate_rank(layers: ModuleSpec) -> int:
    """The LoRA rank of attn_aggregated_residuals' queries (its kwargs' lora_rank, or the
    reference's default); 0 without it."""
    if not layers["attn_aggregated_residuals"]:
        return 0
    rank = (layers["attn_aggregated_residual_kwargs"] or {}).get("lora_rank")
    return AGGREGATE_LORA_RANK if rank is None else rank


def stream_count(layers: ModuleSpec) -> int:
    """The residual streams the blocks pass on: num_residual_streams, or 0 for none (one
    stream without gated_multi_residual is the plain residual)."""
    streams = layers["num_residual_streams"]
    return streams if streams > 1 or layers["gated_multi_residual"] else 0


def read_gate_rank(layers: ModuleSpec) -> int:
    """gated_multi_residual's read_gate_rank (check-residual-options requires it); 0 without."""
    return (layers["residual_fn_kwargs"] or {}).get("read_gate_rank", 0) if layers["gated_multi_residual"] else 0


def with_memory(layers: ResolvedLayers) -> ResolvedLayers:
    """Transformer-XL: every self-attention layer also reads its memory."""
    return replace(layers, attentions=tuple(replace(a, memory=True) for a in layers.attentions))


def training_loss(model: ModuleSpec) -> LossAttrs | None:
    """The loss options of a model that has a training wrapper (its `autoregressive:`)."""
    return payload(LossAttrs, model.training) if model.trainer else None


def resolve_residual(layers: ModuleSpec, index: int) -> ResidualAttrs:
    """The residual around layer `index` (of every kind). residual_fn_kwargs hold the
    mean / variance split's own keywords (check-residual-options); that update has no residual
    scale (x-transformers' MVSplitResidualUpdate drops scale_residual), nor the hyper-connections
    (its HyperConnection drops both residual scales)."""
    mv_split, kwargs = bool(layers["mv_split_residual"]), layers["residual_fn_kwargs"] or {}
    streams = stream_count(layers)
    return ResidualAttrs(
        layer_dropout=layer_value(layers["layer_dropout"], index),
        layerscale=layers["layerscale_init_value"] if layers["use_layerscale"] else None,
        layerscale_condition=condition_width(layers) if layers["use_adaptive_layerscale"] else 0,
        layerscale_offset=layers["norm_add_unit_offset"],
        scale_residual=layers["scale_residual"] and not mv_split and not streams,
        # a GRU gate and the whole-row updates replace the sum, and with it the constant (a
        # warning says so)
        residual_constant=1.0 if sum_replaced_by(layers) else float(layers["scale_residual_constant"]),
        depth_scale=output_scale(layers),
        gated=layers["gate_residual"],
        orthogonal=layers["orthog_residual"],
        mv_split=mv_split,
        mv_split_init=(float(kwargs.get("init_alpha", 0.0)), float(kwargs.get("init_beta", 0.03))),
        mv_split_learned=bool(mv_split and kwargs.get("learned", False)),
        streams=max(streams, 1),
        token_shifts=token_shifts(layers, index),
        pre_norm=pre_norm(layers),
        # pre_and_post_norm: a norm after the sum too (the post-norm stacks have it already)
        sum_norm=not pre_norm(layers) or layers["pre_and_post_norm"],
    )


def pre_norm(layers: ModuleSpec) -> bool:
    """Whether the sublayers' inputs are normed: not under post-norm, nor gated_multi_residual,
    whose gated read normalises (the reference drops the pre-norm, and norms after the sum)."""
    return layers["pre_norm"] and not layers["gated_multi_residual"]


def final_norm(layers: ModuleSpec) -> bool:
    """A pre-norm stack ends in a norm, but for pre_norm_has_final_norm: false and
    pre_and_post_norm (which norms every sum instead); gated_multi_residual's always does
    (AttentionLayers.__init__)."""
    plain = pre_norm(layers) and layers["pre_norm_has_final_norm"] and not layers["pre_and_post_norm"]
    return plain or bool(layers["gated_multi_residual"])


def output_scale(layers: ModuleSpec) -> float:
    """depth_scale_residual as a number scales every branch's output; `true` (or `false`)
    changes initialisation only (depth_scaled_init). Aggregated residuals ignore both (the
    reference's AttentionLayers.__init__; a warning says so)."""
    scale = layers["depth_scale_residual"]
    if isinstance(scale, bool) or layers["attn_aggregated_residuals"]:
        return 1.0
    return float(scale)


def depth_scaled_init(layers: ModuleSpec) -> bool:
    """depth_scale_residual: true draws the output projections with std 1 / sqrt(2 * fan_in *
    depth), the depth that of the block (OLMo's "mitchell" init)."""
    return layers["depth_scale_residual"] is True and not layers["attn_aggregated_residuals"]


def sum_replaced_by(layers: ModuleSpec) -> str | None:
    """The keyword whose module joins the residual instead of a sum, taking it as it is (a
    GRU gate, a whole-row update, residual streams), or None: scale_residual_constant does
    nothing beside one (a warning says so)."""
    joined_by = next((name for name in ("gate_residual", "orthog_residual", "mv_split_residual",
                                        "gated_multi_residual") if layers[name]), None)
    return joined_by or ("num_residual_streams" if stream_count(layers) else None)


def layer_value(value: object, index: int) -> object:
    """What layer `index` takes of an option: its entry of a per-layer list (a tuple: the
    schema admits one only where a keyword takes a value per layer), else the value."""
    return value[index] if isinstance(value, tuple) else value


class LayerOptions(Mapping):
    """An `attn:`, `cross_attn:` or `ff:` section as its layer `index` (among the layers of its
    kind) sees it: each per-layer list gives that layer's entry (AttentionLayers.__init__)."""

    def __init__(self, options: Mapping[str, object], index: int):
        self.options, self.index = options, index

    def __getitem__(self, name: str) -> object:
        return layer_value(self.options[name], self.index)

    def __iter__(self):
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)


def payload(cls, section: Mapping[str, object], **derived):
    """An IR payload from a spec section: each field named like one of its keywords takes the
    value as written, `derived` gives the others and those the compiler normalises. Only those
    values are read (a check's reads are recorded: spec/partial.py)."""
    names = {f.name for f in fields(cls)} - derived.keys()
    return cls(**{name: section[name] for name in section if name in names}, **derived)


class CrossOptions(Mapping):
    """The `cross_attn:` options, each that `attn:` writes and `cross_attn:` does not taken from
    `attn:`, but for `attn:`'s per-layer lists: those are the self-attention layers' alone
    (AttentionLayers.__init__)."""

    def __init__(self, layers: ModuleSpec):
        self.own, self.attn = layers.section("cross_attn"), layers.section("attn")
        given = layers.sections_given
        self.inherited = {name for name in set(given.get("attn", ())) - set(given.get("cross_attn", ()))
                          if not isinstance(self.attn[name], tuple)}

    def __getitem__(self, name: str) -> object:
        return (self.attn if name in self.inherited else self.own)[name]

    def __iter__(self):
        return iter(self.own)

    def __len__(self) -> int:
        return len(self.own)


def token_shifts(layers: ModuleSpec, index: int) -> tuple[int, ...]:
    """shift_tokens s of layer `index`: chunks shifted by 0..s (causal) or -s..s
    (AttentionLayers.__init__)."""
    amount = layer_value(layers["shift_tokens"], index)
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


def resolve_polar(layers: ModuleSpec) -> PolarAttrs | None:
    if not layers["polar_pos_emb"]:
        return None
    return PolarAttrs(layers.section("attn")["dim_head"], layers["heads"],
                      bias_uniform_init=layers["polar_bias_uniform_init"])


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
        slopes = tuple(float(s) for s in (layers["rel_pos_kwargs"] or {}).get("slopes", ()))
        return PositionBiasAttrs("alibi", heads, alibi_heads=layers["alibi_num_heads"] or heads,
                                 alibi_slopes=slopes)
    return None


def resolve_norm(layers: ModuleSpec) -> NormAttrs:
    """Every norm of the stack: its kind, how the reference stores its gains, DyT's alpha, an
    adaptive norm's condition width, and the epsilon of norm_eps (an xtc extension, which
    check-extensions allows on RMSNorm only)."""
    kind = norm_type(layers)
    eps = layers["norm_eps"]
    return NormAttrs(kind, layers["dim"], unit_offset=layers["norm_add_unit_offset"],
                     init_alpha=float(layers["dynamic_tanh_init_alpha"]),
                     condition=condition_width(layers) if kind.startswith("adaptive_") else 0,
                     eps=None if eps is None else float(eps))


def norm_type(layers: ModuleSpec) -> str:
    """The one norm of the stack (check-exclusive-features refuses two)."""
    if layers["use_adaptive_layernorm"]:
        return "adaptive_layernorm"
    if layers["use_adaptive_rmsnorm"]:
        return "adaptive_rmsnorm"
    if layers["use_dynamic_tanh"]:
        return "dynamic_tanh"
    if layers["use_derf"]:
        return "derf"
    if layers["use_simple_rmsnorm"]:
        return "simple_rmsnorm"
    if layers["use_rmsnorm"]:
        return "rmsnorm"
    return "scalenorm" if layers["use_scalenorm"] else "layernorm"


def resolve_attention(layers: ModuleSpec, rotary: RotaryAttrs | None,
                      bias: PositionBiasAttrs | None, index: int = 0) -> AttentionAttrs:
    """Self-attention layer `index`: the `attn:` options, with the layers' width, heads and
    positions."""
    attn, heads = LayerOptions(layers.section("attn"), index), layers["heads"]
    kv_heads, rotate_heads = key_value_heads(layers), layers["rotate_num_heads"]
    # MLA's decoupled rope: rotary on the key heads that come from the input (and as many query
    # heads), in place of rotate_num_heads (the checks refuse both)
    rotate_heads = attn["latent_rope_subheads"] or rotate_heads
    return payload(
        AttentionAttrs, attn,
        dim=layers["dim"],
        heads=heads,
        causal=CAUSAL_LAYERS.get(layers.type, False),
        prefix=layers.type == "PrefixDecoder",
        project_out=output_projection(attn, heads),
        on_attn=attn["on_attn"] and output_projection(attn, heads),  # gates the projection
        rotary=rotary is not None,
        polar=bool(layers["polar_pos_emb"]),
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
        value_residual=value_residual_mix(layers, index),
        qkv_views=qkv_views(layers, index),
        zero_init_output=attn["zero_init_output"] or layers["zero_init_branch_output"],
        **value_gates(attn, layers.section("attn")),
        q_rmsnorm=attn["qk_rmsnorm"],
        k_rmsnorm=attn["qk_rmsnorm"] or attn["k_rmsnorm"],
        **gumbel(attn),
        # without use_cope its companions do nothing: a warning says so
        cope_max_pos=attn["cope_max_pos"] if attn["use_cope"] else 16,
        cope_talking_heads=attn["use_cope"] and attn["cope_talking_heads"],
        # without the bias its sizes do nothing (a warning says so)
        rel_proj_num_distance_basis=attn["rel_proj_num_distance_basis"] if attn["use_rel_proj_pos_bias"] else 16,
        rel_proj_max_dist=attn["rel_proj_max_dist"] if attn["use_rel_proj_pos_bias"] else 1024,
        **forget_gates(attn),
        **latents(attn),
    )


def value_residual_mix(layers: ModuleSpec, index: int) -> str:
    """How self-attention layer `index` mixes in the first layer's values: "" without value
    residuals, "learned" by a gate of its input (not the first layer built, which has none,
    nor any run of it: tied weights run it at every depth), else "half"."""
    if not layers["add_value_residual"]:
        return ""
    learned = layers["learned_value_residual_mix"] and not layers["weight_tie_layers"]
    return "learned" if learned and index > 0 else "half"


def latents(attn: Mapping[str, object]) -> dict[str, object]:
    """Multi-head latent attention's widths, 0 where unused: a latent width without its
    use_latent_ flag does nothing (a warning says so)."""
    return {"dim_latent_q": attn["dim_latent_q"] if attn["use_latent_q"] else 0,
            "dim_latent_kv": attn["dim_latent_kv"] if attn["use_latent_kv"] else 0,
            "latent_rope_subheads": attn["latent_rope_subheads"] or 0}


def gumbel(options: Mapping[str, object]) -> dict[str, object]:
    """Gumbel-softmax's temperature and hardness, normalised away without it (they do nothing
    then: a warning says so)."""
    on = bool(options["gumbel_softmax"])
    return {"gumbel_softmax_temp": options["gumbel_softmax_temp"] if on else 1.0,
            "gumbel_softmax_hard": options["gumbel_softmax_hard"] or not on}


def forget_gates(attn: Mapping[str, object]) -> dict[str, object]:
    """Data-dependent ALiBi's settings, those that do nothing normalised away (warnings say
    so): the per-row form and its width need data_dependent_alibi, the kwargs give the gates'
    bias init (the per-position form's) and scale."""
    on = attn["data_dependent_alibi"]
    per_row = on and attn["data_dependent_alibi_per_row"]
    kwargs = (attn["data_dependent_alibi_kwargs"] or {}) if on else {}
    return {
        "data_dependent_alibi_per_row": per_row,
        "data_dependent_alibi_per_row_dim_head": (attn["data_dependent_alibi_per_row_dim_head"]
                                                  if per_row else 8),
        "forget_bias_init": float(kwargs.get("bias_init", 5.0)) if not per_row else 5.0,
        "forget_post_log_scale": float(kwargs.get("post_log_scale", 1.0)),
    }


def value_gates(options: Mapping[str, object], whole: Mapping[str, object]) -> dict[str, object]:
    """The value gates' settings of one attention layer (ir.AttentionAttrs), those that do
    nothing normalised away (warnings say so): a rank or headwise without its gate, swiglu_values
    without a gate, low_rank_silu_gates without a rank. `whole`: the section with its per-layer
    lists, as gate_values may be one (a rank then serves the layers that gate)."""
    def anywhere(name: str) -> bool:
        value = whole[name]
        return any(value) if isinstance(value, tuple) else bool(value)

    gates, output = anywhere("gate_values"), anywhere("output_gate")
    input_rank = (options["gate_values_rank"] or 0) if gates else 0
    output_rank = (options["output_gate_rank"] or 0) if output else 0
    return {
        "swiglu_values": (gates or output) and options["swiglu_values"],
        "gate_values_rank": input_rank,
        "gate_values_headwise": gates and options["gate_values_headwise"],
        "output_gate_rank": output_rank,
        "output_gate_headwise": output and options["output_gate_headwise"],
        "low_rank_silu_gates": options["low_rank_silu_gates"] or not (input_rank or output_rank),
    }


def key_value_heads(layers: ModuleSpec) -> int:
    """How many key / value heads self-attention has: kv_heads, 1 with one_kv_head, else heads."""
    attn = layers.section("attn")
    return 1 if attn["one_kv_head"] else (attn["kv_heads"] or layers["heads"])


def resolve_cross_attention(layers: ModuleSpec, index: int = 0) -> CrossAttentionAttrs:
    """Cross-attention layer `index` takes the `attn:` options, overridden by `cross_attn:`."""
    cross = LayerOptions(CrossOptions(layers), index)
    return payload(
        CrossAttentionAttrs, cross,
        dim=layers["dim"],
        dim_context=cross["dim_context"] or layers["dim"],
        heads=layers["heads"],
        project_out=output_projection(cross, layers["heads"]),
        residual=layers["cross_residual_attn"],
        value_residual=layers["add_value_residual"],  # by half: the reference learns no mix here
        zero_init_output=cross["zero_init_output"] or layers["zero_init_branch_output"],
        tokens_dropout=layers["cross_attn_tokens_dropout"],
        **value_gates(cross, CrossOptions(layers)),
        q_rmsnorm=cross["qk_rmsnorm"],
        k_rmsnorm=cross["qk_rmsnorm"] or cross["k_rmsnorm"],
        **gumbel(cross),
    )


def output_projection(attn, heads: int) -> bool:
    """Whether an attention projects its heads' output back to dim: project_out where it is
    written, else with more than one head or attention on attention (one head of width dim
    has no output projection: Attention.__init__)."""
    if attn["project_out"] is not None:
        return attn["project_out"]
    return heads > 1 or bool(attn["on_attn"])


def resolve_feedforward(layers: ModuleSpec, index: int = 0) -> FeedForwardAttrs:
    """Feedforward layer `index`."""
    ff = LayerOptions(layers.section("ff"), index)
    # x-transformers picks relu_squared, then SoLU, then swish, then GELU (FeedForward.__init__).
    activation = ("relu_squared" if ff["relu_squared"] else "solu" if ff["solu"]
                  else "silu" if ff["swish"] else "gelu")
    glu, glu_softclamp = ff["glu"], ff["glu"] and ff["glu_softclamp"]
    return payload(
        FeedForwardAttrs, ff,
        dim=layers["dim"],
        inner_dim=int(layers["dim"] * ff["mult"]),
        activation=activation,
        bias=not ff["no_bias"],
        zero_init_output=ff["zero_init_output"] or layers["zero_init_branch_output"],
        # each companion only where its flag acts (check_ignored_options warns of the rest)
        mult_bias=glu and ff["glu_mult_bias"],
        softclamp_value=None if glu else ff["softclamp_value"],
        glu_softclamp=glu_softclamp,
        glu_gate_softclamp_value=ff["glu_gate_softclamp_value"] if glu_softclamp else 4.0,
        glu_up_softclamp_value=ff["glu_up_softclamp_value"] if glu_softclamp else 25.0,
    )
