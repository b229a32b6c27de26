"""The feature matrix: every option case of the parity, generation, inspect and torch.compile
tests, once, as one row of FEATURES, and the one spec builder that turns a row into a model.

A row names the keywords it adds to a tiny model (dim 32, depth 2, 4 heads of 16, 64 tokens,
32 positions) at each place of the spec, and says how it may be run: the layer stacks it is
built with (`kinds`), whether `flash: true` may be set with it, whether (and how) a Decoder of it
generates. tests/test_features.py runs each row once in the default run and the whole
cross-product (kinds x math/flash x mask/no-mask, generation x cache/no-cache) under `slow`.

Adding an option to the tests is one row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

import xtc

DIM, DEPTH, HEADS, DIM_HEAD, NUM_TOKENS, MAX_SEQ_LEN = 32, 2, 4, 16, 64, 32
BOTH = ("Decoder", "Encoder")

# the keywords every model of a wrapper type gets before a row's own
WRAPPER_DEFAULTS = {
    "TransformerWrapper": {"num_tokens": NUM_TOKENS, "max_seq_len": MAX_SEQ_LEN},
    "ViTransformerWrapper": {"image_size": 16, "patch_size": 4, "num_classes": 5},
    "ContinuousTransformerWrapper": {},
    "XTransformer": {"dim": DIM},
    "XValTransformerWrapper": {"num_tokens": NUM_TOKENS, "max_seq_len": MAX_SEQ_LEN,
                               "numerical_token_id": 3},
}
XTRANSFORMER_SIDE = {"num_tokens": NUM_TOKENS, "max_seq_len": 16, "depth": DEPTH, "heads": HEADS}


def frozen(mapping: dict | None = None) -> MappingProxyType:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Feature:
    """One option case.

    group, name: the area and the case; test ids read `group-name`.
    model, layers, attn, ff, cross_attn: keywords added at each place (`model`: the wrapper's;
        an XTransformer's `encoder:` / `decoder:` entries add to that side). None removes a
        default (the library's own default then applies).
    autoregressive: the model's training-wrapper options (its `autoregressive:` mapping).
    wrapper: the model type; None for a bare layer stack.
    kinds: the layer stack types it is built with (CrossAttender, or XTransformer for one that
        holds both).
    flash: whether `flash: true` may be set with it (False where it needs the score matrix, or
        values narrower than queries, which the CPU flash kernel refuses).
    generates: whether its Decoder (or XTransformer) is checked in greedy generation.
    reference_cache: False where x-transformers' kv-cached generation is wrong, so that its
        uncached tokens are the reference.
    recurrent: a Transformer-XL model (max_mem_len): generation runs by segments, always
        cached, against x-transformers' XLAutoregressiveWrapper.
    mask: whether its forward takes a padding mask (False where the reference takes none).
    samples: the model samples in eval mode (gumbel_softmax): its forwards are compared with
        torch's generator seeded alike (reference.drawn), and it generates without the cache
        only (a cached step draws noise of another shape than the reference's uncached one).
    """
    group: str
    name: str
    model: MappingProxyType = field(default_factory=frozen)
    layers: MappingProxyType = field(default_factory=frozen)
    attn: MappingProxyType = field(default_factory=frozen)
    ff: MappingProxyType = field(default_factory=frozen)
    cross_attn: MappingProxyType = field(default_factory=frozen)
    autoregressive: MappingProxyType = field(default_factory=frozen)
    wrapper: str | None = "TransformerWrapper"
    kinds: tuple[str, ...] = BOTH
    flash: bool = True
    generates: bool = True
    reference_cache: bool = True
    recurrent: bool = False
    mask: bool = True
    samples: bool = False

    @property
    def id(self) -> str:
        return f"{self.group}-{self.name}"

    @property
    def takes_mask(self) -> bool:
        return self.mask and self.wrapper != "ViTransformerWrapper"  # a ViT's are never padded


def row(group: str, name: str, *, model=None, layers=None, attn=None, ff=None, cross_attn=None,
        autoregressive=None, **how) -> Feature:
    return Feature(group, name, frozen(model), frozen(layers), frozen(attn), frozen(ff),
                   frozen(cross_attn), frozen(autoregressive), **how)


def token_rows(group: str, table: dict, **how) -> list[Feature]:
    """Rows of a TransformerWrapper table written {name: {place: keywords}}."""
    return [row(group, name, **places, **how) for name, places in table.items()]


# -- wrapper, norm and feedforward options (issue #4), each alone and combined ---------------

OPTIONS = token_rows("options", {
    "plain": {},
    "default_head_width": {"layers": {"heads": 2}, "attn": {"dim_head": None}},  # 64 wide
    "one_wide_head": {"layers": {"heads": 1}, "attn": {"dim_head": 32}},  # no output projection
    "emb_dim": {"model": {"emb_dim": 24}},
    "emb_dropout": {"model": {"emb_dropout": 0.1}},
    "tie_embedding": {"model": {"tie_embedding": True}},
    "tie_embedding_scale": {"model": {"tie_embedding": True, "tie_embedding_scale": 0.5}},
    "no_abs_pos_emb": {"model": {"use_abs_pos_emb": False}},
    "scaled_sinu_pos_emb": {"model": {"scaled_sinu_pos_emb": True}},
    "l2norm_embed": {"model": {"l2norm_embed": True}},
    "post_emb_norm": {"model": {"post_emb_norm": True}},
    "num_memory_tokens": {"model": {"num_memory_tokens": 3}},
    "layer_dropout": {"layers": {"layer_dropout": 0.1}},
    "use_scalenorm": {"layers": {"use_scalenorm": True}},
    "use_rmsnorm": {"layers": {"use_rmsnorm": True}},
    "post_norm": {"layers": {"pre_norm": False}},
    "attn_dropout": {"attn": {"dropout": 0.1}},
    "num_mem_kv": {"attn": {"num_mem_kv": 2}},
    "ff_mult": {"ff": {"mult": 2.5}},
    "ff_dropout": {"ff": {"dropout": 0.1}},
    "glu": {"ff": {"glu": True}},
    "swiglu": {"ff": {"glu": True, "swish": True}},
    "no_bias": {"ff": {"no_bias": True}},
    "relu_squared": {"ff": {"relu_squared": True}},
    "combined_pre_norm": {
        "model": {"emb_dim": 24, "post_emb_norm": True, "num_memory_tokens": 2, "emb_dropout": 0.1},
        "layers": {"use_rmsnorm": True, "layer_dropout": 0.1},
        "attn": {"num_mem_kv": 2, "dropout": 0.1},
        "ff": {"glu": True, "swish": True, "mult": 2, "no_bias": True},
    },
    "combined_post_norm": {
        "model": {"tie_embedding": True, "l2norm_embed": True, "use_abs_pos_emb": False},
        "layers": {"pre_norm": False, "use_scalenorm": True},
        "attn": {"num_mem_kv": 1},
        "ff": {"relu_squared": True, "dropout": 0.1},
    },
})

# -- decoders of the generation tests (issue #7) ---------------------------------------------

DECODERS = token_rows("decoder", {
    "options": {"model": {"emb_dropout": 0.1}, "layers": {"use_rmsnorm": True},
                "ff": {"glu": True}, "attn": {"num_mem_kv": 2}},
    "post_norm_sinusoidal": {"model": {"scaled_sinu_pos_emb": True}, "layers": {"pre_norm": False}},
    "no_positions_l2norm": {"model": {"use_abs_pos_emb": False, "l2norm_embed": True}},
    "memory_tokens": {"model": {"num_memory_tokens": 2}},
    # one decoding query against grouped keys takes its own path in attend (folded heads)
    "llama": {"model": {"use_abs_pos_emb": False},
              "layers": {"rotary_pos_emb": True, "use_rmsnorm": True},
              "attn": {"kv_heads": 2}, "ff": {"glu": True, "swish": True}},
})
# memory tokens before every chunk of n positions: a decoder's, without a padding mask (the
# reference's forward raises for an encoder and for a mask); rotary positions count them
DECODERS += token_rows("decoder", {
    "memory_tokens_interspersed": {
        "model": {"num_memory_tokens": 2, "memory_tokens_interspersed_every": 4}},
    "memory_tokens_interspersed_rotary": {
        "model": {"num_memory_tokens": 3, "memory_tokens_interspersed_every": 3,
                  "use_abs_pos_emb": False}, "layers": {"rotary_pos_emb": True}},
}, kinds=("Decoder",), mask=False)

# -- attention variants (issue #9) -----------------------------------------------------------

ATTENTION = token_rows("attention", {
    "gqa": {"attn": {"kv_heads": 2}},
    "laser": {"attn": {"laser": True}},
    "mqa": {"attn": {"one_kv_head": True}},
    "qk_norm": {"attn": {"qk_norm": True}},
    "qk_norm_groups_scale": {"attn": {"qk_norm": True, "qk_norm_groups": 2, "qk_norm_scale": 8}},
    "qk_norm_dim_scale": {"attn": {"qk_norm": True, "qk_norm_dim_scale": True}},
    "on_attn": {"attn": {"on_attn": True}},
    "gate_values": {"attn": {"gate_values": True}},
    "gate_value_heads": {"attn": {"gate_value_heads": True}},
    "gate_values_low_rank_swiglu": {"attn": {"gate_values": True, "gate_values_rank": 8,
                                             "swiglu_values": True}},
    "headwise_gate_low_rank_output_gate": {"attn": {
        "gate_values": True, "gate_values_headwise": True, "output_gate": True,
        "output_gate_rank": 8, "low_rank_silu_gates": False}},
    "output_gate_headwise": {"attn": {"output_gate": True, "output_gate_headwise": True}},
    "head_scale": {"attn": {"head_scale": True}},
    "llm": {"layers": {"rotary_pos_emb": True, "use_rmsnorm": True},
            "ff": {"glu": True, "swish": True},
            "attn": {"kv_heads": 2, "qk_norm": True, "qk_norm_dim_scale": True}},
    "alibi_memory": {"layers": {"alibi_pos_bias": True}, "attn": {"num_mem_kv": 2, "kv_heads": 2}},
    "everything_gated": {"attn": {"on_attn": True, "gate_values": True, "head_scale": True,
                                  "num_mem_kv": 1, "qk_norm": True}},
    # how the reference calls its kernels: nothing changes in the emitted model (a warning)
    "kernel_options": {"attn": {"onnxable": True,
                                "attend_sdp_kwargs": {"enable_flash": True, "enable_math": True}}},
    # issue #39: the output projection and the branch's output
    "project_out_false": {"attn": {"project_out": False, "dim_head": 8}},  # 4 x 8 == dim
    "project_out_one_head": {"layers": {"heads": 1}, "attn": {"dim_head": 32, "project_out": True}},
    "zero_init_output": {"attn": {"zero_init_output": True}},
    "sublayer_dropout": {"attn": {"sublayer_dropout": 0.5}},
    # a list stays with self-attention; no output projection to zero in cross-attention
    "cross_output_options": {"layers": {"cross_attend": True},
                             "attn": {"zero_init_output": True, "sublayer_dropout": [0.2, 0.0]},
                             "cross_attn": {"project_out": False, "dim_head": 8,
                                            "zero_init_output": False, "sublayer_dropout": 0.3}},
    # per-head RMSNorms (gains randomised by the harness), before rotary and the cache
    "qk_rmsnorm_rotary": {"layers": {"rotary_pos_emb": True},
                          "attn": {"qk_rmsnorm": True, "value_rmsnorm": True}},
    "k_rmsnorm_gqa_qk_norm": {"attn": {"k_rmsnorm": True, "kv_heads": 2, "qk_norm": True}},
    "zero_kv_memory_alibi": {"layers": {"alibi_pos_bias": True},
                             "attn": {"add_zero_kv": True, "num_mem_kv": 2, "kv_heads": 2,
                                      "k_rmsnorm": True}},  # memory keys are not normalised
}) + token_rows("attention", {
    # belief attention projects over the whole sequence: no kv cache, and x-transformers'
    # cached generation projects the newest position alone, so its uncached tokens are the model's
    "orthog_projected_values": {"attn": {"orthog_projected_values": True}},
    "orthog_per_head_gqa": {"attn": {"orthog_projected_values_per_head": True, "kv_heads": 2}},
    "orthog_both_gated": {"attn": {"orthog_projected_values": True, "gate_values": True,
                                   "orthog_projected_values_per_head": True, "num_mem_kv": 2,
                                   "sublayer_dropout": 0.1}},
}, reference_cache=False) + token_rows("attention", {
    # the CPU flash kernel needs values as wide as queries; soft-capping needs the score matrix
    "value_dim_head": {"attn": {"value_dim_head": 8}},
    "softclamp": {"attn": {"softclamp_logits": True, "logit_softclamp_value": 2.0}},
    "softclamp_bias": {"layers": {"alibi_pos_bias": True}, "attn": {"softclamp_logits": True}},
    # the keys' squared norms are SDPA's float bias (no flash kernel); LASER attends over exp(v)
    "l2_distance": {"attn": {"l2_distance": True}},
    "l2_distance_alibi_memory_gqa": {"layers": {"alibi_pos_bias": True},
                                     "attn": {"l2_distance": True, "num_mem_kv": 2, "kv_heads": 2,
                                              "add_zero_kv": True}},
    "laser_memory_gqa_head_scale": {"attn": {"laser": True, "laser_softclamp_value": 2.0,
                                             "num_mem_kv": 2, "kv_heads": 2, "add_zero_kv": True,
                                             "head_scale": True}},
    # under flash the reference needs the flash-attn package (CUDA) for it
    "flash_pack_seq": {"layers": {"rotary_pos_emb": True}, "attn": {"flash_pack_seq": True}},
    # a learned float bias: SDPA's flash kernel has no gradient for its mask, so flash: true
    # (accepted, as the reference) runs the other kernels. Distances 6 and beyond get no bias
    "rel_proj_pos_bias": {"attn": {"use_rel_proj_pos_bias": True, "rel_proj_num_distance_basis": 4,
                                   "rel_proj_max_dist": 6}},
    "rel_proj_alibi_zero_kv_gqa": {"layers": {"alibi_pos_bias": True},
                                   "attn": {"use_rel_proj_pos_bias": True, "add_zero_kv": True,
                                            "kv_heads": 2}},
}, flash=False) + token_rows("attention", {
    # data-dependent ALiBi: x-transformers' cached path computes the gates of the newest token
    # alone, so its uncached tokens are the reference (xtc's cache carries the running sums);
    # a learned float bias, so no flash kernel (as the projected distance bias)
    "data_dependent_alibi": {"attn": {"data_dependent_alibi": True, "data_dependent_alibi_kwargs": {
        "bias_init": 2.0, "post_log_scale": 0.5}}},
    "dda_zero_kv_rel_proj_gqa": {"attn": {"data_dependent_alibi": True, "add_zero_kv": True,
                                          "use_rel_proj_pos_bias": True, "kv_heads": 2}},
}, flash=False, reference_cache=False) + token_rows("attention", {
    "dda_per_row": {"attn": {"data_dependent_alibi": True, "data_dependent_alibi_per_row": True,
                             "data_dependent_alibi_per_row_dim_head": 4,
                             "data_dependent_alibi_kwargs": {"post_log_scale": 2.0}}},
    "dda_per_row_memory_kv": {"attn": {"data_dependent_alibi": True, "num_mem_kv": 2,
                                       "data_dependent_alibi_per_row": True}},
}, flash=False, reference_cache=False, kinds=("Decoder",))

# multi-head latent attention (DeepSeek-V2): the kv cache keeps the latent. x-transformers'
# cached generate fails without decoupled rope (its cache holds a None), so its uncached tokens
# are the reference there
LATENT = {"use_latent_kv": True, "dim_latent_kv": 12}
ATTENTION += token_rows("attention", {
    "latent_q": {"attn": {"use_latent_q": True, "dim_latent_q": 8}},
    "latent_rope_subheads": {"layers": {"rotary_pos_emb": True},
                             "attn": {"use_latent_q": True, "dim_latent_q": 8, **LATENT,
                                      "latent_rope_subheads": 2}},
    "latent_rope_qk_norm_mem_kv": {"layers": {"rotary_pos_emb": True},
                                   "attn": {**LATENT, "latent_rope_subheads": 1, "qk_norm": True,
                                            "num_mem_kv": 2}},
}) + token_rows("attention", {
    "latent_kv": {"attn": LATENT},
    "latent_kv_gqa_rotary": {"layers": {"rotary_pos_emb": True}, "attn": {**LATENT, "kv_heads": 2}},
}, reference_cache=False) + token_rows("attention", {
    "latent_rope_xpos_k_rmsnorm": {"layers": {"rotary_pos_emb": True, "rotary_xpos": True},
                                   "attn": {**LATENT, "latent_rope_subheads": 1,
                                            "k_rmsnorm": True}},
}, kinds=("Decoder",)) + token_rows("attention", {
    # per layer (DeepSeek-V2's dense first layers, a Gemma-like local layer): each layer's cache
    # has its own form and size, a latent of its width, or a window's keys and values
    "latent_per_layer": {"layers": {"rotary_pos_emb": True, "depth": 3}, "attn": {
        "use_latent_kv": [True, False, True], "dim_latent_kv": [12, None, 16],
        "latent_rope_subheads": [1, None, 2], "use_latent_q": [False, False, True],
        "dim_latent_q": 8, "max_attend_past": [None, 3, None]}},
}) + token_rows("attention", {
    "latent_kv_per_layer": {"attn": {"use_latent_kv": [False, True], "dim_latent_kv": 12}},
}, reference_cache=False) + token_rows("attention", {
    # an execution order runs the latent layer twice: each run has its own latent cache
    "latent_custom_layout": {"layers": {"custom_layers": ["a", "f", "a", "f"], "depth": None,
                                        "layers_execute_order": [0, 1, 2, 3, 2, 3]},
                             "attn": {"use_latent_kv": [False, True], "dim_latent_kv": 12}},
}, reference_cache=False, kinds=("Decoder",))

# options that work on the score matrix itself: never flash
EXPLICIT = token_rows("explicit", {
    "pre_talking_heads": {"attn": {"pre_talking_heads": True}},
    "post_talking_heads": {"attn": {"post_talking_heads": True}},
    "pre_scale_post_talking_heads": {"attn": {"pre_scale_post_talking_heads": True}},
    "sparse_topk": {"attn": {"sparse_topk": 3}},
    # forward as top-k, gradients of the full softmax: gradient parity is the test
    "sparse_topk_straight_through": {"attn": {"sparse_topk": 2,
                                              "sparse_topk_straight_through": True}},
    "hard": {"attn": {"hard": True}},
    "hard_post_talking_heads_memory": {"attn": {"hard": True, "post_talking_heads": True,
                                                "num_mem_kv": 2}},
    "talking_heads_encoder_alibi_memory": {"layers": {"alibi_pos_bias": True}, "attn": {
        "pre_talking_heads": True, "post_talking_heads": True, "num_mem_kv": 2}},
    "head_learned_sink": {"attn": {"head_learned_sink": True}},
    "rel_proj_topk_talking_heads": {"attn": {"use_rel_proj_pos_bias": True, "sparse_topk": 3,
                                             "pre_talking_heads": True, "rel_proj_max_dist": 5}},
    # the sink and the zero key both take part in top-k and in the mixing of heads
    "sink_zero_kv_topk_talking_heads": {"attn": {
        "head_learned_sink": True, "add_zero_kv": True, "sparse_topk": 3,
        "pre_talking_heads": True, "post_talking_heads": True, "num_mem_kv": 1}},
    "zero_kv_residual_softclamp": {"layers": {"residual_attn": True, "rotary_pos_emb": True},
                                   "attn": {"add_zero_kv": True, "softclamp_logits": True,
                                            "logit_softclamp_value": 2.0, "k_rmsnorm": True}},
    "sigmoid": {"attn": {"sigmoid": True}},
    "sigmoid_sink_zero_kv_alibi": {"layers": {"alibi_pos_bias": True}, "attn": {
        "sigmoid": True, "head_learned_sink": True, "add_zero_kv": True, "num_mem_kv": 1}},
    "cog_signed": {"attn": {"cog_signed": True}},
    # the sink's sign joins the scores' signs; l2 scores on the explicit path
    "cog_signed_sink_l2_softclamp": {"attn": {
        "cog_signed": True, "head_learned_sink": True, "l2_distance": True, "kv_heads": 2,
        "softclamp_logits": True, "logit_softclamp_value": 2.0}},
}, flash=False) + token_rows("explicit", {
    # Gumbel-softmax attention samples in eval mode: compared with the noise aligned (the seed
    # before each forward), generation without the cache (a cached step draws noise of another
    # shape: tests/test_attention_variants.py tests it by its statistics)
    "gumbel_softmax": {"attn": {"gumbel_softmax": True}},
    # a temperature above 1 keeps masked scores finite (below 1, -max / tau overflows to -inf
    # and a row that sees no key gives NaN gradients, in the reference too)
    "gumbel_soft_sink_gqa": {"attn": {"gumbel_softmax": True, "gumbel_softmax_temp": 2.0,
                                      "gumbel_softmax_hard": False, "head_learned_sink": True,
                                      "kv_heads": 2, "num_mem_kv": 1}},
}, flash=False, samples=True) + token_rows("explicit", {
    # cross-attention inherits it: self- and cross-attention draw in turn, layer by layer
    "gumbel_cross": {"layers": {"cross_attend": True}, "attn": {"gumbel_softmax": True},
                     "cross_attn": {"gumbel_softmax_temp": 1.5}},
}, kinds=("Decoder",), flash=False, samples=True) + token_rows("explicit", {
    # sampled over the queries: inverted cross-attention's Gumbel-softmax runs along them (soft:
    # a hard sample leaves most queries no weight, and their rows' l1 norm divides by ~1e-8)
    "gumbel_inverted_cross": {"layers": {"cross_attend": True}, "cross_attn": {
        "gumbel_softmax": True, "gumbel_softmax_temp": 2.0, "gumbel_softmax_hard": False,
        "inverted_attention": True}},
}, kinds=("Decoder",), flash=False, samples=True, reference_cache=False)

# contextual positions (CoPE) count keys by gates of the masked scores: causal only, never flash
COPE = token_rows("explicit", {
    "cope": {"attn": {"use_cope": True, "cope_max_pos": 4}},
    # talking heads before the gates; the memory keys, the zero key and the sink around them
    "cope_talking_heads_memory": {"layers": {"rotary_pos_emb": True}, "attn": {
        "use_cope": True, "cope_talking_heads": True, "num_mem_kv": 2, "kv_heads": 2,
        "add_zero_kv": True, "head_learned_sink": True}},
}, kinds=("Decoder",), flash=False) + token_rows("explicit", {
    # selective attention: causal only, never flash; the kv cache carries the penalties' sum (the
    # reference generates without one)
    "selective": {"attn": {"selective": True}},
    "selective_memory_zero_kv_cope": {"layers": {"rotary_pos_emb": True}, "attn": {
        "selective": True, "num_mem_kv": 2, "add_zero_kv": True, "use_cope": True,
        "head_learned_sink": True}},
    # the magnitudes of the scores go through masking, CoPE and the penalties; signs come back
    "cope_selective_cog_signed": {"attn": {"use_cope": True, "selective": True,
                                           "cog_signed": True, "cope_max_pos": 4}},
}, kinds=("Decoder",), flash=False)

# sliding windows (max_attend_past): a band mask through SDPA, and caches that keep the window
WINDOWS = token_rows("window", {
    "max_attend_past": {"attn": {"max_attend_past": 3}},
    # relative positions continue past the window; memory slots and the zero key stay visible
    "rotary_memory_kv_zero_kv": {"layers": {"rotary_pos_emb": True}, "attn": {
        "max_attend_past": 2, "num_mem_kv": 2, "add_zero_kv": True, "kv_heads": 2}},
    "alibi_per_layer": {"layers": {"alibi_pos_bias": True, "depth": 3},
                        "attn": {"max_attend_past": [2, None, 4]}},
}) + token_rows("window", {
    # xPos scales every key at each step: the window's cache holds the last keys unscaled
    "xpos": {"layers": {"rotary_pos_emb": True, "rotary_xpos": True},
             "attn": {"max_attend_past": 2}},
}, kinds=("Decoder",)) + token_rows("window", {
    "t5_explicit": {"layers": {"rel_pos_bias": True},
                    "attn": {"max_attend_past": 3, "sparse_topk": 2}},
}, flash=False) + token_rows("window", {
    # what a cache carries beside keys and values is kept for the window's positions too (the
    # reference's cached data-dependent ALiBi is wrong: its uncached tokens are the oracle)
    "data_dependent_alibi": {"attn": {"max_attend_past": 3, "data_dependent_alibi": True}},
}, flash=False, reference_cache=False) + token_rows("window", {
    "dda_per_row": {"attn": {"max_attend_past": 2, "data_dependent_alibi": True,
                             "data_dependent_alibi_per_row": True}},
}, flash=False, reference_cache=False, kinds=("Decoder",)) + token_rows("window", {
    "selective_cope_memory_kv": {"attn": {"max_attend_past": 3, "selective": True,
                                          "use_cope": True, "num_mem_kv": 1}},
    # an execution order runs the second attention twice: each run has its cache and window
    "custom_layout_per_layer": {"layers": {"custom_layers": ["a", "f", "a", "a", "f"],
                                           "depth": None, "layers_execute_order": [0, 1, 2, 3, 4, 2]},
                                "attn": {"max_attend_past": [3, None, 2]}},
}, flash=False, kinds=("Decoder",)) + token_rows("window", {
    "xl_memory": {"model": {"max_seq_len": 8, "max_mem_len": 6, "use_abs_pos_emb": False},
                  "layers": {"rotary_pos_emb": True}, "attn": {"max_attend_past": 4}},
}, recurrent=True)

# the residual scaled by a constant, alone, with post-norm, and beside the learned scale
RESIDUAL_SCALES = token_rows("residual_scale", {
    "constant": {"layers": {"scale_residual_constant": 0.5}},
    "constant_post_norm": {"layers": {"scale_residual_constant": 2.0, "pre_norm": False}},
    "constant_learned": {"layers": {"scale_residual_constant": 0.5, "scale_residual": True}},
    # depth_scale_residual as a number scales each branch's output (inside the sandwich norm)
    "depth_scale": {"layers": {"depth_scale_residual": 0.5}},
    # initialisation only: parity holds with the reference's weights loaded
    "depth_scaled_init": {"layers": {"depth_scale_residual": True, "cross_attend": True}},
    "zero_init_branch_output": {"layers": {"zero_init_branch_output": True}},
}) + token_rows("residual_scale", {
    # (token shifting: the reference's cache shifts in zeros, its uncached tokens are the oracle)
    "depth_scale_macaron_layerscale_shift": {"layers": {
        "depth_scale_residual": 2.0, "macaron": True, "use_layerscale": True, "shift_tokens": 1,
        "sandwich_norm": True}},
}, reference_cache=False)

# the stack's input, projected (and gated), added to every sublayer's input
REINJECTION = token_rows("reinject", {
    "input": {"layers": {"reinject_input": True}},
    "gated_post_norm_cross": {"layers": {"reinject_input": True, "learned_reinject_input_gate": True,
                                         "pre_norm": False, "cross_attend": True}},
    "gated_aggregated_macaron": {"layers": {"reinject_input": True,
                                            "learned_reinject_input_gate": True,
                                            "macaron": True, "attn_aggregated_residuals": True,
                                            "attn_aggregated_residual_kwargs": {"lora_rank": 8}}},
    "custom_layout_memory_tokens": {"layers": {"reinject_input": True, "depth": None,
                                               "custom_layers": ["a", "f", "a", "f"],
                                               "layers_execute_order": [0, 1, 2, 3, 2, 3]},
                                    "model": {"num_memory_tokens": 2}},
})

# hyper-connections: S residual streams, each sublayer reading a learned mix of them and writing
# its output to each, gated; hyper_conn_sinkhorn_iters does nothing in 2.31.10 (a warning)
STREAMS = token_rows("streams", {
    "hyper": {"layers": {"num_residual_streams": 3}},
    "sinkhorn_post_norm_cross": {"layers": {"num_residual_streams": 2, "hyper_conn_sinkhorn_iters": 2,
                                            "pre_norm": False, "cross_attend": True}},
    "sandwich_layerscale_dropout": {"layers": {"num_residual_streams": 2, "sandwich_norm": True,
                                               "use_layerscale": True, "layer_dropout": 0.1,
                                               "scale_residual": True}},
    "custom_layout_order_macaron": {"layers": {"num_residual_streams": 2, "depth": None,
                                               "custom_layers": ["a", "f", "a", "f"],
                                               "layers_execute_order": [0, 1, 2, 3, 2, 3]}},
    "macaron_rotary_shift": {"layers": {"num_residual_streams": 4, "macaron": True,
                                        "rotary_pos_emb": True, "shift_tokens": 1}},
    # gated_multi_residual: one stream or several; it drops the pre-norm for norms after the sum
    "gated_one_stream": {"layers": {"gated_multi_residual": True,
                                    "residual_fn_kwargs": {"read_gate_rank": 4}}},
    "gated_cross_layerscale": {"layers": {"gated_multi_residual": True, "num_residual_streams": 3,
                                          "residual_fn_kwargs": {"read_gate_rank": 8},
                                          "cross_attend": True, "use_layerscale": True}},
    # qkv_receive_diff_residuals: self-attention's queries, keys and values read their own
    # mixes of the streams (of the aggregated inputs with one stream)
    "qkv_views": {"layers": {"num_residual_streams": 2, "qkv_receive_diff_residuals": True}},
    "qkv_views_gqa_value_residual_rotary": {
        "layers": {"num_residual_streams": 3, "qkv_receive_diff_residuals": True,
                   "add_value_residual": True, "learned_value_residual_mix": False,
                   "rotary_pos_emb": True, "sandwich_norm": True},
        "attn": {"kv_heads": 1, "qk_norm": True}},
    "qkv_views_post_norm_cross": {"layers": {"num_residual_streams": 2,
                                             "qkv_receive_diff_residuals": True,
                                             "pre_norm": False, "cross_attend": True}},
    "qkv_views_gated_one_stream": {"layers": {"gated_multi_residual": True,
                                              "qkv_receive_diff_residuals": True,
                                              "residual_fn_kwargs": {"read_gate_rank": 4},
                                              "add_value_residual": True}},
    "qkv_views_aggregated_reinject": {"layers": {
        "attn_aggregated_residuals": True, "attn_aggregated_residual_kwargs": {"lora_rank": 8},
        "qkv_receive_diff_residuals": True, "reinject_input": True}},
}) + token_rows("streams", {
    # (the reference's cache with token shifts is wrong: its uncached tokens)
    "qkv_views_custom_layout_shift": {"layers": {"num_residual_streams": 2, "depth": None,
                                                 "qkv_receive_diff_residuals": True,
                                                 "custom_layers": ["a", "f", "a", "f"],
                                                 "layers_execute_order": [0, 1, 2, 3, 2, 3],
                                                 "shift_tokens": 1}},
    "gated_custom_layout_shift": {"layers": {"gated_multi_residual": True, "num_residual_streams": 2,
                                             "residual_fn_kwargs": {"read_gate_rank": 2},
                                             "depth": None, "custom_layers": ["a", "f", "a", "f"],
                                             "layers_execute_order": [0, 1, 2, 3, 2, 3],
                                             "shift_tokens": 1}},
}, reference_cache=False) + [
    row("streams", "xtransformer", model={"encoder": {"num_residual_streams": 2},
                                          "decoder": {"num_residual_streams": 3}},
        wrapper="XTransformer", kinds=("XTransformer",)),
    row("streams", "xtransformer_gated", model={
        "encoder": {"gated_multi_residual": True, "residual_fn_kwargs": {"read_gate_rank": 4}},
        "decoder": {"gated_multi_residual": True, "num_residual_streams": 2,
                    "residual_fn_kwargs": {"read_gate_rank": 4},
                    "qkv_receive_diff_residuals": True}},
        wrapper="XTransformer", kinds=("XTransformer",)),
]

# value residual learning (ResFormer): the first attention's values mixed into the later ones
# by a learned gate per token and head or by half; cross-attention mixes its own first's by half
VALUE_RESIDUALS = token_rows("value_residual", {
    "learned": {"layers": {"add_value_residual": True, "depth": 3}},
    "half_gqa": {"layers": {"add_value_residual": True, "learned_value_residual_mix": False},
                 "attn": {"kv_heads": 2}},
    "memory_kv_rotary": {"layers": {"add_value_residual": True, "rotary_pos_emb": True},
                         "attn": {"num_mem_kv": 2, "value_rmsnorm": True}},
    "cross_attend": {"layers": {"add_value_residual": True, "cross_attend": True}},
    "post_norm_flash_qk_norm": {"layers": {"add_value_residual": True, "pre_norm": False},
                                "attn": {"qk_norm": True, "gate_values": True}},
}) + token_rows("value_residual", {
    # an execution order runs a learned-mix layer first: it sets the values, mixing none
    "custom_layout": {"layers": {"add_value_residual": True, "custom_layers": ["a", "f", "a", "f"],
                                 "depth": None, "layers_execute_order": [2, 3, 0, 1, 2, 3]}},
    # a latent cache re-projects past values without their mixes: generate recomputes
    "latent_kv": {"layers": {"add_value_residual": True, "depth": 3},
                  "attn": {"use_latent_kv": [False, True, True], "dim_latent_kv": 12}},
    "tied_weights": {"layers": {"add_value_residual": True, "weight_tie_layers": True}},
}, kinds=("Decoder",), reference_cache=False) + [
    # each side mixes its own first values; the decoder's cross-attentions theirs
    row("xtransformer", "value_residual", model={"encoder": {"add_value_residual": True},
                                                 "decoder": {"add_value_residual": True}},
        wrapper="XTransformer", kinds=("XTransformer",)),
]

# residual attention adds one layer's scores to the next: the score matrix again
RESIDUAL = token_rows("residual", {
    "residual_attn_post_norm": {"layers": {"pre_norm": False, "residual_attn": True}},
    "residual_attn_memory_alibi": {"layers": {"residual_attn": True, "alibi_pos_bias": True},
                                   "attn": {"num_mem_kv": 2}},
}, flash=False) + token_rows("residual", {
    # the orthogonal update projects each row flattened whole and the mean / variance split
    # averages over the sequence (the padding mask's real tokens): no kv cache, and
    # x-transformers' cached generation reads the newest position alone, so its uncached
    # tokens are the model's
    "orthog": {"layers": {"orthog_residual": True}},
    "orthog_scaled_post_norm": {"layers": {"orthog_residual": True, "scale_residual": True,
                                           "pre_norm": False}},
    "orthog_sandwich_macaron_layerscale": {"layers": {
        "orthog_residual": True, "sandwich_norm": True, "macaron": True, "use_layerscale": True,
        "layerscale_init_value": 0.5, "scale_residual": True}},
    "mv_split": {"layers": {"mv_split_residual": True}},
    "mv_split_learned": {"layers": {"mv_split_residual": True, "residual_fn_kwargs": {
        "learned": True, "init_alpha": 0.5, "init_beta": 0.25}}},
    "mv_split_post_norm_memory": {"layers": {"mv_split_residual": True, "pre_norm": False,
                                             "residual_fn_kwargs": {"init_alpha": 0.1}},
                                  "model": {"num_memory_tokens": 2}},
    # an execution order runs a sublayer twice, with its one residual module
    "mv_split_execute_order": {"layers": {"mv_split_residual": True, "depth": None,
                                          "custom_layers": ["a", "f", "a", "f"],
                                          "layers_execute_order": [0, 1, 2, 3, 2, 3]}},
    "orthog_weight_tied_shift": {"layers": {"orthog_residual": True, "weight_tie_layers": True,
                                            "shift_tokens": 1}},
    "mv_split_sandwich_macaron_layerscale": {"layers": {
        "mv_split_residual": True, "sandwich_norm": True, "macaron": True, "use_layerscale": True,
        "layerscale_init_value": 0.5, "residual_fn_kwargs": {"learned": True}}},
    # a depth scale and value residuals beside a whole-row update
    "orthog_depth_scale_value_residual": {"layers": {
        "orthog_residual": True, "depth_scale_residual": 0.5, "add_value_residual": True}},
}, reference_cache=False)
# attention over every sublayer's input so far (AttentionResidual), position by position: the
# kv cache serves it
AGGREGATED = {"attn_aggregated_residuals": True, "attn_aggregated_residual_kwargs": {"lora_rank": 8}}
RESIDUAL += token_rows("residual", {
    "aggregated": {"layers": AGGREGATED},
    "aggregated_post_norm_rmsnorm": {"layers": {**AGGREGATED, "pre_norm": False, "use_rmsnorm": True}},
    "aggregated_sandwich_macaron_tied": {"layers": {**AGGREGATED, "sandwich_norm": True,
                                                    "macaron": True, "weight_tie_layers": True,
                                                    "scale_residual": True}},
    "aggregated_execute_order": {"layers": {**AGGREGATED, "depth": None,
                                            "custom_layers": ["a", "f", "a", "f"],
                                            "layers_execute_order": [0, 1, 2, 3, 2, 3]}},
    # the residual streams together: value residuals beside the aggregate (whose reference
    # leaves a depth scale out), a residual constant beside the learned scale
    "aggregated_value_residual_depth_scale": {"layers": {
        **AGGREGATED, "add_value_residual": True, "depth_scale_residual": 0.5,
        "scale_residual_constant": 0.5, "scale_residual": True}},
})

# U-Net skips between the halves of the stack, and each sublayer's input a learned weighting
# of every sublayer's input so far (#44): position by position, the kv cache serves both
STRUCTURE = token_rows("structure", {
    "unet_skips": {"layers": {"unet_skips": True}},
    "unet_skips_depth_5_rmsnorm": {"layers": {"unet_skips": True, "depth": 5,
                                              "use_rmsnorm": True}},
    "unet_skips_macaron_depth_3_rotary": {"layers": {"unet_skips": True, "macaron": True,
                                                     "depth": 3, "rotary_pos_emb": True}},
    "integrate_layers": {"layers": {"integrate_layers": True}},
    "integrate_layers_relu_post_norm": {"layers": {"integrate_layers": True, "pre_norm": False,
                                                   "layer_integrate_use_softmax": False}},
    # both written: the same model (integrate_layers turns qkv_receive_diff_residuals on)
    "integrate_layers_qkv_views_unet_depth_3": {"layers": {
        "integrate_layers": True, "qkv_receive_diff_residuals": True, "unet_skips": True,
        "depth": 3}},
    "integrate_layers_custom_reinject": {"layers": {"integrate_layers": True, "depth": None,
                                                    "custom_layers": ["f", "a", "a", "f"],
                                                    "reinject_input": True}},
    # the learned value-residual mix reads the queries' sum
    "integrate_layers_learned_value_residual": {"layers": {"integrate_layers": True,
                                                           "learned_value_residual_mix": True}},
    # cross-attention reads one input; blocks of three sublayers mirror at depth 3
    "integrate_layers_cross_gate_residual": {"layers": {"integrate_layers": True,
                                                        "cross_attend": True,
                                                        "gate_residual": True}},
    "unet_skips_cross_depth_3_layer_dropout": {"layers": {"unet_skips": True, "cross_attend": True,
                                                          "depth": 3, "layer_dropout": 0.1}},
})
STRUCTURE += token_rows("structure", {
    # each segment's memory is a self-attention's input: after the skip's join, unweighed
    "unet_skips_memory": {"model": {"max_seq_len": 8, "max_mem_len": 6, "use_abs_pos_emb": False},
                          "layers": {"unet_skips": True, "depth": 4, "rotary_pos_emb": True}},
    "integrate_layers_memory": {"model": {"max_seq_len": 8, "max_mem_len": 6,
                                          "use_abs_pos_emb": False},
                                "layers": {"integrate_layers": True, "rotary_pos_emb": True}},
}, recurrent=True)

# -- norms, residuals and feedforward variants (issue #10) -----------------------------------

LAYERS = token_rows("layers", {
    "simple_rmsnorm": {"layers": {"use_simple_rmsnorm": True}},
    "sandwich_norm": {"layers": {"sandwich_norm": True}},
    "scale_residual": {"layers": {"scale_residual": True}},
    "layerscale": {"layers": {"use_layerscale": True, "layerscale_init_value": 0.1}},
    "gate_residual": {"layers": {"gate_residual": True}},
    "post_act_ln": {"ff": {"post_act_ln": True}},
    "sandwich_glu_rmsnorm": {"layers": {"sandwich_norm": True, "use_rmsnorm": True},
                             "ff": {"glu": True}},
    "everything": {"layers": {"sandwich_norm": True, "use_layerscale": True,
                              "layerscale_init_value": 0.5, "scale_residual": True},
                   "ff": {"post_act_ln": True, "glu": True}},
    "post_norm_gated_scalenorm": {"layers": {"pre_norm": False, "gate_residual": True,
                                             "scale_residual": True, "use_scalenorm": True}},
    "macaron": {"layers": {"macaron": True}},
    "weight_tied_albert": {"layers": {"weight_tie_layers": True}},
    "weight_tied_rotary_macaron": {"layers": {"weight_tie_layers": True, "rotary_pos_emb": True,
                                              "macaron": True}},
    "macaron_post_norm_sandwich": {"layers": {"macaron": True, "sandwich_norm": True,
                                              "scale_residual": True}},
}) + token_rows("layers", {
    "realformer": {"layers": {"pre_norm": False, "residual_attn": True}},
}, flash=False) + token_rows("layers", {
    # x-transformers caches with token shifting and then shifts in zeros: its uncached tokens
    # are the right ones (xtc's cache keeps the inputs each sublayer shifts in)
    "shift_tokens": {"layers": {"shift_tokens": 1}},
    "macaron_shift_tokens_cross": {"layers": {"macaron": True, "shift_tokens": 1,
                                              "use_layerscale": True}},
    "shift_tokens_rotary_layerscale": {"layers": {"shift_tokens": 2, "rotary_pos_emb": True,
                                                  "use_layerscale": True,
                                                  "layerscale_init_value": 0.3}},
}, reference_cache=False) + token_rows("layers", {
    # norms in place of norms (issue #43): DyT (pre-norm only, as the reference asserts), Derf
    "dynamic_tanh": {"layers": {"use_dynamic_tanh": True, "dynamic_tanh_init_alpha": 0.5}},
    "dynamic_tanh_sandwich_layerscale": {"layers": {"use_dynamic_tanh": True,
                                                    "sandwich_norm": True, "use_layerscale": True,
                                                    "layerscale_init_value": 0.2}},
    "derf": {"layers": {"use_derf": True}},
    "derf_post_norm_cross": {"layers": {"use_derf": True, "pre_norm": False,
                                        "cross_attend": True}},
    # gains stored as themselves: the norms', LayerScale's, DyT's alpha
    "no_unit_offset": {"layers": {"norm_add_unit_offset": False, "use_layerscale": True,
                                  "layerscale_init_value": 0.3}},
    "no_unit_offset_scalenorm": {"layers": {"norm_add_unit_offset": False,
                                            "use_scalenorm": True}},
    "no_unit_offset_rmsnorm_dynamic_tanh": {"layers": {"norm_add_unit_offset": False,
                                                       "use_dynamic_tanh": True,
                                                       "dynamic_tanh_init_alpha": 0.7}},
    "no_unit_offset_derf": {"layers": {"norm_add_unit_offset": False, "use_derf": True}},
    "no_final_norm": {"layers": {"pre_norm_has_final_norm": False}},
    "pre_and_post_norm": {"layers": {"pre_and_post_norm": True}},
    "pre_and_post_norm_sandwich_rmsnorm": {"layers": {"pre_and_post_norm": True,
                                                      "sandwich_norm": True, "use_rmsnorm": True,
                                                      "macaron": True}},
    "pre_and_post_norm_dynamic_tanh_cross": {"layers": {"pre_and_post_norm": True,
                                                        "use_dynamic_tanh": True,
                                                        "cross_attend": True}},
    "pre_and_post_norm_streams": {"layers": {"pre_and_post_norm": True,
                                             "num_residual_streams": 2}},
    "pre_and_post_norm_layout": {"layers": {"pre_and_post_norm": True,
                                            "custom_layers": ["a", "f", "a", "f", "f"]}},
    "softclamp_output": {"layers": {"softclamp_output": True, "softclamp_output_value": 1.0}},
    # on each stream, before the streams are summed; a post-norm stack has no final norm
    "softclamp_output_streams": {"layers": {"softclamp_output": True, "num_residual_streams": 2}},
    "softclamp_output_post_norm": {"layers": {"softclamp_output": True, "pre_norm": False,
                                              "softclamp_output_value": 2.0}},
    "derf_gated_multi_residual": {"layers": {"use_derf": True, "gated_multi_residual": True,
                                             "num_residual_streams": 2,
                                             "residual_fn_kwargs": {"read_gate_rank": 8}}},
})

# -- positional schemes (issue #8) -----------------------------------------------------------

POSITIONS = token_rows("positions", {
    "rotary": {"layers": {"rotary_pos_emb": True}},
    "rotary_partial_scaled": {"layers": {"rotary_pos_emb": True, "rotary_emb_dim": 4,
                                         "rotary_interpolation_factor": 2.0,
                                         "rotary_base_rescale_factor": 2.0}},
    # an odd head: rotary's cos and sin span whole pairs, the last feature passes unchanged
    "rotary_odd_head": {"layers": {"rotary_pos_emb": True}, "attn": {"dim_head": 33}},
    "rotary_two_heads": {"layers": {"rotary_pos_emb": True, "rotate_num_heads": 2}},
    "alibi": {"layers": {"alibi_pos_bias": True}},
    "alibi_two_heads": {"layers": {"alibi_pos_bias": True, "alibi_num_heads": 2}},
}) + token_rows("positions", {
    # xPos scales queries and keys by their distance in one direction: causal only
    "xpos": {"layers": {"rotary_pos_emb": True, "rotary_xpos": True,
                        "rotary_xpos_scale_base": 64}},
    "xpos_odd_head": {"layers": {"rotary_pos_emb": True, "rotary_xpos": True},
                      "attn": {"dim_head": 33}},
}, kinds=("Decoder",)) + token_rows("positions", {
    # x-transformers' rule: learned biases need the score matrix
    "t5": {"layers": {"rel_pos_bias": True, "rel_pos_num_buckets": 8, "rel_pos_max_distance": 16}},
    "dynamic": {"layers": {"dynamic_pos_bias": True}},
    "dynamic_log_deep": {"layers": {"dynamic_pos_bias": True, "dynamic_pos_bias_log_distance": True,
                                    "dynamic_pos_bias_mlp_depth": 3}},
    "dynamic_norm": {"layers": {"dynamic_pos_bias": True, "dynamic_pos_bias_norm": True}},
}, flash=False) + token_rows("positions", {
    # x-transformers 2.31.10 fails to generate with a cache when rotary meets persistent memory
    # (a shape error in apply_rotary_pos_emb); its uncached tokens are the reference then
    "rotary_alibi_memory": {"layers": {"rotary_pos_emb": True, "alibi_pos_bias": True},
                            "attn": {"num_mem_kv": 2}},
}, reference_cache=False)

# only_attn: blocks without feedforwards, in default blocks and the derived layouts
LAYOUTS_ONLY_ATTN = token_rows("layout", {
    "only_attn": {"layers": {"only_attn": True}},
    "only_attn_cross_macaron": {"layers": {"only_attn": True, "cross_attend": True, "macaron": True}},
    "only_attn_par_ratio": {"layers": {"only_attn": True, "par_ratio": 2, "depth": 4}},
    "only_attn_sandwich": {"layers": {"only_attn": True, "sandwich_coef": 1, "depth": 3}},
})

# only_cross: cross-attention without self-attention in the default block ('c', 'f'), and the
# layouts derived from it; cross_attn_tokens_dropout changes nothing in eval (its training draws:
# test_layouts)
LAYOUTS_ONLY_CROSS = token_rows("layout", {
    "only_cross": {"layers": {"cross_attend": True, "only_cross": True}},
    "only_cross_only_attn": {"layers": {"cross_attend": True, "only_cross": True,
                                        "only_attn": True}},
    "only_cross_execute_order": {"layers": {"cross_attend": True, "only_cross": True,
                                            "layers_execute_order": [0, 1, 0, 1, 2, 3]}},
    "only_cross_par_ratio": {"layers": {"cross_attend": True, "only_cross": True,
                                        "par_ratio": 2, "depth": 4}},
    "cross_tokens_dropout": {"layers": {"cross_attend": True, "cross_attn_tokens_dropout": 0.5}},
    "cross_tokens_dropout_custom": {"layers": {
        "cross_attend": True, "cross_attn_tokens_dropout": 0.25, "depth": None,
        "custom_layers": ["a", "c", "c", "f"]}},
})

# disable_abs_pos_emb as written: absolute positions beside rotary, or none at all
POSITIONS += token_rows("positions", {
    "absolute_beside_rotary": {"layers": {"disable_abs_pos_emb": False, "rotary_pos_emb": True,
                                          "verbose": False}},
    "no_positions_at_all": {"layers": {"disable_abs_pos_emb": True}},
})

# polar positions (PoPE): queries and keys 2 D wide against D-wide values, which the flash
# kernel refuses (flash-needs-equal-value-width), unless the values are 2 D wide too
POLAR = {"polar_pos_emb": True}
POSITIONS += token_rows("positions", {
    "polar": {"layers": POLAR},
    "polar_uniform_init": {"layers": {**POLAR, "polar_bias_uniform_init": True}},
    "polar_odd_head_k_rmsnorm": {"layers": POLAR, "attn": {"dim_head": 33, "k_rmsnorm": True}},
    "polar_memory_tokens": {"model": {"num_memory_tokens": 2}, "layers": POLAR},
    # one key head: its keys take every query head's phases, so they become H heads
    "polar_one_kv_head": {"layers": POLAR, "attn": {"one_kv_head": True}},
    "polar_cross": {"layers": {**POLAR, "cross_attend": True}},
    "polar_zero_kv_sink_l2": {"layers": POLAR, "attn": {"add_zero_kv": True,
                                                        "head_learned_sink": True,
                                                        "l2_distance": True}},
}, flash=False) + token_rows("positions", {
    # the reference's cached steps fail here (ALiBi over polar's positions, a latent cache):
    # its uncached tokens are the reference
    "polar_alibi": {"layers": {**POLAR, "alibi_pos_bias": True}},
    "polar_latent_kv": {"layers": POLAR, "attn": {"use_latent_kv": True, "dim_latent_kv": 12}},
}, flash=False, reference_cache=False) + token_rows("positions", {
    "polar_wide_values": {"layers": POLAR, "attn": {"value_dim_head": 2 * DIM_HEAD}},
    # rel_pos_kwargs: ALiBi's slopes as given, one per ALiBi head
    "alibi_slopes": {"layers": {"alibi_pos_bias": True, "alibi_num_heads": 2,
                                "rel_pos_kwargs": {"slopes": [0.5, 0.25]}}},
})

# -- layer structure (issue #11): one block of sublayers, each attention run with its own kv
# cache; the reference's cached tokens agree with its full forward for these layouts

LAYOUTS = token_rows("layout", {
    # a custom layout is complete without depth (None leaves it out)
    "custom": {"layers": {"custom_layers": ["a", "f", "a", "a", "f"], "depth": None}},
    "attention_only": {"layers": {"custom_layers": ["a", "a"], "depth": None}},  # no ff at all
    "custom_cross": {"layers": {"custom_layers": ["a", "c", "f", "c", "f"], "depth": None,
                                "cross_attend": True}},
    "sandwich_coef": {"layers": {"sandwich_coef": 1, "depth": 3}},
    "par_ratio": {"layers": {"par_ratio": 2, "depth": 3}},
    "execute_order_custom": {"layers": {"custom_layers": ["a", "f"], "depth": None,
                                        "layers_execute_order": [0, 1, 0, 1, 1]}},
    "execute_order_default": {"layers": {"depth": 2, "layers_execute_order": [0, 1, 2, 3, 2, 3]}},
}) + token_rows("layout", {
    # token shifting: x-transformers' cached path shifts in zeros, its uncached tokens are right
    "custom_residual_attn_shift": {"layers": {"custom_layers": ["a", "a", "f", "f"], "depth": None,
                                              "residual_attn": True, "shift_tokens": 1}},
}, reference_cache=False, flash=False)

# -- per-layer values (issue #38): a list gives each layer of its kind its own value; numbers
# differ in a Config tuple, a value that adds a submodule makes a class per kind of layer

PER_LAYER = token_rows("per_layer", {
    "numbers": {"attn": {"dropout": [0.1, 0.2], "qk_norm": True, "qk_norm_scale": [8.0, 12.0]},
                "ff": {"mult": [2, 3], "dropout": [0.0, 0.1]},
                "layers": {"layer_dropout": [0.0, 0.1, 0.2, 0.1]}},
    "submodules": {"attn": {"head_scale": [True, False], "gate_values": [False, True]},
                   "ff": {"glu": [False, True], "post_act_ln": [True, False], "mult": [2, 4]}},
    "custom_layout": {"layers": {"custom_layers": ["a", "f", "a", "a", "f"], "depth": None},
                      "attn": {"head_scale": [False, True, False], "dropout": [0.1, 0.0, 0.2]},
                      "ff": {"mult": [2, 4], "glu": [True, False]}},
}) + token_rows("per_layer", {
    # an attn: list stays with self-attention: cross-attention keeps the default
    "macaron_cross": {"layers": {"macaron": True, "cross_attend": True},
                      "attn": {"head_scale": [True, False]},
                      "ff": {"mult": [1, 2, 3, 4], "glu": [True, False, False, True]},
                      "cross_attn": {"dropout": [0.1, 0.2]}},
}, kinds=("Decoder",)) + token_rows("per_layer", {
    # an execution order runs the layers the lists are counted over (layer 2 twice)
    "execute_order": {"layers": {"depth": 2, "layers_execute_order": [0, 1, 2, 3, 2, 3]},
                      "attn": {"head_scale": [False, True]}, "ff": {"mult": [2, 3]}},
}) + token_rows("per_layer", {
    # token shifting: x-transformers' cached path shifts in zeros, its uncached tokens are right
    "shift_tokens": {"layers": {"shift_tokens": [1, 0, 2, 1]}, "ff": {"glu": [True, False]}},
}, reference_cache=False)

# -- a token decoder that cross-attends to a context (issue #5) ------------------------------

CROSS = token_rows("cross", {
    "plain": {"layers": {"cross_attend": True}},
    "wide_context": {"layers": {"cross_attend": True}, "cross_attn": {"dim_context": 24}},
    "cross_options": {"layers": {"cross_attend": True}, "cross_attn": {
        "dim_context": 24, "dim_head": 8, "num_mem_kv": 2, "dropout": 0.1}},
    "inherits_attn": {"layers": {"cross_attend": True}, "attn": {"num_mem_kv": 1}},
    # the value gates: gate_value_heads and both gates inherited, the input gate's rank its own
    "value_gates": {"layers": {"cross_attend": True}, "attn": {
        "gate_value_heads": True, "gate_values": True, "output_gate": True, "swiglu_values": True},
        "cross_attn": {"gate_values_rank": 4, "dim_context": 24}},
    "post_norm_rmsnorm": {"layers": {"cross_attend": True, "pre_norm": False,
                                     "use_rmsnorm": True}},
    # cross-attention inherits value_rmsnorm and add_zero_kv, sets its own qk_rmsnorm (and so
    # turns the inherited k_rmsnorm off): the context's keys and values are cached normalised
    "rmsnorms_zero_kv": {"layers": {"cross_attend": True},
                         "attn": {"k_rmsnorm": True, "value_rmsnorm": True, "add_zero_kv": True},
                         "cross_attn": {"qk_rmsnorm": True, "k_rmsnorm": False, "num_mem_kv": 1}},
    # LASER inherited by cross-attention, over the memory slots and before the zero key
    "laser": {"layers": {"cross_attend": True}, "attn": {"laser": True},
              "cross_attn": {"laser_softclamp_value": 2.0, "num_mem_kv": 1, "add_zero_kv": True}},
}, kinds=("Decoder",)) + token_rows("cross", {
    "learned_sink": {"layers": {"cross_attend": True},
                     "attn": {"head_learned_sink": True, "qk_rmsnorm": True},
                     "cross_attn": {"add_zero_kv": True}},
    # the score functions: sigmoid inherited, its own l2_distance off; cog_signed with L2 scores
    "sigmoid": {"layers": {"cross_attend": True}, "attn": {"sigmoid": True, "num_mem_kv": 1}},
    "cog_signed_l2": {"layers": {"cross_attend": True},
                      "cross_attn": {"cog_signed": True, "l2_distance": True, "add_zero_kv": True}},
    "l2_distance": {"layers": {"cross_attend": True}, "attn": {"l2_distance": True},
                    "cross_attn": {"num_mem_kv": 1}},
    # residual attention needs the score matrix (and flash would drop it: xtc refuses)
    "cross_residual_attn": {"layers": {"cross_attend": True, "residual_attn": True,
                                       "cross_residual_attn": True}},
}, kinds=("Decoder",), flash=False) + token_rows("cross", {
    # inverted cross-attention: its softmax over the queries reads later ones, so no kv cache
    # (the reference's cached tokens differ: its uncached ones are the model's)
    "inverted_attention": {"layers": {"cross_attend": True},
                           "cross_attn": {"inverted_attention": True, "num_mem_kv": 1}},
    "inverted_cog_l2_zero_kv": {"layers": {"cross_attend": True}, "cross_attn": {
        "inverted_attention": True, "cog_signed": True, "l2_distance": True, "add_zero_kv": True}},
}, kinds=("Decoder",), flash=False, reference_cache=False)

# -- training-wrapper options: what `loss` computes (tests/test_features.py: test_loss) -------

TRAINING = token_rows("training", {
    "ignore_index_pad_value": {"autoregressive": {"ignore_index": 0, "pad_value": 1}},
    "mask_prob": {"autoregressive": {"mask_prob": 0.25}},
    "mask_prob_rotary": {"autoregressive": {"mask_prob": 0.5, "ignore_index": 0},
                         "layers": {"rotary_pos_emb": True}},
}, kinds=("Decoder",)) + token_rows("training", {  # the z-loss reads the scores: no flash
    "add_attn_z_loss": {"autoregressive": {"add_attn_z_loss": True}},
    "add_attn_z_loss_cross_memory": {"autoregressive": {"add_attn_z_loss": True},
                                     "layers": {"cross_attend": True, "residual_attn": True},
                                     "attn": {"num_mem_kv": 2}, "cross_attn": {"num_mem_kv": 2}},
    # the z-loss's log-sum-exp counts the sink's logit and the zero key's
    "add_attn_z_loss_sink_zero_kv": {"autoregressive": {"add_attn_z_loss": True},
                                     "layers": {"cross_attend": True},
                                     "attn": {"head_learned_sink": True, "add_zero_kv": True}},
}, kinds=("Decoder",), flash=False)

# -- the other model types (issue #5): bare stacks, ViT, continuous inputs, encoder-decoder --

OTHER_MODELS = [
    row("bare", "layer_stack", wrapper=None, generates=False),
    row("bare", "decoder_with_cross_attention", layers={"cross_attend": True},
        cross_attn={"dim_context": 20}, wrapper=None, kinds=("Decoder",), generates=False),
    row("bare", "cross_attender", wrapper=None, kinds=("CrossAttender",), generates=False),
    row("bare", "cross_attender_aggregated", layers=AGGREGATED, wrapper=None,
        kinds=("CrossAttender",), generates=False),
    row("vit", "plain", wrapper="ViTransformerWrapper", kinds=("Encoder",), generates=False),
    row("vit", "registers_post_norm_dropout", model={
        "num_register_tokens": 3, "post_emb_norm": True, "emb_dropout": 0.1, "channels": 1},
        wrapper="ViTransformerWrapper", kinds=("Encoder",), generates=False),
    row("vit", "without_a_head", model={"image_size": 8, "num_classes": None},
        wrapper="ViTransformerWrapper", kinds=("Encoder",), generates=False),
    row("vit", "derf_pre_and_post_norm", layers={"use_derf": True, "pre_and_post_norm": True},
        wrapper="ViTransformerWrapper", kinds=("Encoder",), generates=False),
    row("continuous", "projections", model={"dim_in": 12, "dim_out": 7, "max_seq_len": 16},
        wrapper="ContinuousTransformerWrapper", generates=False),
    row("continuous", "no_positions", model={"dim_in": 12, "use_abs_pos_emb": False},
        wrapper="ContinuousTransformerWrapper", generates=False),
    # memory tokens: no kv cache, and the reference's cached generation raises
    row("continuous", "identity_width", model={
        "max_seq_len": 16, "post_emb_norm": True, "emb_dropout": 0.1, "num_memory_tokens": 2},
        wrapper="ContinuousTransformerWrapper", reference_cache=False),
    # average_pool_embed: one output per sequence, the mean over the real positions
    row("continuous", "average_pool_embed", model={
        "dim_in": 12, "dim_out": 7, "max_seq_len": 16, "average_pool_embed": True},
        wrapper="ContinuousTransformerWrapper", generates=False),
    row("continuous", "average_pool_memory_probabilistic", model={
        "dim_in": 8, "dim_out": 8, "num_memory_tokens": 2, "average_pool_embed": True,
        "probabilistic": True}, wrapper="ContinuousTransformerWrapper", generates=False),
    row("continuous", "average_pool_no_projections", model={"average_pool_embed": True},
        wrapper="ContinuousTransformerWrapper", generates=False),
    # use_identity_if_same_dim: no projections where they would keep the width
    row("continuous", "identity_if_same_dim", model={
        "dim_in": DIM, "dim_out": DIM, "max_seq_len": 16, "use_identity_if_same_dim": True},
        wrapper="ContinuousTransformerWrapper"),
    row("continuous", "identity_in_only", model={
        "dim_in": DIM, "dim_out": 8, "max_seq_len": 16, "use_identity_if_same_dim": True},
        wrapper="ContinuousTransformerWrapper", generates=False),
    row("continuous", "decoder", model={"dim_in": 8, "dim_out": 8, "max_seq_len": 16},
        attn={"kv_heads": 2}, wrapper="ContinuousTransformerWrapper"),
    row("continuous", "dynamic_tanh_softclamp", model={"dim_in": 8, "dim_out": 8, "max_seq_len": 16},
        layers={"use_dynamic_tanh": True, "softclamp_output": True, "softclamp_output_value": 1.0,
                "norm_add_unit_offset": False},
        wrapper="ContinuousTransformerWrapper"),
    row("continuous", "probabilistic", model={
        "dim_in": 8, "dim_out": 8, "max_seq_len": 16, "probabilistic": True},
        layers={"rotary_pos_emb": True}, wrapper="ContinuousTransformerWrapper"),
    # xVal: numbers scale their token's embedding; a head predicts one at each position
    row("xval", "plain", wrapper="XValTransformerWrapper"),
    row("xval", "options", model={"logits_dim": 48, "emb_dropout": 0.1, "scaled_sinu_pos_emb": True},
        layers={"use_rmsnorm": True}, attn={"kv_heads": 2}, wrapper="XValTransformerWrapper"),
    row("xval", "tied_rotary_memory", model={"tie_embedding": True, "num_memory_tokens": 2},
        layers={"rotary_pos_emb": True}, wrapper="XValTransformerWrapper"),
    row("xval", "no_positions_cross", model={"use_abs_pos_emb": False},
        layers={"cross_attend": True}, wrapper="XValTransformerWrapper", kinds=("Decoder",)),
    # Transformer-XL memories on the other wrappers (forward only: their training wrappers
    # read none), with positions that span the memory
    row("continuous", "xl_memory", model={"dim_in": 8, "dim_out": 8, "max_seq_len": 16,
                                          "max_mem_len": 6, "use_abs_pos_emb": False},
        layers={"dynamic_pos_bias": True}, wrapper="ContinuousTransformerWrapper",
        flash=False, generates=False),
    row("xval", "xl_memory", model={"max_mem_len": 6, "use_abs_pos_emb": False},
        layers={"rel_pos_bias": True}, wrapper="XValTransformerWrapper", flash=False,
        generates=False),
    row("xtransformer", "readme", model={"tie_token_emb": True},
        wrapper="XTransformer", kinds=("XTransformer",)),
    row("xtransformer", "untied_options", model={
        "ignore_index": 0, "pad_value": 1,
        "encoder": {"num_memory_tokens": 2, "use_rmsnorm": True},
        "decoder": {"attn": {"num_mem_kv": 1}, "ff": {"glu": True}}},
        wrapper="XTransformer", kinds=("XTransformer",)),
    row("xtransformer", "per_layer", model={
        "encoder": {"attn": {"head_scale": [True, False]}, "layer_dropout": [0.1, 0.0, 0.1, 0.0]},
        "decoder": {"ff": {"glu": [False, True]}, "cross_attn": {"dropout": [0.1, 0.0]}}},
        wrapper="XTransformer", kinds=("XTransformer",)),
    # the encoder's window goes with the source mask; cross-attention sees the whole source (a
    # per-layer list stays with self-attention: cross-attention does not inherit it)
    row("xtransformer", "windows", model={
        "encoder": {"attn": {"max_attend_past": 2}},
        "decoder": {"attn": {"max_attend_past": [3, 1]}}},
        wrapper="XTransformer", kinds=("XTransformer",)),
    row("xtransformer", "cross_attn_tokens_dropout", model={
        "tie_token_emb": True, "cross_attn_tokens_dropout": 0.5},
        wrapper="XTransformer", kinds=("XTransformer",)),
    # residual updates over the whole row: the decoder's cross-attention sublayers too (no kv
    # cache: the reference's uncached tokens)
    row("xtransformer", "whole_row_residuals", model={
        "encoder": {"orthog_residual": True},
        "decoder": {"mv_split_residual": True, "residual_fn_kwargs": {"learned": True}}},
        wrapper="XTransformer", kinds=("XTransformer",), reference_cache=False),
    # each side attends over its own sublayers' inputs, the decoder's cross-attention's too
    row("xtransformer", "aggregated_residuals", model={
        "encoder": {"attn_aggregated_residuals": True,
                    "attn_aggregated_residual_kwargs": {"lora_rank": 4}},
        "decoder": {"attn_aggregated_residuals": True,
                    "attn_aggregated_residual_kwargs": {"lora_rank": 8}}},
        wrapper="XTransformer", kinds=("XTransformer",)),
    # U-Net skips in the encoder; the decoder weighs its sublayers' inputs, its
    # cross-attentions' too (#44)
    row("xtransformer", "unet_skips_integrate_layers", model={
        "encoder": {"unet_skips": True},
        "decoder": {"integrate_layers": True, "layer_integrate_use_softmax": False}},
        wrapper="XTransformer", kinds=("XTransformer",)),
    # each side its own norms (issue #43)
    row("xtransformer", "norms", model={
        "encoder": {"use_derf": True, "pre_norm_has_final_norm": False,
                    "softclamp_output": True, "softclamp_output_value": 2.0},
        "decoder": {"use_dynamic_tanh": True, "pre_and_post_norm": True,
                    "norm_add_unit_offset": False}},
        wrapper="XTransformer", kinds=("XTransformer",)),
]

# -- Transformer-XL recurrence (issue #38): segments of 8, so generation crosses boundaries --

RECURRENCE = token_rows("recurrence", {
    # truncated backpropagation: the loss's gradient flows back through the first segment's
    # memories into it (the rows' 11 inputs make two segments)
    "tbptt_steps": {"model": {"max_seq_len": 8, "max_mem_len": 6, "use_abs_pos_emb": False},
                    "layers": {"rotary_pos_emb": True}, "autoregressive": {"tbptt_steps": 2}},
}, recurrent=True, kinds=("Decoder",)) + token_rows("recurrence", {
    "max_mem_len": {"model": {"max_seq_len": 8, "max_mem_len": 12, "use_abs_pos_emb": False},
                    "layers": {"rotary_pos_emb": True}},
    "shift_mem_down": {"model": {"max_seq_len": 8, "max_mem_len": 12, "shift_mem_down": 1,
                                 "use_abs_pos_emb": False},
                       "layers": {"alibi_pos_bias": True}},
    "absolute_positions": {"model": {"max_seq_len": 16, "max_mem_len": 8}},
    "post_norm": {"model": {"max_seq_len": 8, "max_mem_len": 6, "use_abs_pos_emb": False},
                  "layers": {"pre_norm": False}},
    # the memory's keys and values are normalised too (the reference projects them with the tokens)
    "rmsnorms_zero_kv": {"model": {"max_seq_len": 8, "max_mem_len": 6, "use_abs_pos_emb": False},
                         "layers": {"rotary_pos_emb": True},
                         "attn": {"qk_rmsnorm": True, "value_rmsnorm": True, "add_zero_kv": True}},
    # the memory goes through DyT as the attention's input does; every sum normed
    "dynamic_tanh_pre_and_post_norm": {"model": {"max_seq_len": 8, "max_mem_len": 6,
                                                 "use_abs_pos_emb": False},
                                       "layers": {"use_dynamic_tanh": True,
                                                  "pre_and_post_norm": True}},
}, recurrent=True) + token_rows("recurrence", {
    # the projected distance bias spans the memory's positions too (a learned float bias: no
    # flash kernel, as in the attention rows)
    "rel_proj_pos_bias": {"model": {"max_seq_len": 8, "max_mem_len": 6, "use_abs_pos_emb": False},
                          "attn": {"use_rel_proj_pos_bias": True, "rel_proj_max_dist": 10}},
}, recurrent=True, flash=False) + token_rows("recurrence", {
    # a segment's sublayers attend over their inputs in this segment
    "aggregated_residuals": {"model": {"max_seq_len": 8, "max_mem_len": 6,
                                       "use_abs_pos_emb": False},
                             "layers": {"rotary_pos_emb": True, "attn_aggregated_residuals": True,
                                        "attn_aggregated_residual_kwargs": {"lora_rank": 8}}},
    # the memory is the keys' and values' both, whatever views they read
    "aggregated_qkv_views": {"model": {"max_seq_len": 8, "max_mem_len": 6,
                                       "use_abs_pos_emb": False},
                             "layers": {"attn_aggregated_residuals": True,
                                        "attn_aggregated_residual_kwargs": {"lora_rank": 8},
                                        "qkv_receive_diff_residuals": True}},
}, recurrent=True)

# adaptive norms and layer scales (DiT): a condition (B, dim_condition) given to every method
CONDITIONED = token_rows("conditioned", {
    "adaptive_layernorm": {"layers": {"use_adaptive_layernorm": True}},
    "adaptive_rmsnorm_mlp": {"layers": {"use_adaptive_rmsnorm": True, "dim_condition": 12,
                                        "adaptive_condition_mlp": True,
                                        "adaptive_condition_mlp_expansion": 2}},
    "adaptive_layerscale_sandwich_cross": {"layers": {
        "use_adaptive_layerscale": True, "dim_condition": 8, "sandwich_norm": True,
        "cross_attend": True}},
    "adaptive_layernorm_layerscale_post_norm": {"layers": {
        "use_adaptive_layernorm": True, "use_adaptive_layerscale": True, "pre_norm": False,
        "adaptive_condition_mlp": True, "depth_scale_residual": 0.5}},
}) + [
    # DiT-style: vectors in and out, the condition (a timestep's or a class's embedding) given
    row("conditioned", "continuous_dit", wrapper="ContinuousTransformerWrapper",
        model={"dim_in": 6, "dim_out": 6}, layers={
            "use_adaptive_layernorm": True, "use_adaptive_layerscale": True, "dim_condition": 8,
            "adaptive_condition_mlp": True, "rotary_pos_emb": True}),
    row("conditioned", "xval", wrapper="XValTransformerWrapper",
        layers={"use_adaptive_rmsnorm": True, "dim_condition": 8}),
]

# -- feedforward options (issue #43): SoLU, the GLU's learned gain and soft caps, the
# pre-activation soft cap, the output projection's zero init, dropout on the branch's output

FEEDFORWARDS = token_rows("feedforward", {
    "glu_mult_bias_softclamps": {"ff": {"glu": True, "glu_mult_bias": True, "glu_softclamp": True,
                                        "glu_gate_softclamp_value": 1.0,
                                        "glu_up_softclamp_value": 2.0}},
    "swiglu_softclamp": {"ff": {"glu": True, "swish": True, "glu_softclamp": True}},
    "solu": {"ff": {"solu": True}},
    "solu_glu_mult_bias": {"ff": {"solu": True, "glu": True, "glu_mult_bias": True,
                                  "post_act_ln": True}},
    "softclamp_relu_squared": {"ff": {"softclamp_value": 1.0, "relu_squared": True}},
    "softclamp_solu": {"ff": {"softclamp_value": 2.0, "solu": True, "no_bias": True}},
    # zero_init_output wins over the depth-scaled init of the feedforward's output projection
    "zero_init_depth_scaled": {"layers": {"depth_scale_residual": True},
                               "ff": {"zero_init_output": True}},
    "sublayer_dropout": {"ff": {"sublayer_dropout": 0.1, "dropout": 0.1}},
    "per_layer": {"ff": {"sublayer_dropout": [0.1, 0.0], "glu": [True, False],
                         "glu_softclamp": True, "glu_mult_bias": True, "softclamp_value": 3.0}},
}) + [
    row("feedforward", "xtransformer", model={
        "encoder": {"ff": {"solu": True, "sublayer_dropout": 0.1}},
        "decoder": {"ff": {"glu": True, "glu_mult_bias": True, "glu_softclamp": True,
                           "zero_init_output": True}}},
        wrapper="XTransformer", kinds=("XTransformer",)),
]

# -- the prefix language model (issue #44): a PrefixDecoder, built bidirectional, masked causal
# after the prefix its forward names (tests/inputs.py gives one length per row). The reference's
# cached generation asserts: its uncached tokens are the reference.

PREFIX_DECODERS = token_rows("prefix", {
    "plain": {},
    "rotary": {"layers": {"rotary_pos_emb": True}},
    "alibi": {"layers": {"alibi_pos_bias": True}},
    "grouped_zero_kv": {"attn": {"kv_heads": 2, "add_zero_kv": True}},
    "memory_tokens": {"model": {"num_memory_tokens": 2}},  # counted in the prefix, as there
    "token_shifts": {"layers": {"shift_tokens": 1}},  # two-way: generate recomputes
    "custom_layers": {"layers": {"custom_layers": ["a", "f", "a", "f"]}},  # one block's mask
    "cross_attend": {"layers": {"cross_attend": True}},  # a context beside the prefix
}, kinds=("PrefixDecoder",), reference_cache=False) + token_rows("prefix", {
    "t5": {"layers": {"rel_pos_bias": True}},
    "explicit": {"attn": {"pre_talking_heads": True, "sparse_topk": 4}},
}, kinds=("PrefixDecoder",), reference_cache=False, flash=False) + [
    row("prefix", "bare", layers={"rotary_pos_emb": True}, wrapper=None, kinds=("PrefixDecoder",)),
    # forgetful causal masking: the forgotten keys are masked within the prefix too
    row("prefix", "forgetful", autoregressive={"mask_prob": 0.3}, kinds=("PrefixDecoder",),
        reference_cache=False),
]

# -- pooled heads (issue #45): one output per sequence, class logits; nothing to generate ------

POOLING = token_rows("pooling", {
    "average_pool_embed": {"model": {"average_pool_embed": True}},
    # the mask keeps the memory tokens' positions until the pool
    "average_pool_memory": {"model": {"average_pool_embed": True, "num_memory_tokens": 2}},
}, generates=False) + token_rows("pooling", {
    "use_cls_token": {"model": {"use_cls_token": True}},
    # behind the memory tokens; forward returns (B, N, num_tokens)
    "num_cls_tokens": {"model": {"use_cls_token": True, "num_cls_tokens": 2,
                                 "num_memory_tokens": 2}},
    # a classifier: the CLS token's output through a head of logits_dim classes
    "cls_classifier": {"model": {"use_cls_token": True, "logits_dim": 5}},
    "average_pool_embeddings": {"model": {"average_pool_embed": True, "return_only_embed": True}},
    "average_pool_score": {"model": {"average_pool_embed": True, "logits_dim": 1,
                                     "squeeze_out_last_dim": True}},  # (B,)
}, kinds=("Encoder",), generates=False) + token_rows("pooling", {
    # an encoder's attention pool: learned queries read its outputs, (B, N, dim_pooled_tokens)
    "attn_pool": {"model": {"attn_pool": True}},
    "attn_pool_queries": {"model": {"attn_pool": True, "num_pooled_tokens": 3,
                                    "dim_pooled_tokens": 16}},
    "attn_pool_depth": {"model": {"attn_pool": True, "attn_pool_depth": 2}},
}, kinds=("Encoder",), generates=False) + [
    # the reference's pool reads the mask with the memory tokens' positions and fails:
    # tests/test_pooling.py checks the masked pool against its pieces
    row("pooling", "attn_pool_memory", model={"attn_pool": True, "num_memory_tokens": 2},
        kinds=("Encoder",), generates=False, mask=False),
]

# recycling (issue #45): the layers run again on their own output (forward given recycle_steps
# 3); x-transformers keeps no cache for it, so neither model caches
RECYCLING = token_rows("recycling", {
    "recycling": {"model": {"recycling": True}},
    "recycling_memory": {"model": {"recycling": True, "num_memory_tokens": 2}},
})
# a looped LM (forward given looped_steps 3; max_looped_steps 2 by default): generation is
# tests/test_looped.py's, since the reference's looped generate runs at batch 1 only
LOOPED = token_rows("looped", {
    "looped": {"model": {"looped": True, "max_looped_steps": 2},
               "layers": {"pre_and_post_norm": True}},
}, generates=False)

# the wrapper's heads (issue #45): a head that does not give one logit per token, or none, has
# forward only
OUTPUT_HEADS = token_rows("heads", {
    "logits_dim": {"model": {"logits_dim": 10}},
    "logits_dim_wider": {"model": {"logits_dim": 80}},
    "return_only_embed": {"model": {"return_only_embed": True}},
    "squeeze_out_last_dim": {"model": {"logits_dim": 1, "squeeze_out_last_dim": True}},
}, generates=False) + token_rows("heads", {
    "logits_dim_tied": {"model": {"logits_dim": 10, "tie_embedding": True}},
    "emb_frac_gradient": {"model": {"emb_frac_gradient": 0.1}},  # changes gradients only
    "emb_frac_gradient_projected": {"model": {"emb_frac_gradient": 0.5, "emb_dim": 24,
                                            "emb_dropout": 0.1}},
    # accepted, changing nothing (warnings say so)
    "attn_z_loss_weight": {"model": {"attn_z_loss_weight": 0.01}},
}) + [row("heads", "input_not_include_cache", model={"input_not_include_cache": True},
          reference_cache=False)]  # the reference's cached generation is wrong with it

# several heads (issue #45): forward returns a tuple of logits, one per head; loss and generate
# read head 0's (the reference's training wrapper fails on the tuple: reference.one_head)
SEVERAL_HEADS = token_rows("heads", {
    "num_output_heads": {"model": {"num_output_heads": 2}},
}) + token_rows("heads", {  # the z-loss reads the scores: no flash
    "num_output_heads_z_loss": {"model": {"num_output_heads": 2},
                                "autoregressive": {"add_attn_z_loss": True}},
}, kinds=("Decoder",), flash=False) + token_rows("heads", {
    "num_output_heads_logits_dim": {"model": {"num_output_heads": 3, "logits_dim": 10}},
    "num_output_heads_squeezed": {"model": {"num_output_heads": 2, "logits_dim": 1,
                                            "squeeze_out_last_dim": True}},
}, generates=False) + token_rows("heads", {
    "num_output_heads_pooled": {"model": {"num_output_heads": 2, "average_pool_embed": True}},
    "num_output_heads_cls": {"model": {"num_output_heads": 2, "use_cls_token": True,
                                       "num_cls_tokens": 2}},
}, kinds=("Encoder",), generates=False)

# the wrapper's several outputs (issue #45): logits rewritten before they are returned
OUTPUTS = token_rows("outputs", {
    "sigsoftmax_logits": {"model": {"sigsoftmax_logits": True}},
    "sigsoftmax_logits_tied": {"model": {"sigsoftmax_logits": True, "tie_embedding": True}},
    # forward gives log-probabilities; the reference's loss reads them with nll_loss
    "mixture_of_softmax": {"model": {"mixture_of_softmax": True}},
    "mixture_of_softmax_k": {"model": {"mixture_of_softmax": True, "mixture_of_softmax_k": 2}},
    "mixture_of_softmax_tied": {"model": {"mixture_of_softmax": True, "tie_embedding": True,
                                          "sigsoftmax_logits": True}},
}) + token_rows("outputs", {
    "mixture_of_softmax_logits_dim": {"model": {"mixture_of_softmax": True, "logits_dim": 10}},
    "mixture_of_softmax_pooled": {"model": {"mixture_of_softmax": True, "average_pool_embed": True}},
    "sigsoftmax_logits_squeezed": {"model": {"sigsoftmax_logits": True, "logits_dim": 1,
                                             "squeeze_out_last_dim": True}},
}, generates=False)

# the continuous prediction head (issue #45): forward gives the logits alone unless asked
# (tests/test_output_heads.py passes return_next_embed_pred); loss adds the next embedding's
# error, weighted 0.1 unless next_embed_loss_weight says otherwise
NEXT_EMBED = token_rows("next_embed", {
    "add_continuous_pred_head": {"model": {"add_continuous_pred_head": True}},
}) + token_rows("next_embed", {
    "next_embed_loss_weight": {"model": {"add_continuous_pred_head": True},
                               "autoregressive": {"next_embed_loss_weight": 0.5}},
    # head 0's logits beside the prediction; the embeddings' gradient in part
    "next_embed_heads": {"model": {"add_continuous_pred_head": True, "num_output_heads": 2,
                                   "emb_frac_gradient": 0.5},
                         "autoregressive": {"next_embed_loss_weight": 1.0}},
}, kinds=("Decoder",))

# extra embeddings (issue #45): ff_deep_embed scales each block's feedforward output by a gain
# per token and block (ones at first: the rows perturb them)
EMBEDDINGS = token_rows("embeddings", {
    "ff_deep_embed": {"model": {"ff_deep_embed": True}},
    "ff_deep_embed_glu": {"model": {"ff_deep_embed": True}, "ff": {"glu": True}},
    "ff_deep_embed_recycling": {"model": {"ff_deep_embed": True, "recycling": True}},
    "ff_deep_embed_sublayer_dropout": {"model": {"ff_deep_embed": True, "emb_dropout": 0.1},
                                       "ff": {"sublayer_dropout": 0.1},
                                       "layers": {"use_rmsnorm": True}},
}) + token_rows("embeddings", {
    # embed_num_tokens: a table per name, looked up by the forward argument embed_ids and added
    # to the token and position embeddings (generation: the reference's forward, step by step)
    "embed_num_tokens": {"model": {"embed_num_tokens": {"type": 4}}},
    "embed_num_tokens_two_emb_dim": {"model": {"embed_num_tokens": {"type": 4, "segment": 7},
                                               "emb_dim": 24, "post_emb_norm": True}},
    "embed_num_tokens_memory": {"model": {"embed_num_tokens": {"type": 4},
                                          "num_memory_tokens": 2}},
    "embed_num_tokens_deep_embed": {"model": {"embed_num_tokens": {"type": 4},
                                              "ff_deep_embed": True, "l2norm_embed": True}},
    "embed_num_tokens_recycling": {"model": {"embed_num_tokens": {"type": 4}, "recycling": True,
                                             "emb_frac_gradient": 0.5}},
}) + [row("embeddings", "embed_num_tokens_cls", model={"embed_num_tokens": {"type": 4},
                                                       "use_cls_token": True},
          kinds=("Encoder",), generates=False),
      # a looped LM decodes each row out of the loops on its own: no forward loop to compare
      row("embeddings", "embed_num_tokens_looped",
          model={"embed_num_tokens": {"type": 4}, "looped": True, "max_looped_steps": 2},
          layers={"pre_and_post_norm": True}, generates=False)]

FEATURES: list[Feature] = (OPTIONS + DECODERS + ATTENTION + EXPLICIT + COPE + WINDOWS + RESIDUAL
                           + STRUCTURE
                           + VALUE_RESIDUALS + RESIDUAL_SCALES + REINJECTION + STREAMS
                           + LAYERS + POSITIONS + LAYOUTS + PER_LAYER + CROSS + TRAINING
                           + OTHER_MODELS + RECURRENCE + CONDITIONED + FEEDFORWARDS
                           + LAYOUTS_ONLY_ATTN + LAYOUTS_ONLY_CROSS + PREFIX_DECODERS + POOLING
                           + OUTPUT_HEADS + SEVERAL_HEADS + NEXT_EMBED + RECYCLING + LOOPED + OUTPUTS + EMBEDDINGS)
BY_ID = {f.id: f for f in FEATURES}
assert len(BY_ID) == len(FEATURES), "two rows share a group and a name"


def feature(feature_id: str) -> Feature:
    """The row `group-name`."""
    return BY_ID[feature_id]


# -- the one spec builder ----------------------------------------------------------------------

def spec_of(model: dict) -> xtc.Spec:
    """A spec document around one model mapping (None-valued keys left out)."""
    document = {"xtc": 1, "name": "tiny", "model": without_none(model)}
    return xtc.loads_spec(yaml.safe_dump(document, sort_keys=False))


def layers(kind: str = "Encoder", **options) -> dict:
    """A tiny layer stack with `options` added, for tests that write a model by hand."""
    return {"type": kind, "dim": DIM, "depth": DEPTH, "heads": HEADS,
            "attn": {"dim_head": DIM_HEAD}, **options}


def feature_spec(feature: Feature, kind: str, flash: bool) -> xtc.Spec:
    """The spec of a row built with a `kind` layer stack, flash attention on or off."""
    if feature.wrapper == "XTransformer":
        model = xtransformer_model(feature, flash)
    elif feature.wrapper is None:
        model = layer_stack(feature, kind, flash)
    else:
        model = {"type": feature.wrapper, **WRAPPER_DEFAULTS[feature.wrapper], **feature.model,
                 "attn_layers": layer_stack(feature, kind, flash)}
        if feature.autoregressive:
            model["autoregressive"] = dict(feature.autoregressive)
    return spec_of(model)


def layer_stack(feature: Feature, kind: str, flash: bool) -> dict:
    stack = {"type": kind, "dim": DIM, "depth": DEPTH, "heads": HEADS, **feature.layers}
    attention = {"dim_head": DIM_HEAD, "flash": flash}
    if kind == "CrossAttender":  # its one attention is cross-attention
        stack["cross_attn"] = {**attention, **feature.cross_attn}
        return stack
    stack["attn"] = {**attention, **feature.attn}
    if feature.cross_attn:
        stack["cross_attn"] = dict(feature.cross_attn)
    if feature.ff:
        stack["ff"] = dict(feature.ff)
    return stack


def xtransformer_model(feature: Feature, flash: bool) -> dict:
    """An XTransformer: its own keywords, and each side's additions to XTRANSFORMER_SIDE."""
    options = dict(feature.model)
    sides = {}
    for side in ("encoder", "decoder"):
        extra = dict(options.pop(side, {}))
        attn = {"dim_head": DIM_HEAD, "flash": flash, **extra.pop("attn", {})}
        sides[side] = {**XTRANSFORMER_SIDE, **extra, "attn": attn}
    return {"type": "XTransformer", **WRAPPER_DEFAULTS["XTransformer"], **options, **sides}


def without_none(node):
    """The document with every None-valued key left out: a row's None removes a default."""
    if isinstance(node, dict):
        return {k: without_none(v) for k, v in node.items() if v is not None}
    return node


def generated_kinds(feature: Feature) -> tuple[str, ...]:
    """The kinds of a row that generate: its Decoder or PrefixDecoder in a TransformerWrapper,
    or an XTransformer."""
    generating = ("Decoder", "XTransformer") if feature.wrapper is None else (
        "Decoder", "PrefixDecoder", "XTransformer")
    return tuple(k for k in feature.kinds if k in generating) if feature.generates else ()


# -- option values, for the property tests' strategies ---------------------------------------

def option_values(place: str, wrapper: str = "TransformerWrapper") -> dict[str, list]:
    """Every value the rows give each keyword at one place ("model", "layers", "attn", "ff",
    "cross_attn"), in first-seen order, from the rows of `wrapper` (and, for a
    TransformerWrapper, bare stacks); list values (layouts) are left to the strategies."""
    values: dict[str, list] = {}
    for f in FEATURES:
        if f.wrapper != wrapper and not (f.wrapper is None and wrapper == "TransformerWrapper"):
            continue  # other wrappers' keywords are not this one's
        for name, value in getattr(f, place).items():
            if value is None or isinstance(value, (list, dict)):
                continue
            seen = values.setdefault(name, [])
            if value not in seen:
                seen.append(value)
    return values
