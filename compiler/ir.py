"""The IR: a small typed graph of ops, with a closed set of kinds and one frozen payload per kind.

Every op has a unique name, a kind from `OpKind`, a typed attrs dataclass, the names of the ops it
reads, and provenance: the spec key path it comes from and the reference module path whose
parameters it owns (for state-dict conversion). The graph also records, per scope, the model its
ops make up (`ModelAttrs`: what no single op says) and the spec it was built from (`Origin`):
after it is built, the graph is the only representation of the model. Raw networkx attribute dicts never leave this
file: `Graph.to_networkx()` is the one place that makes one, for `xtc.graph()` and `inspect`.

>>> g = Graph()
>>> tokens = g.add("tokens", OpKind.INPUT, InputAttrs("x", "tokens"))
>>> emb = g.add("token_emb", OpKind.TOKEN_EMBEDDING, TokenEmbeddingAttrs(256, 64), (tokens,))
>>> out = g.add("out", OpKind.OUTPUT, OutputAttrs("embeddings"), (emb,))
>>> g.lint()
>>> print(g)
%tokens : input(name='x', role='tokens', optional=False, shape=('B', 'T'))
%token_emb : token_embedding(num_tokens=256, dim=64, l2norm=False, numerical_token_id=None) <- %tokens
%out : output(name='embeddings') <- %token_emb
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from enum import Enum


class OpKind(Enum):
    INPUT = "input"  # a forward argument: token ids, a padding mask
    TOKEN_EMBEDDING = "token_embedding"
    # further embeddings looked up by ids given beside the tokens, one table per name
    # (embed_num_tokens: say BERT's token types)
    NAMED_EMBEDDINGS = "named_embeddings"
    POSITION_EMBEDDING = "position_embedding"
    ADD = "add"  # token + position embeddings
    NORM = "norm"
    DROPOUT = "dropout"
    GRADIENT_SCALE = "gradient_scale"  # identity forward; the gradient behind it scaled
    DEEP_EMBED = "deep_embed"  # per-token gains of each block's feedforward output (ff_deep_embed)
    # the ops from this one to its `end` twin run several times: on the embeddings plus a
    # projection of their last output (recycling), or on their own last output (a looped LM)
    LOOP = "loop"
    PROJECT = "project"  # a linear map between widths (emb_dim -> dim)
    PATCH_EMBEDDING = "patch_embedding"  # image -> patches -> norm, linear, norm
    MEMORY_TOKENS = "memory_tokens"  # learned tokens added to the sequence
    PREPEND = "prepend"  # embeddings given at run time, put in front of the sequence
    PAD_MASK = "pad_mask"  # the padding mask, extended over added tokens
    STRIP = "strip"  # drop added tokens again
    ROTARY = "rotary"  # rotation angles for every key position, shared by the layers
    POLAR = "polar"  # PoPE: angles for every key position and the keys' phases, shared
    POSITION_BIAS = "position_bias"  # a relative position bias (H, T, S), shared by the layers
    ATTENTION = "attention"
    CROSS_ATTENTION = "cross_attention"
    FEEDFORWARD = "feedforward"
    RESIDUAL = "residual"  # x + branch(x)
    AGGREGATE = "aggregate"  # a sublayer's input: attention over every sublayer's input so far
    LAYER_MIX = "layer_mix"  # a sublayer's input: a weighted sum of every sublayer's input so far
    SKIP_COMBINE = "skip_combine"  # U-Net: a block's input joined with its mirror's, projected
    REINJECT = "reinject"  # the stack's input, projected (and gated), for every sublayer's input
    STREAMS = "streams"  # hyper-connections: the hidden states as S residual streams, or summed back
    STREAM_MIX = "stream_mix"  # a sublayer's input: a learned mix of the residual streams
    CONDITION = "condition"  # what adaptive norms and layer scales read, through its optional MLP
    SOFTCLAMP = "softclamp"  # the stack's output capped smoothly: value * tanh(x / value)
    POOL = "pool"  # mean over the sequence
    ATTENTION_POOL = "attention_pool"  # learned queries read the sequence by cross-attention
    LOGITS = "logits"
    NEXT_EMBED = "next_embed"  # the next position's initial embedding, predicted from the output
    LOSS = "loss"  # next-token cross entropy, or a continuous decoder's next-vector error
    OUTPUT = "output"


@dataclass(frozen=True)
class InputAttrs:
    name: str  # the forward argument's name
    role: str  # "tokens", "numbers", "mask", "features", "image", "context", "context_mask",
    # "embeds", "condition", "prefix_length" (a PrefixDecoder's prefix_attn_len), "embed_ids"
    # (embed_num_tokens' ids: a dict of name -> (B, T))
    optional: bool = False
    shape: tuple = ("B", "T")  # symbolic: batch, length, then sizes


@dataclass(frozen=True)
class NamedEmbeddingsAttrs:
    sizes: tuple[tuple[str, int], ...]  # (name, vocabulary size), in the spec's order
    dim: int  # the embedding width (emb_dim)


@dataclass(frozen=True)
class TokenEmbeddingAttrs:
    num_tokens: int
    dim: int
    l2norm: bool = False  # fixnorm: unit-length embeddings
    # xVal (https://arxiv.org/abs/2310.02989): this token's embedding is scaled by its number,
    # the op's second input
    numerical_token_id: int | None = None


@dataclass(frozen=True)
class PositionEmbeddingAttrs:
    """Absolute positions: "learned" (scaled by dim ** -0.5, or l2-normalised) or
    "scaled_sinusoidal" (fixed frequencies, one learned scale)."""

    scheme: str
    max_seq_len: int
    dim: int
    l2norm: bool = False


@dataclass(frozen=True)
class AddAttrs:
    pass


@dataclass(frozen=True)
class NormAttrs:
    # "layernorm", "rmsnorm", "scalenorm", "simple_rmsnorm", "dynamic_tanh" (DyT), "derf",
    # "adaptive_layernorm" or "adaptive_rmsnorm"
    norm_type: str
    dim: int
    # the reference stores the gains minus their identity value (inside its layer stacks, but
    # for norm_add_unit_offset: false)
    unit_offset: bool = True
    init_alpha: float = 1.0  # DyT's alpha at init
    # adaptive norms (DiT): the width of the condition their gain is computed from (a second
    # input, the CONDITION op); 0: a learned gain
    condition: int = 0
    # norm_eps, an xtc extension (an RMSNorm only): x * rsqrt(mean(x^2) + eps) * weight in
    # float32, as Hugging Face's Llama-family models; None: the reference's norm, without one
    eps: float | None = None


@dataclass(frozen=True)
class SoftclampAttrs:
    """softclamp_output: the layer stack's output kept within +-value, value * tanh(x / value),
    before its final norm (Gemma 2)."""
    value: float


@dataclass(frozen=True)
class DropoutAttrs:
    p: float


@dataclass(frozen=True)
class GradientScaleAttrs:
    fraction: float  # the share of the gradient that flows on to the ops before it


@dataclass(frozen=True)
class NextEmbedAttrs:
    """add_continuous_pred_head: Linear, SiLU, Linear (bias-free, dim to dim) on the final hidden
    states, predicting each next position's initial embedding (its second input)."""

    dim: int


@dataclass(frozen=True)
class LoopAttrs:
    """The start of the repeated ops (end False: it reads the embeddings and the number of
    passes, and holds recycled_proj or the looped LM's exit_gate), or their end (end True: it
    reads the layers' output and the start, the loop's back edge)."""
    dim: int
    steps: int  # recycling: at most this many passes, drawn in training; looped: the default
    recycled: bool  # True: recycling; False: a looped LM
    end: bool = False

    @property
    def argument(self) -> str:
        """The forward argument that gives the number of passes."""
        return "recycle_steps" if self.recycled else "looped_steps"


@dataclass(frozen=True)
class DeepEmbedAttrs:
    num_tokens: int
    depth: int  # one gain vector per block
    dim: int


@dataclass(frozen=True)
class ProjectAttrs:
    dim_in: int
    dim: int
    bias: bool = True
    # a continuous model's Gaussian outputs: dim / 2 means, each followed by its log-variance
    probabilistic: bool = False


@dataclass(frozen=True)
class PatchEmbeddingAttrs:
    patch_size: int
    channels: int
    dim: int

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size**2


@dataclass(frozen=True)
class MemoryTokensAttrs:
    count: int
    dim: int
    at_end: bool = False  # ViT appends its register tokens; the wrappers prepend
    every: int | None = None  # in front of every chunk of this many positions, not once


@dataclass(frozen=True)
class PrependAttrs:
    dim: int


@dataclass(frozen=True)
class PadMaskAttrs:
    count: int  # positions added in front, always visible (0: as many as run-time embeddings)


@dataclass(frozen=True)
class StripAttrs:
    count: int  # positions removed (per chunk where `every` is set)
    at_end: bool = False
    every: int | None = None  # chunks of `every` positions, each after `count` added ones; the
    # second input is the sequence before them, whose length the padded chunks are cut back to


@dataclass(frozen=True)
class PoolAttrs:
    first: int = 0  # the outputs of the first this many positions (CLS tokens), not a mean
    masked: bool = False  # the mean over the real positions (its second input, the padding
    # mask: TransformerWrapper's average_pool_embed); else over all (ViT's patches)


@dataclass(frozen=True)
class AttentionPoolAttrs:
    """TransformerWrapper's attn_pool: `queries` learned queries, `dim` wide, cross-attend to
    the final hidden states (dim_context wide) under the padding mask (its optional second
    input); one cross-attention at depth 1, else pre-norm blocks and a final norm. heads and
    dim_head are the layers'."""

    dim: int  # dim_pooled_tokens: the width of each pooled token
    dim_context: int
    queries: int  # num_pooled_tokens
    depth: int  # attn_pool_depth
    heads: int
    dim_head: int


@dataclass(frozen=True)
class LossAttrs:
    """How a model that generates learns: its training wrapper's options (x-transformers'
    AutoregressiveWrapper and kin; an XTransformer's own ignore_index and pad_value). A token
    model's loss is next-token cross entropy (an xVal model's adds its numbers' squared error);
    a continuous decoder's is its next-vector error (ContinuousAutoregressiveWrapper, which has
    no ignore_index or pad_value: they keep their defaults there): Gaussian negative
    log-likelihood for probabilistic outputs, else mean absolute error with use_l1_loss, else
    mean squared error."""

    ignore_index: int = -100  # target ids the loss skips
    pad_value: int = 0  # the input id fed where the tokens hold ignore_index
    mask_prob: float = 0.0  # the share of keys each query forgets in training (forgetful
    # causal masking, Liu et al. 2022, https://arxiv.org/abs/2210.13432)
    use_l1_loss: bool = False
    equal_loss_weight_batch: bool = False  # a masked mean per sequence, then over the batch
    numerical_loss_weight: float = 1.0  # xVal: the weight of the numbers' squared error
    add_attn_z_loss: bool = False  # adds the attention z-loss of every attention's scores
    # a looped LM's: each loop's loss weighted by the chance of exiting there, plus the exit
    # gate's loss against a soft target (does the next loop lower the loss by the threshold?)
    looped_loss_threshold_exit: float = 0.05
    looped_loss_slope: float = 50.0
    looped_exit_loss_weight: float = 1.0
    # with add_continuous_pred_head: the weight of the next embedding's mean absolute error
    next_embed_loss_weight: float = 0.1
    # Transformer-XL: the memories carry their gradient across this many segments before they
    # are detached (truncated backpropagation through time); 1: detached after every segment
    tbptt_steps: int = 1


@dataclass(frozen=True)
class RotaryAttrs:
    dim: int  # rotated features per head
    dim_head: int  # the width of a head: the angles are as wide (cos 1, sin 0 past dim)
    interpolation_factor: float = 1.0
    base_rescale_factor: float = 1.0
    xpos_scale_base: float | None = None


@dataclass(frozen=True)
class PolarAttrs:
    dim_head: int  # one angle per feature of a head
    heads: int  # the keys' learned phases: one per head and feature
    bias_uniform_init: bool = False  # phases start uniform in [-2 pi, 0] rather than at 0


@dataclass(frozen=True)
class PositionBiasAttrs:
    scheme: str  # "alibi", "t5" or "dynamic"
    heads: int
    alibi_heads: int = 0
    alibi_slopes: tuple[float, ...] = ()  # rel_pos_kwargs' slopes, one per ALiBi head (): the
    # geometric series of Press et al.
    num_buckets: int = 32
    max_distance: int = 128
    causal: bool = False
    dim_head: int = 0  # T5: the buckets' values are scaled by dim_head ** 0.5
    mlp_dim: int = 0  # dynamic: the width of the MLP
    mlp_depth: int = 2
    log_distance: bool = False
    norm: bool = False


# The talking-heads convolutions (Shazeer et al. 2020), in the order of AttentionAttrs'
# talking_heads: the name in the emitted module (the spec keyword), x-transformers' name, and
# where in the attention the heads are mixed.
TALKING_HEADS = (
    ("pre_talking_heads", "pre_softmax_talking_heads", "pre-softmax"),
    ("post_talking_heads", "post_softmax_talking_heads", "post-softmax"),
    ("pre_scale_post_talking_heads", "pre_scale_post_talking_heads", "pre-scale-post"),
)


Z_LOSS_REASON = "the attention z-loss reads the log-sum-exp of the scores"
SINK_REASON = "a learned sink adds a logit per head to each row of the softmax"
GUMBEL_REASON = "Gumbel-softmax attention samples its weights from the scores"


@dataclass(frozen=True)
class AttentionAttrs:
    dim: int
    heads: int
    dim_head: int
    causal: bool
    flash: bool  # the spec asked for the flash kernel; the checks proved it possible
    project_out: bool  # the reference has no output projection for one head of width dim
    # a PrefixDecoder's (a prefix language model): causal False, as the reference builds it;
    # the stack's mask lets each query see the prefix forward names (prefix_attn_len) and the
    # keys up to its own position, so generation keeps a kv cache as a Decoder's does
    prefix: bool = False
    dropout: float = 0.0
    num_mem_kv: int = 0
    rotary: bool = False  # reads the shared rotary angles
    polar: bool = False  # reads the shared polar angles (in rotary's place): q and k 2 D wide
    bias: bool = False  # adds the shared relative position bias
    rotate_heads: int = 0  # rotary on the last heads only (0: every head)
    kv_heads: int = 0  # grouped-query attention (0: as many as heads)
    value_dim_head: int = 0  # 0: dim_head
    # multi-head latent attention (DeepSeek-V2, https://arxiv.org/abs/2405.04434): queries, and
    # keys and values, projected from narrower latents of the input (0: from the input itself);
    # the kv cache keeps the kv latent. With latent_rope_subheads the last key heads come from
    # the input directly, and those heads alone (and as many query heads) get rotary
    # (rotate_heads equals it)
    dim_latent_q: int = 0
    dim_latent_kv: int = 0
    latent_rope_subheads: int = 0
    qk_norm: bool = False
    qk_norm_groups: int = 1
    qk_norm_scale: float = 10.0
    qk_norm_dim_scale: bool = False
    on_attn: bool = False
    gate_values: bool = False
    # the value gates: per-head sigmoid gates from the input ("Attend to nothing"), and the
    # gate of the merged heads (HyGA), from the input (gate_values) and / or the output
    # (output_gate): a logit per feature, or one per head (headwise), a projection or a low-rank
    # one (down, SiLU where low_rank_silu_gates, up); their logits summed, then a sigmoid, or a
    # SiLU with swiglu_values. Unused settings are normalised away (0, False, True).
    gate_value_heads: bool = False
    swiglu_values: bool = False
    gate_values_rank: int = 0
    gate_values_headwise: bool = False
    output_gate: bool = False
    output_gate_rank: int = 0
    output_gate_headwise: bool = False
    low_rank_silu_gates: bool = True
    head_scale: bool = False
    talking_heads: tuple = (False, False, False)  # pre, post, pre-scale-post (TALKING_HEADS)
    sparse_topk: int = 0
    sparse_topk_straight_through: bool = False  # top-k forward, the full softmax's gradient
    hard: bool = False  # one-hot attention on each row's largest score, straight through
    softclamp_logits: bool = False  # Gemma 2: value * tanh(scores / value) before the softmax
    logit_softclamp_value: float = 50.0
    residual: bool = False  # adds the previous self-attention's scores (RealFormer)
    # value residual learning (ResFormer): the first attention layer run hands its values on,
    # each later run mixes them into its own, by half ("half") or by a learned per-token, per-head
    # gate ("learned"; never the first layer built, which runs first)
    value_residual: str = ""
    fused_qkv: bool = False  # one projection to queries, keys and values (the fuse-qkv pass)
    # qkv_receive_diff_residuals: the input is three views (3, B, T, C), the queries', keys' and
    # values' own mixes of the residual streams (or of the layers' inputs), each projected apart
    qkv_views: bool = False
    memory: bool = False  # Transformer-XL: keys and values also read the layer's memory, its
    # input over earlier segments (the wrapper's max_mem_len)
    z_loss: bool = False  # adds its scores' log-sum-exp to the running sum the z-loss squares
    zero_init_output: bool = False  # to_out starts at zero
    output_init_depth: int = 0  # to_out drawn depth-scaled for this depth (0: PyTorch's init)
    sublayer_dropout: float = 0.0  # on the branch's output, in training
    # belief attention: the output made orthogonal to the values, each batch row flattened whole
    # (so over every position); with both, the two projections are concatenated
    orthog_projected_values: bool = False
    orthog_projected_values_per_head: bool = False

    @property
    def decodes(self) -> bool:
        """Whether each query sees no later key beyond a prefix, so decoding keeps a kv cache."""
        return self.causal or self.prefix

    @property
    def orthog_copies(self) -> int:
        """How many orthogonal projections of the heads' output to_out reads (0: none)."""
        return self.orthog_projected_values + self.orthog_projected_values_per_head

    @property
    def out_width(self) -> int:
        """The width of what to_out reads: the heads' values, once per orthogonal projection."""
        return self.heads * (self.value_dim_head or self.dim_head) * max(1, self.orthog_copies)
    q_rmsnorm: bool = False  # RMSNorm of each query head, a gain per head (qk_rmsnorm)
    k_rmsnorm: bool = False  # the same on each key head (qk_rmsnorm or k_rmsnorm)
    value_rmsnorm: bool = False  # the same on each value head
    add_zero_kv: bool = False  # a zero key and value before the others: a query may attend to nothing
    head_learned_sink: bool = False  # a learned logit per head in the softmax, with no value (gpt-oss)
    # Gumbel-softmax attention: weights sampled from the scores, in eval mode too (one-hot
    # with the soft weights' gradient where hard)
    gumbel_softmax: bool = False
    gumbel_softmax_temp: float = 1.0
    gumbel_softmax_hard: bool = True
    # contextual position encoding: learned position logits added to the masked scores, at
    # positions counted by sigmoid gates of the scores (talking heads mix them first)
    use_cope: bool = False
    cope_max_pos: int = 16
    cope_talking_heads: bool = False
    # selective attention: each query's scores minus the first head's positive scores of the
    # earlier queries for the same keys (a token may stop later ones attending to a key)
    selective: bool = False
    # a sliding window: each query sees the keys at most this many positions back (None: all);
    # the kv cache keeps that many positions
    max_attend_past: int | None = None
    sigmoid: bool = False  # each weight the sigmoid of its score, no softmax
    l2_distance: bool = False  # scores -|q - k|^2 * scale (SDPA: a per-key bias, `attend`)
    cog_signed: bool = False  # softmax of the scores' magnitudes, times their signs
    laser: bool = False  # LASER: attention over exp(soft-clamped values), then the log
    laser_softclamp_value: float = 15.0
    # a bias per head, query and key from the query's input: weights over learned distance
    # curves (x-transformers' RelativeProjPositionalBias)
    use_rel_proj_pos_bias: bool = False
    rel_proj_num_distance_basis: int = 16
    rel_proj_max_dist: int = 1024
    # data-dependent ALiBi (the forgetting transformer): forget gates from the input, one per
    # position, or per query and key (per_row, with gate keys per_row_dim_head wide); the
    # gates' bias init and scale, from data_dependent_alibi_kwargs
    data_dependent_alibi: bool = False
    data_dependent_alibi_per_row: bool = False
    data_dependent_alibi_per_row_dim_head: int = 8
    forget_bias_init: float = 5.0
    forget_post_log_scale: float = 1.0

    @property
    def scores_bias(self) -> bool:
        """Whether a float bias is added to the scores: the shared position bias, this layer's
        own, or both."""
        return self.bias or self.use_rel_proj_pos_bias or self.data_dependent_alibi

    @property
    def qkv_widths(self) -> tuple[int, int, int]:
        """The widths of the queries, keys and values the input is projected to."""
        kv_heads = self.kv_heads or self.heads
        return (self.heads * self.dim_head, kv_heads * self.dim_head,
                kv_heads * (self.value_dim_head or self.dim_head))

    @property
    def talking_head_names(self) -> tuple[str, ...]:
        """The talking-heads convolutions used, by their names in the emitted module."""
        return tuple(name for used, (name, _, _) in zip(self.talking_heads, TALKING_HEADS) if used)

    @property
    def explicit_reasons(self) -> tuple[str, ...]:
        """Why the layer needs the score matrix in hand (SDPA never materialises it): the one
        rule for the emitted attend_explicit call, `xtc inspect` and the docs; empty if SDPA
        serves."""
        reasons = tuple(f"{where} talking heads mix scores across heads"
                        for used, (_, _, where) in zip(self.talking_heads, TALKING_HEADS) if used)
        reasons += (f"sparse top-{self.sparse_topk} keeps the largest scores",) if self.sparse_topk else ()
        reasons += ("hard attention takes each row's largest score",) if self.hard else ()
        reasons += ("logit soft-capping bends the scores",) if self.softclamp_logits else ()
        reasons += (("residual attention adds the previous layer's scores",)
                    if self.residual else ())
        reasons += (SINK_REASON,) if self.head_learned_sink else ()
        reasons += (GUMBEL_REASON,) if self.gumbel_softmax else ()
        reasons += ("contextual positions (CoPE) are counted from the masked scores",
                    ) if self.use_cope else ()
        reasons += ("selective attention subtracts earlier queries' scores",
                    ) if self.selective else ()
        reasons += score_function_reasons(self)
        return reasons + ((Z_LOSS_REASON,) if self.z_loss else ())

    @property
    def explicit(self) -> bool:
        return bool(self.explicit_reasons)


def score_function_reasons(a) -> tuple[str, ...]:
    """Why a score function needs the score matrix (sigmoid, cog_signed); l2_distance does not
    alone (SDPA takes it as a per-key bias), but it does with another reason."""
    reasons = ("sigmoid attention weighs each score alone, with no softmax",) if a.sigmoid else ()
    reasons += (("signed attention takes the softmax of the scores' magnitudes",)
                if a.cog_signed else ())
    return reasons


@dataclass(frozen=True)
class CrossAttentionAttrs:
    dim: int
    dim_context: int
    heads: int
    dim_head: int
    flash: bool
    project_out: bool
    dropout: float = 0.0
    num_mem_kv: int = 0
    gate_values: bool = False  # the value gates, as AttentionAttrs'
    gate_value_heads: bool = False
    swiglu_values: bool = False
    gate_values_rank: int = 0
    gate_values_headwise: bool = False
    output_gate: bool = False
    output_gate_rank: int = 0
    output_gate_headwise: bool = False
    low_rank_silu_gates: bool = True
    residual: bool = False  # adds the previous cross-attention's scores
    value_residual: bool = False  # mixes in the first cross-attention's values, by half
    z_loss: bool = False  # adds its scores' log-sum-exp to the running sum the z-loss squares
    zero_init_output: bool = False  # to_out starts at zero
    output_init_depth: int = 0  # to_out drawn depth-scaled for this depth (0: PyTorch's init)
    sublayer_dropout: float = 0.0  # on the branch's output, in training
    # in training, the context keeps a random (1 - p) of its tokens before this layer, and the
    # later layers read what is left (cross_attn_tokens_dropout)
    tokens_dropout: float = 0.0
    q_rmsnorm: bool = False  # as AttentionAttrs'
    k_rmsnorm: bool = False
    value_rmsnorm: bool = False
    add_zero_kv: bool = False
    head_learned_sink: bool = False
    gumbel_softmax: bool = False
    gumbel_softmax_temp: float = 1.0
    gumbel_softmax_hard: bool = True
    sigmoid: bool = False  # the score functions, as AttentionAttrs'
    l2_distance: bool = False
    cog_signed: bool = False
    laser: bool = False
    laser_softclamp_value: float = 15.0
    inverted_attention: bool = False  # softmax over the queries, then each row normalised

    @property
    def explicit_reasons(self) -> tuple[str, ...]:
        """Why the layer needs the score matrix (as AttentionAttrs.explicit_reasons)."""
        reasons = ("cross residual attention adds the previous layer's scores",) if self.residual else ()
        reasons += (SINK_REASON,) if self.head_learned_sink else ()
        reasons += (GUMBEL_REASON,) if self.gumbel_softmax else ()
        reasons += score_function_reasons(self)
        reasons += (("inverted attention takes the softmax over the queries",)
                    if self.inverted_attention else ())
        return reasons + ((Z_LOSS_REASON,) if self.z_loss else ())

    @property
    def explicit(self) -> bool:
        return bool(self.explicit_reasons)


@dataclass(frozen=True)
class FeedForwardAttrs:
    dim: int
    inner_dim: int
    activation: str  # "gelu", "silu", "relu_squared" or "solu"
    glu: bool = False
    bias: bool = True
    dropout: float = 0.0
    post_act_ln: bool = False
    mult_bias: bool = False  # GLU: a learned per-feature multiplier of the product (ones at init)
    softclamp_value: float | None = None  # no GLU: pre-activations soft-capped at +-this
    glu_softclamp: bool = False  # GLU: the up half and the gate's linear factor soft-capped
    glu_gate_softclamp_value: float = 4.0  # the gate's cap (glu_softclamp)
    glu_up_softclamp_value: float = 25.0  # the up half's cap (glu_softclamp)
    sublayer_dropout: float = 0.0  # on the branch's output, in training
    zero_init_output: bool = False  # proj_out starts at zero (zero_init_branch_output)
    output_init_depth: int = 0  # proj_out drawn depth-scaled for this depth (0: PyTorch's init)
    deep_embed: bool = False  # the output is scaled by its tokens' gains (a second input, DEEP_EMBED)


@dataclass(frozen=True)
class ResidualAttrs:
    layer_dropout: float = 0.0  # stochastic depth: in training, skip the sublayer with this p
    branch: str = ""  # the sublayer's role ("attn", "ff"), which names the block's parameters
    layerscale: float | None = None  # LayerScale's initial value, when used
    # use_adaptive_layerscale (DiT's adaLN-Zero gate): the output scaled by a sigmoid of a map
    # of the condition (its width here; a third input, the CONDITION op); 0: none
    layerscale_condition: int = 0
    # the reference stores LayerScale's gain minus one (but for norm_add_unit_offset: false)
    layerscale_offset: bool = True
    scale_residual: bool = False  # a learned per-feature scale of the residual
    residual_constant: float = 1.0  # a constant scale of the residual (scale_residual_constant)
    depth_scale: float = 1.0  # the branch's output scaled (depth_scale_residual as a number)
    gated: bool = False  # a GRU instead of the sum (GTrXL)
    orthogonal: bool = False  # x plus the output's part orthogonal to x (each row flattened)
    mv_split: bool = False  # the mean / variance split update (MVSplitResidualUpdate)
    mv_split_init: tuple = (0.0, 0.03)  # its gains' initial values: alpha (means), beta (centered)
    mv_split_learned: bool = False  # its gains computed from the output's mean by two Linears
    streams: int = 1  # hyper-connections: the output written to this many residual streams
    token_shifts: tuple = ()  # the sublayer's input is token-shifted
    branch_scale: float = 1.0  # macaron: each feedforward counts half (x-transformers' Scale)
    pre_norm: bool = True  # x + f(norm(x)); False: norm(x + f(x)), the norm after the sum
    sum_norm: bool = False  # a norm after the sum: post-norm, or pre_and_post_norm beside pre_norm


@dataclass(frozen=True)
class ReinjectAttrs:
    """reinject_input: the layer stack's input, projected (dim x dim, no bias) and, with
    learned_reinject_input_gate, gated per position by a sigmoid of it; each sublayer's input
    takes it added (an ADD op before its norm), the residual its own input as it was."""
    dim: int
    gated: bool = False


@dataclass(frozen=True)
class StreamsAttrs:
    """num_residual_streams > 1 (hyper-connections) or gated_multi_residual: the stack's input
    copied into `streams` residual streams, each with a learned embedding added where there are
    several (x-transformers' stream_emb), or, `merge`, the streams summed back before the final
    norm."""
    dim: int
    streams: int
    merge: bool = False


@dataclass(frozen=True)
class StreamMixAttrs:
    """x-transformers' HyperConnection.prepare: a sublayer's input, a learned per-position mix
    of the streams (`views` of them: three give attention's queries, keys and values their
    own). Its residual op (ResidualAttrs.streams) writes the output back. `layer`: the
    sublayer's index in the stack, whose stream each view reads at initialisation."""
    dim: int
    streams: int
    views: int = 1
    layer: int = 0
    rank: int = 0  # gated_multi_residual: its gates' read_gate_rank (x-transformers' GatedMultiResidual)


@dataclass(frozen=True)
class AggregateAttrs:
    """x-transformers' AttentionResidual (attn_aggregated_residuals): a sublayer's input is a
    softmax-weighted sum of the inputs of every sublayer so far (its own last), its query
    the latest plus a low-rank map of it (`views` queries, each its own sum: three give
    attention's queries, keys and values their own)."""
    dim: int
    lora_rank: int
    views: int = 1


@dataclass(frozen=True)
class LayerMixAttrs:
    """x-transformers' DynamicLIMe (integrate_layers): a sublayer's input is a weighted sum of
    the inputs of the `layers` sublayers so far (its own last), the weights a linear map of the
    normed latest, normalised over the layers by a softmax (else a ReLU); `views` weightings,
    each its own sum (three give attention's queries, keys and values their own)."""
    dim: int
    layers: int
    views: int = 1
    softmax: bool = True


@dataclass(frozen=True)
class SkipCombineAttrs:
    """x-transformers' ConcatCombine (unet_skips): a block of the second half reads its input
    concatenated after the input of its mirror in the first half (`skip`: that block's index),
    projected from 2 * dim back to dim."""
    dim: int
    skip: int


@dataclass(frozen=True)
class ConditionAttrs:
    """The condition of adaptive norms and layer scales (x-transformers' `condition`): (B, D)
    for a whole sequence, taken as (B, 1, D), or (B, T, D) per token; with
    adaptive_condition_mlp it passes Linear(D, hidden) and SiLU first (hidden: 0 for none)."""
    dim: int
    hidden: int = 0


@dataclass(frozen=True)
class LogitsAttrs:
    dim: int
    num_tokens: int
    tied: bool = False  # reuse the token embedding, scaled
    scale: float = 1.0
    bias: bool = False  # xVal's head has one
    squeeze: bool = False  # squeeze_out_last_dim: a head of width 1 gives (B, T)
    sigsoftmax: bool = False  # sigsoftmax_logits: each logit plus its log-sigmoid
    mixture: int = 0  # mixture_of_softmax: the softmaxes of this many components, mixed
    heads: int = 1  # num_output_heads: this many maps of the same hidden states, each its logits


@dataclass(frozen=True)
class OutputAttrs:
    name: str  # "logits", "embeddings", "output", "loss"; an xVal model's "numbers" too


# -- the graph's records of whole models --------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """In a composite, one component's output given to another's forward argument."""

    source: str  # the producing component
    target: str
    argument: str  # the consumer's forward argument: "context", "prepend_embeds", ...
    output: str = "embeddings"  # what the source gives: its embeddings, or its padding "mask"


@dataclass(frozen=True)
class ModelAttrs:
    """A model of the graph, by the scope of its ops ("" for a spec's model or a composite, the
    component's name, "encoder" in an XTransformer): the facts of the model as a whole that no
    op carries. Lowering and the views read them with the ops (compiler/models.py)."""

    type: str  # x-transformers' class ("TransformerWrapper", "Decoder", ...) or "composite"
    key: str  # its spec key: "model", "model.encoder", "components.vit"
    layers: str = ""  # the class of its layer stack: "Encoder", "Decoder", "PrefixDecoder" or
    # "CrossAttender"
    max_seq_len: int | None = None  # a wrapper's: a Config field, with or without positions
    custom_layout: bool = False  # one block of custom_layers, par_ratio, sandwich_coef or
    # layers_execute_order sublayers, instead of depth identical blocks
    cross_attn_tokens_dropout: float = 0.0  # XTransformer: context tokens dropped in training
    max_mem_len: int = 0  # Transformer-XL recurrence: each self-attention layer's input is kept
    # as its memory for the next segments, the last max_mem_len positions (Dai et al. 2019)
    shift_mem_down: int = 0  # ERNIE-Doc's enhanced recurrence: layer l reads layer l + s's memory
    components: tuple[str, ...] = ()  # a composite's, as written
    feeds: tuple[Feed, ...] = ()  # a composite's wiring


@dataclass(frozen=True)
class Origin:
    """The spec a graph was built from, as the emitted module's banner names it."""

    name: str
    sha256: str


ATTRS = {
    OpKind.INPUT: InputAttrs,
    OpKind.TOKEN_EMBEDDING: TokenEmbeddingAttrs,
    OpKind.NAMED_EMBEDDINGS: NamedEmbeddingsAttrs,
    OpKind.POSITION_EMBEDDING: PositionEmbeddingAttrs,
    OpKind.ADD: AddAttrs,
    OpKind.NORM: NormAttrs,
    OpKind.DROPOUT: DropoutAttrs,
    OpKind.GRADIENT_SCALE: GradientScaleAttrs,
    OpKind.NEXT_EMBED: NextEmbedAttrs,
    OpKind.DEEP_EMBED: DeepEmbedAttrs,
    OpKind.LOOP: LoopAttrs,
    OpKind.PROJECT: ProjectAttrs,
    OpKind.PATCH_EMBEDDING: PatchEmbeddingAttrs,
    OpKind.MEMORY_TOKENS: MemoryTokensAttrs,
    OpKind.PREPEND: PrependAttrs,
    OpKind.PAD_MASK: PadMaskAttrs,
    OpKind.STRIP: StripAttrs,
    OpKind.ROTARY: RotaryAttrs,
    OpKind.POLAR: PolarAttrs,
    OpKind.POSITION_BIAS: PositionBiasAttrs,
    OpKind.ATTENTION: AttentionAttrs,
    OpKind.CROSS_ATTENTION: CrossAttentionAttrs,
    OpKind.FEEDFORWARD: FeedForwardAttrs,
    OpKind.RESIDUAL: ResidualAttrs,
    OpKind.AGGREGATE: AggregateAttrs,
    OpKind.LAYER_MIX: LayerMixAttrs,
    OpKind.SKIP_COMBINE: SkipCombineAttrs,
    OpKind.REINJECT: ReinjectAttrs,
    OpKind.STREAMS: StreamsAttrs,
    OpKind.STREAM_MIX: StreamMixAttrs,
    OpKind.CONDITION: ConditionAttrs,
    OpKind.SOFTCLAMP: SoftclampAttrs,
    OpKind.POOL: PoolAttrs,
    OpKind.ATTENTION_POOL: AttentionPoolAttrs,
    OpKind.LOGITS: LogitsAttrs,
    OpKind.LOSS: LossAttrs,
    OpKind.OUTPUT: OutputAttrs,
}

# How many inputs each kind reads: (minimum, maximum).
ARITY = {
    OpKind.INPUT: (0, 0),
    OpKind.TOKEN_EMBEDDING: (1, 2),  # token ids, and an xVal model's numbers
    OpKind.NAMED_EMBEDDINGS: (1, 1),  # the ids (embed_ids)
    OpKind.POSITION_EMBEDDING: (1, 1),
    OpKind.ADD: (2, 2),
    OpKind.NORM: (1, 2),  # hidden states, and an adaptive norm's condition
    OpKind.DROPOUT: (1, 1),
    OpKind.GRADIENT_SCALE: (1, 1),
    OpKind.DEEP_EMBED: (1, 1),  # the token ids
    OpKind.LOOP: (2, 2),  # the start: embeddings, the passes; the end: the layers' output, start
    OpKind.PROJECT: (1, 1),
    OpKind.PATCH_EMBEDDING: (1, 1),
    OpKind.MEMORY_TOKENS: (1, 1),
    OpKind.PREPEND: (2, 2),  # hidden states, the embeddings to put in front
    OpKind.PAD_MASK: (1, 2),  # the mask, and what was put in front when its length varies
    OpKind.STRIP: (1, 2),  # hidden states, and (chunked) the sequence the tokens were added to
    OpKind.ROTARY: (1, 1),  # the hidden states whose positions it covers
    OpKind.POLAR: (1, 1),  # likewise
    OpKind.POSITION_BIAS: (1, 1),
    OpKind.ATTENTION: (1, 5),  # hidden states, then optional mask, rotary or polar angles, bias,
    # prefix length (a PrefixDecoder's)
    OpKind.CROSS_ATTENTION: (2, 4),  # hidden states, context, optional masks
    OpKind.FEEDFORWARD: (1, 2),  # and ff_deep_embed's DEEP_EMBED
    OpKind.RESIDUAL: (2, 3),  # the residual, the branch, and an adaptive layer scale's condition
    OpKind.AGGREGATE: (1, 1),  # the latest input (the earlier ones are the block's hiddens)
    OpKind.LAYER_MIX: (1, 1),  # likewise
    OpKind.SKIP_COMBINE: (2, 2),  # the block's input, its mirror's
    OpKind.REINJECT: (1, 1),  # the stack's input
    OpKind.STREAMS: (1, 1),
    OpKind.STREAM_MIX: (1, 1),  # the streams
    OpKind.CONDITION: (1, 1),  # the condition input
    OpKind.SOFTCLAMP: (1, 1),
    OpKind.POOL: (1, 2),
    OpKind.ATTENTION_POOL: (1, 2),  # the hidden states, and the padding mask
    OpKind.LOGITS: (1, 3),  # hidden states, the token embedding when tied, mixture weights
    OpKind.NEXT_EMBED: (2, 2),  # the final hidden states, the initial embeddings
    OpKind.LOSS: (2, 4),  # logits (or predicted vectors), [predicted numbers,] targets,
    # [target numbers]
    OpKind.OUTPUT: (1, 1),
}


# Kinds whose `dim` is the width they produce, not the width they read.
PRODUCES_ITS_DIM = frozenset({OpKind.TOKEN_EMBEDDING, OpKind.POSITION_EMBEDDING,
                              OpKind.PATCH_EMBEDDING, OpKind.ROTARY, OpKind.POSITION_BIAS,
                              OpKind.DEEP_EMBED, OpKind.ATTENTION_POOL,
                              OpKind.NAMED_EMBEDDINGS})


@dataclass(frozen=True)
class Op:
    """One node. `block` is the index of the transformer block it belongs to (None outside),
    `role` its attribute name in the emitted module that owns it ("attn_norm", "to_logits"),
    `ref_path` the reference's module path that holds its parameters ('' when none)."""

    name: str
    kind: OpKind
    attrs: object
    inputs: tuple[str, ...] = ()
    spec_key: str = ""
    ref_path: str = ""
    block: int | None = None
    role: str = ""
    scope: str = ""  # the submodule of the emitted model that holds the op ("encoder"), if any
    weights_of: int | None = None  # weight tying: the block whose parameters this op uses
    shares: str = ""  # the op whose parameters this one uses (XTransformer's tie_token_emb)
    shape: tuple[str | int, ...] | None = field(default=None, compare=False)

    @property
    def component(self) -> str:
        """The top-level component the op belongs to ("" for a single model's own ops)."""
        return self.scope.split(".")[0]

    def describe(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self.attrs, f.name)!r}" for f in fields(self.attrs))
        reads = " <- " + ", ".join(f"%{name}" for name in self.inputs) if self.inputs else ""
        return f"%{self.name} : {self.kind.value}({args}){reads}"


def changed(attrs) -> str:
    """`field=value, ...` for the fields that differ from their defaults."""
    shown = []
    for f in fields(attrs):
        value = getattr(attrs, f.name)
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        if default is MISSING or value != default:
            shown.append(f"{f.name}={value!r}")
    return ", ".join(shown)


def scope_prefix(scope: str) -> str:
    """What op names built under a scope start with: `pali.encoder` -> `pali__encoder_`. The
    double underscore keeps a nested scope apart from a component named `pali_encoder`
    (component names may not hold one)."""
    return f"{scope.replace('.', '__')}_" if scope else ""


class GraphError(AssertionError):
    """The IR broke one of its invariants: a bug in a pass, never a user error."""


class Graph:
    """Ops in insertion order, which is a topological order (an op reads only earlier ops)."""

    def __init__(self, origin: Origin | None = None):
        self._ops: dict[str, Op] = {}
        self.models: dict[str, ModelAttrs] = {}  # scope -> the model it holds
        self.origin = origin

    def add_model(self, scope: str, attrs: ModelAttrs) -> None:
        if scope in self.models:
            raise GraphError(f"two models in scope {scope!r}\n{self}")
        self.models[scope] = attrs

    def add(self, name: str, kind: OpKind, attrs: object, inputs: tuple[str, ...] = (),
            **provenance) -> str:
        if name in self._ops:
            raise GraphError(f"duplicate op name {name!r}\n{self}")
        self._ops[name] = Op(name, kind, attrs, tuple(inputs), **provenance)
        return name

    def replace(self, op: Op) -> None:
        """Swap an op's payload in place (a transform pass); name and position stay."""
        if op.name not in self._ops:
            raise GraphError(f"no op {op.name!r} to replace\n{self}")
        self._ops[op.name] = op

    def __getitem__(self, name: str) -> Op:
        return self._ops[name]

    def __contains__(self, name: str) -> bool:
        return name in self._ops

    def ops(self, kind: OpKind | None = None) -> list[Op]:
        """Ops in topological order, optionally of one kind."""
        return [op for op in self._ops.values() if kind is None or op.kind is kind]

    def module_path(self, op: Op) -> str:
        """Where the op's parameters live in the emitted model: `blocks.3.attn`, `to_logits`,
        `encoder.blocks.0.ff`, `block.attn0` (the one block of a custom layout)."""
        owner = op.block if op.weights_of is None else op.weights_of
        model = self.models.get(op.scope)  # a graph built by hand may have no model records
        single = op.block is not None and model is not None and model.custom_layout
        local = ".".join(part for part in (
            "block" if single else f"blocks.{owner}" if op.block is not None else "", op.role)
            if part)
        return ".".join(part for part in (op.scope, local) if part)

    def shared_input(self, op: Op, kind: OpKind):
        """The payload of the op of `kind` among op's inputs after its first (an adaptive
        norm's CONDITION), or None."""
        return next((self._ops[name].attrs for name in op.inputs[1:]
                     if self._ops[name].kind is kind), None)

    def users(self, name: str) -> list[Op]:
        return [op for op in self._ops.values() if name in op.inputs]

    def lint(self) -> None:
        """Check the invariants every pass must keep; raise GraphError naming the op."""
        seen: set[str] = set()
        for op in self._ops.values():
            if not isinstance(op.attrs, ATTRS[op.kind]):
                raise GraphError(f"%{op.name}: {op.kind.value} carries {type(op.attrs).__name__}\n{self}")
            low, high = ARITY[op.kind]
            if not low <= len(op.inputs) <= high:
                raise GraphError(f"%{op.name}: {op.kind.value} takes {low}-{high} inputs, has {len(op.inputs)}\n{self}")
            missing = [name for name in op.inputs if name not in seen]
            if missing:
                raise GraphError(f"%{op.name} reads {missing} before they are defined\n{self}")
            seen.add(op.name)
        if not self.ops(OpKind.OUTPUT):
            raise GraphError(f"graph has no output\n{self}")
        self.lint_shapes()

    def lint_shapes(self) -> None:
        """Where shapes are known, each op's feature size agrees with what it reads."""
        for op in self._ops.values():
            want = getattr(op.attrs, "dim_in", getattr(op.attrs, "dim", None))
            if want is None or op.kind in PRODUCES_ITS_DIM:
                continue
            source = self._ops[op.inputs[0]]
            if source.shape is not None and source.shape[-1] != want:
                raise GraphError(f"%{op.name} expects feature size {want}, %{source.name} gives {source.shape}\n{self}")
        for op in self.ops(OpKind.ATTENTION):
            masks = [self._ops[name] for name in op.inputs[1:]
                     if self._ops[name].kind in (OpKind.INPUT, OpKind.PAD_MASK)]
            if not masks:
                continue
            hidden, mask = self._ops[op.inputs[0]].shape, masks[0].shape
            if hidden is not None and op.attrs.qkv_views:
                hidden = hidden[1:]  # (3, B, T, C): the views of q, k and v
            if hidden is not None and mask is not None and hidden[:2] != mask[:2]:
                raise GraphError(f"%{op.name}: mask {mask} does not cover the sequence {hidden}\n{self}")

    def __str__(self) -> str:
        return "\n".join(op.describe() for op in self._ops.values())

    def review_text(self) -> str:
        """The graph for review (examples/generated/*.ir.txt): each model record and op with the
        fields that differ from their defaults, each op's inferred shape. A change to the IR shows
        in a diff as the lines it changes."""
        models = [f"model {scope!r} : {changed(attrs)}" for scope, attrs in self.models.items()]
        ops = [f"%{op.name} : {op.kind.value}({changed(op.attrs)})"
               + (" <- " + ", ".join(f"%{name}" for name in op.inputs) if op.inputs else "")
               + (f"  # {' '.join(map(str, op.shape))}" if op.shape is not None else "")
               for op in self._ops.values()]
        return "\n".join(models + ops) + "\n"

    def to_networkx(self):
        """A networkx.DiGraph: string node ids, `kind` from OpKind, primitive attribute values."""
        import networkx  # 0.25 s to import: only the callers that want a graph pay for it

        result = networkx.DiGraph()
        for op in self._ops.values():
            attrs = {f.name: primitive(getattr(op.attrs, f.name)) for f in fields(op.attrs)}
            result.add_node(op.name, **attrs, kind=op.kind.value, spec_key=op.spec_key,
                            scope=op.scope, block=-1 if op.block is None else op.block,
                            weights_of=-1 if op.weights_of is None else op.weights_of,
                            shares=op.shares,
                            parameters=self.module_path(op),
                            output_shape=primitive(op.shape or ()))
            for source in op.inputs:
                result.add_edge(source, op.name)
        return result


def primitive(value: object) -> object:
    """Tuples (shapes) as space-separated text, None as '': networkx attributes stay plain."""
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return "" if value is None else value
