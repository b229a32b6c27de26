"""`xtc explain`: a spec with every keyword written out.

The output is YAML in the spec language: each module lists every keyword of its class with its
value, in the keyword table's order. Values the author did not write carry `# default`. Where
the compiler uses another value than the one written, it carries `computed: VALUE (WHY)`, WHY
naming the option that decided it: a null default it fills in (`emb_dim`, `kv_heads`), or a
switch another option turns on or off (`use_abs_pos_emb` under rotary positions, `rotary_pos_emb`
under xPos). The value is read from the resolved model, so the explanation and the emitted code
cannot disagree; comments only, so the output still compiles to the same module.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.keywords import XTRANSFORMER_SIDES, Keyword, keyword_table
from ..spec.model import AUTOREGRESSIVE, ModuleSpec, Spec, scalar
from .ir import AttentionAttrs, CrossAttentionAttrs
from .resolve import (
    EVERY_LAYER,
    SECTION_LAYERS,
    ResolvedContinuous,
    ResolvedLayers,
    ResolvedWrapper,
    ResolvedXVal,
    identity_in,
    identity_out,
    resolve_continuous,
    resolve_layers,
    resolve_wrapper,
    resolve_xval,
    with_dim,
)

INDENT = "  "
LAYER_TYPES = frozenset({"Decoder", "Encoder", "PrefixDecoder", "CrossAttender", "AttentionLayers"})
# The layer options that switch absolute positions off (x-transformers' disable_abs_pos_emb,
# resolve.ResolvedLayers.drops_absolute_positions), in the order a reason names them.
DROP_ABSOLUTE_POSITIONS = ("rotary_pos_emb", "rotary_xpos", "polar_pos_emb", "rel_pos_bias")

# (the value the compiler uses, read from the resolved model; the option that decided it).
# A rule gives None where it has nothing to claim (no rotary: no rotary width).
Derived = tuple[object, str]


# the mark of a keyword x-transformers lacks (spec/extensions.py)
EXTENSION_NOTE = "an xtc extension: x-transformers has no such keyword"

HEADER = object()  # the value of an entry that opens a mapping (`attn:`)


@dataclass(frozen=True)
class Entry:
    """One line of the explanation: a keyword with its value, or the header of a mapping. `xtc
    diff` compares specs entry by entry, so both read the same values and reasons."""

    depth: int
    name: str  # as written: `kv_heads`, or the header `attn`
    key: str  # the dotted key of the spec: `model.attn_layers.attn.kv_heads`
    value: object = HEADER
    given: bool = True  # written by the author
    computed: Derived | None = None  # what the compiler uses instead of value, and why
    comment: str = ""  # `  # default; computed: 8 (heads)`
    item: str = ""  # a list item's flow mapping (a composite's connections)

    @property
    def is_header(self) -> bool:
        return self.value is HEADER

    @property
    def effective(self) -> object:
        """The value the compiler uses."""
        return self.value if self.computed is None else self.computed[0]

    @property
    def text(self) -> str:
        pad = INDENT * self.depth
        if self.item:
            return f"{pad}- {self.item}"
        if self.is_header:
            return f"{pad}{self.name}:{self.comment}"
        return f"{pad}{self.name}: {scalar(self.value)}{self.comment}"


def explain(spec: Spec) -> str:
    """The spec as YAML, every keyword present, defaults and computed values marked."""
    lines = [f"# {spec.name}: every keyword of every module but those that take a Python object.",
             "# '# default': not written in the spec; 'computed': what the compiler uses, and why."]
    return "\n".join(lines + [entry.text for entry in explanation(spec)]) + "\n"


def explanation(spec: Spec) -> list[Entry]:
    """Every line of the explanation, in order, as data."""
    entries = [Entry(0, "xtc", "xtc", spec.version), Entry(0, "name", "name", spec.name)]
    if spec.description is not None:
        entries.append(Entry(0, "description", "description", spec.description))
    if spec.model is not None:
        entries += module_entries("model", spec.model, 0)
    if spec.components:
        entries.append(Entry(0, "components", "components"))
        for name, component in spec.components.items():
            entries += module_entries(name, component, 1)
        entries.append(Entry(0, "connections", "connections"))
        entries += [Entry(1, "", f"connections.{c.target}.{c.argument}", c.source,
                          item=f"{{from: {c.source}, to: {c.target}.{c.argument}}}")
                    for c in spec.connections]
    return entries


def keyword_entry(depth: int, name: str, key: str, value: object, given: bool,
                  computed: Derived | None, comment: str) -> Entry:
    """An entry whose computed value is kept where it differs from the one shown (`note`)."""
    differs = computed is not None and computed[0] != value
    return Entry(depth, name, key, value, given, computed if differs else None, comment)


def module_entries(name: str, module: ModuleSpec, depth: int,
                   xtransformer: ModuleSpec | None = None) -> list[Entry]:
    """`xtransformer`: the parent of XTransformer's encoder or decoder, a flat mapping without
    `type`."""
    side = xtransformer is not None
    entries = [Entry(depth, name, module.key)]
    if not side:
        entries.append(Entry(depth + 1, "type", f"{module.key}.type", module.type))
    computed = computed_values(module, xtransformer)
    keywords = module_keywords(module, name if side else None)
    for key, value in module.options.items():
        if not expressible(keywords.get(key)):
            continue
        given = key in module.given
        mark = note(given, value, computed.get(key)) + per_layer_note("", key, value)
        if key in NO_EFFECT and module.type in LAYER_TYPES:
            mark += f"; {NO_EFFECT[key]}" if mark else f"  # {NO_EFFECT[key]}"
        if key in keywords and keywords[key].extension:
            mark += f"; {EXTENSION_NOTE}" if mark else f"  # {EXTENSION_NOTE}"
        entries.append(keyword_entry(depth + 1, key, f"{module.key}.{key}", value, given,
                                     computed.get(key), mark))
    for section, options in module.sections.items():
        given_keys = module.sections_given.get(section, ())
        inherited = inherited_from_attn(module, xtransformer) if section == "cross_attn" else {}
        entries.append(Entry(depth + 1, section, f"{module.key}.{section}"))
        routed = keyword_table().routed(section)
        for key, value in options.items():
            if not expressible(routed.get(key)):
                continue
            where = f"{module.key}.{section}.{key}"
            if key in inherited and key not in given_keys:
                entries.append(Entry(depth + 2, key, where, inherited[key], False,
                                     comment="  # from attn"))
                continue
            given, found = key in given_keys, computed.get(f"{section}.{key}")
            mark = note(given, value, found) + per_layer_note(section, key, value)
            mark += behaviour_note(section, key, value, bool(mark))
            entries.append(keyword_entry(depth + 2, key, where, value, given, found, mark))
    if module.trainer is not None:
        entries.append(Entry(depth + 1, AUTOREGRESSIVE, f"{module.key}.{AUTOREGRESSIVE}",
                             comment=f"  # the keywords of {module.trainer}"))
        keywords = keyword_table().trainer(module.trainer)
        for key, value in module.training.items():
            if expressible(keywords.get(key)):
                given = key in module.training_given
                entries.append(Entry(depth + 2, key, f"{module.key}.{AUTOREGRESSIVE}.{key}", value,
                                     given, comment=note(given, value, None)))
    for child_name, child in module.children.items():
        is_side = module.type == "XTransformer" and child_name in XTRANSFORMER_SIDES
        entries += module_entries(child_name, child, depth + 1, module if is_side else None)
    return entries


def inherited_from_attn(module: ModuleSpec, xtransformer: ModuleSpec | None) -> dict[str, object]:
    """Cross-attention takes the `attn:` options the author wrote, unless `cross_attn:` sets them.
    A stack without cross-attention inherits nothing (written under `cross_attn:`, an option it
    does not support, such as one_kv_head, would make the explanation an invalid spec)."""
    stack = module if xtransformer is None else with_dim(module, xtransformer["dim"])
    if resolve_layers(stack).context_dim is None:
        return {}
    attn = module.section("attn")
    return {key: attn[key] for key in module.sections_given.get("attn", ())  # per-layer lists
            if key in module.section("cross_attn") and not isinstance(attn[key], tuple)}  # stay


def module_keywords(module: ModuleSpec, side: str | None) -> dict[str, Keyword]:
    table = keyword_table()
    if side is not None:
        return table.side(side)
    if module.type in table.layer_classes:
        return table.layers(module.type)
    return table.wrapper(module.type)


def expressible(kw: Keyword | None) -> bool:
    """Keywords that take a Python object (token_emb, custom_attn_fn...) have no spec form."""
    return kw is None or "object" not in kw.types


def computed_values(module: ModuleSpec, xtransformer: ModuleSpec | None) -> dict[str, Derived | None]:
    """Dotted keyword -> what the compiler uses for it, for the modules it resolves."""
    if xtransformer is not None:  # a side holds wrapper and layer keywords, as resolve sees it
        side = with_dim(module, xtransformer["dim"])
        wrapper = resolve_wrapper(side, side)
        return wrapper_values(side, side, wrapper, "") | layer_values(side, wrapper.layers)
    if module.type == "TransformerWrapper":
        layers = module.children["attn_layers"]
        return wrapper_values(module, layers, resolve_wrapper(module, layers), "attn_layers.")
    if module.type == "ContinuousTransformerWrapper":
        layers = module.children["attn_layers"]
        return wrapper_values(module, layers, resolve_continuous(module), "attn_layers.")
    if module.type == "XValTransformerWrapper":
        layers = module.children["attn_layers"]
        return wrapper_values(module, layers, resolve_xval(module), "attn_layers.")
    if module.type in LAYER_TYPES and "dim" in module.options:
        return layer_values(module, resolve_layers(module))
    return {}


def wrapper_values(model: ModuleSpec, layers: ModuleSpec,
                   r: ResolvedWrapper | ResolvedContinuous | ResolvedXVal,
                   prefix: str) -> dict[str, Derived | None]:
    """A wrapper's keywords; `prefix` leads the names of its layer options in reasons."""
    off = positions_off_reason(model, layers, prefix)
    found = {
        "num_memory_tokens": (r.num_memory_tokens, "no memory tokens"),
        "use_abs_pos_emb": (r.positions != "none", off),
        "scaled_sinu_pos_emb": (r.positions == "scaled_sinusoidal", off),
    }
    if isinstance(r, ResolvedWrapper):
        found |= {
            "emb_dim": (r.emb_dim, f"{prefix}dim"),
            "tie_embedding_scale": (r.tie_embedding_scale, f"{prefix}dim ** -0.5")
            if r.tie_embedding else None,
            "logits_dim": (r.logits_dim or 0, head_reason(model)),
            "squeeze_out_last_dim": (r.squeeze_out_last_dim, "the logits head is not 1 wide"),
            "emb_frac_gradient": (r.emb_frac_gradient, "a share above 1 scales nothing"),
            "shift_mem_down": (r.shift_mem_down, "max_mem_len is 0: no memories to shift"),
            "num_cls_tokens": (r.num_cls_tokens, "use_cls_token is false: no CLS tokens"),
            "train_max_recycle_steps": (r.recycle_steps or 0, "recycling is off: one pass"),
            "max_looped_steps": (r.looped_steps or 0, "looped is off: one pass"),
            "mixture_of_softmax_k": (r.mixture, "mixture_of_softmax is off: one softmax"),
            "num_output_heads": (r.output_heads, "return_only_embed: no logits head"),
            **pool_values(r.attention_pool, prefix),
        }
    if isinstance(r, ResolvedContinuous):
        found["use_identity_if_same_dim"] = (
            identity_in(model) or identity_out(model),
            "neither dim_in nor dim_out (times 2 when probabilistic) is the layers' dim")
    if isinstance(r, ResolvedXVal):  # no projection: the embedding is as wide as the layers
        found |= {
            "emb_dim": (r.layers.dim, f"{prefix}dim"),
            "logits_dim": (r.logits_dim, "tie_embedding" if r.tie_embedding else "num_tokens"),
        }
    return found


def pool_values(pool, prefix: str) -> dict[str, Derived]:
    """The attention pool's sizes: none without attn_pool; its width is the layers' by default."""
    if pool is None:
        off = "attn_pool is false: no attention pool"
        return {"num_pooled_tokens": (0, off), "attn_pool_depth": (0, off),
                "dim_pooled_tokens": (0, off)}
    return {"dim_pooled_tokens": (pool.dim, f"{prefix}dim")}


def head_reason(model: ModuleSpec) -> str:
    """What decides a TransformerWrapper's logits width (resolve.head_width)."""
    if model["return_only_embed"]:
        return "return_only_embed: no logits head"
    if model.options.get("attn_pool"):
        return "attn_pool: the pooled tokens are the output"
    return "tie_embedding" if model["tie_embedding"] else "num_tokens"


def positions_off_reason(model: ModuleSpec, layers: ModuleSpec, prefix: str) -> str:
    """The option that leaves a wrapper without absolute positions (resolve.positions and
    drops_absolute_positions), or '' where it has them."""
    if not model["use_abs_pos_emb"]:
        return "use_abs_pos_emb: false"
    if not model["max_seq_len"]:
        return f"max_seq_len: {scalar(model['max_seq_len'])}"
    if layers["disable_abs_pos_emb"] is not None:  # written: it decides
        return f"{prefix}disable_abs_pos_emb" if layers["disable_abs_pos_emb"] else ""
    return next((prefix + key for key in DROP_ABSOLUTE_POSITIONS if layers[key]), "")


def layer_values(layers: ModuleSpec, r: ResolvedLayers) -> dict[str, Derived | None]:
    """A layer stack's keywords, sections dotted (`attn.kv_heads`)."""
    return (position_values(layers, r) | attention_values(layers, r) | layout_values(layers)
            | {"pre_norm_has_final_norm": (r.final_norm, final_norm_reason(layers))}
            | {"qkv_receive_diff_residuals": (layers["qkv_receive_diff_residuals"] or r.integrate,
                                              "integrate_layers")}
            | {"dim_condition": r.condition and (r.condition.dim, "dim")}
            | feedforward_values(r))


def feedforward_values(r: ResolvedLayers) -> dict[str, Derived | None]:
    """What the feedforwards compute from other keys; nothing where the stack has none (a
    layout of attention alone)."""
    if r.feedforward is None:
        return {}
    activation = r.feedforward.activation
    return {"ff.dim_out": (r.dim, "dim"),
            "ff.swish": (activation == "silu", "ff.solu" if activation == "solu" else "ff.relu_squared")}


def rotated_heads(layers: ModuleSpec, r: ResolvedLayers) -> Derived:
    """How many heads rotary turns: every head, or multi-head latent attention's rope heads
    (per layer where they are a list)."""
    subheads = layers.section("attn")["latent_rope_subheads"]
    if isinstance(subheads, tuple):
        every = layers["rotate_num_heads"] or layers["heads"]
        return tuple(count or every for count in subheads), "attn.latent_rope_subheads, per layer"
    if r.attention and r.attention.latent_rope_subheads:
        return r.attention.latent_rope_subheads, "attn.latent_rope_subheads"
    return r.attention and r.attention.rotate_heads or layers["heads"], "heads: every head is rotated"


def position_values(layers: ModuleSpec, r: ResolvedLayers) -> dict[str, Derived | None]:
    """Rotary (xPos turns it on), the bias' heads, and whether absolute positions are dropped."""
    rotary, bias = r.rotary, r.position_bias
    dropped_by = next((key for key in DROP_ABSOLUTE_POSITIONS if layers[key]), None)
    return {
        "rotary_pos_emb": (rotary is not None, "rotary_xpos"),
        "rotary_emb_dim": rotary and (rotary.dim, "attn.dim_head // 2"),
        "rotate_num_heads": rotary and rotated_heads(layers, r),
        "alibi_num_heads": (bias.alibi_heads, "heads") if bias and bias.alibi_heads else None,
        "disable_abs_pos_emb": (r.drops_absolute_positions,
                                dropped_by or "no rotary_pos_emb, rotary_xpos, polar_pos_emb or rel_pos_bias"),
    }


def attention_values(layers: ModuleSpec, r: ResolvedLayers) -> dict[str, Derived | None]:
    attn, cross = r.attention, r.cross_attention
    found = {
        "cross_attn.dim_context": cross and (cross.dim_context, "dim"),
        "cross_attn.project_out": cross and (cross.project_out, projection_reason(cross)),
    }
    if attn is None:  # a CrossAttender: cross-attention only
        return found
    one_kv_head = layers.section("attn")["one_kv_head"]
    return found | {
        "attn.kv_heads": (attn.kv_heads or attn.heads, "attn.one_kv_head" if one_kv_head else "heads"),
        "attn.value_dim_head": (attn.value_dim_head or attn.dim_head, "attn.dim_head"),
        "attn.project_out": (attn.project_out, projection_reason(attn)),
        "attn.dim_out": (r.dim, "dim"),
        "attn.qk_norm_groups": (attn.qk_norm_groups, "attn.qk_norm is off"),
        "attn.qk_norm_dim_scale": (attn.qk_norm_dim_scale, "attn.qk_norm is off"),
    }


def final_norm_reason(layers: ModuleSpec) -> str:
    """What decides the final norm where pre_norm_has_final_norm does not (resolve.final_norm)."""
    if layers["gated_multi_residual"]:
        return "gated_multi_residual keeps it"
    return "pre_norm: false" if not layers["pre_norm"] else "pre_and_post_norm"


def projection_reason(attention: AttentionAttrs | CrossAttentionAttrs) -> str:
    """One head has no output projection unless attention on attention needs one."""
    if attention.heads > 1:
        return "heads > 1"
    return "attn.on_attn" if getattr(attention, "on_attn", False) else "heads: 1"


def layout_values(layers: ModuleSpec) -> dict[str, Derived | None]:
    """custom_layers, else par_ratio, else sandwich_coef makes the layout (resolve.layer_layout):
    a later one written next to an earlier one has no effect; only_cross shapes the default
    block of layers that cross-attend (resolve.cross_only)."""
    custom, par = (layers[key] is not None for key in ("custom_layers", "par_ratio"))
    values = {
        "par_ratio": (None, "custom_layers") if custom else None,
        "sandwich_coef": (None, "custom_layers" if custom else "par_ratio") if custom or par else None,
    }
    if layers.type != "CrossAttender":  # (which sets only_cross itself)
        idle = "no cross_attend" if not layers["cross_attend"] else "custom_layers" if custom else ""
        values["only_cross"] = (False, idle) if idle and layers["only_cross"] else None
    return values


def note(given: bool, value: object, computed: Derived | None) -> str:
    """`# default` where the author wrote nothing; `computed: VALUE (WHY)` where the compiler
    uses another value than the one shown."""
    marks = [] if given else ["default"]
    if computed is not None and computed[0] != value:
        effective, why = computed
        marks.append(f"computed: {shown(value, effective)} ({why})")
    return f"  # {'; '.join(marks)}" if marks else ""


# Layer options the reference reads for itself alone, noted whatever their value.
NO_EFFECT = {"verbose": "no effect on the emitted model (x-transformers only silences its own "
                        "warning about the rotary width)"}

# What an option makes the model do that its value does not say, noted where it is on.
BEHAVIOURS = {
    ("attn", "gumbel_softmax"): "the attention weights are sampled, in eval mode too: outputs "
                                "and generation are random",
}


def behaviour_note(section: str, key: str, value: object, marked: bool) -> str:
    """BEHAVIOURS' note for an option that is on (any layer's value, for a per-layer list)."""
    why = BEHAVIOURS.get((section, key))
    on = any(value) if isinstance(value, tuple) else bool(value)
    if why is None or not on:
        return ""
    return f"; {why}" if marked else f"  # {why}"


def per_layer_note(section: str, key: str, value: object) -> str:
    """Which layers a per-layer list gives its values to, in order."""
    if not isinstance(value, tuple) or not (section or key in EVERY_LAYER):
        return ""
    layers = f"{SECTION_LAYERS[section][1]} layer" if section else "layer, of every kind"
    return f"  # one per {layers}, in order"


def shown(written: object, effective: object) -> str:
    """Switches read on / off, and so does a value the compiler drops (par_ratio under
    custom_layers); what fills a null is shown as a value."""
    if isinstance(written, bool) or (written is not None and effective is None):
        return "on" if effective else "off"
    return scalar(effective)


