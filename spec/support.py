"""What xtc implements today: the rest of the keyword table is `unsupported-option`.

A keyword of the reference that xtc does not compile yet is still known (so a typo next to it
gets a did-you-mean, and its value is type-checked), but setting it to anything other than the
reference's default is an error, "x-transformers option not supported by xtc yet". Each feature
issue moves keywords into these sets together with the code that compiles them.

>>> is_supported("attn", "flash"), is_supported("attn", "talking_heads")
(True, False)
"""

from __future__ import annotations

# Model types a spec may name under `type:`, per place.
SUPPORTED_MODEL_TYPES = frozenset({
    "TransformerWrapper", "ViTransformerWrapper", "ContinuousTransformerWrapper",
    "XValTransformerWrapper", "XTransformer", "Encoder", "Decoder", "PrefixDecoder", "CrossAttender",
})
SUPPORTED_LAYER_TYPES = frozenset({"Encoder", "Decoder", "PrefixDecoder", "CrossAttender"})

# Supported keywords per place in the spec: a wrapper class, "layers" (Encoder / Decoder /
# CrossAttender), or a routed section ("attn", "cross_attn", "ff").
SUPPORTED_KEYWORDS: dict[str, frozenset[str]] = {
    "TransformerWrapper": frozenset({
        "num_tokens", "max_seq_len", "attn_layers", "emb_dim", "emb_dropout", "tie_embedding",
        "tie_embedding_scale", "use_abs_pos_emb", "scaled_sinu_pos_emb", "l2norm_embed",
        "post_emb_norm", "num_memory_tokens", "max_mem_len", "shift_mem_down",
        "memory_tokens_interspersed_every", "average_pool_embed", "use_cls_token", "num_cls_tokens",
        "logits_dim", "return_only_embed", "squeeze_out_last_dim", "emb_frac_gradient",
        "sigsoftmax_logits", "mixture_of_softmax", "mixture_of_softmax_k", "num_output_heads",
        "add_continuous_pred_head",
        "recycling", "train_max_recycle_steps", "looped", "max_looped_steps", "ff_deep_embed",
        "attn_pool", "num_pooled_tokens", "attn_pool_depth", "dim_pooled_tokens",
        "embed_num_tokens",
        # accepted, with a warning that they change nothing (check_ignored_options.py)
        "attn_z_loss_weight", "input_not_include_cache",
    }),
    "ViTransformerWrapper": frozenset({
        "image_size", "patch_size", "attn_layers", "channels", "num_classes", "post_emb_norm",
        "num_register_tokens", "emb_dropout",
    }),
    "ContinuousTransformerWrapper": frozenset({
        "max_seq_len", "attn_layers", "dim_in", "dim_out", "emb_dropout", "use_abs_pos_emb",
        "post_emb_norm", "num_memory_tokens", "scaled_sinu_pos_emb", "probabilistic",
        "max_mem_len", "use_identity_if_same_dim", "average_pool_embed",
    }),
    # an emb_dim other than dim is refused by check_embedding_options (the reference's forward
    # fails with it)
    "XValTransformerWrapper": frozenset({
        "num_tokens", "max_seq_len", "numerical_token_id", "attn_layers", "emb_dim", "logits_dim",
        "tie_embedding", "num_memory_tokens", "emb_dropout", "use_abs_pos_emb",
        "scaled_sinu_pos_emb", "max_mem_len",
    }),
    "XTransformer": frozenset({
        "dim", "tie_token_emb", "ignore_index", "pad_value", "cross_attn_tokens_dropout",
    }),
    "layers": frozenset({
        "dim", "depth", "heads", "layer_dropout", "use_scalenorm", "use_rmsnorm", "pre_norm",
        "cross_attend", "use_simple_rmsnorm", "sandwich_norm", "scale_residual",
        "use_layerscale", "layerscale_init_value", "gate_residual", "shift_tokens", "macaron",
        "weight_tie_layers", "custom_layers", "sandwich_coef", "par_ratio",
        "layers_execute_order", "rotary_pos_emb", "rotary_emb_dim", "rotary_xpos", "rotary_xpos_scale_base",
        "rotary_interpolation_factor", "rotary_base_rescale_factor", "alibi_pos_bias",
        "alibi_num_heads", "rel_pos_bias", "rel_pos_num_buckets", "rel_pos_max_distance",
        "dynamic_pos_bias", "dynamic_pos_bias_log_distance", "dynamic_pos_bias_mlp_depth",
        "rotate_num_heads", "dynamic_pos_bias_norm", "polar_pos_emb", "polar_bias_uniform_init",
        "rel_pos_kwargs", "residual_attn",
        "cross_residual_attn", "add_value_residual", "learned_value_residual_mix",
        "scale_residual_constant", "depth_scale_residual", "zero_init_branch_output",
        "mv_split_residual", "orthog_residual", "residual_fn_kwargs", "num_residual_streams",
        "hyper_conn_sinkhorn_iters", "gated_multi_residual",
        "attn_aggregated_residuals", "attn_aggregated_residual_kwargs",
        "reinject_input", "learned_reinject_input_gate", "qkv_receive_diff_residuals",
        "unet_skips", "integrate_layers", "layer_integrate_use_softmax",
        "verbose",  # the reference's own rotary-width warning: accepted, no effect (explain)
        "disable_abs_pos_emb", "only_attn", "only_cross", "cross_attn_tokens_dropout",
        "use_adaptive_layernorm", "use_adaptive_rmsnorm", "use_adaptive_layerscale",
        "dim_condition", "adaptive_condition_mlp", "adaptive_condition_mlp_expansion",
        "use_dynamic_tanh", "dynamic_tanh_init_alpha", "use_derf", "norm_add_unit_offset",
        "pre_norm_has_final_norm", "pre_and_post_norm", "softclamp_output",
        "softclamp_output_value",
        "norm_eps",  # an xtc extension (spec/extensions.py)
    }),
    "attn": frozenset({
        "dim_head", "flash", "dropout", "num_mem_kv", "kv_heads", "one_kv_head", "qk_norm",
        "qk_norm_groups", "qk_norm_scale", "qk_norm_dim_scale", "on_attn", "gate_values",
        "head_scale", "value_dim_head", "pre_talking_heads", "post_talking_heads",
        "pre_scale_post_talking_heads", "sparse_topk", "sparse_topk_straight_through", "hard",
        "softclamp_logits", "logit_softclamp_value", "gate_value_heads", "swiglu_values",
        "gate_values_rank", "gate_values_headwise", "output_gate", "output_gate_rank",
        "output_gate_headwise", "low_rank_silu_gates", "project_out", "zero_init_output",
        "sublayer_dropout", "orthog_projected_values", "orthog_projected_values_per_head",
        "qk_rmsnorm", "k_rmsnorm", "value_rmsnorm", "add_zero_kv", "head_learned_sink",
        "gumbel_softmax", "gumbel_softmax_temp", "gumbel_softmax_hard",
        "use_cope", "cope_max_pos", "cope_talking_heads", "selective", "max_attend_past",
        "sigmoid", "l2_distance", "cog_signed", "laser", "laser_softclamp_value",
        "use_rel_proj_pos_bias", "rel_proj_num_distance_basis", "rel_proj_max_dist",
        "data_dependent_alibi", "data_dependent_alibi_per_row",
        "data_dependent_alibi_per_row_dim_head", "data_dependent_alibi_kwargs",
        "use_latent_q", "dim_latent_q", "use_latent_kv", "dim_latent_kv", "latent_rope_subheads",
        # accepted, with a warning that they change nothing in the emitted code
        # (compiler/passes/check_ignored_options.py)
        "onnxable", "attend_sdp_kwargs", "flash_pack_seq",
    }),
    # the training wrappers, by the `autoregressive:` mapping of a model that generates
    "AutoregressiveWrapper": frozenset({"ignore_index", "pad_value", "mask_prob",
                                        "add_attn_z_loss", "looped_loss_threshold_exit",
                                        "looped_loss_slope", "looped_exit_loss_weight",
                                        "next_embed_loss_weight"}),
    "XLAutoregressiveWrapper": frozenset({"ignore_index", "pad_value", "tbptt_steps"}),
    "ContinuousAutoregressiveWrapper": frozenset({"use_l1_loss", "equal_loss_weight_batch"}),
    "XValAutoregressiveWrapper": frozenset({"ignore_index", "numerical_loss_weight", "pad_value"}),
    "cross_attn": frozenset({
        "dim_head", "flash", "dropout", "num_mem_kv", "dim_context", "gate_values",
        "gate_value_heads", "swiglu_values", "gate_values_rank", "gate_values_headwise",
        "output_gate", "output_gate_rank", "output_gate_headwise", "low_rank_silu_gates",
        "project_out", "zero_init_output", "sublayer_dropout", "qk_rmsnorm", "k_rmsnorm",
        "value_rmsnorm", "add_zero_kv", "head_learned_sink",
        "gumbel_softmax", "gumbel_softmax_temp", "gumbel_softmax_hard",
        "sigmoid", "l2_distance", "cog_signed", "laser", "laser_softclamp_value",
        "inverted_attention",
        "onnxable", "attend_sdp_kwargs", "flash_pack_seq",
    }),
    "ff": frozenset({"mult", "dropout", "glu", "swish", "no_bias", "relu_squared", "post_act_ln",
                     "solu", "glu_mult_bias", "softclamp_value", "glu_softclamp",
                     "glu_gate_softclamp_value", "glu_up_softclamp_value", "zero_init_output",
                     "sublayer_dropout"}),
}


# Supported keywords that also take a list, one value per layer (x-transformers' per-layer
# tuples): an `attn:` list has one value per self-attention layer, `cross_attn:` per
# cross-attention layer, `ff:` per feedforward, `layer_dropout` and `shift_tokens` one per
# layer of every kind (compiler/passes/check_per_layer_values.py checks the lengths). Each
# layer's kv cache is allocated apart, so its window and latent may differ. A list for any
# other supported keyword is refused: a value every layer's cache or the shared position ops
# are sized by (kv_heads, value_dim_head, rotate_num_heads), or one that other options' rules
# read whole (qk_norm, sparse_topk, talking heads), has one value for the stack.
PER_LAYER_KEYWORDS: dict[str, frozenset[str]] = {
    "layers": frozenset({"layer_dropout", "shift_tokens"}),
    "attn": frozenset({"dropout", "qk_norm_scale", "head_scale", "gate_values", "sublayer_dropout",
                       "max_attend_past", "use_latent_q", "dim_latent_q", "use_latent_kv",
                       "dim_latent_kv", "latent_rope_subheads"}),
    "cross_attn": frozenset({"dropout", "sublayer_dropout"}),
    "ff": frozenset({"mult", "dropout", "glu", "post_act_ln", "sublayer_dropout"}),
}
# Keywords the reference reads whole at the top level, so that a list is never split per
# layer there: dim_head (`dim_head // 2` raises on a tuple), flash, data_dependent_alibi and
# flash_pack_seq (a tuple is truthy).
NOT_PER_LAYER = {
    "dim_head": "x-transformers computes with it before the layers are built and raises on a "
                "tuple",
    "flash": "x-transformers reads it whole at the top level, where a list counts as true",
    "data_dependent_alibi": "x-transformers reads it whole at the top level, where a list "
                            "counts as true",
    "flash_pack_seq": "x-transformers reads it whole at the top level, where a list counts as "
                      "true",
}


# Keywords xtc will not compile, by place, and why: the reference fails with them or drops
# them, or they only make sense beside a value that is code. Each is a `refused-option` error
# that gives the reason (the rest of the unsupported keywords are "not supported by xtc yet").
HYBRID_COMPANIONS = dict.fromkeys(
    ("hybrid_mask_kwarg", "hybrid_fold_axial_dim", "hybrid_learned_mix"),
    "a companion of hybrid_module, whose value is a Python module (code), which a spec cannot "
    "express")
CAUSAL_ONLY = ("causal attention only: cross-attention is not causal (x-transformers asserts it "
               "building the model)")
REFUSED_KEYWORDS: dict[str, dict[str, str]] = {
    "attn": {
        "dim_out": "x-transformers builds the attention dim_out wide and then fails adding it to "
                   "the residual stream, which is dim wide",
        "dim_context": "self-attention reads its own input: x-transformers builds its key and "
                       "value projections dim_context wide and then fails in the forward (the "
                       "context's width is cross_attn: {dim_context: ...})",
        "inverted_attention": "x-transformers drops attn.inverted_attention without a word (it "
                              "acts on cross-attention only, as cross_attn: "
                              "{inverted_attention: true})",
        **HYBRID_COMPANIONS,
        "cope_soft_onehot_pos": "x-transformers' soft one-hot CoPE fails in every forward (its "
                                "einx expression has the wrong rank): use_cope interpolates "
                                "between integer positions instead",
    },
    "cross_attn": {
        "dim_out": "x-transformers builds the cross-attention dim_out wide and then fails "
                   "adding it to the residual stream, which is dim wide",
        **HYBRID_COMPANIONS,
        **{name: CAUSAL_ONLY for name in ("use_cope", "cope_max_pos", "cope_talking_heads",
                                          "cope_soft_onehot_pos", "selective")},
    },
    "ff": {
        "dim_out": "x-transformers builds the feedforward dim_out wide and then fails adding it "
                   "to the residual stream, which is dim wide",
    },
}


def refusal(place: str, keyword: str) -> str:
    """Why xtc will not compile a keyword at place, or "" where it may some day."""
    return REFUSED_KEYWORDS.get(place, {}).get(keyword, "")


def is_supported(place: str, keyword: str) -> bool:
    return keyword in SUPPORTED_KEYWORDS.get(place, frozenset())


def support_place(place: str, owner: str) -> str:
    """Where a keyword's support is looked up: XTransformer's flat `encoder:` / `decoder:` hold
    TransformerWrapper keywords beside the layers' own.

    >>> support_place("layers", "TransformerWrapper"), support_place("layers", "AttentionLayers")
    ('TransformerWrapper', 'layers')
    """
    return "TransformerWrapper" if owner == "TransformerWrapper" else place


def not_compiled(place: str, owner: str, keyword: str) -> tuple[str, str] | None:
    """The diagnostic code and message for a value other than the reference's default of a
    keyword xtc does not compile at place (the loader's, and the JSON Schema's for editors), or
    None where xtc compiles it.

    >>> not_compiled("attn", "Attention", "flash") is None
    True
    >>> not_compiled("cross_attn", "Attention", "kv_heads")
    ('unsupported-option', 'x-transformers option Attention.kv_heads not supported by xtc yet')
    """
    reason = refusal(place, keyword)
    if reason:
        return "refused-option", f"xtc does not compile {owner}.{keyword}: {reason}"
    if not is_supported(place, keyword):
        return "unsupported-option", f"x-transformers option {owner}.{keyword} not supported by xtc yet"
    return None


def takes_per_layer(place: str, keyword: str) -> bool:
    """Whether a supported keyword takes a list of values, one per layer, at place."""
    return keyword in PER_LAYER_KEYWORDS.get(place, frozenset())


# What xtc does with each keyword of a routed section, for docs/options.md's coverage table.
COVERAGE_KINDS = ("compiled", "set by the layers", "refused with a reason", "code",
                  "not compiled yet")


# The layer stacks' own keywords (AttentionLayers'): `causal` is set by the stack's type
# (Encoder, Decoder), as its docs say. (A CrossAttender sets `only_cross` too: its own
# exclusions in keywords.json refuse it there.)
LAYERS_ROUTE = {"class": "AttentionLayers", "exclude": ("causal",)}


def section_coverage(table, section: str) -> dict[str, list[str]]:
    """The keywords of the class behind `attn:` (or `cross_attn:`, `ff:`, the layer stacks'
    own, "layers", or a wrapper class's own, by its name), by COVERAGE_KINDS: compiled (some accepted with a warning that they change
    nothing), set by the layers (the reference raises on them there; an unknown key whose hint
    names the layers option; for the stacks, set by their type), refused with a reason, taking
    a Python object, and the rest."""
    route = (LAYERS_ROUTE if section == "layers" else table.routing.get(section)
             or {"class": section, "exclude": ()})  # a wrapper's own keywords
    keywords = table.classes[route["class"]]
    kinds: dict[str, list[str]] = {kind: [] for kind in COVERAGE_KINDS}
    for name, keyword in keywords.items():
        if is_supported(section, name):
            kind = "compiled"
        elif name in route["exclude"]:
            kind = "set by the layers"
        elif refusal(section, name):
            kind = "refused with a reason"
        elif "object" in keyword.types:
            kind = "code"
        else:
            kind = "not compiled yet"
        kinds[kind].append(name)
    return kinds
