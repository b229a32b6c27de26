"""Where the layer stacks of a spec are, for checks that look at every Encoder / Decoder."""

from __future__ import annotations

from collections.abc import Iterator

from xtc.spec import ModuleSpec, Spec
from xtc.spec.keywords import LAYER_TYPES


def layer_modules(spec: Spec) -> Iterator[ModuleSpec]:
    """Every Encoder / Decoder / CrossAttender module in the spec, outermost first."""
    roots = [spec.model] if spec.model is not None else list(spec.components.values())
    stack = [module for module in roots if module is not None]
    while stack:
        module = stack.pop(0)
        if module.type in LAYER_TYPES:
            yield module
        stack.extend(module.children.values())


def option(module: ModuleSpec, key: str) -> object:
    """`attn.flash` reads the attn section; `rel_pos_bias` reads the module itself."""
    section, _, name = key.rpartition(".")
    return module.section(section)[name] if section else module[name]


def is_set(module: ModuleSpec, key: str) -> bool:
    """An option is set when it differs from off: True, a number, a list (never None/False/0)."""
    value = option(module, key)
    return value is not None and value is not False and value != 0 and value != ()
