"""Hypothesis strategies over the spec language: documents (plain dicts, dumped to YAML) that use
any mix of the options xtc supports, at tiny sizes.

The strategies draw freely within each option's domain, so they produce combinations that break
a rule as well as valid ones: tests/test_properties.py holds xtc's verdict on each against the
reference's (it builds, or it does not). Sizes are tiny (dim 16 or 32, depth 1 or 2, sequences
of 10) so that a few hundred examples run in a minute or two on two cores.
"""

from __future__ import annotations

from hypothesis import strategies as st

DIMS = st.sampled_from([16, 32])
FLAG = st.booleans()
DROPOUT = st.sampled_from([0.0, 0.1])

# keyword -> strategy of its value, per place. A drawn stack takes a few of these at random.
LAYER_OPTIONS = {
    "layer_dropout": DROPOUT,
    "use_scalenorm": FLAG, "use_rmsnorm": FLAG, "use_simple_rmsnorm": FLAG,
    "pre_norm": FLAG, "sandwich_norm": FLAG,
    "scale_residual": FLAG, "gate_residual": FLAG,
    "use_layerscale": FLAG, "layerscale_init_value": st.sampled_from([0.1, 0.5]),
    "shift_tokens": st.sampled_from([1, 2]),
    "macaron": FLAG, "weight_tie_layers": FLAG,
    "rotary_pos_emb": FLAG, "rotary_emb_dim": st.sampled_from([4, 8, 32]),
    "rotary_xpos": FLAG, "rotary_xpos_scale_base": st.sampled_from([64, 512]),
    "rotary_interpolation_factor": st.sampled_from([1.0, 2.0]),
    "rotary_base_rescale_factor": st.sampled_from([1.0, 2.0]),
    "rotate_num_heads": st.sampled_from([1, 2]),
    "alibi_pos_bias": FLAG, "alibi_num_heads": st.sampled_from([1, 2, 4]),
    "rel_pos_bias": FLAG, "rel_pos_num_buckets": st.sampled_from([4, 8]),
    "rel_pos_max_distance": st.sampled_from([8, 16]),
    "dynamic_pos_bias": FLAG, "dynamic_pos_bias_log_distance": FLAG,
    "dynamic_pos_bias_mlp_depth": st.sampled_from([1, 2, 3]), "dynamic_pos_bias_norm": FLAG,
    "residual_attn": FLAG,
    "custom_layers": st.lists(st.sampled_from(["a", "f"]), min_size=1, max_size=4),
    "sandwich_coef": st.sampled_from([1, 2]),
    "par_ratio": st.sampled_from([2, 3]),
    "layers_execute_order": st.lists(st.integers(0, 3), min_size=1, max_size=5),
}
ATTN_OPTIONS = {
    "flash": FLAG, "dropout": DROPOUT, "num_mem_kv": st.sampled_from([1, 2]),
    "kv_heads": st.sampled_from([1, 2]), "one_kv_head": FLAG,
    "qk_norm": FLAG, "qk_norm_groups": st.sampled_from([1, 2]),
    "qk_norm_scale": st.sampled_from([8.0, 10.0]), "qk_norm_dim_scale": FLAG,
    "on_attn": FLAG, "gate_values": FLAG, "head_scale": FLAG,
    "value_dim_head": st.sampled_from([4, 8]),
    "pre_talking_heads": FLAG, "post_talking_heads": FLAG, "pre_scale_post_talking_heads": FLAG,
    "sparse_topk": st.sampled_from([2, 4]),
    "softclamp_logits": FLAG, "logit_softclamp_value": st.sampled_from([1.0, 50.0]),
}
CROSS_ATTN_OPTIONS = {
    "dim_head": st.sampled_from([4, 8, 9]), "flash": FLAG, "dropout": DROPOUT,
    "num_mem_kv": st.sampled_from([1, 2]), "dim_context": st.sampled_from([12, 16]),
}
FF_OPTIONS = {
    "mult": st.sampled_from([1, 2, 2.5]), "dropout": DROPOUT, "glu": FLAG, "swish": FLAG,
    "no_bias": FLAG, "relu_squared": FLAG, "post_act_ln": FLAG,
}
WRAPPER_OPTIONS = {
    "emb_dim": st.sampled_from([12, 16]), "emb_dropout": DROPOUT, "tie_embedding": FLAG,
    "use_abs_pos_emb": FLAG, "scaled_sinu_pos_emb": FLAG, "l2norm_embed": FLAG,
    "post_emb_norm": FLAG, "num_memory_tokens": st.sampled_from([1, 2]),
}
VOCAB, LENGTH = 32, 16


@st.composite
def some(draw, options: dict, most: int) -> dict:
    """A few of `options` (at most `most`), each with a drawn value, in table order."""
    names = draw(st.lists(st.sampled_from(sorted(options)), max_size=most, unique=True))
    return {name: draw(options[name]) for name in sorted(names, key=list(options).index)}


@st.composite
def layer_stacks(draw, kind: str, dim: int | None = None, cross: bool | None = None) -> dict:
    """An Encoder or Decoder with a few options of its own and of its attn / ff sections."""
    stack = {"type": kind}
    if dim is not None:
        stack["dim"] = dim
    stack.update({"depth": draw(st.sampled_from([1, 2])), "heads": draw(st.sampled_from([2, 4]))})
    stack.update(draw(some(LAYER_OPTIONS, 4)))
    if cross if cross is not None else draw(st.sampled_from([False, False, True])):
        stack["cross_attend"] = True
        cross_attn = draw(some(CROSS_ATTN_OPTIONS, 2))
        if cross_attn:
            stack["cross_attn"] = cross_attn
        if draw(FLAG):
            stack["cross_residual_attn"] = True
    stack["attn"] = {"dim_head": draw(st.sampled_from([8, 16])), **draw(some(ATTN_OPTIONS, 3))}
    ff = draw(some(FF_OPTIONS, 3))
    if ff:
        stack["ff"] = ff
    return stack


@st.composite
def token_models(draw) -> dict:
    kind = draw(st.sampled_from(["Decoder", "Encoder"]))
    return {"type": "TransformerWrapper", "num_tokens": VOCAB, "max_seq_len": LENGTH,
            **draw(some(WRAPPER_OPTIONS, 3)),
            "attn_layers": draw(layer_stacks(kind, draw(DIMS)))}


@st.composite
def other_models(draw) -> dict:
    """ViT, continuous and encoder-decoder models around the same layer stacks."""
    kind = draw(st.sampled_from(["ViTransformerWrapper", "ContinuousTransformerWrapper",
                                 "XTransformer"]))
    dim = draw(DIMS)
    if kind == "ViTransformerWrapper":
        return {"type": kind, "image_size": 8, "patch_size": 4, "num_classes": 5,
                "attn_layers": draw(layer_stacks("Encoder", dim, cross=False))}
    if kind == "ContinuousTransformerWrapper":
        layers = draw(layer_stacks(draw(st.sampled_from(["Decoder", "Encoder"])), dim, cross=False))
        return {"type": kind, "max_seq_len": LENGTH, "dim_in": 6, "dim_out": 5,
                "attn_layers": layers}
    sides = {}
    for side, layer_kind in (("encoder", "Encoder"), ("decoder", "Decoder")):
        stack = draw(layer_stacks(layer_kind, cross=False))
        sides[side] = {"num_tokens": VOCAB, "max_seq_len": LENGTH,
                       **{k: v for k, v in stack.items() if k != "type"}}
    return {"type": kind, "dim": dim, "tie_token_emb": draw(FLAG), **sides}


def documents() -> st.SearchStrategy[dict]:
    """Whole spec documents; token models are the common case."""
    model = st.one_of(token_models(), token_models(), token_models(), other_models())
    return model.map(lambda m: {"xtc": 1, "name": "prop", "model": m})
