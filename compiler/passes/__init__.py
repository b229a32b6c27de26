"""The passes, in the order they run.

SPEC_CHECKS read a Spec and return diagnostics (`load_spec` runs them after the schema, also on
a spec with errors, setting aside what rests on rejected values: spec/load.py; a check with
`stops_on_error` (the reason the others wait) ends the run when it finds an error, one with `needs_valid_spec` may fail on a
spec with errors and then waits for them to be fixed).
GRAPH_PASSES transform the IR, and the graph is linted before and after each one
(`compile_graph`).
GRAPH_CHECKS read the compiled IR and return diagnostics: `check(graph, spec)`, the spec only to
name and locate what the graph shows. `CHECKS` is what `read_spec` is handed: SPEC_CHECKS, then
each graph check run on the graph its spec compiles to (`OnGraph`).
"""

from __future__ import annotations

from collections.abc import Callable

from xtc.spec import Diagnostic, Spec

from ..build_ir import build_graph
from ..ir import Graph
from .check_attention_options import check_attention_options
from .check_connections import check_connections
from .check_depth_given import check_depth_given
from .check_embedding_options import check_embedding_options
from .check_exclusive_features import check_exclusive_features
from .check_extensions import check_extensions
from .check_ignored_options import check_ignored_options
from .check_layer_layout import check_layer_layout
from .check_model_structure import check_model_structure
from .check_per_layer_values import check_per_layer_values
from .check_position_options import check_position_options
from .check_recurrence import check_recurrence
from .check_residual_options import check_residual_options
from .check_resource_budget import ResourceBudget, check_resource_budget
from .check_single_head_projection import check_single_head_projection
from .check_sizes import check_sizes
from .fuse_qkv import fuse_qkv
from .infer_shapes import infer_shapes

SpecCheck = Callable[[Spec], list[Diagnostic]]
GraphCheck = Callable[[Graph, Spec], list[Diagnostic]]

SPEC_CHECKS: tuple[SpecCheck, ...] = (
    check_sizes,  # first: the others may build structures of the sizes it bounds
    check_per_layer_values,  # second: the others read a list one layer at a time
    check_depth_given,
    check_exclusive_features,
    check_single_head_projection,
    check_position_options,
    check_attention_options,
    check_residual_options,
    check_embedding_options,
    check_model_structure,
    check_layer_layout,
    check_connections,
    check_recurrence,
    check_extensions,
    check_ignored_options,
)
GRAPH_PASSES = (infer_shapes, fuse_qkv)
GRAPH_CHECKS: tuple[GraphCheck, ...] = (check_resource_budget,)


def run_graph_passes(graph: Graph, passes: tuple = GRAPH_PASSES) -> Graph:
    """The graph after `passes` (all of GRAPH_PASSES unless told: benchmarks/bench.py leaves a
    rewrite out to time what it buys), linted before and after each."""
    graph.lint()
    for graph_pass in passes:
        graph = graph_pass(graph)
        graph.lint()
    return graph


def compile_graph(spec: Spec) -> Graph:
    """The spec's IR after every graph pass, linted after each."""
    return run_graph_passes(build_graph(spec))


class OnGraph:
    """A graph check as `read_spec` runs checks: on the graph the spec compiles to. It runs after
    SPEC_CHECKS; after an error (`needs_valid_spec`) it runs guarded, as the others do, and waits
    for the errors to be fixed when the spec it reads does not compile or reads values they leave
    in doubt (spec/load.py)."""

    needs_valid_spec = True  # a rejected spec may not describe a graph

    def __init__(self, check: GraphCheck) -> None:
        self.check = check
        # named as the check it runs: spec/load.py's check_name reads its module's ID
        self.__module__ = getattr(check, "__module__", None) or type(check).__module__

    def __call__(self, spec: Spec) -> list[Diagnostic]:
        return self.check(compile_graph(spec), spec)

    def __repr__(self) -> str:
        return f"OnGraph({self.check!r})"


def checks(max_params: int | None = None) -> tuple[SpecCheck, ...]:
    """Every check of a spec, for `read_spec`: SPEC_CHECKS, then GRAPH_CHECKS on its graph.
    `max_params`: the parameter budget's limit (None: XTC_MAX_PARAMS or 1e11, read at each run)."""
    budget = check_resource_budget if max_params is None else ResourceBudget(max_params)
    graph_checks = tuple(budget if check is check_resource_budget else check
                         for check in GRAPH_CHECKS)
    return SPEC_CHECKS + tuple(OnGraph(check) for check in graph_checks)


CHECKS = checks()
