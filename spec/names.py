"""Rules for the spec's `name`: it becomes the generated class name, so it must be a safe,
non-shadowing identifier once PascalCased.

>>> name_problem("gpt_small") is None
True
>>> name_problem("none")
"PascalCased name 'None' is a Python keyword"
"""

from __future__ import annotations

import builtins
import keyword
import re

from .diagnostics import echo
from .model import pascal_case

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME_LENGTH = 64

# Class and module-level names that generated modules define or import (the runtime's classes
# too: `--standalone` copies them in); tests/test_names.py checks that every class the goldens
# define and every class of runtime/ is listed here, so a spec name can never shadow one of them
# (`name: model_cache` would replace the imported ModelCache).
_STACK_CLASSES = ("Config", "Attention", "CrossAttention", "FeedForward", "Block")
RESERVED_CLASS_NAMES = frozenset({
    *_STACK_CLASSES,
    *(f"{side}{name}" for side in ("Encoder", "Decoder") for name in _STACK_CLASSES),
    "Layers", "TokenEmbedding", "AbsolutePositionalEmbedding", "LayerNorm", "RMSNorm",
    "ScaleNorm", "ReluSquared", "ScaledSinusoidalEmbedding", "Encoder", "Decoder",
    "CrossAttender", "TransformerWrapper", "ViTransformerWrapper", "ContinuousTransformerWrapper",
    "XTransformer", "Model", "Module", "Tensor", "F", "Optional", "Any",
    # runtime/
    "AlibiBias", "T5RelativeBias", "DynamicPositionBias", "KVCache", "ContextCache", "LayerCache",
    "ModelCache", "Residual", "SimpleRMSNorm", "RotaryEmbedding",
})


# A component becomes an attribute of the composite (`self.<name>`), a field of its Config
# dataclass and a prefix of its forward arguments: it must not replace what nn.Module defines
# (tests/test_names.py compares the list with torch's), the composite's own members, or the
# `field` that the Config class body calls after each entry.
MODULE_MEMBERS = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "type", "xpu", "zero_grad", "training",
})
RESERVED_COMPONENT_NAMES = MODULE_MEMBERS | {"config", "generate", "loss", "new_cache", "field",
                                             "dataclass"}


def component_name_problem(name: str) -> str | None:
    """Why `name` cannot name a component, or None."""
    if not NAME_PATTERN.fullmatch(name):
        return f"component names must match [a-z][a-z0-9_]*, got {echo(name)}"
    if name in RESERVED_COMPONENT_NAMES:
        return (f"{name!r} would replace the model's own {name!r} (an nn.Module member or a name "
                "the emitted module uses); choose another name")
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a spec, or None."""
    if not NAME_PATTERN.fullmatch(name):
        return f"must match [a-z][a-z0-9_]*, got {echo(name)}"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
    class_name = pascal_case(name)
    if keyword.iskeyword(class_name) or keyword.issoftkeyword(class_name):
        return f"PascalCased name {class_name!r} is a Python keyword"
    if class_name in RESERVED_CLASS_NAMES:
        return f"PascalCased name {class_name!r} collides with a class the generated module defines"
    if hasattr(builtins, class_name):
        return f"PascalCased name {class_name!r} shadows a Python builtin"
    return None
