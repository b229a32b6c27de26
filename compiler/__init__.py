"""compiler/: Spec -> IR graph -> passes -> render context -> jinja2 -> Python source.

Imports spec/, networkx and jinja2 (both only when used); never torch. Validating needs the
checks and the graph (for the parameter budget), not the lowering and the templates, so
compile_spec imports those when it runs.
"""

from __future__ import annotations

from xtc.spec import Spec

from .build_ir import build_graph
from .ir import Graph
from .passes import SPEC_CHECKS, run_graph_passes

__all__ = ["SPEC_CHECKS", "Graph", "compile_graph", "compile_spec"]


def compile_graph(spec: Spec) -> Graph:
    """The spec's IR after every graph pass, linted after each."""
    return run_graph_passes(build_graph(spec))


def compile_spec(spec: Spec, standalone: bool = False) -> str:
    """The emitted module's source, checked against the output allowlist (verify.py);
    `standalone`: with the runtime definitions it uses copied in, checked again after that."""
    from .lower import lower
    from .render import render_module
    from .verify import verify_source

    graph = compile_graph(spec)
    source = render_module(lower(spec, graph))
    verify_source(source)
    if standalone:
        from .standalone import inline_runtime  # reads runtime/ as text: only when asked

        source = inline_runtime(source)
        verify_source(source)
    return source
