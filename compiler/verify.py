"""A last look at emitted source before it leaves the compiler: it parses, and it imports and
calls only what generated modules may (DESIGN.md section 5; bad-inputs.md section 5.6).

Spec text reaches the output only as validated identifiers and repr() of validated values, so
this never fires on user input; it is the compiler's own invariant, and a failure is a bug.
"""

from __future__ import annotations

import ast

ALLOWED_IMPORTS = ("__future__", "dataclasses", "torch", "einops", "xtc.runtime", "math")
FORBIDDEN_CALLS = frozenset({"eval", "exec", "compile", "open", "__import__", "getattr",
                             "setattr", "globals", "locals", "vars", "input", "breakpoint"})


def verify_source(source: str) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_import(alias.name)
        elif isinstance(node, ast.ImportFrom):
            check_import(node.module or "")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in FORBIDDEN_CALLS):
            raise AssertionError(f"emitted code calls {node.func.id}() at line {node.lineno}")


def check_import(module: str) -> None:
    if not any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED_IMPORTS):
        raise AssertionError(f"emitted code imports {module}")
