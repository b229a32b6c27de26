"""Hypothesis strategies over the spec language: documents (plain dicts, dumped to YAML) that use
any mix of the options xtc supports, at tiny sizes.

The options and their values are those of the feature rows (tests/features.py), with a few more
values each. The strategies draw freely within each option's domain, so they produce combinations that break
a rule as well as valid ones: tests/test_properties.py holds xtc's verdict on each against the
reference's (it builds, or it does not). Sizes are tiny (dim 16 or 32, depth 1 or 2, sequences
of 10) so that a few hundred examples run in a minute or two on two cores.
"""

from __future__ import annotations

from features import option_values
from hypothesis import strategies as st
from xtc.spec.support import PER_LAYER_KEYWORDS

DIMS = st.sampled_from([16, 32])
FLAG = st.booleans()
DROPOUT = st.sampled_from([0.0, 0.1])
# keywords of the feature rows that shape the model: the strategies below draw these themselves
STRUCTURE = {"dim", "depth", "heads", "dim_head", "cross_attend", "cross_residual_attn"}


def domain(values: list, more: tuple = ()) -> st.SearchStrategy:
    """The values the feature rows give a keyword, and `more`: either boolean for a flag."""
    merged = list(dict.fromkeys([*values, *more]))
    if all(isinstance(v, bool) for v in merged):
        return FLAG
    return st.sampled_from(merged)


def options_at(place: str, more: dict[str, tuple] | None = None, skip=STRUCTURE,
               wrapper: str = "TransformerWrapper", **own) -> dict:
    """keyword -> strategy of its value at one place of the spec: every option the rows of
    tests/features.py set there (their values, and `more` of them), and `own` strategies for
    the keywords no row gives a scalar (layouts, flash)."""
    more = more or {}
    rows = {name: values for name, values in option_values(place, wrapper).items()
            if name not in skip}
    return {**{name: domain(values, more.get(name, ())) for name, values in rows.items()}, **own}


# keyword -> strategy of its value, per place. A drawn stack takes a few of these at random.
LAYER_OPTIONS = options_at("layers", {
    "layer_dropout": (0.0,), "rotary_emb_dim": (8, 32), "rotary_xpos_scale_base": (512,),
    "rotary_interpolation_factor": (1.0,), "rotary_base_rescale_factor": (1.0,),
    "rotate_num_heads": (1,), "alibi_num_heads": (1, 4), "rel_pos_num_buckets": (4,),
    "rel_pos_max_distance": (8,), "dynamic_pos_bias_mlp_depth": (1, 2), "sandwich_coef": (2,),
    "par_ratio": (3,),
}, custom_layers=st.lists(st.sampled_from(["a", "f"]), min_size=1, max_size=4),
    layers_execute_order=st.lists(st.integers(0, 3), min_size=1, max_size=5))
ATTN_OPTIONS = options_at("attn", {
    "dropout": (0.0,), "kv_heads": (1,), "qk_norm_groups": (1,), "qk_norm_scale": (10.0,),
    "value_dim_head": (4,), "sparse_topk": (2, 4), "logit_softclamp_value": (1.0, 50.0),
    "laser_softclamp_value": (15.0,), "max_attend_past": (1, None),  # None: a global layer
}, flash=FLAG, skip=STRUCTURE | {"flash_pack_seq"})  # with flash, the reference needs the
# flash-attn package (CUDA) for flash_pack_seq, which changes nothing in xtc's code (a warning)
CROSS_ATTN_OPTIONS = options_at("cross_attn", {
    "dim_head": (4, 9), "dropout": (0.0,), "num_mem_kv": (1,), "dim_context": (12, 16),
}, skip=(), flash=FLAG)  # cross-attention's head width is an option of its own
FF_OPTIONS = options_at("ff", {"mult": (1,), "dropout": (0.0,)})
WRAPPER_OPTIONS = options_at("model", {
    "emb_dim": (12, 16), "emb_dropout": (0.0,), "num_memory_tokens": (1,), "max_mem_len": (0, 4),
    "shift_mem_down": (0, 2), "memory_tokens_interspersed_every": (1, 3),
}, skip=STRUCTURE | {"max_seq_len"},  # the length the strategies' inputs fit
    # a mapping: names to vocabulary sizes, one or two tables
    embed_num_tokens=st.dictionaries(st.sampled_from(["type", "segment"]), st.integers(1, 5),
                                     min_size=1, max_size=2))
TRAINING_OPTIONS = options_at("autoregressive", {"pad_value": (0,)})  # a decoder's
VOCAB, LENGTH = 32, 16
OPTIONS = {"layers": LAYER_OPTIONS, "attn": ATTN_OPTIONS, "cross_attn": CROSS_ATTN_OPTIONS,
           "ff": FF_OPTIONS}
# the layer type a section's per-layer list counts ("layers": every type)
COUNTED = {"attn": "a", "cross_attn": "c", "ff": "f"}
LAYOUTS = ("custom_layers", "sandwich_coef", "par_ratio", "layers_execute_order",
           "weight_tie_layers")
# an xVal model's: emb_dim is refused unless it is dim; a number token of VOCAB is no token
XVAL_OPTIONS = options_at("model", {
    "emb_dim": (16, 32), "emb_dropout": (0.0,), "num_memory_tokens": (1,),
}, wrapper="XValTransformerWrapper", numerical_token_id=st.sampled_from([1, 3, VOCAB]))
# a continuous model's: its input and output widths and probabilistic are drawn apart
CONTINUOUS_OPTIONS = options_at("model", {"max_mem_len": (0, 4)}, wrapper="ContinuousTransformerWrapper",
                                skip=STRUCTURE | {"max_seq_len", "dim_in", "dim_out", "probabilistic"})


@st.composite
def some(draw, options: dict, most: int) -> dict:
    """A few of `options` (at most `most`), each with a drawn value, in table order."""
    names = draw(st.lists(st.sampled_from(sorted(options)), max_size=most, unique=True))
    return {name: draw(options[name]) for name in sorted(names, key=list(options).index)}


@st.composite
def layer_stacks(draw, kind: str, dim: int | None = None, cross: bool | None = None,
                 per_layer: bool = True) -> dict:
    """An Encoder, Decoder or PrefixDecoder with a few options of its own and of its attn / ff sections, and
    now and then a per-layer list (not in an XTransformer's sides, whose layers the side's
    mapping does not show: the decoder cross-attends)."""
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
    if per_layer and not any(name in stack for name in LAYOUTS) and draw(st.integers(0, 2)) == 0:
        draw(per_layer_list(stack))
    return stack


@st.composite
def per_layer_list(draw, stack: dict) -> None:
    """One keyword of the stack given as a list (spec/support.py's PER_LAYER_KEYWORDS): a value
    per layer of its kind, or now and then one too many (which xtc refuses)."""
    block = ("f",) * bool(stack.get("macaron")) + ("a",) + ("c",) * bool(stack.get("cross_attend"))
    types = (block + ("f",)) * stack["depth"]
    place = draw(st.sampled_from(sorted(PER_LAYER_KEYWORDS)))
    names = sorted(name for name in PER_LAYER_KEYWORDS[place] if name in OPTIONS[place])
    if not names or (place == "cross_attn" and not stack.get("cross_attend")):
        return
    name = draw(st.sampled_from(names))
    count = len(types) if place == "layers" else types.count(COUNTED[place])
    count += draw(st.sampled_from([0, 0, 0, 1]))
    values = draw(st.lists(OPTIONS[place][name], min_size=count, max_size=count))
    (stack if place == "layers" else stack.setdefault(place, {}))[name] = values


@st.composite
def token_models(draw) -> dict:
    kind = draw(st.sampled_from(["Decoder", "Encoder", "Decoder", "Encoder", "PrefixDecoder"]))
    model = {"type": "TransformerWrapper", "num_tokens": VOCAB, "max_seq_len": LENGTH,
             **draw(some(WRAPPER_OPTIONS, 3)),
             "attn_layers": draw(layer_stacks(kind, draw(DIMS)))}
    training = draw(some(TRAINING_OPTIONS, 2)) if kind in ("Decoder", "PrefixDecoder") else {}
    return {**model, "autoregressive": training} if training else model


@st.composite
def other_models(draw) -> dict:
    """ViT, continuous, xVal and encoder-decoder models around the same layer stacks."""
    kind = draw(st.sampled_from(["ViTransformerWrapper", "ContinuousTransformerWrapper",
                                 "XValTransformerWrapper", "XTransformer"]))
    dim = draw(DIMS)
    if kind == "XValTransformerWrapper":
        options = {"numerical_token_id": 3, **draw(some(XVAL_OPTIONS, 3))}
        layers = draw(layer_stacks(draw(st.sampled_from(["Decoder", "Encoder"])), dim))
        return {"type": kind, "num_tokens": VOCAB, "max_seq_len": LENGTH, **options,
                "attn_layers": layers}
    if kind == "ViTransformerWrapper":
        return {"type": kind, "image_size": 8, "patch_size": 4, "num_classes": 5,
                "attn_layers": draw(layer_stacks("Encoder", dim, cross=False))}
    if kind == "ContinuousTransformerWrapper":
        layers = draw(layer_stacks(draw(st.sampled_from(["Decoder", "Encoder"])), dim, cross=False))
        return {"type": kind, "max_seq_len": LENGTH, "dim_in": 6, "dim_out": 5,
                "probabilistic": draw(FLAG), **draw(some(CONTINUOUS_OPTIONS, 3)),
                "attn_layers": layers}
    sides = {}
    for side, layer_kind in (("encoder", "Encoder"), ("decoder", "Decoder")):
        stack = draw(layer_stacks(layer_kind, cross=False, per_layer=False))
        sides[side] = {"num_tokens": VOCAB, "max_seq_len": LENGTH,
                       **{k: v for k, v in stack.items() if k != "type"}}
    return {"type": kind, "dim": dim, "tie_token_emb": draw(FLAG), **sides}


def documents() -> st.SearchStrategy[dict]:
    """Whole spec documents; token models are the common case."""
    model = st.one_of(token_models(), token_models(), token_models(), other_models())
    return model.map(lambda m: {"xtc": 1, "name": "prop", "model": m})
