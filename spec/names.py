"""Rules for the names a spec writes. Its `name` becomes the class of the model, which the API
looks up by that name; a component's name becomes an attribute, a Config field and the prefix
of its classes. Every other class name is the compiler's to choose, and it chooses around these
(compiler/lower.py, "class names"), so what stays refused is what the spec's own class or a
component's attribute would break: keywords, builtins, imported names, `nn.Module` members.

>>> name_problem("gpt_small") is None, name_problem("model") is None
(True, True)
>>> name_problem("none")
"PascalCased name 'None' is a Python keyword; choose another name, such as 'none_v1' or 'my_none'"
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable

from .diagnostics import echo
from .model import pascal_case

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME_LENGTH = 64

# The capitalised names an emitted module binds without defining them: torch's `Tensor` and `F`,
# `Callable` (collections.abc, which a standalone module's copied runtime imports), and the
# classes of xtc.runtime (imported, or copied in by `--standalone`). The spec's class must
# not replace one (`name: model_cache` would shadow the imported ModelCache), and the compiler
# gives no other class such a name; tests/test_names.py checks the list against runtime/ and the
# goldens.
IMPORTED_NAMES = frozenset({
    "F", "Tensor", "Callable",
    "AlibiBias", "ContextCache", "ContextualPositions", "DynamicPositionBias", "HeadRMSNorm", "KVCache", "LayerCache",
    "ModelCache", "RMSNorm", "EpsRMSNorm", "ReluSquared", "SoLU", "softclamp", "Residual", "RotaryEmbedding", "ScaleNorm",
    "ScaledSinusoidalEmbedding", "SimpleRMSNorm", "AdaptiveLayerNorm", "AdaptiveRMSNorm", "T5RelativeBias",
    "ProjectedDistanceBias",
    "DataDependentAlibi", "PerRowDataDependentAlibi",
    "LatentCache", "PositionCache", "PolarEmbedding", "LayerAttention", "LayerMix", "SkipCombine",
    "LoopedCache", "EarlyExit",
    "MeanSplitResidual",
    "Reinjection",
    "HyperConnection", "GatedMultiResidual", "DynamicTanh", "Derf",
    "LossBreakdown", "NamedTuple", "NumberGeneration",
    "AttentionPool", "PoolingAttention", "PoolingBlock",
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


def is_free_class_name(name: str) -> bool:
    """Whether a module-level class may be called `name`: no keyword, builtin or import."""
    return class_name_problem(name) is None


def class_name_problem(class_name: str) -> str | None:
    """Why a module-level class (the spec's, above all) cannot be called `class_name`, or None."""
    if keyword.iskeyword(class_name) or keyword.issoftkeyword(class_name):
        return f"PascalCased name {class_name!r} is a Python keyword"
    if class_name in IMPORTED_NAMES:
        return f"PascalCased name {class_name!r} collides with a name the generated module imports"
    if hasattr(builtins, class_name):
        return f"PascalCased name {class_name!r} shadows a Python builtin"
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a spec, or None."""
    if not NAME_PATTERN.fullmatch(name):
        return f"must match [a-z][a-z0-9_]*, got {echo(name)}"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
    problem = class_name_problem(pascal_case(name))
    if problem:
        return with_alternatives(problem, name,
                                 lambda other: is_free_class_name(pascal_case(other)))
    return None


def component_name_problem(name: str) -> str | None:
    """Why `name` cannot name a component, or None. Only the attribute can clash: the compiler
    names the component's classes around every other name (`none` gets class PaliNone in a
    composite `pali`, since None is a keyword)."""
    if not NAME_PATTERN.fullmatch(name):
        return f"component names must match [a-z][a-z0-9_]*, got {echo(name)}"
    if len(name) > MAX_NAME_LENGTH:
        return f"component names must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
    if "__" in name:  # op names join a component and its nested models with "__"
        return (f"component names may not hold a double underscore, got {echo(name)}; "
                f"choose another name, such as {name.replace('__', '_')!r}")
    if keyword.iskeyword(name):  # `self.class = ...` does not parse
        problem = f"{name!r} is a Python keyword, which cannot name an attribute"
    elif name in RESERVED_COMPONENT_NAMES:
        problem = (f"{name!r} would replace the model's own {name!r} (an nn.Module member or a "
                   "name the emitted module uses)")
    else:
        return None
    return with_alternatives(problem, name, lambda other: not keyword.iskeyword(other)
                             and other not in RESERVED_COMPONENT_NAMES)


def with_alternatives(problem: str, name: str, is_free: Callable[[str], bool]) -> str:
    """The problem, and up to two names like `name` that are free and not too long."""
    free = [other for other in (f"{name}_v1", f"my_{name}")
            if len(other) <= MAX_NAME_LENGTH and is_free(other)]
    if not free:
        return f"{problem}; choose another name"
    return f"{problem}; choose another name, such as {' or '.join(repr(n) for n in free)}"
