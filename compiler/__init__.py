"""compiler/: Spec -> IR graph -> passes -> render context -> jinja2 -> Python source.

Imports spec/, networkx and jinja2 (both only when used); never torch. Validating needs the
checks and the graph (for the graph checks: the parameter budget), not the lowering and the
templates, so compile_spec imports those when it runs. Within compiler/ imports run one way
(docs/design.md, "Import rules"): this package imports the passes, never the reverse.
"""

from __future__ import annotations

from xtc.spec import Spec

from .ir import Graph
from .passes import CHECKS, GRAPH_CHECKS, SPEC_CHECKS, checks, compile_graph

__all__ = ["CHECKS", "GRAPH_CHECKS", "SPEC_CHECKS", "Graph", "checks", "compile_graph",
           "compile_spec"]


def compile_spec(spec: Spec, standalone: bool = False) -> str:
    """The emitted module's source, checked against the output allowlist (verify.py);
    `standalone`: with the runtime definitions it uses copied in, checked again after that."""
    from .lower import lower
    from .render import render_module
    from .verify import verify_source

    graph = compile_graph(spec)
    source = render_module(lower(graph))
    verify_source(source)
    if standalone:
        from .standalone import inline_runtime  # reads runtime/ as text: only when asked

        source = inline_runtime(source)
        verify_source(source)
    return source
