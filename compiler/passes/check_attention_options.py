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
- x-transformers hands every `attn:` option to cross-attention too (unless `cross_attn:` sets
  it): an option xtc compiles for self-attention only is refused where the layers cross-attend,
  rather than silently applied to one attention of the two. The rules of the options it
  compiles there hold for what cross-attention ends up with (`cross_key`).
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec
from xtc.spec.model import scalar

from .modules import diagnostic, layer_modules, option

ID = "check-attention-options"


def check_attention_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_heads(spec, layers) + check_qk_norm(spec, layers) + check_value_width(spec, layers)
        found += check_rmsnorms(spec, layers) + check_cross_inheritance(spec, layers)
    return found


# The attention options xtc compiles for cross-attention (the others are self-attention only).
CROSS_ATTENTION_OPTIONS = frozenset({"dim_head", "flash", "dropout", "num_mem_kv", "dim_context",
                                     "qk_rmsnorm", "k_rmsnorm", "value_rmsnorm", "add_zero_kv",
                                     "head_learned_sink"})


def cross_attends(layers) -> bool:
    if layers.type == "CrossAttender":
        return True
    custom = layers["custom_layers"]
    return bool(layers["cross_attend"] or (custom and "c" in custom))


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
        if value != defaults[name] and not isinstance(value, tuple):
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
    attn = layers.section("attn")
    width = attn["value_dim_head"]
    if width is None or width == attn["dim_head"]:
        return []
    key, found = f"{layers.key}.attn.value_dim_head", []
    if attn["flash"]:
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

