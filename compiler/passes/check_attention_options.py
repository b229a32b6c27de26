"""check-attention-options: x-transformers' rules for the attention heads (Attention.__init__),
and the CPU flash kernel's own limit, as located errors.

- `kv_heads` and `one_kv_head` say the same thing twice: one or the other.
- Query heads are shared out over the key / value heads: kv_heads must divide heads.
- qk-norm normalises groups of a head's features: qk_norm_groups must divide dim_head, and
  leave groups of more than 2 features (the reference's own limit).
- SDPA's flash kernel needs values as wide as queries: `flash: true` excludes a different
  value_dim_head; so do memory key / values, which the reference makes dim_head wide.
- The per-head RMSNorms: qk_rmsnorm already normalises the keys, so not with k_rmsnorm (the
  reference asserts); value_rmsnorm's gain is (heads, 1, dim_head) wide, so the values need
  as many heads as the queries and dim_head features (the reference fails in the forward, or
  with one key / value head broadcasts the values to every head and then fails).
- attend_sdp_kwargs names SDPA's kernels (enable_flash, enable_mem_efficient, enable_math,
  enable_cudnn), each true or false: the reference fails on another name under flash.
- A value gate is headwise (one logit per head) or low-rank, not both; a low-rank gate's rank
  must be below its input or its output width (x-transformers' LoRALinear asserts it). Checked
  for cross-attention too, where `cross_attn:` sets one of the two.
- x-transformers hands every `attn:` option to cross-attention too (unless `cross_attn:` sets
  it): an option xtc compiles for self-attention only is refused where the layers cross-attend,
  rather than silently applied to one attention of the two. The rules of the options it
  compiles there hold for what cross-attention ends up with (`cross_key`).
- Without an output projection (`project_out: false`, or one head) the heads' output must be
  dim wide; `zero_init_output` needs a plain projection to zero (the reference fails building
  it otherwise); `on_attn` without a projection does nothing (a warning).
- Belief attention (`orthog_projected_values`, `_per_head`) reads every position of a row: a
  warning (`breaks-causality` in a Decoder); handed on to cross-attention the reference's
  forward fails: refused.
- Multi-head latent attention: use_latent_q / use_latent_kv need their latent's width (the
  reference asserts), which alone does nothing (a warning); latent_rope_subheads splits key
  heads off the kv latent for rotary, so it needs use_latent_kv (the reference fails in the
  forward without), rotary positions to apply, no rotate_num_heads beside it (the reference
  asserts), every query head's own key head (the reference asserts that partial rotary does not
  go with grouped-query attention), and a key head left to the latent.
- A PrefixDecoder masks its attention itself, with a mask over the sequence's positions:
  memory key / values (num_mem_kv) make the keys longer than it (the reference's forward fails,
  with or without prefix_attn_len). Causal-only options are refused on it as on an Encoder: the
  reference builds it bidirectional.
- Value residuals (add_value_residual): the learned mix gates each query head's values, so not
  with grouped key / value heads (the reference's forward fails); the fixed half mix goes with
  them.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec
from xtc.spec.model import scalar
from xtc.spec.support import SUPPORTED_KEYWORDS

from ..resolve import (
    CAUSAL_LAYERS,
    CrossOptions,
    LayerOptions,
    cross_only,
    key_value_heads,
    output_projection,
)
from .modules import diagnostic, each_value, layer_modules, never_padded, option

ID = "check-attention-options"


def check_attention_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_heads(spec, layers) + check_qk_norm(spec, layers) + check_value_width(spec, layers)
        found += check_rmsnorms(spec, layers) + check_cross_inheritance(spec, layers)
        found += check_value_gates(spec, layers)
        found += check_sdp_kwargs(spec, layers)
        found += check_output_projection(spec, layers) + check_orthog_projection(spec, layers)
        found += check_causal_only(spec, layers) + check_prefix_memory_kv(spec, layers)
        found += check_inverted_attention(spec, layers)
        found += check_data_dependent_alibi(spec, layers)
        found += check_latent_attention(spec, layers)
        found += check_value_residual(spec, layers)
    return found


def check_value_residual(spec: Spec, layers) -> list[Diagnostic]:
    """The learned mix of value residuals gates each query head's values: grouped key / value
    heads have fewer (the reference's forward fails)."""
    kv_heads, heads = key_value_heads(layers), layers["heads"]
    if not (layers["add_value_residual"] and layers["learned_value_residual_mix"]) or kv_heads == heads:
        return []
    if layers["custom_layers"] is None and layers["depth"] == 1:
        return []  # one attention layer: the first, which learns no mix
    return [diagnostic(
        spec, f"{layers.key}.add_value_residual", "learned-value-mix-with-gqa",
        f"add_value_residual's learned mix gates each of the {heads} query heads' values, and "
        f"grouped key / value heads give {kv_heads} (x-transformers fails in the forward): set "
        "learned_value_residual_mix: false for a fixed half mix")]


# data_dependent_alibi_kwargs: the keywords of the reference's class past those Attention sets
FORGET_GATE_KWARGS = {False: ("bias_init", "post_log_scale"), True: ("post_log_scale",)}


def check_data_dependent_alibi(spec: Spec, layers) -> list[Diagnostic]:
    """The per-row form is causal only (the reference asserts it); the kwargs name the class's
    own keywords (DataDependentAlibi: bias_init, post_log_scale; the per-row one:
    post_log_scale), each a number: the reference fails on others building it."""
    attn, key, found = layers.section("attn"), f"{layers.key}.attn", []
    custom = layers["custom_layers"]
    if not attn["data_dependent_alibi"] or custom is not None and "a" not in custom:
        return found  # (a layout without self-attention builds none)
    per_row = bool(attn["data_dependent_alibi_per_row"])
    if per_row and not CAUSAL_LAYERS.get(layers.type, False):
        found.append(diagnostic(spec, f"{key}.data_dependent_alibi_per_row",
                                "data-dependent-alibi-per-row-needs-causal",
                                f"attn.data_dependent_alibi_per_row is causal only: a "
                                f"{layers.type} attends both ways (x-transformers 2.31.10 "
                                "asserts it)"))
    allowed = FORGET_GATE_KWARGS[per_row]
    form = "the per-row form" if per_row else "DataDependentAlibi"
    for name, value in (attn["data_dependent_alibi_kwargs"] or {}).items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if name not in allowed or not number:
            found.append(diagnostic(spec, f"{key}.data_dependent_alibi_kwargs.{name}",
                                    "data-dependent-alibi-kwargs",
                                    f"data_dependent_alibi_kwargs takes {', '.join(allowed)} "
                                    f"for {form}, each a number; got {name}: {scalar(value)} "
                                    "(x-transformers fails building it)"))
    return found


# options x-transformers builds for causal attention only (Attention.__init__ asserts causal)
CAUSAL_ONLY = {"use_cope": "CoPE was designed for causal attention",
               "selective": "selective attention is designed for autoregressive"}


def check_causal_only(spec: Spec, layers) -> list[Diagnostic]:
    """A causal-only option in a stack whose self-attention is not causal (an Encoder); on
    cross-attention, which is never causal, spec/support.py refuses them."""
    custom = layers["custom_layers"]
    if CAUSAL_LAYERS.get(layers.type, False) or (custom is not None and "a" not in custom):
        return []  # (a layout without self-attention builds none to assert on)
    attn = layers.section("attn")
    return [diagnostic(spec, f"{layers.key}.attn.{name}", "needs-causal-attention",
                       f"attn.{name} needs causal self-attention (a Decoder), and "
                       f"{layers.type} {both_ways(layers.type)}: x-transformers asserts it ('{why}')")
            for name, why in CAUSAL_ONLY.items() if any(each_value(attn[name]))]


def both_ways(layer_type: str) -> str:
    """How a stack that is not causal attends, for messages."""
    if layer_type == "PrefixDecoder":
        return "is built bidirectional (its forward masks the attention causal after the prefix)"
    return "attends both ways"


def check_prefix_memory_kv(spec: Spec, layers) -> list[Diagnostic]:
    """A PrefixDecoder's mask covers the sequence's positions, and memory key / values come
    before them."""
    if layers.type != "PrefixDecoder" or not any(each_value(layers.section("attn")["num_mem_kv"])):
        return []
    return [diagnostic(spec, f"{layers.key}.attn.num_mem_kv", "prefix-decoder-memory-kv",
                       "attn.num_mem_kv cannot go with a PrefixDecoder: its mask covers the "
                       "sequence's positions and the memory keys come before them, so "
                       "x-transformers' forward fails (with or without prefix_attn_len)")]


SDP_KERNELS = ("enable_flash", "enable_mem_efficient", "enable_math", "enable_cudnn")


def check_sdp_kwargs(spec: Spec, layers) -> list[Diagnostic]:
    found = []
    for section in ("attn", "cross_attn"):
        if "attend_sdp_kwargs" not in layers.sections_given.get(section, ()):
            continue
        key = f"{layers.key}.{section}.attend_sdp_kwargs"
        for name, value in layers.section(section)["attend_sdp_kwargs"].items():
            if name not in SDP_KERNELS or not isinstance(value, bool):
                found.append(diagnostic(spec, f"{key}.{name}", "sdp-kwargs-kernel",
                                        f"attend_sdp_kwargs takes {', '.join(SDP_KERNELS)}, each "
                                        f"true or false; got {name}: {scalar(value)}"))
    return found


# The attention options xtc compiles for cross-attention (the others are self-attention only).
CROSS_ATTENTION_OPTIONS = SUPPORTED_KEYWORDS["cross_attn"]


def cross_attends(layers) -> bool:
    if cross_only(layers):
        return True
    custom = layers["custom_layers"]
    if custom is not None:  # a layout builds the sublayers it names, cross_attend or not
        return "c" in custom
    k = layers["sandwich_coef"]
    if k is not None and layers["par_ratio"] is None and k >= (layers["depth"] or k + 1) > 0:
        return False  # the sandwich is all self-attention, then feedforwards
    return bool(layers["cross_attend"])


def check_cross_inheritance(spec: Spec, layers) -> list[Diagnostic]:
    if not cross_attends(layers):
        return []
    found = []
    given, overridden = (layers.sections_given.get(s, ()) for s in ("attn", "cross_attn"))
    defaults = layers.section("cross_attn")
    for name in given:
        if name in CROSS_ATTENTION_OPTIONS or name in overridden or name not in defaults:
            continue  # (a keyword the reference sets per attention itself: not inherited)
        value = layers.section("attn")[name]
        # a per-layer list is the self-attention layers' alone (AttentionLayers.__init__)
        if value != defaults[name] and not isinstance(value, tuple) and name in ORTHOG:
            found.append(diagnostic(
                spec, f"{layers.key}.attn.{name}", "orthog-projection-with-cross-attention",
                f"x-transformers applies attn.{name} to cross-attention too, whose forward then "
                "fails (the context's values are not as long as the queries); set "
                f"cross_attn: {{{name}: false}} to keep it on self-attention only, or drop it"))
        elif value != defaults[name] and not isinstance(value, tuple):
            found.append(diagnostic(
                spec, f"{layers.key}.attn.{name}", "cross-attention-inherits-option",
                f"x-transformers applies attn.{name} to cross-attention too, where xtc does not "
                f"compile it yet; set cross_attn: {{{name}: {scalar(defaults[name])}}} to keep it on "
                "self-attention only, or drop it"))
    return found


def check_heads(spec: Spec, layers) -> list[Diagnostic]:
    attn, key, heads = layers.section("attn"), f"{layers.key}.attn", layers["heads"]
    if attn["kv_heads"] is not None and attn["one_kv_head"]:
        return [diagnostic(spec, f"{key}.one_kv_head", "kv-heads-and-one-kv-head",
                           "set either attn.kv_heads or attn.one_kv_head (which means kv_heads: 1), "
                           "not both")]
    if attn["kv_heads"] is not None and heads % attn["kv_heads"]:
        return [diagnostic(spec, f"{key}.kv_heads", "kv-heads-divide-heads",
                           f"{attn['kv_heads']} does not divide heads {heads}")]
    return []


def check_qk_norm(spec: Spec, layers) -> list[Diagnostic]:
    attn, key = layers.section("attn"), f"{layers.key}.attn.qk_norm_groups"
    if not attn["qk_norm"]:
        return []
    groups, dim_head = attn["qk_norm_groups"], attn["dim_head"]
    if dim_head % groups:
        return [diagnostic(spec, key, "qk-norm-groups-divide-dim-head",
                           f"qk_norm_groups ({groups}) must divide attn.dim_head ({dim_head})")]
    if dim_head // groups <= 2:
        return [diagnostic(spec, key, "qk-norm-group-too-small",
                           f"qk_norm_groups ({groups}) leaves {dim_head // groups} features per "
                           "group; x-transformers needs more than 2")]
    return []


def cross_key(layers, name: str) -> str | None:
    """Where cross-attention's value of an `attn:` option is written: `cross_attn.NAME`, else
    `attn.NAME` (inherited); None if neither section writes it."""
    given = layers.sections_given
    for section in ("cross_attn", "attn"):
        if name in given.get(section, ()) and not isinstance(layers.section(section)[name], tuple):
            return f"{section}.{name}"
    return None


def cross_option(layers, name: str) -> object:
    """Cross-attention's value of an option (resolve.CrossOptions' rule)."""
    key = cross_key(layers, name)
    return layers.section("cross_attn")[name] if key is None else option(layers, key)


def check_rmsnorms(spec: Spec, layers) -> list[Diagnostic]:
    attn, key, found = layers.section("attn"), f"{layers.key}.attn", []
    if attn["qk_rmsnorm"] and attn["k_rmsnorm"]:
        found.append(diagnostic(spec, f"{key}.k_rmsnorm", "qk-rmsnorm-and-k-rmsnorm",
                                "set either attn.qk_rmsnorm (queries and keys) or attn.k_rmsnorm "
                                "(keys only), not both; x-transformers 2.31.10 refuses both"))
    keys = [cross_key(layers, name) for name in ("qk_rmsnorm", "k_rmsnorm")]
    if (cross_attends(layers) and all(cross_option(layers, n) for n in ("qk_rmsnorm", "k_rmsnorm"))
            and not all(k.startswith("attn.") for k in keys)):  # (both in attn: reported above)
        cross = keys[1] if keys[1].startswith("cross_attn.") else keys[0]
        found.append(diagnostic(spec, f"{layers.key}.{cross}", "qk-rmsnorm-and-k-rmsnorm",
                                f"cross-attention takes both {keys[0]} and {keys[1]}; set one "
                                "of them (x-transformers 2.31.10 refuses both)"))
    if not attn["value_rmsnorm"]:
        return found
    kv_heads = 1 if attn["one_kv_head"] else attn["kv_heads"]
    if kv_heads is not None and kv_heads != layers["heads"]:
        given = "one_kv_head" if attn["one_kv_head"] else "kv_heads"
        found.append(diagnostic(spec, f"{key}.value_rmsnorm", "value-rmsnorm-needs-query-heads",
                                f"attn.value_rmsnorm cannot be combined with attn.{given} "
                                f"({kv_heads} value heads for {layers['heads']} query heads): "
                                "x-transformers 2.31.10 gives its gain one row per query head, "
                                "which does not fit the values and fails in the forward"))
    width = attn["value_dim_head"]
    if width is not None and width != attn["dim_head"]:
        found.append(diagnostic(spec, f"{key}.value_rmsnorm", "value-rmsnorm-needs-equal-value-width",
                                f"attn.value_rmsnorm cannot be combined with attn.value_dim_head "
                                f"({width}) other than attn.dim_head ({attn['dim_head']}): "
                                "x-transformers 2.31.10 makes its gain dim_head wide and fails "
                                "in the forward"))
    return found


def check_value_width(spec: Spec, layers) -> list[Diagnostic]:
    """Values as wide as queries under flash (polar positions make queries 2 * dim_head wide);
    persistent memory values dim_head wide."""
    attn, found = layers.section("attn"), []
    width = attn["value_dim_head"]
    polar = layers["polar_pos_emb"] and attn["flash"]  # (flash read only under polar)
    if polar and width != 2 * attn["dim_head"]:
        found.append(diagnostic(spec, f"{layers.key}.attn.flash", "flash-needs-equal-value-width",
                                "attn.flash cannot be combined with polar_pos_emb: queries are "
                                f"then 2 * attn.dim_head ({2 * attn['dim_head']}) wide, values "
                                f"{width or attn['dim_head']}, and the flash kernel needs values "
                                "as wide as queries"))
    if width is None or width == attn["dim_head"]:
        return found
    key = f"{layers.key}.attn.value_dim_head"
    if attn["flash"] and not polar:
        found.append(diagnostic(spec, key, "flash-needs-equal-value-width",
                                f"attn.flash cannot be combined with attn.value_dim_head ({width}) "
                                f"other than attn.dim_head ({attn['dim_head']}): the flash kernel "
                                "needs values as wide as queries"))
    if attn["num_mem_kv"]:
        found.append(diagnostic(spec, key, "memory-kv-needs-equal-value-width",
                                f"attn.num_mem_kv cannot be combined with attn.value_dim_head "
                                f"({width}) other than attn.dim_head: x-transformers 2.31.10 makes "
                                "its memory values dim_head wide and fails in the forward"))
    return found



# (the gate, its rank, its headwise flag)
VALUE_GATES = (("gate_values", "gate_values_rank", "gate_values_headwise"),
               ("output_gate", "output_gate_rank", "output_gate_headwise"))


def check_value_gates(spec: Spec, layers) -> list[Diagnostic]:
    """Self-attention's gates, then cross-attention's where `cross_attn:` sets a gate option
    (what it inherits unchanged is reported once, at `attn:`). The widths are read only where a
    rank is set (a check reads nothing it does not need: spec/partial.py)."""
    attn = layers.section("attn")
    found = value_gate_problems(spec, layers, attn, f"{layers.key}.attn", ())
    if cross_attends(layers):
        own = layers.sections_given.get("cross_attn", ())
        found += value_gate_problems(spec, layers, CrossOptions(layers), f"{layers.key}.cross_attn",
                                     own, attn_key=f"{layers.key}.attn")
    return found


def value_gate_problems(spec: Spec, layers, options, key: str, own: tuple[str, ...],
                        attn_key: str = "") -> list[Diagnostic]:
    """`own`: for cross-attention, the keywords `cross_attn:` sets (a problem is reported
    only where it has one of them, at that one; `attn_key` locates the inherited others)."""
    found = []
    for gate, rank_name, headwise_name in VALUE_GATES:
        rank, where = options[rank_name], {}
        if rank is None or attn_key and not {rank_name, headwise_name, gate, "dim_head"} & set(own):
            continue
        for name in (rank_name, headwise_name):
            where[name] = f"{key}.{name}" if not attn_key or name in own else f"{attn_key}.{name}"
        if options[headwise_name]:
            found.append(diagnostic(
                spec, where[rank_name], "gate-rank-with-headwise",
                f"{rank_name} ({rank}) cannot be set with {headwise_name}: a headwise gate "
                "projects to one logit per head directly (x-transformers asserts it)"))
            continue
        if not any(each_value(options[gate])):
            continue  # (a warning says the rank does nothing)
        value_dim = layers["heads"] * (options["dim_head"] if attn_key else
                                       options["value_dim_head"] or options["dim_head"])
        width_in = layers["dim"] if gate == "gate_values" else value_dim
        if not (rank < width_in or rank < value_dim):
            found.append(diagnostic(
                spec, where[rank_name], "gate-rank-too-large",
                f"{rank_name} ({rank}) must be below the gate's input width ({width_in}) or its "
                f"output width ({value_dim}): x-transformers' low-rank projection asserts it"))
    return found


ORTHOG = ("orthog_projected_values", "orthog_projected_values_per_head")


def check_output_projection(spec: Spec, layers) -> list[Diagnostic]:
    """project_out: false leaves the heads' output as it is, so it must be dim wide (the
    residual add fails otherwise); zero_init_output zeroes to_out's weight, which the reference
    reads off a Linear only (init_zero_ fails on no projection, and on on_attn's gated one), as
    do the layers' zero_init_branch_output and depth_scale_residual: true (a depth-scaled draw);
    on_attn gates the projection, so without one it does nothing. A keyword cross-attention
    inherits and gets wrong for both attentions is said once, at the keyword."""
    places = [] if cross_only(layers) else [("attn", layers.section("attn"))]
    places += [("cross_attn", CrossOptions(layers))] if cross_attends(layers) else []
    found, seen = [], set()
    for place, options in places:
        for found_here in projection_problems(spec, layers, place, options):
            if (found_here.key, found_here.code) not in seen:
                seen.add((found_here.key, found_here.code))
                found.append(found_here)
    return found


def projection_problems(spec: Spec, layers, place: str, options) -> list[Diagnostic]:
    """check_output_projection's rules for one attention: `place` is "attn" or "cross_attn",
    `options` its keywords (cross-attention's with those it inherits from attn:)."""
    heads, dim, found = layers["heads"], layers["dim"], []
    given = layers.sections_given.get(place, ())

    def where(name: str) -> str:  # the section a keyword's value is written in
        return f"{layers.key}.{place if place == 'attn' or name in given else 'attn'}.{name}"

    projects = output_projection(options, heads)
    on_attn = place == "attn" and options["on_attn"]
    written = options["project_out"] is not None
    # one head of another width without project_out: check-single-head-projection's
    single_head = place == "attn" and not written and options["dim_head"] != dim
    if not projects and not single_head:
        value_dim = options["value_dim_head"] if place == "attn" else None
        copies = sum(bool(options[name]) for name in ORTHOG) if place == "attn" else 0
        width = heads * (value_dim or options["dim_head"]) * max(1, copies)
        if width != dim:
            widened = f" x {copies} orthogonal projections" if copies > 1 else ""
            at = (where("project_out") if written else
                  where(ORTHOG[1]) if copies > 1 else
                  where("value_dim_head") if value_dim else where("dim_head"))
            found.append(diagnostic(
                spec, at, "no-output-projection-needs-width-dim",
                f"with {'project_out: false' if written else 'heads: 1'}, {place} has no output "
                f"projection, which leaves the heads' output {width} wide (heads {heads} x "
                f"{'value_dim_head' if value_dim else 'dim_head'} "
                f"{value_dim or options['dim_head']}{widened}); it must equal dim ({dim}) "
                f"for the residual add, or set {place}.project_out: true"))
    if options["project_out"] is False and on_attn:
        found.append(diagnostic(
            spec, where("on_attn"), "on-attn-without-output-projection",
            "attn.on_attn has no effect with attn.project_out: false: it gates the output "
            "projection, and there is none", "warning"))
    for key, name, code, verb in output_inits(layers, place, options, where):
        if not projects:
            found.append(diagnostic(
                spec, key, f"{code}-without-output-projection",
                f"{name} {verb} the output projection, and this attention has none "
                f"({'project_out: false' if written else 'heads: 1'}); x-transformers fails "
                "building it"))
        elif on_attn:
            found.append(diagnostic(
                spec, key, f"{code}-with-on-attn",
                f"{name} cannot be combined with attn.on_attn: x-transformers {verb} a "
                "Linear's weight and fails on the gated projection of on_attn"))
    return found


def output_inits(layers, place: str, options, where) -> list[tuple[str, str, str, str]]:
    """(key, name, code prefix, what it does) of what initialises an attention's output
    projection: its zero_init_output, else the layers' zero_init_branch_output, else
    depth_scale_residual: true (zeroing wins, as in the reference)."""
    if options["zero_init_output"]:
        return [(where("zero_init_output"), f"{place}.zero_init_output", "zero-init", "zeroes")]
    if layers["zero_init_branch_output"]:
        return [(f"{layers.key}.zero_init_branch_output", "zero_init_branch_output", "zero-init",
                 "zeroes")]
    if layers["depth_scale_residual"] is True:
        return [(f"{layers.key}.depth_scale_residual", "depth_scale_residual: true",
                 "depth-scaled-init", "draws")]
    return []


def check_orthog_projection(spec: Spec, layers) -> list[Diagnostic]:
    """Belief attention projects each batch row's output, every position at once, against its
    values (x-transformers' orthog_project flattens the row whole): an output reads every
    later and padded position. Accepted, as the reference computes it, with a warning."""
    attn = layers.section("attn")
    name = next((name for name in ORTHOG if attn[name]), None)
    if name is None or cross_only(layers):
        return []
    key = f"{layers.key}.attn.{name}"
    if CAUSAL_LAYERS.get(layers.type, False):
        return [diagnostic(
            spec, key, "breaks-causality",
            f"attn.{name} projects the outputs against the values of the whole sequence "
            "(x-transformers flattens every position of a row together): each position's "
            "output reads later tokens, so this Decoder leaks the future, and padded tokens "
            "change the outputs of real ones; generate() recomputes the whole sequence at each "
            "step (no kv cache)", "warning")]
    if never_padded(spec, layers):
        return []
    return [diagnostic(
        spec, key, "orthog-projection-reads-padding",
        f"attn.{name} projects the outputs against the values of the whole sequence "
        "(x-transformers flattens every position of a row together): padded tokens change the "
        "outputs of real ones, whatever the mask", "warning")]


def check_inverted_attention(spec: Spec, layers) -> list[Diagnostic]:
    """Inverted cross-attention takes its softmax over every query: in a Decoder a position
    reads the later ones (x-transformers warns the same). Accepted with a warning; generate()
    recomputes the whole sequence at each step (no kv cache)."""
    if not (cross_attends(layers) and CAUSAL_LAYERS.get(layers.type, False)
            and any(each_value(layers.section("cross_attn")["inverted_attention"]))):
        return []
    return [diagnostic(
        spec, f"{layers.key}.cross_attn.inverted_attention", "breaks-causality",
        "cross_attn.inverted_attention takes the softmax over the queries: each position's "
        "weights read the later positions, so this Decoder leaks the future; generate() "
        "recomputes the whole sequence at each step (no kv cache)", "warning")]


LATENT_KEYWORDS = ("use_latent_q", "dim_latent_q", "use_latent_kv", "dim_latent_kv",
                   "latent_rope_subheads")


def check_latent_attention(spec: Spec, layers) -> list[Diagnostic]:
    """Multi-head latent attention, layer by layer: its keywords may be per-layer lists."""
    attn = layers.section("attn")
    lists = [attn[name] for name in LATENT_KEYWORDS if isinstance(attn[name], tuple)]
    count = len(lists[0]) if lists else 1  # check-per-layer-values made the lengths agree
    found = []
    for index in range(count):
        where = f" (self-attention layer {index + 1})" if lists else ""
        options = LayerOptions(attn, index)
        found += latent_width_problems(spec, layers, options, where)
        found += rope_subhead_problems(spec, layers, options, where)
    return list(dict.fromkeys(found))


def latent_width_problems(spec: Spec, layers, attn, where: str) -> list[Diagnostic]:
    """use_latent_q / _kv need their width; a width no layer uses does nothing (a warning)."""
    key, found = f"{layers.key}.attn", []
    for part, what in (("q", "queries"), ("kv", "keys and values")):
        used, width = attn[f"use_latent_{part}"], attn[f"dim_latent_{part}"]
        if used and width is None:
            found.append(diagnostic(
                spec, f"{key}.use_latent_{part}", "latent-needs-width",
                f"attn.use_latent_{part} projects the {what} from a latent: set its width, "
                f"attn.dim_latent_{part}{where} (x-transformers asserts it)"))
        elif width is not None and not any(each_value(attn.options[f"use_latent_{part}"])):
            found.append(diagnostic(
                spec, f"{key}.dim_latent_{part}", "latent-width-without-latent",
                f"attn.dim_latent_{part} has no effect without attn.use_latent_{part}: true",
                "warning"))
    return found


def rope_subhead_problems(spec: Spec, layers, attn, where: str) -> list[Diagnostic]:
    """latent_rope_subheads: key heads from the input, beside the latent's, that get rotary."""
    key = f"{layers.key}.attn.latent_rope_subheads"
    count, heads, found = attn["latent_rope_subheads"], layers["heads"], []
    if count is None:
        return []
    if not attn["use_latent_kv"]:
        found.append(diagnostic(
            spec, key, "rope-subheads-need-latent-kv",
            f"attn.latent_rope_subheads ({count}) splits key heads off the keys' latent: set "
            f"attn.use_latent_kv{where} (x-transformers fails in the forward without it)"))
    if not (layers["rotary_pos_emb"] or layers["rotary_xpos"]):
        found.append(diagnostic(
            spec, key, "rope-subheads-need-rotary",
            f"attn.latent_rope_subheads ({count}) names the key heads rotary turns: set "
            "rotary_pos_emb: true"))
    if layers["rotate_num_heads"] is not None:
        found.append(diagnostic(
            spec, key, "rope-subheads-with-rotate-heads",
            "attn.latent_rope_subheads cannot be combined with rotate_num_heads: it decides "
            "itself which heads get rotary (x-transformers asserts it)"))
    kv_heads = key_value_heads(layers)
    if kv_heads < heads:
        found.append(diagnostic(
            spec, key, "rope-subheads-with-gqa",
            f"attn.latent_rope_subheads rotates {count} of {heads} heads, which cannot be "
            f"combined with grouped key / value heads ({kv_heads}); x-transformers does not "
            "support it yet"))
    elif count >= kv_heads:
        found.append(diagnostic(
            spec, key, "rope-subheads-exceed-heads",
            f"attn.latent_rope_subheads ({count}) must be below the key heads ({kv_heads}): "
            "the rest come from the latent, and at least one must"))
    return found
