"""Value ranges of keywords: sizes are positive, counts non-negative, dropouts in [0, 1).

The reference checks almost none of these (it builds `depth: 0` and fails on `heads: -2` with
"negative dimension -128"), so xtc states them once, by keyword name, for every class.

>>> range_problem("heads", -2)
'must be >= 1, got -2'
>>> range_problem("dropout", float("nan"))
'must be a finite number in [0, 1), got nan'
"""

from __future__ import annotations

import math
import re

from .diagnostics import echo

POSITIVE = frozenset({
    "num_tokens", "max_seq_len", "dim", "depth", "heads", "dim_head", "kv_heads", "emb_dim",
    "logits_dim", "num_output_heads", "image_size", "patch_size", "channels", "num_classes",
    "dim_in", "dim_out", "dim_context", "value_dim_head", "rotary_emb_dim",
    "alibi_num_heads", "rotate_num_heads", "rel_pos_num_buckets", "rel_pos_max_distance",
    "qk_norm_groups", "sparse_topk", "max_attend_past", "memory_tokens_interspersed_every",
    "num_cls_tokens", "num_pooled_tokens", "attn_pool_depth", "dim_pooled_tokens",
    "dynamic_pos_bias_mlp_depth", "num_residual_streams", "sandwich_coef", "par_ratio",
    "dim_condition", "mixture_of_softmax_k", "train_max_recycle_steps", "max_looped_steps",
    "gate_values_rank", "output_gate_rank", "dim_latent_q", "dim_latent_kv",
    "latent_rope_subheads", "cope_max_pos", "rel_proj_num_distance_basis", "rel_proj_max_dist",
    "data_dependent_alibi_per_row_dim_head", "hyper_conn_sinkhorn_iters",
    "adaptive_condition_mlp_expansion", "tbptt_steps",
})
NON_NEGATIVE = frozenset({
    "num_mem_kv", "num_memory_tokens", "max_mem_len", "shift_mem_down", "shift_tokens",
    "num_register_tokens", "numerical_token_id",
})
POSITIVE_REAL = frozenset({
    "qk_norm_scale", "logit_softclamp_value", "softclamp_output_value", "gumbel_softmax_temp",
    "laser_softclamp_value", "tie_embedding_scale", "rotary_interpolation_factor",
    "rotary_base_rescale_factor", "scale_residual_constant", "mult", "rotary_xpos_scale_base",
    "softclamp_value", "glu_gate_softclamp_value", "glu_up_softclamp_value",
    "emb_frac_gradient",  # the reference asserts it above 0 in forward
    "norm_eps",  # an xtc extension: an epsilon inside a root
})


# Keywords whose value maps names to sizes: embed_num_tokens, one embedding table per name. Each
# name becomes a key of the forward argument `embed_ids` and a module `{name}_embed`, so it is
# an ASCII identifier; each size is a vocabulary, a positive int.
NAMED_SIZES = frozenset({"embed_num_tokens"})
SIZE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SIZE_NAME_LENGTH = 64


def named_size_problem(name: object, size: object) -> str | None:
    """Why one entry `name: size` of a NAMED_SIZES mapping is refused, or None.

    >>> named_size_problem("type", 4) is None
    True
    >>> named_size_problem("token type", 4)
    "name 'token type' must be an identifier: at most 64 ASCII letters, digits and _, not starting with a digit"
    >>> named_size_problem("type", 0)
    'size of type must be an int >= 1, got 0'
    """
    if not (isinstance(name, str) and SIZE_NAME.fullmatch(name)
            and len(name) <= MAX_SIZE_NAME_LENGTH):
        return (f"name {echo(name)} must be an identifier: at most {MAX_SIZE_NAME_LENGTH} ASCII "
                "letters, digits and _, not starting with a digit")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return f"size of {name} must be an int >= 1, got {echo(size)}"
    return None


def is_probability_keyword(name: str) -> bool:
    return name.endswith("dropout") or name == "mask_prob"  # (the forgetful causal mask's)


def range_problem(name: str, value: object) -> str | None:
    """Why `value` is out of range for keyword `name`, or None. Written `not (lo <= v < hi)` so
    that NaN never passes (bad-inputs P18)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if is_probability_keyword(name) and not (0 <= value < 1):
        return f"must be a finite number in [0, 1), got {value!r}"
    if name in POSITIVE and not (value >= 1):
        return f"must be >= 1, got {value!r}"
    if name in NON_NEGATIVE and not (value >= 0):
        return f"must be >= 0, got {value!r}"
    if name in POSITIVE_REAL and not (value > 0 and math.isfinite(value)):
        return f"must be a finite number > 0, got {value!r}"
    return None
