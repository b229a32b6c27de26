"""IR graph -> render context: choose the classes, their code and the configs of the module.

The graph has one op per norm, attention and feedforward of every block; the emitted module has
one class per concept and a loop over identical blocks, as a person would write it. Lowering
checks that the blocks of a stack are identical (an internal invariant: nothing yet makes them
differ) and reads their shared structure from block 0. Top-level ops become op contexts,
rendered by one template per kind. A model with two stacks (XTransformer) gets one set of
classes per stack, prefixed `Encoder` / `Decoder`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from xtc.spec import ModuleSpec, Spec
from xtc.spec.model import pascal_case
from xtc.spec.names import is_free_class_name

from .build_ir import component_order
from .context import (
    FUNCTIONAL,
    REARRANGE,
    TORCH,
    AttentionClass,
    BlockClass,
    BlockStep,
    CompositeClass,
    ConfigClass,
    ConfigField,
    CrossAttentionClass,
    FeedForwardClass,
    ModelClass,
    ModuleContext,
    OpContext,
    XTransformerClass,
    runtime,
)
from .ir import Graph, Op, OpKind
from .resolve import (
    ResolvedContinuous,
    ResolvedLayers,
    ResolvedViT,
    ResolvedWrapper,
    ResolvedXTransformer,
    resolve,
    resolve_module,
)

NORM_INIT = {
    "layernorm": "nn.LayerNorm(config.{width}, bias=False)",
    "rmsnorm": "RMSNorm(config.{width})",
    "scalenorm": "ScaleNorm(config.{width})",
    "simple_rmsnorm": "SimpleRMSNorm(config.{width})",
}
NORM_NAME = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "scalenorm": "ScaleNorm",
             "simple_rmsnorm": "SimpleRMSNorm"}
NORM_IMPORTS = {"rmsnorm": runtime("norms", "RMSNorm"), "scalenorm": runtime("norms", "ScaleNorm"),
                "simple_rmsnorm": runtime("norms", "SimpleRMSNorm")}
ACTIVATIONS = {
    "gelu": ("nn.GELU()", "GELU"),
    "silu": ("nn.SiLU()", "SiLU"),
    "relu_squared": ("ReluSquared()", "ReLU²"),
}
OPTIONAL = "Tensor | None = None"


@dataclass(frozen=True)
class Component:
    """What lowering one model (a spec's model, or one component of a composite) gives."""

    configs: tuple
    classes: tuple
    class_name: str
    config: str
    parameters: tuple[str, ...]  # of its forward, after self
    summary: str
    diagram: str


def lower(spec: Spec, graph: Graph) -> ModuleContext:
    if spec.model is None:
        context = lower_composite(spec, graph)
    else:
        part = lower_model(spec, graph)
        context = module_context(spec, part.summary, part.diagram, part.configs, part.classes)
    defined = {cls.name for cls in context.configs} | {defined_name(cls) for cls in context.classes}
    assert len(defined) == len(context.configs) + len(context.classes), "two classes, one name"
    return context


def module_context(spec: Spec, summary: str, diagram: str, configs, classes) -> ModuleContext:
    return ModuleContext(spec_name=spec.name, sha256=spec.sha256, class_name=spec.class_name,
                         summary=summary, diagram=(diagram,), configs=tuple(configs),
                         classes=tuple(classes))


# -- class names --------------------------------------------------------------------------------
# The spec's class is its PascalCased name (the API looks it up by that name). Every other class
# is `<prefix><suffix>`: the suffix says what it is (Config, Attention, CrossAttention,
# FeedForward, Block; EncoderConfig, Encoder, ... in an XTransformer; empty for a component's own
# class), the prefix whose it is. The usual prefix is empty for a spec's one model and the
# PascalCased name for a component, so `gpt` defines Config, Attention, FeedForward, Block and
# Gpt, and a component `vit` VitConfig, ..., Vit. Only when one of a model's names is taken (by
# the spec's class, a class named before, an import, a builtin or a keyword) does its prefix
# change, for all its classes at once: to the owner's class followed by the usual prefix (a spec
# `attention` defines AttentionConfig, AttentionAttention, ..., Attention; a component `pali` of
# a composite `pali` PaliPali, PaliPaliConfig, ...), which still says whose class it is; if that
# is taken too, with 2, 3, ... appended, which always ends (finitely many names are taken).
# Components are named in the order they are written, so a name never depends on a later one.
# Always prefixing would make the common case read GptAttention, GptBlock for nothing; a
# separator that PascalCase never makes (`Gpt_Block`) is not how Python classes are spelled.


def lower_model(spec: Spec, graph: Graph) -> Component:
    """A spec's one model: its own class, and helpers named around it."""
    model = resolve(spec)
    part = lower_component(model, graph, "", "", spec.class_name)
    prefix = free_prefix("", spec.class_name, helper_suffixes(part, ""), {spec.class_name})
    return part if prefix == "" else lower_component(model, graph, "", prefix, spec.class_name)


def lower_parts(spec: Spec, graph: Graph) -> tuple[str, dict[str, Component]]:
    """A composite's Config class name and its components, each named around those before."""
    taken = {spec.class_name}
    config_name = free_prefix("", spec.class_name, ("Config",), taken) + "Config"
    taken.add(config_name)
    parts = {}
    for name, module in spec.components.items():
        parts[name] = lower_part(module, graph, name, spec.class_name, taken)
        taken |= class_names(parts[name])
    return config_name, parts


def lower_part(module: ModuleSpec, graph: Graph, name: str, owner: str,
               taken: set[str]) -> Component:
    """A composite's component `name`: its classes, named around the `taken` ones."""
    model = resolve_module(module)
    usual = pascal_case(name)
    part = lower_component(model, graph, name, usual, usual)
    prefix = free_prefix(usual, owner, ("", *helper_suffixes(part, usual)), taken)
    return part if prefix == usual else lower_component(model, graph, name, prefix, prefix)


def free_prefix(usual: str, owner: str, suffixes, taken: set[str]) -> str:
    """The first candidate prefix that gives every suffix a name neither taken nor reserved."""
    def is_free(prefix: str) -> bool:
        names = {prefix + suffix for suffix in suffixes}
        return not names & taken and all(is_free_class_name(name) for name in names)

    return next(filter(is_free, prefix_candidates(usual, owner)))


def prefix_candidates(usual: str, owner: str):
    yield usual
    yield owner + usual
    for number in itertools.count(2):
        yield f"{owner}{usual}{number}"


def helper_suffixes(part: Component, prefix: str) -> list[str]:
    """The suffixes of the classes a model defines besides its own (the last one)."""
    assert defined_name(part.classes[-1]) == part.class_name
    names = [config.name for config in part.configs]
    names += [defined_name(cls) for cls in part.classes[:-1]]
    assert all(name.startswith(prefix) for name in names)
    return [name[len(prefix):] for name in names]


def class_names(part: Component) -> set[str]:
    return {config.name for config in part.configs} | {defined_name(cls) for cls in part.classes}


def defined_name(cls) -> str:
    """The name of a class context: helpers keep it in `name`, models in `class_name`."""
    return getattr(cls, "name", getattr(cls, "class_name", ""))


def lower_component(model, graph: Graph, scope: str, prefix: str, class_name: str) -> Component:
    if isinstance(model, ResolvedXTransformer):
        return lower_xtransformer(model, graph, scope, prefix, class_name)
    layers = model if isinstance(model, ResolvedLayers) else model.layers
    config = f"{prefix}Config"
    classes = stack_classes(graph, layers, scope=scope, prefix=prefix, config=config,
                            cache=isinstance(model, ResolvedWrapper) and is_cacheable(model))
    blocks = f"{layers.depth} x Block"
    names = {"scope": scope, "prefix": prefix, "class_name": class_name, "config": config}
    if isinstance(model, ResolvedWrapper):
        top, fields, summary = wrapper_model(model, graph, **names)
        diagram = f"tokens (B, T) -> embeddings -> {blocks} -> logits (B, T, {model.num_tokens})"
    elif isinstance(model, ResolvedViT):
        top, fields, summary = vit_model(model, graph, **names)
        diagram = f"images (B, {model.channels}, {model.image_size}, {model.image_size}) -> " \
                  f"{model.num_patches} patches -> {blocks} -> mean -> logits (B, {model.num_classes})"
    elif isinstance(model, ResolvedContinuous):
        top, fields, summary = continuous_model(model, graph, **names)
        diagram = f"x (B, T, {model.dim_in or layers.dim}) -> {blocks} -> " \
                  f"(B, T, {model.dim_out or layers.dim})"
    else:
        top, fields, summary = bare_model(model, graph, **names)
        diagram = f"x (B, T, {layers.dim}) -> {blocks} -> (B, T, {layers.dim})"
    configs = (ConfigClass(config, tuple(fields) + stack_config(layers)),)
    return Component(configs, (*classes, top), class_name, config, top.parameters, summary, diagram)


# -- one stack, one model class ----------------------------------------------------------------


def wrapper_model(model: ResolvedWrapper, graph: Graph, scope: str, prefix: str, class_name: str,
                  config: str, attn_mask: bool = False):
    """A TransformerWrapper: token ids in, logits (or embeddings) out."""
    layers = model.layers
    cross = layers.cross_attention is not None
    has_prepend = any(op.kind is OpKind.PREPEND for op in scoped(graph, scope))
    parameters = ["x: Tensor", "*", f"mask: {OPTIONAL}"]
    parameters += [f"context: {OPTIONAL}", f"context_mask: {OPTIONAL}"] if cross else []
    parameters += [f"attn_mask: {OPTIONAL}"] if attn_mask else []
    parameters += [f"prepend_embeds: {OPTIONAL}"] if has_prepend else []
    has_logits = any(op.kind is OpKind.LOGITS for op in scoped(graph, scope))
    parameters += ["return_embeddings: bool = False"] if has_logits else []
    generative, cacheable = is_generative(model), is_cacheable(model)
    parameters += ["cache: ModelCache | None = None"] if cacheable else []
    parameters += [f"seq_start_pos: {OPTIONAL}"] if generative else []
    limit = "self.config.max_seq_len" if length_limit(model) else "None"
    cached = ", cached" if cacheable else ""
    checks = ["cached = 0 if cache is None else cache.length"] if cacheable else []
    checks += [f"check_tokens(x, self.config.num_tokens, {limit}{cached})",
               f"check_mask(mask, x{cached})"]
    checks += context_checks(layers) if cross else []
    if has_prepend:
        width = "emb_dim" if model.emb_dim != layers.dim else "dim"
        checks.append(f"check_context(prepend_embeds, self.config.{width}, x.shape[0], "
                      '"prepend_embeds", required=False)')
    ops, imports = top_level_ops(graph, scope, model, block_call(layers, attn_mask), prefix,
                                 generative, cacheable)
    if not has_logits:
        ops.append(OpContext("ops/return_hidden.py.jinja"))
    imports.add(runtime("checks", check_imports(checks)))
    what = "causal language model" if layers.causal else "bidirectional encoder"
    returns = "logits (B, T, num_tokens)" if has_logits else "embeddings (B, T, dim)"
    cls = ModelClass(class_name, config,
                     f"The {what}: embeddings, blocks, final norm{' and the logits head' if has_logits else ''}.",
                     f"{returns[0].upper()}{returns[1:]} for token ids x (B, T); mask (B, T) is True "
                     "where x is real.",
                     tuple(parameters), tuple(checks), tuple(ops), frozenset(imports),
                     generative=generative, cacheable=cacheable, cross=cross, length_limit=limit,
                     cache_heads="kv_heads" if layers.attention and layers.attention.kv_heads else "heads",
                     cache_value_dim=bool(layers.attention and layers.attention.value_dim_head))
    fields = wrapper_config(model)
    stack = "Decoder" if layers.causal else "Encoder"
    kind = "decoder-only (GPT-style)" if layers.causal else "encoder-only (BERT-style)"
    article = "a" if layers.causal else "an"
    summary = f"{article} {kind} transformer, x-transformers TransformerWrapper + {stack}."
    return cls, fields, summary


def is_generative(model) -> bool:
    """A TransformerWrapper around a Decoder: it has loss() and generate()."""
    layers = model.layers
    return isinstance(model, ResolvedWrapper) and layers.causal and layers.attention is not None


def is_cacheable(model) -> bool:
    """Memory tokens are prepended at every call, so a cache of past keys cannot serve them
    (x-transformers' can_cache_kv, in TransformerWrapper.__init__); token shifting reads earlier
    inputs, which the cache does not keep (x-transformers caches anyway and then shifts in
    zeros)."""
    return (is_generative(model) and model.num_memory_tokens == 0
            and not model.layers.uses_previous_tokens and not model.layers.layout)


def length_limit(model: ResolvedWrapper | ResolvedContinuous) -> int | None:
    """The longest input the emitted model accepts: max_seq_len where positions are learned
    (one embedding row per position, so the run-time check refuses longer inputs); None where
    any length runs (no absolute positions, or scaled sinusoidal ones). `xtc inspect` warns by
    the same rule."""
    return model.max_seq_len if model.positions == "learned" else None


def bare_model(layers: ResolvedLayers, graph: Graph, scope: str, prefix: str, class_name: str,
               config: str):
    """An Encoder / Decoder / CrossAttender on its own: vectors (B, T, dim) in and out."""
    cross = layers.cross_attention is not None
    parameters = ["x: Tensor", "*", f"mask: {OPTIONAL}"]
    parameters += [f"context: {OPTIONAL}", f"context_mask: {OPTIONAL}"] if cross else []
    checks = ["check_features(x, self.config.dim)", "check_mask(mask, x)"]
    checks += context_checks(layers) if cross else []
    ops, imports = top_level_ops(graph, scope, layers, block_call(layers, False), prefix)
    ops.insert(0, OpContext("ops/input.py.jinja"))
    ops.append(OpContext("ops/return_hidden.py.jinja"))
    imports.add(runtime("checks", check_imports(checks)))
    cls = ModelClass(class_name, config, f"A bare {layer_class_name(layers)} layer stack.",
                     "Hidden states (B, T, dim) for inputs x (B, T, dim).", tuple(parameters),
                     tuple(checks), tuple(ops), frozenset(imports))
    return cls, (), f"a bare x-transformers {layer_class_name(layers)}."


def vit_model(model: ResolvedViT, graph: Graph, scope: str, prefix: str, class_name: str,
              config: str):
    """Patches, positions, [register tokens], an Encoder, mean pool and a linear head."""
    layers = model.layers
    parameters = ["img: Tensor", "*", "return_embeddings: bool = False"]
    checks = ["check_image(img, self.config.channels, self.config.image_size)"]
    ops, imports = top_level_ops(graph, scope, model, block_call(layers, False, mask=False), prefix)
    ops.append(OpContext("ops/pool_head.py.jinja", {"head": model.num_classes is not None}))
    imports |= {REARRANGE, runtime("checks", "check_image")}
    cls = ModelClass(class_name, config,
                     "The vision transformer: patch embeddings, an encoder, and a classifier.",
                     "Class logits (B, num_classes) for images (B, channels, size, size)."
                     if model.num_classes is not None else
                     "The mean patch embedding (B, dim) for images (B, channels, size, size).",
                     tuple(parameters), tuple(checks), tuple(ops), frozenset(imports))
    return cls, vit_config(model), "a vision transformer, x-transformers ViTransformerWrapper."


def continuous_model(model: ResolvedContinuous, graph: Graph, scope: str, prefix: str,
                     class_name: str, config: str):
    """Vectors in, vectors out: bias-free projections around the layers."""
    layers = model.layers
    parameters = ["x: Tensor", "*", f"mask: {OPTIONAL}", "return_embeddings: bool = False"]
    limit = "self.config.max_seq_len" if length_limit(model) else "None"
    width = "dim_in" if model.dim_in is not None else "dim"
    checks = [f"check_features(x, self.config.{width}, {limit})", "check_mask(mask, x)"]
    ops, imports = top_level_ops(graph, scope, model, block_call(layers, False), prefix)
    if model.dim_in is None:
        ops.insert(0, OpContext("ops/input.py.jinja"))
    if model.dim_out is None:
        ops.append(OpContext("ops/return_hidden.py.jinja"))
    imports.add(runtime("checks", check_imports(checks)))
    cls = ModelClass(class_name, config,
                     "The continuous transformer: vectors in, vectors out.",
                     "Outputs (B, T, dim_out) for inputs x (B, T, dim_in); mask (B, T) is True "
                     "where x is real.", tuple(parameters), tuple(checks), tuple(ops),
                     frozenset(imports))
    return cls, continuous_config(model), \
        "a transformer over vectors, x-transformers ContinuousTransformerWrapper."


# -- XTransformer ------------------------------------------------------------------------------


def lower_xtransformer(model: ResolvedXTransformer, graph: Graph, scope: str, prefix: str,
                       class_name: str) -> Component:
    classes, configs = [], []
    for side, resolved in (("encoder", model.encoder), ("decoder", model.decoder)):
        side_prefix = f"{prefix}{side.capitalize()}"
        side_scope = f"{scope}.{side}" if scope else side
        config = f"{side_prefix}Config"
        classes += stack_classes(graph, resolved.layers, scope=side_scope, prefix=side_prefix,
                                 config=config, attn_mask=side == "encoder",
                                 cache=is_cacheable(resolved))
        cls, fields, _ = wrapper_model(resolved, graph, scope=side_scope, prefix=side_prefix,
                                       class_name=side_prefix, config=config,
                                       attn_mask=side == "encoder")
        classes.append(cls)
        configs.append(ConfigClass(config, tuple(fields) + stack_config(resolved.layers)))
    config = f"{prefix}Config"
    top_fields = (
        ConfigField("encoder", f"{prefix}EncoderConfig", f"field(default_factory={prefix}EncoderConfig)"),
        ConfigField("decoder", f"{prefix}DecoderConfig", f"field(default_factory={prefix}DecoderConfig)"),
        ConfigField("ignore_index", "int", repr(model.ignore_index), "target id the loss skips"),
        ConfigField("pad_value", "int", repr(model.pad_value), "decoder input for ignored ids"),
        ConfigField("cross_attn_tokens_dropout", "float", repr(model.cross_attn_tokens_dropout)),
    )
    configs.append(ConfigClass(config, top_fields))
    classes.append(XTransformerClass(class_name, config, f"{prefix}Encoder", f"{prefix}Decoder",
                                     model.tie_token_emb,
                                     drop_context_tokens=model.cross_attn_tokens_dropout > 0))
    summary = "an encoder-decoder transformer, x-transformers XTransformer."
    diagram = ("src (B, S) -> Encoder -> context; tgt (B, T) -> Decoder (cross-attending) "
               "-> next-token loss")
    parameters = ("src: Tensor", "tgt: Tensor", "*", f"mask: {OPTIONAL}",
                  f"attn_mask: {OPTIONAL}", f"src_prepend_embeds: {OPTIONAL}")
    return Component(tuple(configs), tuple(classes), class_name, config, parameters, summary,
                     diagram)


# -- the classes of a stack ---------------------------------------------------------------------


def stack_classes(graph: Graph, layers: ResolvedLayers, scope: str, prefix: str, config: str,
                  attn_mask: bool = False, cache: bool = False) -> list:
    ops = scoped(graph, scope)
    classes = []
    attention = shared_attrs(ops, OpKind.ATTENTION)
    if attention is not None:
        classes.append(AttentionClass(f"{prefix}Attention", config, attention.causal,
                                      attention.flash, attention.project_out,
                                      attention.dropout > 0, attention.num_mem_kv > 0, attn_mask,
                                      cache, attention.rotary, attention.bias,
                                      attention.rotate_heads > 0, attention.kv_heads > 0,
                                      attention.value_dim_head > 0, attention.qk_norm,
                                      attention.qk_norm_groups > 1, attention.qk_norm_dim_scale,
                                      attention.on_attn, attention.gate_values,
                                      attention.head_scale, talking_heads(attention),
                                      attention.sparse_topk > 0, attention.residual,
                                      xpos=layers.rotary is not None
                                      and layers.rotary.xpos_scale_base is not None))
    cross = shared_attrs(ops, OpKind.CROSS_ATTENTION)
    if cross is not None:
        classes.append(CrossAttentionClass(f"{prefix}CrossAttention", config, cross.flash,
                                           cross.project_out, cross.dropout > 0,
                                           cross.num_mem_kv > 0, cache, cross.residual))
    ff = shared_attrs(ops, OpKind.FEEDFORWARD)
    if ff is not None:  # a custom layout may have none (custom_layers: [a, a])
        activation, activation_name = ACTIVATIONS[ff.activation]
        classes.append(FeedForwardClass(f"{prefix}FeedForward", config, activation,
                                        activation_name, ff.glu, ff.bias, ff.dropout > 0,
                                        ff.post_act_ln))
    classes.append(block_class(graph, ops, layers, prefix, config, attn_mask, cache))
    return classes


def talking_heads(attrs) -> tuple[str, ...]:
    names = ("pre_talking_heads", "post_talking_heads", "pre_scale_post_talking_heads")
    return tuple(name for used, name in zip(attrs.talking_heads, names) if used)


def scoped(graph: Graph, scope: str) -> list[Op]:
    return [op for op in graph.ops() if op.scope == scope]


def shared_attrs(ops: list[Op], kind: OpKind):
    same = [op for op in ops if op.kind is kind]
    if not same:
        return None
    assert all(op.attrs == same[0].attrs for op in same), f"{kind.value} ops differ"
    return same[0].attrs


def block_class(graph: Graph, ops: list[Op], layers: ResolvedLayers, prefix: str, config: str,
                attn_mask: bool, cache: bool) -> BlockClass:
    """The residual sublayers of a block, in order, read from block 0 (all blocks agree)."""
    layouts: dict[int, list[BlockStep]] = {}
    norm_types = set()
    for op in ops:
        if op.kind is OpKind.RESIDUAL:
            step, norm_type = block_step(graph, op, layers.pre_norm, prefix, attn_mask, cache)
            layouts.setdefault(op.block, []).append(step)
            norm_types.add(norm_type)
    steps = layouts[0]
    assert all(layout == steps for layout in layouts.values()), "blocks differ in structure"
    steps = first_definitions(steps)
    imports = frozenset(NORM_IMPORTS[t] for t in norm_types if t in NORM_IMPORTS)
    if layers.scale_residual or layers.gate_residual:
        imports |= {runtime("layers", "Residual")}
    if layers.layerscale is not None:
        imports |= {TORCH}
    setup = ()
    if layers.token_shifts:
        imports |= {runtime("layers", "shift_tokens")}
        setup = ("self.token_shifts = config.token_shifts",)
    parameters = ["x: Tensor"]
    parameters += ["context: Tensor"] if layers.cross_attention is not None else []
    parameters += [f"mask: {OPTIONAL}"]
    parameters += [f"context_mask: {OPTIONAL}"] if layers.cross_attention is not None else []
    parameters += [f"attn_mask: {OPTIONAL}"] if attn_mask else []
    parameters += ["rotary: tuple[Tensor, Tensor, Tensor | float] | None = None"] if layers.rotary else []
    parameters += [f"bias: {OPTIONAL}"] if layers.position_bias is not None else []
    residual = residual_scores(layers)
    parameters += [f"{name}: {OPTIONAL}" for name in residual]
    parameters += ["cache: LayerCache | None = None"] if cache else []
    prologue = ["self_cache = cache.self_attn if cache is not None else None"] if cache else []
    if cache and layers.cross_attention is not None:
        prologue.append("cross_cache = cache.cross_attn if cache is not None else None")
    return BlockClass(f"{prefix}Block", config, layers.pre_norm, layers.layer_dropout > 0,
                      tuple(steps), tuple(parameters), imports, tuple(prologue), residual, setup)


BRANCHES = {
    OpKind.ATTENTION: ("Attention", "{x}, mask=mask"),
    OpKind.CROSS_ATTENTION: ("CrossAttention", "{x}, context, mask, context_mask"),
    OpKind.FEEDFORWARD: ("FeedForward", "{x}"),
}


def first_definitions(steps: list[BlockStep]) -> list[BlockStep]:
    """With an execution order a sublayer may run twice: define its modules once."""
    seen, result = set(), []
    for step in steps:
        if step.branch in seen:
            step = replace(step, norm_init="", branch_init="", inits=())
        seen.add(step.branch)
        result.append(step)
    return result


def block_step(graph: Graph, residual: Op, pre_norm: bool, prefix: str, attn_mask: bool,
               cache: bool) -> tuple[BlockStep, str]:
    branch = graph[residual.inputs[1]]
    post_norm = None
    if branch.kind is OpKind.NORM:  # sandwich norm: a norm on the sublayer's output
        post_norm, branch = branch, graph[branch.inputs[0]]
    norm = graph[branch.inputs[0]] if pre_norm else graph.users(residual.name)[0]
    assert norm.kind is OpKind.NORM and norm.block == residual.block
    class_name, call = BRANCHES[branch.kind]
    if attn_mask and branch.kind is OpKind.ATTENTION:
        call += ", attn_mask=attn_mask"
    if branch.kind is OpKind.ATTENTION and branch.attrs.rotary:
        call += ", rotary=rotary"
    if branch.kind is OpKind.ATTENTION and branch.attrs.bias:
        call += ", bias=bias"
    if cache and branch.kind is OpKind.ATTENTION:
        call += ", cache=self_cache"
    if cache and branch.kind is OpKind.CROSS_ATTENTION:
        call += ", cross_cache"
    norm_name = NORM_NAME[norm.attrs.norm_type]
    branch_input = f"self.{norm.role}(x)" if pre_norm else "x"
    if residual.attrs.token_shifts:  # attention passes its mask on; feedforward has none
        mask = ", mask" if branch.kind is not OpKind.FEEDFORWARD else ""
        branch_input = f"shift_tokens({branch_input}, self.token_shifts{mask})"
    branch_call = f"self.{branch.role}({call.format(x=branch_input)})"
    lines, inits, res = [], [], residual.attrs
    if branch.kind in (OpKind.ATTENTION, OpKind.CROSS_ATTENTION) and branch.attrs.residual:
        scores = "prev_scores" if branch.kind is OpKind.ATTENTION else "prev_cross_scores"
        lines.append(f"out, {scores} = {branch_call[:-1]}, prev_scores={scores})")
        branch_call = "out"
    elif post_norm is not None or res.layerscale is not None or res.scale_residual or res.gated:
        lines.append(f"out = {branch_call}")
        branch_call = "out"
    if res.branch_scale != 1.0:  # macaron: half a feedforward on each side of attention
        if branch_call == "out":
            lines.append(f"out = out * {res.branch_scale!r}")
        else:
            branch_call = f"{branch_call} * {res.branch_scale!r}"
    if res.layerscale is not None:  # LayerScale (CaiT, https://arxiv.org/abs/2103.17239)
        inits.append(f"self.{branch.role}_layerscale = nn.Parameter(torch.full((config.dim,), "
                     f"{float(res.layerscale)!r}))")
        lines.append(f"out = out * self.{branch.role}_layerscale")
    if post_norm is not None:  # sandwich norm (CogView, https://arxiv.org/abs/2105.13290)
        inits.append(f"self.{post_norm.role} = {NORM_INIT[post_norm.attrs.norm_type].format(width='dim')}")
        lines.append(f"out = self.{post_norm.role}(out)")
    combined = f"x + {branch_call}"
    if res.scale_residual or res.gated:
        inits.append(f"self.{branch.role}_residual = Residual(config.dim"
                     f"{', scale_residual=True' if res.scale_residual else ''}"
                     f"{', gated=True' if res.gated else ''})")
        combined = f"self.{branch.role}_residual({branch_call}, x)"
    half = f"{res.branch_scale!r} * " if res.branch_scale != 1.0 else ""
    if pre_norm:
        update = combined
        diagram = f"x + {half}{class_name}({norm_name}(x))"
    else:
        update = f"self.{norm.role}({combined})"
        diagram = f"{norm_name}(x + {half}{class_name}(x))"
    step = BlockStep(norm=norm.role, norm_init=NORM_INIT[norm.attrs.norm_type].format(width="dim"),
                     branch=branch.role, branch_init=f"{prefix}{class_name}(config)",
                     update=update, diagram=diagram, lines=tuple(lines), inits=tuple(inits))
    return step, norm.attrs.norm_type


def residual_scores(layers: ResolvedLayers) -> tuple[str, ...]:
    """The score tensors a block passes on for residual attention."""
    names = ("prev_scores",) if layers.attention and layers.attention.residual else ()
    cross = layers.cross_attention
    return names + (("prev_cross_scores",) if cross is not None and cross.residual else ())


def block_call(layers: ResolvedLayers, attn_mask: bool, mask: bool = True) -> str:
    arguments = "h"
    arguments += ", context" if layers.cross_attention is not None else ""
    arguments += ", mask=mask" if mask else ""
    arguments += ", rotary=rotary" if layers.rotary is not None else ""
    arguments += ", bias=bias" if layers.position_bias is not None else ""
    arguments += ", context_mask=context_mask" if layers.cross_attention is not None else ""
    return arguments + (", attn_mask=attn_mask" if attn_mask else "")


# -- the top-level ops of a model class ---------------------------------------------------------


def top_level_ops(graph: Graph, scope: str, model, call: str, prefix: str,
                  generative: bool = False, cacheable: bool = False) -> tuple[list, set]:
    """Op contexts for the ops outside the blocks, in forward order, and their imports."""
    layers = model if isinstance(model, ResolvedLayers) else model.layers
    emb_dim = getattr(model, "emb_dim", layers.dim)
    width, symbol = ("emb_dim", "E") if emb_dim != layers.dim else ("dim", "C")
    ops, imports, blocks_seen = [], set(), False
    head = any(op.kind in (OpKind.LOGITS, OpKind.POOL) or op.role == "project_out"
               for op in scoped(graph, scope))
    for op in scoped(graph, scope):
        if op.kind is OpKind.OUTPUT and op.attrs.name == "embeddings" and head:
            ops.append(OpContext("ops/return_embeddings.py.jinja"))
            continue
        if op.block is not None:
            if not blocks_seen:
                residual = residual_scores(layers)
                local = [name.removeprefix("prev_") for name in residual]
                ops.append(OpContext("ops/blocks.py.jinja", {
                    "block": f"{prefix}Block", "cache": cacheable, "tied": layers.weight_tie,
                    "residual": " = ".join(local),
                    "call": call + "".join(f", {n}={v}" for n, v in zip(residual, local)),
                    "target": ", ".join(["h", *local])}))
                blocks_seen = True
            continue
        context = top_level_op(op, width, symbol, imports)
        if context is not None and op.kind in (OpKind.ROTARY, OpKind.POSITION_BIAS):
            keys = "cached + h.shape[1]" if cacheable else "h.shape[1]"
            context = OpContext(context.template, {**context.args, "keys": keys})
        if context is not None and op.kind is OpKind.POSITION_EMBEDDING:
            context = OpContext(context.template, {**context.args, "generative": generative,
                                                   "cache": cacheable})
        if context is not None:
            ops.append(context)
    return ops, imports


def top_level_op(op: Op, width: str, symbol: str, imports: set) -> OpContext | None:
    """The op context of a model-level op, or None for ops that render as part of another
    (the embedding sum, mask padding, inputs) or not at all."""
    attrs, kind = op.attrs, op.kind
    if kind is OpKind.TOKEN_EMBEDDING:
        if attrs.l2norm:
            imports.add(FUNCTIONAL)
        return OpContext("ops/token_embedding.py.jinja",
                         {"width": width, "symbol": symbol, "l2norm": attrs.l2norm, "reset": True})
    if kind is OpKind.POSITION_EMBEDDING and attrs.scheme != "patches":  # ViT's: with patches
        return position_op(op, width, symbol, imports)
    if kind is OpKind.PATCH_EMBEDDING:
        imports.add(TORCH)
        return OpContext("ops/patch_embedding.py.jinja")
    if kind is OpKind.NORM:
        norm_width = width if op.role == "post_emb_norm" else "dim"
        if attrs.norm_type in NORM_IMPORTS:
            imports.add(NORM_IMPORTS[attrs.norm_type])
        return OpContext("ops/norm.py.jinja", {
            "name": op.role, "init": NORM_INIT[attrs.norm_type].format(width=norm_width)})
    if kind is OpKind.DROPOUT:
        return OpContext("ops/dropout.py.jinja", {"name": op.role})
    if kind is OpKind.PROJECT:
        return project_op(op)
    if kind is OpKind.MEMORY_TOKENS:
        imports |= {TORCH} | ({FUNCTIONAL} if not attrs.at_end else set())
        return OpContext("ops/memory_tokens.py.jinja", {
            "name": op.role, "count": f"num_{op.role}", "at_end": attrs.at_end})
    if kind is OpKind.PREPEND:
        imports |= {TORCH, FUNCTIONAL}
        return OpContext("ops/prepend.py.jinja")
    if kind is OpKind.STRIP:
        count = "num_register_tokens" if attrs.at_end else "num_memory_tokens"
        return OpContext("ops/strip.py.jinja", {"count": count, "at_end": attrs.at_end})
    if kind is OpKind.LOGITS:
        return OpContext("ops/logits.py.jinja", {"tied": attrs.tied})
    if kind is OpKind.ROTARY:
        imports.add(runtime("positions", "RotaryEmbedding"))
        return OpContext("ops/rotary.py.jinja", {"arguments": rotary_arguments(attrs)})
    if kind is OpKind.POSITION_BIAS:
        name, arguments = POSITION_BIASES[attrs.scheme]
        imports.add(runtime("biases", name))
        return OpContext("ops/position_bias.py.jinja", {
            "init": f"{name}({arguments.format(causal=attrs.causal, norm=', norm=True' if attrs.norm else '')})"})
    return None


POSITION_BIASES = {
    "alibi": ("AlibiBias", "config.heads, config.alibi_heads"),
    "t5": ("T5RelativeBias", ("config.heads, config.rel_pos_num_buckets, "
                              "config.rel_pos_max_distance, causal={causal}, "
                              "scale=config.dim_head**0.5")),
    "dynamic": ("DynamicPositionBias", ("config.dim // 4, config.heads, "
                                        "config.dynamic_pos_bias_mlp_depth, "
                                        "config.dynamic_pos_bias_log_distance{norm}")),
}


def rotary_arguments(attrs) -> str:
    """RotaryEmbedding's arguments: the rotated and the head width, and the options the spec
    sets."""
    arguments = ["config.rotary_dim", "config.dim_head"]
    if attrs.interpolation_factor != 1.0:
        arguments.append("interpolation_factor=config.rotary_interpolation_factor")
    if attrs.base_rescale_factor != 1.0:
        arguments.append("base_rescale_factor=config.rotary_base_rescale_factor")
    if attrs.xpos_scale_base is not None:
        arguments.append("xpos_scale_base=config.rotary_xpos_scale_base")
    return ", ".join(arguments)


def position_op(op: Op, width: str, symbol: str, imports: set) -> OpContext:
    attrs = op.attrs
    imports.add(TORCH)  # torch.arange for the positions
    if attrs.scheme == "scaled_sinusoidal":
        imports.add(runtime("positions", "ScaledSinusoidalEmbedding"))
    if attrs.l2norm:
        imports.add(FUNCTIONAL)
    return OpContext("ops/position_embedding.py.jinja", {
        "scheme": attrs.scheme, "width": width, "symbol": symbol, "l2norm": attrs.l2norm,
        "reset": attrs.scheme == "learned" and attrs.l2norm, "generative": False, "cache": False})


def project_op(op: Op) -> OpContext:
    """A linear map: the embedding projection, a continuous model's projections, ViT's head."""
    fields = {"project_emb": ("emb_dim", "dim"), "project_in": ("dim_in", "dim"),
              "project_out": ("dim", "dim_out"), "mlp_head": ("dim", "num_classes")}
    dim_in, dim_out = fields[op.role]
    template = "ops/project_head.py.jinja" if op.role in ("project_out", "mlp_head") else "ops/project.py.jinja"
    return OpContext(template, {"name": op.role, "dim_in": dim_in, "dim_out": dim_out,
                                "bias": op.attrs.bias})


def context_checks(layers: ResolvedLayers) -> list[str]:
    return ["check_context(context, self.config.dim_context, x.shape[0])",
            "check_mask(context_mask, context)"]


def check_imports(checks: list[str]) -> str:
    return ", ".join(sorted({line.split("(")[0] for line in checks if line.startswith("check_")}))


def layer_class_name(layers: ResolvedLayers) -> str:
    if layers.attention is None:
        return "CrossAttender"
    return "Decoder" if layers.causal else "Encoder"


# -- configs ------------------------------------------------------------------------------------


def fields_from(rows) -> tuple[ConfigField, ...]:
    """ConfigFields from (used, name, type, value, comment) rows, keeping the used ones."""
    return tuple(ConfigField(name, type_, repr(value), comment)
                 for used, name, type_, value, comment in rows if used)


def stack_config(layers: ResolvedLayers) -> tuple[ConfigField, ...]:
    attn, cross, ff = layers.attention, layers.cross_attention, layers.feedforward
    heads = (attn or cross).heads
    rotary, bias = layers.rotary, layers.position_bias
    scheme = bias.scheme if bias else ""
    return fields_from([
        (True, "dim", "int", layers.dim, ""),
        (True, "depth", "int", layers.depth, "one block holds the custom layout" if layers.layout else ""),
        (True, "heads", "int", heads, ""),
        (attn is not None, "dim_head", "int", attn and attn.dim_head, ""),
        (True, "ff_inner_dim", "int", ff.inner_dim, "feedforward width"),
        (attn is not None and attn.dropout > 0, "attn_dropout", "float", attn and attn.dropout,
         "on attention weights"),
        (ff.dropout > 0, "ff_dropout", "float", ff.dropout, "after the activation"),
        (layers.layer_dropout > 0, "layer_dropout", "float", layers.layer_dropout, "stochastic depth"),
        (attn is not None and attn.num_mem_kv > 0, "num_mem_kv", "int", attn and attn.num_mem_kv,
         "persistent memory slots"),
        (attn is not None and attn.kv_heads > 0, "kv_heads", "int", attn and attn.kv_heads,
         "key / value heads (grouped-query attention)"),
        (attn is not None and attn.value_dim_head > 0, "value_dim_head", "int",
         attn and attn.value_dim_head, ""),
        (attn is not None and attn.qk_norm and attn.qk_norm_groups > 1, "qk_norm_groups", "int",
         attn and attn.qk_norm_groups, ""),
        (attn is not None and attn.sparse_topk > 0, "sparse_topk", "int", attn and attn.sparse_topk,
         "scores kept per row"),
        (attn is not None and attn.qk_norm and not attn.qk_norm_dim_scale, "qk_norm_scale",
         "float", attn and float(attn.qk_norm_scale), "attention scale under qk-norm"),
        (cross is not None, "dim_context", "int", cross and cross.dim_context, "cross-attention"),
        (cross is not None, "cross_dim_head", "int", cross and cross.dim_head, ""),
        (cross is not None and cross.dropout > 0, "cross_attn_dropout", "float",
         cross and cross.dropout, ""),
        (cross is not None and cross.num_mem_kv > 0, "cross_num_mem_kv", "int",
         cross and cross.num_mem_kv, ""),
        (rotary is not None, "rotary_dim", "int", rotary and rotary.dim, "rotated features per head"),
        (rotary is not None and rotary.interpolation_factor != 1.0, "rotary_interpolation_factor",
         "float", rotary and rotary.interpolation_factor, ""),
        (rotary is not None and rotary.base_rescale_factor != 1.0, "rotary_base_rescale_factor",
         "float", rotary and rotary.base_rescale_factor, ""),
        (rotary is not None and rotary.xpos_scale_base is not None, "rotary_xpos_scale_base",
         "float", rotary and rotary.xpos_scale_base, "xPos"),
        (rotary is not None and rotary.rotate_heads > 0, "rotate_num_heads", "int",
         rotary and rotary.rotate_heads, "heads that get rotary"),
        (scheme == "alibi", "alibi_heads", "int", bias and bias.alibi_heads, "heads with ALiBi"),
        (scheme == "t5", "rel_pos_num_buckets", "int", bias and bias.num_buckets, ""),
        (scheme == "t5", "rel_pos_max_distance", "int", bias and bias.max_distance, ""),
        (scheme == "dynamic", "dynamic_pos_bias_mlp_depth", "int", bias and bias.mlp_depth, ""),
        (scheme == "dynamic", "dynamic_pos_bias_log_distance", "bool", bias and bias.log_distance,
         ""),
        (bool(layers.token_shifts), "token_shifts", "tuple[int, ...]", layers.token_shifts,
         "shift of each feature chunk (shift_tokens)"),
    ])


def wrapper_config(model: ResolvedWrapper) -> tuple[ConfigField, ...]:
    return fields_from([
        (True, "num_tokens", "int", model.num_tokens, ""),
        (True, "max_seq_len", "int", model.max_seq_len, ""),
        (model.emb_dim != model.layers.dim, "emb_dim", "int", model.emb_dim, "embedding width"),
        (model.emb_dropout > 0, "emb_dropout", "float", model.emb_dropout, ""),
        (model.num_memory_tokens > 0, "num_memory_tokens", "int", model.num_memory_tokens, ""),
        (model.tie_embedding, "tie_embedding_scale", "float", model.tie_embedding_scale, ""),
    ])


def vit_config(model: ResolvedViT) -> tuple[ConfigField, ...]:
    return fields_from([
        (True, "image_size", "int", model.image_size, ""),
        (True, "patch_size", "int", model.patch_size, ""),
        (True, "channels", "int", model.channels, ""),
        (model.num_classes is not None, "num_classes", "int", model.num_classes, ""),
        (True, "num_patches", "int", model.num_patches, "(image_size // patch_size) ** 2"),
        (True, "patch_dim", "int", model.patch_dim, "channels * patch_size ** 2"),
        (model.emb_dropout > 0, "emb_dropout", "float", model.emb_dropout, ""),
        (model.num_register_tokens > 0, "num_register_tokens", "int", model.num_register_tokens,
         ""),
    ])


def continuous_config(model: ResolvedContinuous) -> tuple[ConfigField, ...]:
    return fields_from([
        (model.max_seq_len is not None, "max_seq_len", "int", model.max_seq_len, ""),
        (model.dim_in is not None, "dim_in", "int", model.dim_in, ""),
        (model.dim_out is not None, "dim_out", "int", model.dim_out, ""),
        (model.emb_dropout > 0, "emb_dropout", "float", model.emb_dropout, ""),
        (model.num_memory_tokens > 0, "num_memory_tokens", "int", model.num_memory_tokens, ""),
    ])


# -- composites ---------------------------------------------------------------------------------

PRIMARY_INPUTS = {"XTransformer": ("src", "tgt"), "ViTransformerWrapper": ("img",)}


def lower_composite(spec: Spec, graph: Graph) -> ModuleContext:
    """Each component lowered under its own prefix, then one class whose forward is the wiring
    (docs/spec-language.md): unfed primary inputs positional, every other argument keyword-only
    as `<component>_<arg>`, producers called with return_embeddings=True."""
    config_name, parts = lower_parts(spec, graph)
    fed = {(c.target, c.argument): output_name(c.source) for c in spec.connections}
    producers = {c.source for c in spec.connections}
    for connection in spec.connections:  # a context's padding mask travels with it
        if connection.argument == "context" and has_parameter(parts[connection.source], "mask"):
            fed[(connection.target, "context_mask")] = f"{connection.source}_mask"
    primaries = [(name, arg) for name, module in spec.components.items()
                 for arg in PRIMARY_INPUTS.get(module.type, ("x",))]
    counts = {arg: sum(1 for _, a in primaries if a == arg) for _, arg in primaries}
    positional = {(name, arg): arg if counts[arg] == 1 else f"{name}_{arg}" for name, arg in primaries}
    keywords, calls = [], []
    order = component_order(spec)
    for name in order:
        arguments = []
        for parameter in parts[name].parameters:
            arg = parameter.split(":")[0]
            if arg == "*":
                continue
            value = call_value(name, arg, fed, positional, producers, keywords, parameter)
            if value is not None:
                arguments.append(value if (name, arg) in positional else f"{arg}={value}")
        sink = name not in producers
        calls.append(composite_call(name, arguments, sink))
    sink = next(name for name in order if name not in producers)
    unfed = [p for key, p in positional.items() if key not in fed]
    parameters = (*(f"{p}: Tensor" for p in unfed), *(["*"] if keywords else []), *keywords)
    configs = tuple(config for part in parts.values() for config in part.configs)
    top_config = ConfigClass(config_name, tuple(
        ConfigField(name, part.config, f"field(default_factory={part.config})")
        for name, part in parts.items()))
    wiring = tuple(f"{c.source} -> {c.target}.{c.argument}" for c in spec.connections)
    composite = CompositeClass(spec.class_name, top_config.name,
                               tuple((name, part.class_name) for name, part in parts.items()),
                               parameters, tuple(calls), wiring, parts[sink].class_name)
    classes = tuple(cls for part in parts.values() for cls in part.classes)
    summary = f"a composite of {len(parts)} models: {', '.join(spec.components)}."
    return module_context(spec, summary, "; ".join(wiring) or "one component",
                          (*configs, top_config), (*classes, composite))


def has_parameter(part: Component, arg: str) -> bool:
    return any(p.split(":")[0] == arg for p in part.parameters)


def call_value(name: str, arg: str, fed: dict, positional: dict, producers: set, keywords: list,
               parameter: str) -> str | None:
    """What a component's forward argument gets: a producer's output, a composite input, or
    True for a producer's return_embeddings."""
    if (name, arg) in fed:
        return fed[(name, arg)]
    if (name, arg) in positional:
        return positional[(name, arg)]
    if arg == "return_embeddings" and name in producers:
        return "True"
    keyword = f"{name}_{arg}"
    keywords.append(f"{keyword}{parameter[len(arg):]}")
    return keyword


def output_name(component: str) -> str:
    """The local that holds a producer's output. Not the component's bare name, which may be
    `self` or the name of an input (`x`); no forward argument ends in `_out`, so no
    `<component>_<arg>` keyword can be named like it either."""
    return f"{component}_out"


def composite_call(name: str, arguments: list[str], sink: bool) -> str:
    """One line when it fits in 100 columns (indented 8), else one argument per line."""
    head = "return " if sink else f"{output_name(name)} = "
    line = f"{head}self.{name}({', '.join(arguments)})"
    if len(line) + 8 <= 100:
        return line
    inner = "".join(f"\n            {argument}," for argument in arguments)
    return f"{head}self.{name}({inner}\n        )"
