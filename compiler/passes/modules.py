"""Where the modules of a spec are, for checks that look at every layer stack or wrapper."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from xtc.spec import Diagnostic, ModuleSpec, Spec
from xtc.spec.keywords import LAYER_TYPES


def all_modules(spec: Spec) -> Iterator[ModuleSpec]:
    """Every module in the spec, outermost first."""
    roots = [spec.model] if spec.model is not None else list(spec.components.values())
    queue = [module for module in roots if module is not None]
    while queue:
        module = queue.pop(0)
        yield module
        children = list(module.children.values())
        if module.type == "XTransformer":  # its sides take the model's `dim`, and the decoder
            # cross-attends (XTransformer.__init__): the checks see the keywords it passes
            children = [replace(side, options={**side.options, "dim": module["dim"],
                                               "cross_attend": side.type == "Decoder"})
                        for side in children]
        queue.extend(children)


def layer_modules(spec: Spec) -> Iterator[ModuleSpec]:
    """Every Encoder / Decoder / CrossAttender module in the spec, outermost first."""
    return (module for module in all_modules(spec) if module.type in LAYER_TYPES)


def never_padded(spec: Spec, layers: ModuleSpec) -> bool:
    """Whether a layer stack's inputs are never padded: a ViTransformerWrapper's (its patches
    are all real) takes no padding mask."""
    return any(module.type == "ViTransformerWrapper"
               and any(child.key == layers.key for child in module.children.values())
               for module in all_modules(spec))


def wrapper_modules(spec: Spec) -> Iterator[ModuleSpec]:
    """Every TransformerWrapper in the spec, with its layer stack as `children["attn_layers"]`."""
    return (module for module in all_modules(spec) if module.type == "TransformerWrapper")


def token_models(spec: Spec) -> Iterator[ModuleSpec]:
    """Every model that embeds token ids: TransformerWrappers and xVal models."""
    return (module for module in all_modules(spec)
            if module.type in ("TransformerWrapper", "XValTransformerWrapper"))


def diagnostic(spec: Spec, key: str, code: str, message: str, severity: str = "error") -> Diagnostic:
    """A diagnostic at a dotted key of the spec (or its nearest located parent)."""
    line, col = spec.location(key)
    return Diagnostic(spec.path, line, col, key, code, message, severity)


def option(module: ModuleSpec, key: str) -> object:
    """`attn.flash` reads the attn section; `rel_pos_bias` reads the module itself."""
    section, _, name = key.rpartition(".")
    return module.section(section)[name] if section else module[name]


def is_set(module: ModuleSpec, key: str) -> bool:
    """An option is set when it differs from off: True, a number, a list (never None/False/0)."""
    return is_on(option(module, key))


def set_in_one_layer(module: ModuleSpec, first: str, second: str) -> bool:
    """Whether two options are both set (is_set), in one layer where both are per-layer lists
    of one section (`attn.max_attend_past: [null, 4]` with `attn.use_latent_kv: [true,
    false]` never meet); lists of different sections count different layers, and meet where
    each is set anywhere."""
    values = option(module, first), option(module, second)
    lists = [value for value in values if isinstance(value, tuple)]
    if not lists or first.rpartition(".")[0] != second.rpartition(".")[0]:
        return is_set(module, first) and is_set(module, second)
    return any(all(is_on(value[index] if isinstance(value, tuple) else value) for value in values)
               for index in range(len(lists[0])))


def is_on(value) -> bool:
    return value is not None and value is not False and value != 0 and value != ()


def each_value(value) -> tuple:
    """The values of an option: a per-layer list's, or the one value."""
    return value if isinstance(value, tuple) else (value,)
