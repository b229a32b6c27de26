"""A last look at emitted source before it is written or imported (docs/security.md,
E4): it must parse, and every part of it must be on an allowlist.

- node kinds: the statements and expressions templates write (no lambda, with, global, del,
  await, yield, walrus, except handlers);
- imports: `__future__`, dataclasses, math, warnings, logging, time, collections.abc, typing,
  torch, einops, xtc.runtime;
- names: every name read is bound in the module (imported, defined, assigned, an argument) or
  one of a few builtins; `open`, `eval`, `getattr`, `__import__` and the like are neither; and
  the module binds each top-level name once, so no class replaces an import or another class;
- attributes: no dunder but `__init__` and `__name__` (no `__class__`, `__globals__`, ...).

Spec text reaches the output only as validated identifiers and repr() of validated values, so
this never fires on user input; it is the compiler's own invariant, and a failure is a bug.

>>> verify_source("import torch\\nx = torch.zeros(1)\\n")
>>> verify_source("x = open('f')\\n")
Traceback (most recent call last):
xtc.compiler.verify.UnsafeOutput: emitted code reads a name it does not define: open (line 1)
"""

from __future__ import annotations

import ast

# warnings: a standalone module carries generate(), which warns when it cannot cache; typing:
# an xVal model's results are NamedTuples (runtime/numbers.py).
ALLOWED_IMPORTS = ("__future__", "dataclasses", "torch", "einops", "xtc.runtime", "math",
                   "warnings", "logging", "time", "collections.abc", "typing")
ALLOWED_NODES = frozenset({
    "Module", "Import", "ImportFrom", "alias", "ClassDef", "FunctionDef", "arguments", "arg",
    "Return", "Assign", "AnnAssign", "AugAssign", "Expr", "If", "For", "Break", "Continue",
    "Pass", "Raise", "Try", "Call", "keyword", "Starred", "Name", "Attribute", "Subscript",
    "Slice", "Constant", "JoinedStr", "FormattedValue", "Tuple", "List", "Dict", "ListComp", "DictComp",
    "GeneratorExp", "comprehension", "IfExp", "BoolOp", "And", "Or", "BinOp", "Add", "Sub",
    "Mult", "MatMult", "Div", "FloorDiv", "Mod", "Pow", "BitAnd", "BitOr", "UnaryOp", "USub", "Not",
    "Invert", "Compare", "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is", "IsNot", "In", "NotIn",
    "Load", "Store",
})
ALLOWED_BUILTINS = frozenset({
    "super", "isinstance", "len", "range", "zip", "enumerate", "min", "max", "sum", "any", "all",
    "abs", "bool", "int", "float", "str", "tuple", "list", "type", "object", "property",
    "classmethod", "dict", "next", "ValueError", "TypeError", "RuntimeError",
})
ALLOWED_DUNDERS = frozenset({"__init__", "__name__"})


class UnsafeOutput(AssertionError):
    """Emitted source left the allowlist: a compiler bug, never a user error."""


def verify_source(source: str) -> None:
    tree = ast.parse(source)
    check_bound_once(tree)
    bound = bound_names(tree)
    for node in ast.walk(tree):
        kind = type(node).__name__
        line = getattr(node, "lineno", "?")
        if kind not in ALLOWED_NODES:
            raise UnsafeOutput(f"emitted code has a {kind} node (line {line})")
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_import(alias.name, line)
        elif isinstance(node, ast.ImportFrom):
            check_import(node.module or "", line)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id not in bound and node.id not in ALLOWED_BUILTINS:
                raise UnsafeOutput(f"emitted code reads a name it does not define: {node.id} "
                                   f"(line {line})")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("__")
              and node.attr not in ALLOWED_DUNDERS):
            raise UnsafeOutput(f"emitted code reads attribute {node.attr} (line {line})")


def bound_names(tree: ast.Module) -> set[str]:
    """Every name the module binds anywhere: imports, definitions, arguments, assignments.
    (Scopes are not told apart: the check is that nothing comes from outside the module.)"""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    return bound


def check_bound_once(tree: ast.Module) -> None:
    """Class names are chosen apart from each other and from the imports (compiler/lower.py,
    "class names"); this holds lowering to it."""
    seen = set()
    for node in tree.body:
        for name in top_level_names(node):
            if name in seen:
                raise UnsafeOutput(f"emitted code binds {name} twice (line {node.lineno})")
            seen.add(name)


def top_level_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names]
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:  # a docstring binds nothing
        return []
    return [name.id for target in targets for name in ast.walk(target)
            if isinstance(name, ast.Name)]


def check_import(module: str, line) -> None:
    if not any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED_IMPORTS):
        raise UnsafeOutput(f"emitted code imports {module} (line {line})")
