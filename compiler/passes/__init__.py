"""The passes, in the order they run.

SPEC_CHECKS read a Spec and return diagnostics (`load_spec` runs them after the schema, also on
a spec with errors, setting aside what rests on rejected values: spec/load.py; a check with
`stops_on_error` ends the run when it finds an error, one with `needs_valid_spec` may fail on a
spec with errors and then waits for them to be fixed);
GRAPH_PASSES transform the IR, and the graph is linted after each one.
"""

from __future__ import annotations

from .check_attention_options import check_attention_options
from .check_connections import check_connections
from .check_depth_given import check_depth_given
from .check_embedding_options import check_embedding_options
from .check_exclusive_features import check_exclusive_features
from .check_ignored_options import check_ignored_options
from .check_layer_layout import check_layer_layout
from .check_model_structure import check_model_structure
from .check_position_options import check_position_options
from .check_resource_budget import check_resource_budget
from .check_single_head_projection import check_single_head_projection
from .check_sizes import check_sizes
from .infer_shapes import infer_shapes

SPEC_CHECKS = (
    check_sizes,  # first: the others may build structures of the sizes it bounds
    check_depth_given,
    check_exclusive_features,
    check_single_head_projection,
    check_position_options,
    check_attention_options,
    check_embedding_options,
    check_model_structure,
    check_layer_layout,
    check_connections,
    check_ignored_options,
    check_resource_budget,  # last, and only for a spec nothing else rejected: it builds the IR
)
GRAPH_PASSES = (infer_shapes,)


def run_graph_passes(graph):
    graph.lint()
    for graph_pass in GRAPH_PASSES:
        graph = graph_pass(graph)
        graph.lint()
    return graph
