"""`xtc inspect` output: a text report for people, JSON for tools, DOT and Mermaid for pictures.

In the pictures, consecutive identical blocks are drawn once and labelled with their range
(`blocks 0-5 x6`): a 48-layer model stays readable. JSON lists every op.
"""

from __future__ import annotations

import json
import re

from xtc.spec import Spec

from .costs import contributors, percent
from .inspection import Block, Inspection, inspect
from .ir import Graph, Op, OpKind, scope_prefix
from .models import models as graph_models

FLOP_CONVENTION = ("matrix products only, 2 FLOPs per multiply-add; attention over the full "
                   "T x S score square (masked scores included, as SDPA's math path computes "
                   "them); a training step is forward + backward, the optimizer not counted")
NO_CACHE = ("kv cache: none (not a decoder language model, or generate() recomputes the "
            "sequence: memory tokens, belief attention, inverted cross-attention, recycling)")


FORMATS = ("text", "json", "dot", "mermaid")
LENGTH_OPTIONS = {"T": "--seq-len", "S": "--context-len", "M": "--mem-len"}


def render(spec: Spec, graph: Graph, fmt: str = "text", seq_len: int | None = None,
           context_len: int | None = None, mem_len: int | None = None) -> tuple[str, list[str]]:
    """The inspection of a checked spec and its compiled graph in one of FORMATS, and its
    warnings (for stderr: JSON carries them too, the other formats have no place for them)."""
    figures = inspect(spec, graph, seq_len, context_len, mem_len)
    return render_figures(figures, fmt, spec), figures.warnings


def render_figures(figures: Inspection, fmt: str, spec: Spec) -> str:
    if fmt == "json":
        return render_json(figures)
    if fmt == "dot":
        return render_dot(figures)
    if fmt == "mermaid":
        return render_mermaid(figures)
    return render_text(figures, title(spec))


def title(spec: Spec) -> str:
    if spec.model is not None:
        what = spec.model.type
    else:
        what = f"composite of {', '.join(spec.components)}"
    return f"{spec.name}: {what} ({spec.path})"


# -- helpers ----------------------------------------------------------------------------------


def local_name(op: Op) -> str:
    """The op's name inside its component: `block0_attn`, not `decoder_block0_attn`."""
    return op.name.removeprefix(scope_prefix(op.scope))


def shape_text(op: Op, graph: Graph) -> str:
    """The op's shape: num_output_heads' logits, and the output that returns them, are one
    tensor of it per head."""
    shape = "(" + ", ".join(map(str, op.shape or ())) + ")"
    logits = graph[op.inputs[0]] if op.kind is OpKind.OUTPUT else op
    heads = logits.attrs.heads if logits.kind is OpKind.LOGITS else 1
    return f"{heads} x {shape}" if heads > 1 else shape


def component(op: Op, model: str) -> str:
    """The top-level component an op belongs to; `model` names a single model's own ops."""
    return op.component or model


def run_label(run: Block) -> str:
    if run.first == run.last:
        return f"block {run.first}"
    return f"blocks {run.first}-{run.last} x{run.last - run.first + 1}"


def scaled(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def runs_by_block(inspection: Inspection) -> dict[tuple[str, int], Block]:
    """(scope, block index) -> the run that holds it."""
    found = {}
    for run in inspection.blocks:
        for index in range(run.first, run.last + 1):
            found[(run.scope, index)] = run
    return found


def representatives(inspection: Inspection) -> dict[str, str]:
    """Each op's stand-in in a picture: itself, or its twin in the first block of its run."""
    graph, runs = inspection.graph, runs_by_block(inspection)
    per_block: dict[tuple[str, int], list[Op]] = {}
    for op in graph.ops():
        if op.block is not None:
            per_block.setdefault((op.scope, op.block), []).append(op)
    stand_in = {op.name: op.name for op in graph.ops()}
    for (scope, index), ops in per_block.items():
        first = per_block[(scope, runs[(scope, index)].first)]
        for op, twin in zip(ops, first):
            stand_in[op.name] = twin.name
    return stand_in


def picture_edges(inspection: Inspection, stand_in: dict[str, str]) -> list[tuple[str, str]]:
    """Edges between stand-ins, without the hop from one block of a run to the next (drawn
    once, the run would loop on itself)."""
    graph, runs, edges = inspection.graph, runs_by_block(inspection), []
    for op in graph.ops():
        for source in op.inputs:
            src = graph[source]
            within_run = (src.block is not None and op.block is not None and src.block != op.block
                          and runs[(src.scope, src.block)] is runs[(op.scope, op.block)])
            edge = (stand_in[source], stand_in[op.name])
            if not within_run and edge[0] != edge[1] and edge not in edges:
                edges.append(edge)
    return edges


# -- text -------------------------------------------------------------------------------------


def render_text(inspection: Inspection, title: str) -> str:
    lines = [title, "lengths: " + lengths_text(inspection), ""]
    lines += parameter_lines(inspection) + [""]
    lines += graph_lines(inspection) + [""]
    lines += flop_lines(inspection) + [""]
    lines += cache_lines(inspection) + [""]
    lines += attention_lines(inspection) + [""]
    lines += state_dict_lines(inspection)
    return "\n".join(lines) + "\n"


def lengths_text(inspection: Inspection) -> str:
    names = {"T": "sequence", "S": "source / context", "M": "memory"}
    parts = [f"{names[k]} {k}={v}" for k, v in inspection.lengths.items() if k in names]
    parts.append(f"{inspection.tokens} positions per sequence at the output")
    options = [option for symbol, option in LENGTH_OPTIONS.items() if symbol in inspection.lengths]
    hint = f" (change with {' / '.join(options)})" if options else ""
    return ", ".join(parts) + hint


def parameter_lines(inspection: Inspection) -> list[str]:
    lines = [f"{'parameters':<30}{inspection.total_parameters:>16,}"]
    for name, parts in inspection.parameters.items():
        if sum(parts.values()):
            lines.append(f"  {name:<28}{sum(parts.values()):>16,}")
            lines += [f"    {part:<26}{count:>16,}" for part, count in parts.items() if count]
    return lines + [contributor_line(inspection)]


SHOWN_CONTRIBUTORS = 5  # at most, in the text: the largest, then those of 1% or more


def contributor_line(inspection: Inspection) -> str:
    """`largest contributors: blocks.ff 31.5%  token_emb 25.6%  ...` (costs.contributors)."""
    groups = contributors(inspection.graph)[:SHOWN_CONTRIBUTORS]
    shown = [c for i, c in enumerate(groups) if i == 0 or c.share >= 0.01]
    return "  largest contributors: " + "  ".join(f"{c.name} {percent(c.share)}" for c in shown)


def graph_lines(inspection: Inspection) -> list[str]:
    graph, runs = inspection.graph, runs_by_block(inspection)
    # 18 columns hold (B, P+T, 32); chunked lengths, such as 6*ceil((P+T)/4), widen them
    width = max([18] + [len(shape_text(op, graph)) + 2 for op in graph.ops()])
    lines = [f"{'graph':<54}{'shape':<{width}}{'parameters':>14}"]
    current, shown = None, set()
    for op in graph.ops():
        name = component(op, inspection.name)
        if name != current:
            lines.append(f"  {name}")
            current = name
        count = inspection.op_parameters.get(op.name, 0)
        if op.block is None:
            label = local_name(op) + (" (optional)" if op.kind is OpKind.INPUT and op.attrs.optional else "")
            owned = f"{count:,}" if count else (f"shares {op.shares}" if op.shares else "")
            lines.append(f"    {label:<30}{op.kind.value:<20}{shape_text(op, graph):<{width}}{owned:>14}".rstrip())
            continue
        run = runs[(op.scope, op.block)]
        if id(run) in shown:
            continue
        shown.add(id(run))
        lines.append(f"    {run_label(run):<50}{run.shape:<{width}}{run.parameters:>14,}")
        for role, kind, own in run.sublayers:
            each = f"{own:,}" if own else ""
            lines.append(f"      {role:<28}{kind:<20}{'':<{width}}{each:>14}".rstrip())
    return lines


# the figures are one pass's where the layers run several times (LOOP ops)
LOOP_NOTES = {
    True: "  one recycling pass: recycle_steps n runs the layers n times, recycled_proj n - 1",
    False: "  one loop: looped_steps n (max_looped_steps by default) runs the layers n times",
}


def flop_lines(inspection: Inspection) -> list[str]:
    per_token = inspection.tokens
    share = inspection.attention_flops / inspection.forward_flops if inspection.forward_flops else 0
    forward, training = inspection.forward_flops, inspection.training_flops
    loops = inspection.graph.ops(OpKind.LOOP)
    return [
        ("FLOPs (matrix products, 2 per multiply-add; attention over the full T x S square;"
        " training step = forward + backward)"),
        *[LOOP_NOTES[op.attrs.recycled] for op in loops if not op.attrs.end],
        (f"  forward        {scaled(forward, 'FLOP'):>14} per sequence "
         f"{scaled(forward / per_token, 'FLOP'):>14} per token"
         f"   (attention scores and values {share:.1%})"),
        (f"  training step  {scaled(training, 'FLOP'):>14} per sequence "
         f"{scaled(training / per_token, 'FLOP'):>14} per token"),
    ]


def layer_lines(inspection: Inspection) -> list[str]:
    """Each layer's bytes per token, where the layers' caches differ (per-layer values)."""
    sizes = inspection.cache_layer_bytes
    if len(set(sizes)) < 2:
        return []
    return [f"  per layer            {', '.join(f'{size:,}' for size in sizes)} B float32 per token"]


def latent_lines(inspection: Inspection) -> list[str]:
    """Which layers keep a latent (multi-head latent attention) in place of keys and values."""
    latents = [(width, rope) for width, rope in zip(inspection.cache_latents,
                                                    inspection.cache_rope_heads) if width]
    if not latents:
        return []
    layers = len(inspection.cache_latents)
    which = "every layer keeps" if len(latents) == layers else \
        f"{len(latents)} of {layers} layers keep"
    kinds = ", ".join(f"{width} wide" + (f" + {rope} rope key head{'s' * (rope > 1)}" if rope else "")
                      for width, rope in dict.fromkeys(latents))
    return [f"  latent               {which} a latent ({kinds}) in place of keys and values"]


def window_lines(inspection: Inspection) -> list[str]:
    """What sliding windows bound: the positions their layers keep, and where every layer has
    one, the most the cache ever holds."""
    windows = [w for w in inspection.cache_windows if w is not None]
    if not windows:
        return []
    kept = ", ".join(str(w) for w in dict.fromkeys(windows))
    layers = len(inspection.cache_windows)
    if len(windows) < layers:
        return [(f"  sliding windows      {len(windows)} of {layers} layers keep at most {kept} "
                 "positions; the others keep every one")]
    most = inspection.cache_bytes(max(windows))
    return [(f"  sliding windows      every layer keeps at most {kept} positions: "
             f"{scaled(most, 'B')} float32 per sequence at most, however long it runs")]


def cache_lines(inspection: Inspection) -> list[str]:
    per_token = inspection.cache_bytes_per_token
    if not per_token and not inspection.cross_cache_bytes_per_token:
        return [NO_CACHE]
    loops = max((model.loops for model in graph_models(inspection.graph)), default=1)
    layers = inspection.cache_layers // loops
    runs = f"{layers} self-attention layer{'s' * (layers != 1)}"
    runs += f", once per loop of {loops}" if loops > 1 else ""
    lines = [f"kv cache ({runs})"]
    if per_token:
        at = inspection.lengths.get("T", inspection.tokens)
        lines.append(f"  per generated token  {per_token:,} B float32, {per_token // 2:,} B bfloat16;"
                     f" at T={at}: {scaled(inspection.cache_bytes(at), 'B')} float32 per sequence")
        lines += layer_lines(inspection) + window_lines(inspection) + latent_lines(inspection)
    carried = inspection.cache_carried
    if carried:
        lines.append(f"  of which             {sum(carried.values()):,} B float32 beside the keys and "
                     f"values: {', '.join(carried)}")
    cross = inspection.cross_cache_bytes_per_token
    if cross:
        lines.append(f"  cross-attention      {cross:,} B float32 per context token, computed once")
    return lines + memory_lines(inspection)


def memory_lines(inspection: Inspection) -> list[str]:
    """Transformer-XL memories: each layer's input over the last max_mem_len positions."""
    per_layer = inspection.memory_bytes_per_layer
    if not per_layer:
        return []
    total = scaled(per_layer * inspection.memory_layers, "B")
    return [f"memories ({inspection.memory_layers} layers, Transformer-XL)",
            f"  per layer  {per_layer:,} B float32, {per_layer // 2:,} B bfloat16 per sequence; "
            + f"all layers: {total} float32"]


def attention_lines(inspection: Inspection) -> list[str]:
    """One row per sublayer role and reason, with the blocks it covers (`blocks.0-5.attn`)."""
    rows: dict[tuple, list[int]] = {}
    for path in inspection.attention:
        where, _, role = path.layer.rpartition(".")
        stem, _, index = where.rpartition(".")
        if not index.isdigit():  # not in a block (never the case today): a row of its own
            stem, index = where, ""
        rows.setdefault((stem, role, path.path, path.flash, path.why), []).append(index)
    lines = ["attention (path, may SDPA use its flash kernel, why)"]
    for (stem, role, path, flash, why), indices in rows.items():
        layer = ".".join(part for part in (stem, index_ranges(indices), role) if part)
        lines.append(f"  {layer:<32} {path:<9} flash: {flash:<23} {why}")
    return lines


BLOCK_INDEX = re.compile(r"(^|\.)blocks\.(\d+)\.")


def state_dict_lines(inspection: Inspection) -> list[str]:
    """The state-dict keys, blocks folded into ranges (`blocks.0-3.attn.to_qkv.weight`), and
    what a key stacks where it holds several of the reference's tensors."""
    patterns: dict[str, list[str]] = {}
    stacks: dict[str, str] = {}
    for entry in inspection.state_dict:
        match = BLOCK_INDEX.search(entry.key)
        pattern = BLOCK_INDEX.sub(r"\1blocks.{}.", entry.key, count=1) if match else entry.key
        patterns.setdefault(pattern, []).append(match.group(2) if match else "")
        if len(entry.reference) > 1:
            parts = (".".join(name.split(".")[-2:]) for name in entry.reference)
            stacks[pattern] = "stacks x-transformers' " + ", ".join(parts)
    lines = [(f"state dict ({len(inspection.state_dict)} tensors; xtc.convert_state_dict fills "
              "them from an x-transformers model's)")]
    for pattern, indices in patterns.items():
        key = pattern.replace("{}", index_ranges(indices), 1)
        lines.append(f"  {key:<44} {stacks.get(pattern, '')}".rstrip())
    return lines


def index_ranges(indices: list[str]) -> str:
    """'0-5', '0,2,4-6': consecutive block indices as ranges."""
    numbers = sorted({int(i) for i in indices if i})
    parts: list[list[int]] = []
    for n in numbers:
        if parts and parts[-1][1] == n - 1:
            parts[-1][1] = n
        else:
            parts.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


# -- JSON ---------------------------------------------------------------------------------------


def render_json(inspection: Inspection) -> str:
    return json.dumps(inspection_data(inspection), indent=2) + "\n"


def inspection_data(inspection: Inspection) -> dict:
    """The figures as plain data (what `--format json` prints and `xtc.inspect` returns)."""
    graph = inspection.graph
    return {
        "name": inspection.name,
        "lengths": inspection.lengths,
        "tokens": inspection.tokens,
        "warnings": inspection.warnings,
        "parameters": {
            "total": inspection.total_parameters,
            "components": {name: {"total": sum(parts.values()), **parts}
                           for name, parts in inspection.parameters.items()},
            "contributors": contributor_data(inspection),
        },
        "flops": {
            "convention": FLOP_CONVENTION,
            "forward": {"per_sequence": inspection.forward_flops,
                        "per_token": inspection.forward_flops / inspection.tokens},
            "training_step": {"per_sequence": inspection.training_flops,
                              "per_token": inspection.training_flops / inspection.tokens},
            "attention_forward": inspection.attention_flops,
        },
        "kv_cache": {
            "layers": inspection.cache_layers,
            "bytes_per_token": {"float32": inspection.cache_bytes_per_token,
                                "bfloat16": inspection.cache_bytes_per_token // 2},
            "cross_attention_bytes_per_context_token": {
                "float32": inspection.cross_cache_bytes_per_token,
                "bfloat16": inspection.cross_cache_bytes_per_token // 2},
            "carried_float32_bytes_per_token": inspection.cache_carried,  # within bytes_per_token
            "windows": list(inspection.cache_windows),  # per layer: positions kept (None: all)
            "layer_bytes_per_token": list(inspection.cache_layer_bytes),  # float32, per layer
            "latents": [{"width": width, "rope_heads": rope} if width else None  # None: k and v
                        for width, rope in zip(inspection.cache_latents, inspection.cache_rope_heads)],
        },
        "memories": {
            "layers": inspection.memory_layers,
            "bytes_per_layer": {"float32": inspection.memory_bytes_per_layer,
                                "bfloat16": inspection.memory_bytes_per_layer // 2},
        },
        "attention": [vars(path) for path in inspection.attention],
        "state_dict": [{"key": entry.key, "reference": list(entry.reference),
                        "shape": None if entry.shape is None else list(entry.shape)}
                       for entry in inspection.state_dict],
        "blocks": [{"scope": run.scope, "first": run.first, "last": run.last,
                    "parameters": run.parameters, "shape": run.shape,
                    "sublayers": [{"role": r, "kind": k, "parameters": p}
                                  for r, k, p in run.sublayers]} for run in inspection.blocks],
        "graph": {
            "nodes": [{"id": op.name, "kind": op.kind.value, "component": component(op, inspection.name),
                       "block": op.block, "shares": op.shares or None, "module": graph.module_path(op),
                       "shape": [str(s) for s in op.shape or ()],
                       "parameters": inspection.op_parameters.get(op.name, 0)}
                      for op in graph.ops()],
            "edges": [[source, op.name] for op in graph.ops() for source in op.inputs],
        },
    }


def contributor_data(inspection: Inspection) -> list[dict]:
    """Every contributor, largest first, with the spec keys whose values its count multiplies."""
    return [{"name": c.name, "parameters": c.parameters, "share": c.share, "formula": c.formula,
             "factors": [{"key": f.key or None, "name": f.name, "value": f.value,
                          "inverse": f.inverse} for f in c.factors]}
            for c in contributors(inspection.graph)]


# -- pictures -----------------------------------------------------------------------------------


def picture_nodes(inspection: Inspection) -> list[tuple[str, str, tuple[str, ...]]]:
    """(node id, label, nesting) of each drawn op: nesting is (component[, block run label])."""
    graph, runs = inspection.graph, runs_by_block(inspection)
    stand_in = representatives(inspection)
    nodes = []
    for op in graph.ops():
        if stand_in[op.name] != op.name:
            continue
        name = local_name(op)
        if op.block is not None:  # drawn once for the run: `attn`, not `block0_attn`
            name = name.removeprefix(f"block{op.block}_")
        label = f"{name}: {op.kind.value} {shape_text(op, graph)}"
        count = inspection.op_parameters.get(op.name, 0)
        label += f", {count:,} params" if count else ""
        nest = (component(op, inspection.name),)
        if op.block is not None:
            nest += (run_label(runs[(op.scope, op.block)]),)
        nodes.append((op.name, label, nest))
    return nodes


def clusters(nodes) -> dict[tuple[str, ...], list[tuple[str, str]]]:
    grouped: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for node, label, nest in nodes:
        grouped.setdefault(nest, []).append((node, label))
    return grouped


def render_dot(inspection: Inspection) -> str:
    lines = [f"digraph {json.dumps(inspection.name)} {{", "  rankdir=TB;",
             '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];']
    grouped = clusters(picture_nodes(inspection))
    components = list(dict.fromkeys(nest[0] for nest in grouped))
    for index, name in enumerate(components):
        lines += [f"  subgraph cluster_{index} {{", f"    label={json.dumps(name)};"]
        for nest, members in grouped.items():
            if nest[0] != name:
                continue
            indent = "    "
            if len(nest) > 1:
                lines += [f"    subgraph cluster_{index}_{len(lines)} {{",
                          f"      label={json.dumps(nest[1])}; style=dashed;"]
                indent = "      "
            lines += [f"{indent}{json.dumps(node)} [label={json.dumps(label)}];"
                      for node, label in members]
            if len(nest) > 1:
                lines.append("    }")
        lines.append("  }")
    stand_in = representatives(inspection)
    lines += [f"  {json.dumps(a)} -> {json.dumps(b)};" for a, b in picture_edges(inspection, stand_in)]
    return "\n".join(lines + ["}"]) + "\n"


def render_mermaid(inspection: Inspection) -> str:
    lines = ["flowchart TD"]
    grouped = clusters(picture_nodes(inspection))
    components = list(dict.fromkeys(nest[0] for nest in grouped))
    for index, name in enumerate(components):
        lines.append(f"  subgraph c{index}[\"{mermaid_text(name)}\"]")
        for sub, (nest, members) in enumerate(grouped.items()):
            if nest[0] != name:
                continue
            indent = "    "
            if len(nest) > 1:
                lines.append(f"    subgraph c{index}_{sub}[\"{mermaid_text(nest[1])}\"]")
                indent = "      "
            lines += [f"{indent}{node}[\"{mermaid_text(label)}\"]" for node, label in members]
            if len(nest) > 1:
                lines.append("    end")
        lines.append("  end")
    stand_in = representatives(inspection)
    lines += [f"  {a} --> {b}" for a, b in picture_edges(inspection, stand_in)]
    return "\n".join(lines) + "\n"


def mermaid_text(text: str) -> str:
    """Mermaid labels in double quotes: the quote itself becomes an entity."""
    return text.replace('"', "#quot;")
