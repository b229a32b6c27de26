"""check-connections: the wiring of a composite spec (docs/spec-language.md, "Composites").

`{from: X, to: Y.arg}` hands X's embeddings to Y's forward argument `arg`. Each problem is a
located error: an unknown component or argument, an argument that no connection can feed, a
context for a component that does not cross-attend, a producer without embeddings, an input fed
twice, a width the consumer does not expect, a cycle, more or fewer than one sink, a component
nobody uses. Component names are the schema's to check (spec/names.py); the classes they name
are chosen apart by lowering (compiler/lower.py, "class names").
"""

from __future__ import annotations

import difflib

from xtc.spec import Connection, Diagnostic, ModuleSpec, Spec

from .modules import diagnostic

ID = "check-connections"

# Forward arguments a connection may feed, per component type, and every forward argument.
CONNECTABLE = {
    "TransformerWrapper": ("context", "prepend_embeds"),
    "XTransformer": ("src_prepend_embeds",),
    "Encoder": ("context",), "Decoder": ("context",), "PrefixDecoder": ("context",),
    "CrossAttender": ("context",), "ViTransformerWrapper": (), "ContinuousTransformerWrapper": (),
    "XValTransformerWrapper": ("context",),
}
ARGUMENTS = {
    "TransformerWrapper": ("x", "mask", "context", "context_mask", "prepend_embeds",
                           "return_embeddings"),
    "XTransformer": ("src", "tgt", "mask", "attn_mask", "src_prepend_embeds"),
    "Encoder": ("x", "mask", "context", "context_mask"),
    "Decoder": ("x", "mask", "context", "context_mask"),
    "PrefixDecoder": ("x", "mask", "context", "context_mask", "prefix_attn_len"),
    "CrossAttender": ("x", "mask", "context", "context_mask"),
    "ViTransformerWrapper": ("img", "return_embeddings"),
    "ContinuousTransformerWrapper": ("x", "mask", "return_embeddings"),
    "XValTransformerWrapper": ("x", "x_num", "mask", "context", "context_mask",
                               "return_embeddings"),
}


def check_connections(spec: Spec) -> list[Diagnostic]:
    if spec.model is not None:
        return []
    found, valid = [], []
    for connection in spec.connections:
        problems = check_connection(spec, connection)
        found += problems
        if not problems:
            valid.append(connection)
    found += check_fed_once(spec, valid)
    cycle = find_cycle(spec, valid)
    if cycle:
        found.append(cycle)
    elif len(valid) == len(spec.connections):  # the graph's shape means something only then
        found += check_sinks(spec, valid)
    return found


def at(spec: Spec, connection: Connection, code: str, message: str) -> Diagnostic:
    return Diagnostic(spec.path, connection.line, connection.col, "connections", code, message)


def check_connection(spec: Spec, connection: Connection) -> list[Diagnostic]:
    components = spec.components
    for name in (connection.source, connection.target):
        if name not in components:
            close = difflib.get_close_matches(name, list(components), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return [at(spec, connection, "unknown-component", f"unknown component {name!r}{hint}")]
    source, target = components[connection.source], components[connection.target]
    if source.type == "XTransformer":
        return [at(spec, connection, "producer-without-embeddings",
                   f"{connection.source} is an XTransformer: its output is a loss, not embeddings")]
    argument, allowed = connection.argument, CONNECTABLE[target.type]
    if argument not in allowed:
        known = argument in ARGUMENTS[target.type]
        what = "cannot be fed by a connection" if known else "is not an argument of"
        options = ", ".join(allowed) or "nothing"
        return [at(spec, connection, "unknown-argument",
                   f"{argument!r} {what} {connection.target} ({target.type}); a connection "
                   f"can feed: {options}")]
    if argument == "context" and layers_of(target).type != "CrossAttender" \
            and not layers_of(target)["cross_attend"]:
        return [at(spec, connection, "context-needs-cross-attention",
                   f"{connection.target} does not cross-attend: set cross_attend: true on its "
                   "layers to give it a context")]
    return check_width(spec, connection, source, target)


def layers_of(module: ModuleSpec) -> ModuleSpec:
    return module.children.get("attn_layers", module)


def produced_width(module: ModuleSpec) -> int:
    return layers_of(module)["dim"]


def expected_width(module: ModuleSpec, argument: str) -> tuple[int, str]:
    """The width the consumer expects, and the key that sets it."""
    if argument == "src_prepend_embeds":
        return module["dim"], "dim"
    layers = layers_of(module)
    if argument == "prepend_embeds":
        return module["emb_dim"] or layers["dim"], "emb_dim"
    declared = layers.section("cross_attn")["dim_context"]
    return declared or layers["dim"], "cross_attn.dim_context"


def check_width(spec: Spec, connection: Connection, source: ModuleSpec,
                target: ModuleSpec) -> list[Diagnostic]:
    width = produced_width(source)
    expected, key = expected_width(target, connection.argument)
    if width == expected:
        return []
    hint = " (set cross_attn.dim_context to accept it)" if key == "cross_attn.dim_context" else ""
    return [at(spec, connection, "width-mismatch",
               f"{connection.source} produces width {width}, {connection.target}."
               f"{connection.argument} expects {expected}{hint}")]


def check_fed_once(spec: Spec, connections: list[Connection]) -> list[Diagnostic]:
    seen: dict[tuple[str, str], Connection] = {}
    found = []
    for connection in connections:
        slot = (connection.target, connection.argument)
        if slot in seen:
            found.append(at(spec, connection, "input-fed-twice",
                            f"{connection.target}.{connection.argument} is already fed at line "
                            f"{seen[slot].line}"))
        seen.setdefault(slot, connection)
    return found


def find_cycle(spec: Spec, connections: list[Connection]) -> Diagnostic | None:
    """The first cycle, as `a -> b -> a` with the lines of its connections, reported at the
    connection that closes it."""
    edges: dict[str, list[Connection]] = {}
    for connection in connections:
        edges.setdefault(connection.source, []).append(connection)
    state: dict[str, str] = {}

    def visit(name: str, names: list[str], taken: list[Connection]) -> Diagnostic | None:
        """`names` lead to `name` on the search path, through the connections `taken`."""
        state[name] = "open"
        for connection in edges.get(name, []):
            nxt = connection.target
            if state.get(nxt) == "open":
                start = names.index(nxt) if nxt in names else len(names)
                loop, links = [*names[start:], name, nxt], [*taken[start:], connection]
                lines = ", ".join(str(link.line) for link in links)
                return at(spec, connection, "cycle",
                          f"cycle: {' -> '.join(loop)} (connections at lines {lines})")
            if nxt not in state:
                found = visit(nxt, [*names, name], [*taken, connection])
                if found:
                    return found
        state[name] = "done"
        return None

    for name in spec.components:
        if name not in state:
            found = visit(name, [], [])
            if found:
                return found
    return None


def check_sinks(spec: Spec, connections: list[Connection]) -> list[Diagnostic]:
    sources = {c.source for c in connections}
    used = sources | {c.target for c in connections}
    found = []
    if len(spec.components) > 1:
        for name in spec.components:
            if name not in used:
                found.append(diagnostic(spec, f"components.{name}", "unused-component",
                                        f"component {name!r} is not connected to the others"))
    sinks = [name for name in spec.components if name in used or len(spec.components) == 1
             if name not in sources]
    if len(sinks) > 1:
        line, col = spec.location("connections")
        found.append(Diagnostic(spec.path, line, col, "connections", "several-sinks",
                                f"one component must feed no other (the output); "
                                f"{', '.join(sinks)} all do"))
    return found
