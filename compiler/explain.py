"""`xtc explain`: a spec with every keyword written out.

The output is YAML in the spec language: each module lists every keyword of its class with its
value, in the keyword table's order. Values the author did not write carry `# default`; a null
default that the compiler turns into a value carries `# computed: VALUE (RULE)`, the value taken
from the resolved model, so the explanation and the emitted code cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import yaml

from ..spec.keywords import XTRANSFORMER_SIDES, Keyword, keyword_table
from ..spec.model import ModuleSpec, Spec, plain
from .resolve import ResolvedLayers, ResolvedWrapper, resolve_layers, resolve_wrapper

INDENT = "  "

# (section, keyword) -> (the value the compiler uses, read from the resolved model; its rule).
# A getter returns None where the option is off, so that nothing is claimed for it.
LayersRule = tuple[Callable[[ResolvedLayers], object], str]
LAYERS_COMPUTED: Mapping[tuple[str, str], LayersRule] = {
    ("", "rotary_emb_dim"): (lambda r: r.rotary and r.rotary.dim, "attn.dim_head // 2"),
    ("", "rotate_num_heads"): (lambda r: r.rotary and (r.rotary.rotate_heads or r.attention.heads),
                               "heads: every head is rotated"),
    ("", "alibi_num_heads"): (lambda r: r.position_bias and r.position_bias.alibi_heads or None,
                              "heads"),
    ("attn", "kv_heads"): (lambda r: r.attention and (r.attention.kv_heads or r.attention.heads),
                           "heads, or 1 with one_kv_head"),
    ("attn", "value_dim_head"): (lambda r: r.attention and (r.attention.value_dim_head
                                                            or r.attention.dim_head),
                                 "attn.dim_head"),
    ("attn", "project_out"): (lambda r: r.attention and r.attention.project_out,
                              "heads > 1 or on_attn"),
    ("attn", "dim_out"): (lambda r: r.attention and r.dim, "dim"),
    ("cross_attn", "dim_context"): (lambda r: r.cross_attention and r.cross_attention.dim_context,
                                    "dim"),
    ("ff", "dim_out"): (lambda r: r.dim, "dim"),
}
WrapperRule = tuple[Callable[[ResolvedWrapper], object], str]
WRAPPER_COMPUTED: Mapping[str, WrapperRule] = {
    "emb_dim": (lambda r: r.emb_dim, "attn_layers.dim"),
    "num_memory_tokens": (lambda r: r.num_memory_tokens, "no memory tokens"),
    "tie_embedding_scale": (lambda r: r.tie_embedding and r.tie_embedding_scale,
                            "attn_layers.dim ** -0.5"),
    "logits_dim": (lambda r: r.num_tokens, "num_tokens"),
}
LAYER_TYPES = frozenset({"Decoder", "Encoder", "CrossAttender", "AttentionLayers"})


def explain(spec: Spec) -> str:
    """The spec as YAML, every keyword present, defaults and computed values marked."""
    lines = [f"# {spec.name}: every keyword of every module but those that take a Python object.",
             "# '# default': not written in the spec; 'computed': what the compiler makes of a null.",
             f"xtc: {spec.version}", f"name: {scalar(spec.name)}"]
    if spec.description is not None:
        lines.append(f"description: {scalar(spec.description)}")
    if spec.model is not None:
        lines += module_lines("model", spec.model, 0)
    if spec.components:
        lines.append("components:")
        for name, component in spec.components.items():
            lines += module_lines(name, component, 1)
        lines.append("connections:")
        lines += [f"{INDENT}- {{from: {c.source}, to: {c.target}.{c.argument}}}"
                  for c in spec.connections]
    return "\n".join(lines) + "\n"


def module_lines(name: str, module: ModuleSpec, depth: int, side: bool = False) -> list[str]:
    """`side`: XTransformer's encoder or decoder, a flat mapping without `type`."""
    pad = INDENT * (depth + 1)
    lines = [f"{INDENT * depth}{name}:"] + ([] if side else [f"{pad}type: {module.type}"])
    computed = computed_values(module)
    keywords = module_keywords(module, name if side else None)
    for key, value in module.options.items():
        if not expressible(keywords.get(key)):
            continue
        lines.append(f"{pad}{key}: {scalar(value)}{note(key in module.given, value, computed.get(key))}")
    for section, options in module.sections.items():
        given = module.sections_given.get(section, ())
        inherited = inherited_from_attn(module) if section == "cross_attn" else {}
        lines.append(f"{pad}{section}:")
        routed = keyword_table().routed(section)
        for key, value in options.items():
            if not expressible(routed.get(key)):
                continue
            if key in inherited and key not in given:
                lines.append(f"{pad}{INDENT}{key}: {scalar(inherited[key])}  # from attn")
                continue
            mark = note(key in given, value, computed.get(f"{section}.{key}"))
            lines.append(f"{pad}{INDENT}{key}: {scalar(value)}{mark}")
    for child_name, child in module.children.items():
        is_side = module.type == "XTransformer" and child_name in XTRANSFORMER_SIDES
        lines += module_lines(child_name, child, depth + 1, side=is_side)
    return lines


def inherited_from_attn(module: ModuleSpec) -> dict[str, object]:
    """Cross-attention takes the `attn:` options the author wrote, unless `cross_attn:` sets them."""
    attn = module.section("attn")
    return {key: attn[key] for key in module.sections_given.get("attn", ())
            if key in module.section("cross_attn")}


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


def computed_values(module: ModuleSpec) -> dict[str, tuple[object, str]]:
    """Dotted keyword -> (value, rule) for each null default the compiler fills in."""
    found: dict[str, tuple[object, str]] = {}
    if module.type == "TransformerWrapper":
        wrapper = resolve_wrapper(module, module.children["attn_layers"])
        for key, (get, rule) in WRAPPER_COMPUTED.items():
            found[key] = (get(wrapper), rule)
    elif module.type in LAYER_TYPES and "dim" in module.options:
        layers = resolve_layers(module)
        for (section, key), (get, rule) in LAYERS_COMPUTED.items():
            found[f"{section}.{key}" if section else key] = (get(layers), rule)
    return {key: (value, rule) for key, (value, rule) in found.items()
            if value is not None and value is not False}


def note(given: bool, value: object, computed: tuple[object, str] | None) -> str:
    if given:
        return ""
    if value is None and computed is not None:
        value, rule = computed
        return f"  # default; computed: {scalar(value)} ({rule})"
    return "  # default"


def scalar(value: object) -> str:
    """One YAML flow value that reads back as the same Python value."""
    text = yaml.safe_dump(plain(value), default_flow_style=True, width=10**6)
    return text.removesuffix("\n").removesuffix("\n...")
