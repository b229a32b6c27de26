"""check-exclusive-features: options that cannot be on together, one table row per rule.

Most rows say what `flash: true` excludes: the flash kernel never materialises the attention
matrix, so nothing that reads or rewrites that matrix can run with it. The rows follow
x-transformers' own asserts (Attend.__init__ in attend.py, Attention.__init__ and
AttentionLayers.__init__ in x_transformers.py) and the options it silently ignores under flash
(gumbel_softmax: Attend.forward never reaches it on the flash path). Two per-layer lists of
one section exclude each other only where one layer takes both.

>>> import xtc
>>> xtc.loads_spec('''
... xtc: 1
... name: lm
... model: {type: TransformerWrapper, num_tokens: 8, max_seq_len: 8,
...   attn_layers: {type: Decoder, dim: 8, depth: 1, attn: {flash: true, pre_talking_heads: true}}}
... ''')
Traceback (most recent call last):
...
xtc.spec.diagnostics.SpecError: 1 error(s) in spec:
<string>:5:70: error[flash-excludes-talking-heads] model.attn_layers.attn.pre_talking_heads: attn.flash (line 5) cannot be combined with attn.pre_talking_heads (line 5): ...
"""

from __future__ import annotations

from dataclasses import dataclass

from xtc.spec import Diagnostic, ModuleSpec, Spec

from .check_attention_options import cross_attends, cross_key, cross_option
from .modules import all_modules, diagnostic, each_value, is_set, layer_modules, set_in_one_layer

ID = "check-exclusive-features"


@dataclass(frozen=True)
class Exclusion:
    code: str
    feature: str  # key within a layer stack: "attn.flash", "rel_pos_bias"
    excluded: tuple[str, ...]
    why: str


FLASH_NEEDS = "the flash kernel never materialises the attention matrix"
RULES = (
    Exclusion("flash-excludes-talking-heads", "attn.flash",
              ("attn.pre_talking_heads", "attn.post_talking_heads", "attn.pre_scale_post_talking_heads"),
              f"talking heads mixes the attention matrix across heads, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-residual-attention", "attn.flash", ("residual_attn", "cross_residual_attn"),
              f"residual attention adds the previous layer's attention logits, and {FLASH_NEEDS}"),
    # cross_attn: {flash: true} alone passes the reference's check, which then drops the
    # residual scores without a word: the same rule for cross-attention's own flag
    Exclusion("flash-excludes-residual-attention", "cross_attn.flash", ("cross_residual_attn",),
              f"residual attention adds the previous layer's attention logits, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-t5-relative-bias", "attn.flash", ("rel_pos_bias",),
              "x-transformers computes the T5 relative bias inside the attention matrix"),
    Exclusion("flash-excludes-dynamic-position-bias", "attn.flash", ("dynamic_pos_bias",),
              "x-transformers computes the dynamic position bias inside the attention matrix"),
    Exclusion("flash-excludes-sparse-topk", "attn.flash", ("attn.sparse_topk",),
              f"top-k attention keeps the k largest logits of each row, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-hard-attention", "attn.flash", ("attn.hard",),
              f"hard attention takes the argmax of each row, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-sigmoid-attention", "attn.flash", ("attn.sigmoid",),
              "the flash kernel computes a softmax, not a sigmoid"),
    Exclusion("flash-excludes-gumbel-softmax", "attn.flash", ("attn.gumbel_softmax",),
              "x-transformers silently ignores gumbel softmax under flash (measured diff 1.78)"),
    Exclusion("flash-excludes-selective-attention", "attn.flash", ("attn.selective",),
              f"selective attention rewrites the attention matrix, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-cog-attention", "attn.flash", ("attn.cog_signed",),
              f"signed (cog) attention rewrites the attention matrix, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-learned-sink", "attn.flash", ("attn.head_learned_sink",),
              f"a learned attention sink adds a column to the attention matrix, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-logit-softclamp", "attn.flash", ("attn.softclamp_logits",),
              f"soft-clamping rewrites the attention logits, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-cope", "attn.flash", ("attn.use_cope",),
              f"contextual position encoding reads the attention matrix, and {FLASH_NEEDS}"),
    Exclusion("flash-excludes-inverted-attention", "attn.flash", ("attn.inverted_attention",),
              f"inverted attention normalises over queries, and {FLASH_NEEDS}"),
    Exclusion("rel-proj-bias-excludes-memory-kv", "attn.use_rel_proj_pos_bias", ("attn.num_mem_kv",),
              "x-transformers 2.31.10 sizes the projected distance bias over the memory keys too "
              "and then pads it for them again, and fails in the forward"),
    Exclusion("data-dependent-alibi-excludes-position-bias", "attn.data_dependent_alibi",
              ("alibi_pos_bias", "rel_pos_bias", "dynamic_pos_bias"),
              "data-dependent ALiBi replaces the shared position bias (x-transformers 2.31.10 "
              "refuses ALiBi and T5 with it, and drops the dynamic position bias without a word)"),
    Exclusion("learned-sink-excludes-residual-attention", "attn.head_learned_sink", ("residual_attn",),
              "the sink's logit is part of the scores each layer hands on, one column more than "
              "the next layer's (x-transformers 2.31.10 fails from the second attention layer)"),
    Exclusion("window-excludes-latent-kv", "attn.max_attend_past", ("attn.use_latent_kv",),
              "xtc's sliding-window cache keeps keys and values, and latent attention's cache "
              "keeps the latent instead: the two are not combined in one layer yet (one of them "
              "keeps the layer's cache small on its own; different layers may each take one)"),
    # qkv_receive_diff_residuals gives self-attention three inputs, one each for q, k and v
    Exclusion("qkv-views-exclude-latent-kv", "qkv_receive_diff_residuals", ("attn.use_latent_kv",),
              "latent attention projects keys and values from one latent of one input, and "
              "here keys and values read different inputs (x-transformers 2.31.10 asserts)"),
    Exclusion("qkv-views-exclude-input-readers", "qkv_receive_diff_residuals",
              ("attn.data_dependent_alibi", "attn.gate_values", "attn.gate_value_heads",
               "attn.num_mem_kv"),
              "x-transformers 2.31.10 reads the attention's whole input there, the three views "
              "stacked, as one (B, T, C) input, and its forward fails"),
    # integrate_layers turns qkv_receive_diff_residuals on (x-transformers' AttentionLayers)
    Exclusion("qkv-views-exclude-latent-kv", "integrate_layers", ("attn.use_latent_kv",),
              "integrate_layers gives keys and values their own inputs, and latent attention "
              "projects both from one latent of one input (x-transformers 2.31.10 asserts)"),
    Exclusion("qkv-views-exclude-input-readers", "integrate_layers",
              ("attn.data_dependent_alibi", "attn.gate_values", "attn.gate_value_heads",
               "attn.num_mem_kv"),
              "integrate_layers gives self-attention three views, and x-transformers 2.31.10 "
              "reads the attention's whole input there as one (B, T, C) input: its forward fails"),
    Exclusion("weight-tie-excludes-custom-layouts", "weight_tie_layers",
              ("custom_layers", "par_ratio", "sandwich_coef", "layers_execute_order"),
              "tied weights repeat one default block (x-transformers 2.31.10 refuses this too)"),
    Exclusion("relu-squared-excludes-solu", "ff.relu_squared", ("ff.solu",),
              "each replaces the feedforward's activation (x-transformers asserts at most one)"),
)




@dataclass(frozen=True)
class AtMostOne:
    code: str
    features: tuple[str, ...]
    why: str


AT_MOST_ONE = (
    AtMostOne("at-most-one-norm",
              ("use_scalenorm", "use_rmsnorm", "use_simple_rmsnorm", "use_dynamic_tanh", "use_derf",
               "use_adaptive_layernorm", "use_adaptive_rmsnorm"),
              "a layer stack has one kind of norm (x-transformers 2.31.10 refuses this too)"),
    AtMostOne("at-most-one-position-bias", ("alibi_pos_bias", "rel_pos_bias", "dynamic_pos_bias"),
              "one relative position bias at a time (x-transformers 2.31.10 refuses this too)"),
    AtMostOne("at-most-one-residual-kind",
              ("gate_residual", "attn_aggregated_residuals", "orthog_residual", "mv_split_residual",
               "gated_multi_residual"),
              "each replaces the residual sum (x-transformers 2.31.10 refuses this too)"),
    AtMostOne("at-most-one-layerscale", ("use_layerscale", "use_adaptive_layerscale"),
              "both scale the sublayer's output (x-transformers 2.31.10 refuses this too)"),
    AtMostOne("at-most-one-attention-function",
              ("attn.sigmoid", "attn.hard", "attn.l2_distance", "attn.gumbel_softmax",
               "attn.sparse_topk"),
              "each replaces the softmax of the scores (x-transformers 2.31.10 refuses this too)"),
)


def check_exclusive_features(spec: Spec) -> list[Diagnostic]:
    found = []
    for module in layer_modules(spec):
        for rule in RULES:
            found += rule_violations(spec, module, rule)
        for group in AT_MOST_ONE:
            found += group_violations(spec, module, group)
        found += cross_sink_violations(spec, module)
        found += cross_score_violations(spec, module)
        found += activation_violations(spec, module)
    for model in all_modules(spec):
        found += z_loss_violations(spec, model)
        found += headless_logit_transforms(spec, model)
        found += several_heads_violations(spec, model)
        found += next_embed_violations(spec, model)
    return found


NEXT_EMBED_WIDTH_CODE = "continuous-pred-head-needs-model-width"
NEXT_EMBED_OPTION_CODE = "continuous-pred-head-excludes-option"
NEXT_EMBED_MIXTURE_CODE = "continuous-pred-head-excludes-mixture"
# what xtc does not compile beside add_continuous_pred_head yet: each returns its own extra
# output from forward (or, return_only_embed and attn_pool, no logits to return the prediction
# beside)
NEXT_EMBED_EXCLUDES = ("return_only_embed", "attn_pool", "looped", "max_mem_len")


def next_embed_violations(spec: Spec, model: ModuleSpec) -> list[Diagnostic]:
    """add_continuous_pred_head predicts each next position's initial embedding from the
    output, dim wide: the embeddings must be as wide (x-transformers' loss fails on emb_dim);
    and xtc compiles it without the options that return other extra outputs."""
    if model.type != "TransformerWrapper" or not model["add_continuous_pred_head"]:
        return []
    key, found = f"{model.key}.add_continuous_pred_head", []
    width = model.children["attn_layers"]["dim"] if "attn_layers" in model.children else None
    if model["emb_dim"] is not None and width is not None and model["emb_dim"] != width:
        found.append(diagnostic(spec, f"{model.key}.emb_dim", NEXT_EMBED_WIDTH_CODE,
                                f"emb_dim {model['emb_dim']} cannot be combined with "
                                f"add_continuous_pred_head (line {spec.location(key)[0]}): the "
                                f"head predicts embeddings {width} wide (the layers' dim), and "
                                "x-transformers' loss fails on the two widths"))
    line = spec.location(key)[0]
    if model["mixture_of_softmax"]:
        found.append(diagnostic(spec, f"{model.key}.mixture_of_softmax", NEXT_EMBED_MIXTURE_CODE,
                                "mixture_of_softmax cannot be combined with "
                                f"add_continuous_pred_head (line {line}): the head reads the "
                                "mixture's K components of each position, (B, T, K, dim), and "
                                "x-transformers' loss fails on them against (B, T, dim) embeddings"))
    excluded = [name for name in NEXT_EMBED_EXCLUDES if model[name]]
    if model.trainer is not None and model.training.get("add_attn_z_loss"):
        excluded.append("autoregressive.add_attn_z_loss")
    found += [diagnostic(spec, f"{model.key}.{name}", NEXT_EMBED_OPTION_CODE,
                         f"{name} cannot be combined with add_continuous_pred_head (line {line}) "
                         "in xtc yet: " + ("the model returns no logits to put the prediction "
                                           "beside" if name in ("return_only_embed", "attn_pool")
                                           else "forward would return two extra outputs"))
              for name in excluded]
    return found


# options that read one tensor of logits, which num_output_heads makes a tuple of: (code, why)
ONE_HEAD_OPTIONS = {
    "tie_embedding": ("output-heads-exclude-logit-option",
                      "the tied embedding is one head (x-transformers fails: TypeError)"),
    "sigsoftmax_logits": ("output-heads-exclude-logit-option",
                          ("sigsoftmax rewrites one tensor of logits (x-transformers fails on the "
                           "tuple of heads)")),
    "mixture_of_softmax": ("output-heads-exclude-logit-option",
                           ("a mixture of softmaxes mixes one head's logits (x-transformers "
                            "asserts one head)")),
    "looped": ("output-heads-exclude-looped",
               ("a looped LM maps every loop's output through one head (x-transformers' "
                "training forward fails: a ModuleList has no forward)")),
    "max_mem_len": ("output-heads-exclude-memories",
                    ("Transformer-XL's segment-wise loss and generate read one tensor of logits "
                     "(x-transformers' XLAutoregressiveWrapper fails on the tuple)")),
}


def several_heads_violations(spec: Spec, model: ModuleSpec) -> list[Diagnostic]:
    """num_output_heads > 1 gives a tuple of logits: the options that read or make one tensor
    of them cannot be combined with it."""
    if model.type != "TransformerWrapper" or model["num_output_heads"] == 1 \
            or model["return_only_embed"]:  # (no head at all: a warning)
        return []
    line = spec.location(f"{model.key}.num_output_heads")[0]
    return [diagnostic(spec, f"{model.key}.{name}", code,
                       f"{name} cannot be combined with num_output_heads (line {line}): {why}")
            for name, (code, why) in ONE_HEAD_OPTIONS.items() if model[name]]


HEADLESS_TRANSFORM_CODE = "logit-transform-needs-head"
LOGIT_TRANSFORMS = ("sigsoftmax_logits", "mixture_of_softmax")


def headless_logit_transforms(spec: Spec, model: ModuleSpec) -> list[Diagnostic]:
    """A TransformerWrapper's options that rewrite its logits need a logits head: under
    return_only_embed the reference's forward reads logits it never made (UnboundLocalError)."""
    if model.type != "TransformerWrapper" or not model["return_only_embed"]:
        return []
    line = spec.location(f"{model.key}.return_only_embed")[0]
    return [diagnostic(spec, f"{model.key}.{name}", HEADLESS_TRANSFORM_CODE,
                       f"{name} cannot be combined with return_only_embed (line {line}): it "
                       f"rewrites the logits, and return_only_embed leaves the model without a "
                       f"logits head") for name in LOGIT_TRANSFORMS if model[name]]


GLU_SOFTCLAMP_CODE = "glu-softclamp-needs-gelu-or-swish"  # acts only beside glu


def activation_violations(spec: Spec, layers: ModuleSpec) -> list[Diagnostic]:
    """The GLU's soft caps (glu_softclamp, acting only where a layer has glu) cap the linear
    factor of GELU or SiLU: x-transformers asserts it building the GLU."""
    ff = layers.section("ff")
    if not (ff["glu_softclamp"] and any(each_value(ff["glu"]))):
        return []
    other = "relu_squared" if ff["relu_squared"] else "solu" if ff["solu"] else None
    if other is None:
        return []
    return [diagnostic(spec, f"{layers.key}.ff.glu_softclamp", GLU_SOFTCLAMP_CODE,
                       f"ff.glu_softclamp cannot be combined with ff.{other}: it caps the linear "
                       "factor of GELU or SiLU only (x-transformers asserts it)")]


def cross_sink_violations(spec: Spec, layers: ModuleSpec) -> list[Diagnostic]:
    """A learned sink that cross-attention takes (from cross_attn: or attn:) excludes its flash
    kernel and cross residual attention, as RULES' rows do for self-attention; a pair both
    written in attn: is reported there already."""
    sink = cross_key(layers, "head_learned_sink")
    if not cross_attends(layers) or sink is None or not cross_option(layers, "head_learned_sink"):
        return []
    found = []
    flash = cross_key(layers, "flash")
    if cross_option(layers, "flash") and not (flash.startswith("attn.") and sink.startswith("attn.")):
        found.append(diagnostic(spec, f"{layers.key}.{sink}", "flash-excludes-learned-sink",
                                f"cross-attention takes {flash} and {sink}: a learned attention "
                                f"sink adds a column to the attention matrix, and {FLASH_NEEDS}"))
    if layers["cross_residual_attn"]:
        found.append(diagnostic(spec, f"{layers.key}.cross_residual_attn",
                                "learned-sink-excludes-residual-attention",
                                f"cross-attention takes {sink}: the sink's logit is part of the "
                                "scores each cross-attention hands on, one column more than the "
                                "next one's (x-transformers 2.31.10 fails from the second)"))
    return found


INVERTED_SINK_CODE = "inverted-attention-excludes-learned-sink"  # cross-attention's own rule
# score functions cross-attention compiles that its flash kernel cannot serve (RULES' reasons)
CROSS_FLASH_SCORES = (
    ("sigmoid", "flash-excludes-sigmoid-attention", "the flash kernel computes a softmax, not a sigmoid"),
    ("cog_signed", "flash-excludes-cog-attention",
     f"signed (cog) attention rewrites the attention matrix, and {FLASH_NEEDS}"),
    ("inverted_attention", "flash-excludes-inverted-attention",
     f"inverted attention normalises over queries, and {FLASH_NEEDS}"),
    ("gumbel_softmax", "flash-excludes-gumbel-softmax",
     ("gumbel softmax samples the weights from the attention matrix, and x-transformers "
      "silently ignores it under flash")),
)
# the attention functions cross-attention compiles, at most one of them (AT_MOST_ONE's group)
CROSS_FUNCTIONS = ("sigmoid", "l2_distance", "gumbel_softmax")


def cross_score_violations(spec: Spec, layers: ModuleSpec) -> list[Diagnostic]:
    """The score functions cross-attention takes (from cross_attn: or attn:): flash excludes
    sigmoid, cog_signed, inverted attention and gumbel_softmax, and at most one of sigmoid,
    l2_distance and gumbel_softmax replaces the softmax, as for self-attention; a pair both
    written in attn: is reported there already."""
    if not cross_attends(layers):
        return []
    found = []
    flash = cross_key(layers, "flash")
    for name, code, why in CROSS_FLASH_SCORES:
        key = cross_key(layers, name)
        if (key and cross_option(layers, name) and cross_option(layers, "flash")
                and not (flash.startswith("attn.") and key.startswith("attn."))):
            found.append(diagnostic(spec, f"{layers.key}.{key}", code,
                                    f"cross-attention takes {flash} and {key}: {why}"))
    taken = [cross_key(layers, name) for name in CROSS_FUNCTIONS
             if cross_key(layers, name) and cross_option(layers, name)]
    for i, first in enumerate(taken):
        for second in taken[i + 1:]:
            if not (first.startswith("attn.") and second.startswith("attn.")):
                found.append(diagnostic(spec, f"{layers.key}.{second}",
                                        "at-most-one-attention-function",
                                        f"cross-attention takes {first} and {second}: each "
                                        "replaces the softmax of the scores (x-transformers "
                                        "2.31.10 refuses this too)"))
    sink = cross_key(layers, "head_learned_sink")
    if layers.section("cross_attn")["inverted_attention"] and sink and cross_option(layers, "head_learned_sink"):
        found.append(diagnostic(spec, f"{layers.key}.cross_attn.inverted_attention",
                                INVERTED_SINK_CODE,
                                f"cross-attention takes {sink}: the sink's column would join a "
                                "softmax over the queries, and x-transformers 2.31.10 fails "
                                "masking it with a context mask"))
    return found


Z_LOSS_CODE = "flash-excludes-attn-z-loss"  # a rule between a wrapper and its layers


def z_loss_violations(spec: Spec, model: ModuleSpec) -> list[Diagnostic]:
    """The attention z-loss of a model's training wrapper (`autoregressive:`) reads the scores of
    every attention, self and cross: none of its layers may use the flash kernel (the reference
    fails there with an AttributeError, finding no scores)."""
    if model.trainer is None or not model.training.get("add_attn_z_loss"):
        return []  # (a model without a training wrapper: its schema error says so)
    layers = model.children["attn_layers"]
    flash = ["attn.flash"] if builds_attention(layers) else []
    flash += ["cross_attn.flash"] if layers["cross_attend"] or layers.type == "CrossAttender" else []
    z_loss_key = f"{model.key}.autoregressive.add_attn_z_loss"
    line = spec.location(z_loss_key)[0]
    return [diagnostic(spec, f"{layers.key}.{key}", Z_LOSS_CODE,
                       f"{key} cannot be combined with add_attn_z_loss (line {line}): the z-loss "
                       f"reads the log-sum-exp of the attention scores, and {FLASH_NEEDS}")
            for key in flash if is_set(layers, key)]


def group_violations(spec: Spec, module: ModuleSpec, group: AtMostOne) -> list[Diagnostic]:
    """Every feature set after the first one of the group is reported, naming the first."""
    chosen = [feature for feature in group.features if is_set(module, feature)]
    found = []
    for feature in chosen[1:]:
        first_line = spec.location(f"{module.key}.{chosen[0]}")[0]
        found.append(diagnostic(spec, f"{module.key}.{feature}", group.code,
                                f"{feature} cannot be combined with {chosen[0]} (line {first_line}): "
                                f"{group.why}"))
    return found


def builds_attention(module: ModuleSpec) -> bool:
    """False for a custom layout of feedforwards only: `attn:` options then configure nothing."""
    custom = module["custom_layers"]
    return custom is None or any(kind in custom for kind in ("a", "c"))


def rule_violations(spec: Spec, module: ModuleSpec, rule: Exclusion) -> list[Diagnostic]:
    if not is_set(module, rule.feature):
        return []
    feature_key = f"{module.key}.{rule.feature}"
    feature_line = spec.location(feature_key)[0]
    found = []
    for excluded in rule.excluded:
        if excluded.startswith("attn.") and not builds_attention(module):
            continue  # the reference checks these where it builds an attention module
        if set_in_one_layer(module, rule.feature, excluded):
            key = f"{module.key}.{excluded}"
            line, col = spec.location(key)
            message = (f"{rule.feature} (line {feature_line}) cannot be combined with {excluded} "
                       f"(line {line}): {rule.why}")
            found.append(Diagnostic(spec.path, line, col, key, rule.code, message))
    return found
