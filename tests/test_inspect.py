"""`xtc inspect` (issue #12): the figures it reads from the IR against the built model.

Parameters must equal the built model's exactly; FLOPs must equal what PyTorch's own counter
(`FlopCounterMode`) sees for a forward and for a forward + backward under the math SDPA backend;
kv-cache bytes per token must equal what `new_cache` allocates, and what a full cache carries
beside. Checked on every example and on
every row of tests/features.py, at tiny lengths.
"""

from __future__ import annotations

import glob
import json
import re

import pytest
import torch
import yaml
from conftest import ROOT
from features import DIM_HEAD, FEATURES, HEADS, feature, feature_spec, layers, spec_of
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from xtc.compiler import compile_graph
from xtc.compiler.inspect_format import render, render_figures
from xtc.compiler.inspection import inspect
from xtc.compiler.ir import Graph, OpKind, scope_prefix
from xtc.compiler.models import models

import xtc
from xtc import cli

EXAMPLES = sorted(glob.glob("examples/*.yaml"))
T, S, M = 16, 12, 5  # query, context and Transformer-XL memory lengths of the measured runs


def sample_inputs(graph: Graph) -> tuple[list, dict]:
    """Random inputs for every required forward argument: the first ones positional, contexts
    by keyword (`<component>_context` in a composite)."""
    args, kwargs = [], {}
    gen = torch.Generator().manual_seed(0)
    for op in graph.ops(OpKind.INPUT):
        a = op.attrs
        if a.role == "passes":  # a recycling model's: the figures are one pass's
            kwargs[a.name] = 1
        if a.optional:
            continue
        length = {"T": T, "S": S}.get(a.shape[1])
        if a.role == "tokens":
            vocab = min(user.attrs.num_tokens for user in graph.users(op.name)
                        if user.kind is OpKind.TOKEN_EMBEDDING)
            args.append(torch.randint(0, vocab, (1, length), generator=gen))
        elif a.role == "numbers":  # an xVal model's, beside its tokens
            args.append(torch.randn(1, length, generator=gen))
        elif a.role == "image":
            args.append(torch.randn(1, *a.shape[1:], generator=gen))
        elif a.role == "embed_ids":  # embed_num_tokens: each name's ids
            sizes = next(user.attrs.sizes for user in graph.users(op.name))
            kwargs[a.name] = {name: torch.randint(0, size, (1, length), generator=gen)
                              for name, size in sizes}
        elif a.role == "condition":  # one per sequence
            kwargs[scope_prefix(op.scope) + a.name] = torch.randn(1, a.shape[1], generator=gen)
        elif a.role == "context":
            kwargs[scope_prefix(op.scope) + a.name] = torch.randn(1, S, a.shape[2], generator=gen)
        else:
            args.append(torch.randn(1, length, a.shape[2], generator=gen))
    return args, kwargs


def sample_memories(graph: Graph, length: int) -> dict:
    """A Transformer-XL model's `mems`: one memory of `length` positions per block (none for
    other models, or at length 0: the first segment's run)."""
    recurrent = [model for model in models(graph) if model.recurrent]
    if not recurrent or not length:
        return {}
    (model,) = recurrent
    gen = torch.Generator().manual_seed(1)
    return {"mems": [torch.randn(1, length, model.dim, generator=gen) for _ in range(model.depth)]}


def counted_flops(model, inputs, train: bool) -> tuple[int, int]:
    """All FLOPs counted, and those of batched products (attention scores and values: every
    linear layer is an mm or addmm)."""
    args, kwargs = inputs
    model.train(train)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        out = model(*args, **kwargs)
        if train:  # an xVal model returns logits and numbers
            outs = out if isinstance(out, tuple) else (out,)
            sum(o.float().sum() for o in outs).backward()
    batched = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "bmm" in str(op))
    return counter.get_total_flops(), batched


def assert_figures_match(spec: xtc.Spec, memory: int = M, training: bool = True) -> None:
    graph = compile_graph(spec)
    figures = inspect(spec, graph, seq_len=T, context_len=S, mem_len=memory)
    torch.manual_seed(0)
    model = xtc.build(spec)
    assert figures.total_parameters == sum(p.numel() for p in model.parameters())
    # the CLI's views render the same figures (its text names the largest contributors)
    assert f"{figures.total_parameters:,}" in render_figures(figures, "text", spec)
    contributors = json.loads(render_figures(figures, "json", spec))["parameters"]["contributors"]
    assert sum(c["parameters"] for c in contributors) == figures.total_parameters
    keys = [entry.key for entry in figures.state_dict]
    assert len(keys) == len(set(keys)) and set(keys) == set(model.state_dict())
    state = model.state_dict()
    assert {e.key: e.shape for e in figures.state_dict if e.shape is not None} == \
        {e.key: tuple(state[e.key].shape) for e in figures.state_dict if e.shape is not None}
    args, kwargs = sample_inputs(graph)
    inputs = args, kwargs | sample_memories(graph, memory)
    assert (figures.forward_flops, figures.attention_flops) == counted_flops(model, inputs, False)
    if training:
        assert figures.training_flops == counted_flops(model, inputs, True)[0]
    generators = [m for m in model.modules() if hasattr(m, "new_cache")]
    caches = [m.new_cache(1, 8) for m in generators]  # a looped LM's: per loop
    allocated = sum(t.numel() * t.element_size() for cache in caches
                    for layers in getattr(cache, "loops", [cache.layers])
                    for layer in layers if layer.self_attn is not None for t in layer.self_attn.buffers)
    if figures.cache_carried:  # filled as it decodes: test_what_the_cache_carries_...
        assert figures.cache_bytes(8) > allocated
    else:
        assert figures.cache_bytes(8) == allocated
    if not generators:
        assert figures.cross_cache_bytes_per_token == 0


@pytest.mark.parametrize("path", EXAMPLES)
def test_examples(path):
    assert_figures_match(xtc.load_spec(path))


def option_cases():
    """Every row of tests/features.py (math attention: FLOPs are counted under the math backend),
    built with its first kind; its other kinds are slow."""
    for row in FEATURES:
        for kind in row.kinds:
            marks = () if kind == row.kinds[0] else pytest.mark.slow
            yield pytest.param(row, kind, marks=marks, id=f"{row.id}-{kind}")


@pytest.mark.parametrize("row, kind", list(option_cases()))
def test_options(row, kind):
    # cross_attn_tokens_dropout: training drops a share of the context, fewer FLOPs than figured
    drops = "cross_attn_tokens_dropout" in row.model or "cross_attn_tokens_dropout" in row.layers
    assert_figures_match(feature_spec(row, kind, flash=False), training=not drops)


CARRIED = ("data_dependent_alibi", "selective")  # options whose cache keeps more per position


@pytest.mark.parametrize("row", [row for row in FEATURES
                                 if any(row.attn.get(name) for name in CARRIED)],
                         ids=lambda row: row.id)
def test_what_the_cache_carries_beside_keys_and_values(row):
    """A cache filled with 8 positions holds the figured bytes: keys, values, and the
    per-position tensors some scores carry (data-dependent ALiBi's gates, selective attention's
    penalties), a sliding window's layers at most its window of each."""
    spec = feature_spec(row, "Decoder", flash=False)
    figures = inspect(spec, compile_graph(spec))
    model = xtc.build(spec).eval()
    cache = model.new_cache(1, 8)
    with torch.no_grad():
        model.decode_step(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    kept = sum(t.numel() * t.element_size() for kv in cache.self_attn
               for t in (*kv.buffers, *kv.extra.values()))
    extra = sum(t.numel() * t.element_size() for kv in cache.self_attn for t in kv.extra.values())
    assert figures.cache_bytes(8) == kept
    assert extra > 0 and figures.cache_carried


def test_per_layer_caches_are_figured_layer_by_layer():
    """Per-layer values give each layer's cache its own form: a latent of its width (and rope
    key heads), or keys and values (a window's). inspect figures each layer as new_cache
    allocates it, and says which keep a latent."""
    spec = feature_spec(feature("attention-latent_per_layer"), "Decoder", flash=False)
    figures = inspect(spec, compile_graph(spec))
    cache = xtc.build(spec).new_cache(1, 1)  # one position: each layer's bytes per position
    assert figures.cache_layer_bytes == tuple(sum(t.numel() * t.element_size() for t in kv.buffers)
                                              for kv in cache.self_attn)
    assert figures.cache_layer_bytes == ((12 + 1 * DIM_HEAD) * 4, HEADS * 2 * DIM_HEAD * 4,
                                         (16 + 2 * DIM_HEAD) * 4)
    text, _ = render(spec, compile_graph(spec))
    assert "per layer            112, 512, 192 B float32 per token" in text
    assert "2 of 3 layers keep a latent (12 wide + 1 rope key head, 16 wide + 2 rope key heads)" in text
    assert json.loads(render(spec, compile_graph(spec), "json")[0])["kv_cache"]["latents"] == [
        {"width": 12, "rope_heads": 1}, None, {"width": 16, "rope_heads": 2}]


@pytest.mark.parametrize("row", [row for row in FEATURES if "max_mem_len" in row.model],
                         ids=lambda row: row.id)
def test_a_first_segment_has_no_memory(row):
    """--mem-len 0: the figures of a run without memories; by default the memory is full."""
    spec = feature_spec(row, row.kinds[0], flash=False)
    assert_figures_match(spec, memory=0)
    lengths = inspect(spec, compile_graph(spec)).lengths
    assert lengths["M"] == row.model["max_mem_len"]


# -- attention paths ------------------------------------------------------------------------------


def math_spec(feature_id: str, kind: str) -> xtc.Spec:
    return feature_spec(feature(feature_id), kind, flash=False)


def paths(spec: xtc.Spec) -> set[tuple[str, str]]:
    return {(p.path, p.flash) for p in inspect(spec, compile_graph(spec)).attention}


def test_attention_paths_name_the_reason():
    figures = inspect(spec := math_spec("explicit-pre_talking_heads", "Decoder"),
                      compile_graph(spec))
    assert {(p.path, p.flash) for p in figures.attention} == {("explicit", "no")}
    assert "pre-softmax talking heads" in figures.attention[0].why
    assert paths(math_spec("positions-alibi", "Decoder")) == {("sdpa", "no")}
    assert paths(math_spec("options-num_mem_kv", "Decoder")) == {("sdpa", "no")}
    assert paths(math_spec("recurrence-post_norm", "Decoder")) == {("sdpa", "no")}
    assert paths(math_spec("options-num_mem_kv", "Encoder")) == {
        ("sdpa", "without a padding mask")}
    assert paths(xtc.load_spec("examples/vit.yaml")) == {("sdpa", "yes")}
    xt = paths(xtc.load_spec("examples/xtransformer.yaml"))
    assert xt == {("sdpa", "yes"), ("sdpa", "without a padding mask")}  # decoder self-attention


# -- the command and its formats ------------------------------------------------------------------


def run(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "error" not in err  # warnings about the spec may come
    return code, out


@pytest.mark.parametrize("path", EXAMPLES)
def test_json_agrees_with_the_figures_and_the_graph(capsys, path):
    spec = xtc.load_spec(path)
    graph = compile_graph(spec)
    code, out = run(capsys, "inspect", path, "--format", "json", "--seq-len", "16")
    data = json.loads(out)
    figures = inspect(spec, graph, seq_len=16)
    assert code == 0
    assert data["parameters"]["total"] == figures.total_parameters
    assert sum(c["total"] for c in data["parameters"]["components"].values()) == figures.total_parameters
    assert data["flops"]["forward"]["per_sequence"] == figures.forward_flops
    assert data["flops"]["training_step"]["per_sequence"] == figures.training_flops
    assert [n["id"] for n in data["graph"]["nodes"]] == [op.name for op in graph.ops()]
    assert sum(n["parameters"] for n in data["graph"]["nodes"]) == figures.total_parameters
    ids = {n["id"] for n in data["graph"]["nodes"]}
    assert all(a in ids and b in ids for a, b in data["graph"]["edges"])


def declared_and_linked(text: str, node: str, edge: str) -> tuple[set[str], set[str]]:
    nodes = set(re.findall(node, text, re.MULTILINE))
    linked = {name for pair in re.findall(edge, text, re.MULTILINE) for name in pair}
    return nodes, linked


@pytest.mark.parametrize("path", EXAMPLES)
def test_pictures_draw_every_edge_between_declared_nodes(capsys, path):
    _, dot = run(capsys, "inspect", path, "--format", "dot")
    nodes, linked = declared_and_linked(dot, r'^\s*"(\w+)" \[label=', r'^\s*"(\w+)" -> "(\w+)";$')
    assert dot.startswith("digraph ") and dot.count("{") == dot.count("}")
    assert linked <= nodes and len(nodes) > 5
    _, mermaid = run(capsys, "inspect", path, "--format", "mermaid")
    nodes, linked = declared_and_linked(mermaid, r'^\s*(\w+)\["', r"^\s*(\w+) --> (\w+)$")
    assert mermaid.startswith("flowchart TD")
    assert mermaid.count("subgraph ") == len(re.findall(r"^\s*end$", mermaid, re.MULTILINE))
    assert linked <= nodes and len(nodes) > 5


def test_identical_blocks_are_drawn_once(capsys):
    _, mermaid = run(capsys, "inspect", "examples/gpt.yaml", "--format", "mermaid")
    assert 'subgraph c0_1["blocks 0-5 x6"]' in mermaid
    assert "block1_attn" not in mermaid
    assert "block0_ff_residual --> block0_attn_norm" not in mermaid  # no loop around the run


def test_text_report(capsys):
    code, out = run(capsys, "inspect", "examples/xtransformer.yaml")
    assert code == 0
    assert "45,398,016" in out  # the built model's count (test_examples proves it)
    assert "shares encoder_token_emb" in out  # tie_token_emb: one table, counted once
    assert "blocks 0-5 x6" in out
    assert "decoder.blocks.0-5.attn" in out and "flash: yes" in out
    assert "24,576 B float32" in out  # 6 layers x 8 heads x (64 + 64) x 4 bytes


def test_lengths_change_the_figures_but_not_the_parameters(capsys):
    _, short = run(capsys, "inspect", "examples/gpt.yaml", "--format", "json", "--seq-len", "16")
    _, long = run(capsys, "inspect", "examples/gpt.yaml", "--format", "json", "--seq-len", "32")
    short, long = json.loads(short), json.loads(long)
    assert short["parameters"] == long["parameters"]
    assert long["flops"]["forward"]["per_sequence"] > 2 * short["flops"]["forward"]["per_sequence"]
    assert (short["lengths"], long["lengths"]) == ({"T": 16}, {"T": 32})


@pytest.mark.parametrize("argv, code", [
    (["examples/gpt.yaml", "--seq-len", "0"], 2),
    (["examples/gpt.yaml", "--mem-len", "-1"], 2),
    (["examples/gpt.yaml", "--format", "svg"], 2),
    (["examples/missing.yaml"], 2),
    (["tests/fixtures/invalid/typo.yaml"], 1),
])
def test_bad_arguments_and_specs(capsys, argv, code):
    assert cli.main(["inspect", *argv]) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") >= 1 and "Traceback" not in err


@pytest.mark.parametrize("row", [f for f in FEATURES if f.group == "cross"], ids=lambda f: f.id)
def test_cross_attention_cache_per_context_token(row):
    spec = feature_spec(row, "Decoder", flash=False)
    figures = inspect(spec, compile_graph(spec))
    model = xtc.build(spec).eval()
    if not hasattr(model, "new_cache"):  # a model that recomputes every step keeps nothing
        assert figures.cross_cache_bytes_per_token == figures.cache_bytes_per_token == 0
        return
    cache = model.new_cache(1, 8)
    width = row.cross_attn.get("dim_context", 32)
    with torch.no_grad():
        model.decode_step(torch.zeros(1, 3, dtype=torch.long), context=torch.randn(1, S, width),
                          cache=cache)
    kept = sum(t.numel() * t.element_size() for layer in cache.layers
               for t in (layer.cross_attn.keys, layer.cross_attn.values))
    assert figures.cross_cache_bytes_per_token * S == kept > 0


def test_the_docs_show_the_current_picture(capsys):
    _, mermaid = run(capsys, "inspect", "examples/char_gpt.yaml", "--format", "mermaid")
    assert f"```mermaid\n{mermaid}```" in (ROOT / "docs" / "cli.md").read_text()


# -- lengths past a model's limit -----------------------------------------------------------------

LEARNED = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16}
LIMITS = {  # name -> (model, whether the built model refuses 17 positions)
    "learned": ({**LEARNED, "attn_layers": layers("Decoder")}, True),
    "alibi": ({**LEARNED, "attn_layers": layers("Decoder", alibi_pos_bias=True)}, True),
    "scaled_sinusoidal": ({**LEARNED, "scaled_sinu_pos_emb": True,
                           "attn_layers": layers("Decoder")}, False),
    "rotary": ({**LEARNED, "attn_layers": layers("Decoder", rotary_pos_emb=True)}, False),
    "t5": ({**LEARNED, "attn_layers": layers("Encoder", rel_pos_bias=True)}, False),
    "no_abs_pos_emb": ({**LEARNED, "use_abs_pos_emb": False, "attn_layers": layers("Decoder")},
                       False),
    "continuous": ({"type": "ContinuousTransformerWrapper", "max_seq_len": 16,
                    "attn_layers": layers("Encoder")}, True),
    "continuous_unbounded": ({"type": "ContinuousTransformerWrapper",
                              "attn_layers": layers("Encoder")}, False),
}


def refusal(source: str, key: str, limit: int, length: int) -> str:
    """The warning for a length (from `source`) past `key`.max_seq_len `limit`."""
    return (f"{source} is longer than {key}.max_seq_len {limit}: the {key.rpartition('.')[2]} "
            f"refuses inputs past {limit} positions (it has learned absolute positions); the "
            f"figures are for {length}")


def refuses(model, *inputs) -> bool:
    try:
        model(*inputs)
    except ValueError as error:
        assert "exceeds max_seq_len" in str(error)
        return True
    return False


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_inspect_warns_where_the_built_model_refuses_the_length(name):
    """The warning follows the emitted run-time check (lower.length_limit), not its own rule."""
    model, refused = LIMITS[name]
    spec = spec_of(model)
    warnings = xtc.inspect(spec, seq_len=17)["warnings"]
    torch.manual_seed(0)
    built = xtc.build(spec).eval()
    x = (torch.zeros(1, 17, dtype=torch.long) if model["type"] == "TransformerWrapper"
         else torch.randn(1, 17, 32))
    assert refuses(built, x) == refused
    assert warnings == ([refusal("--seq-len 17", "model", 16, 17)] if refused else [])
    assert xtc.inspect(spec, seq_len=16)["warnings"] == []


def test_an_encoder_decoder_checks_each_side_against_its_own_limit():
    spec = math_spec("xtransformer-readme", "XTransformer")  # sides: max_seq_len 16, learned
    warnings = xtc.inspect(spec, seq_len=8, context_len=17)["warnings"]
    assert warnings == [refusal("--context-len 17", "model.encoder", 16, 17)]
    built = xtc.build(spec).eval()
    tgt = torch.zeros(1, 8, dtype=torch.long)
    assert refuses(built, torch.zeros(1, 17, dtype=torch.long), tgt)
    assert "model.decoder" in xtc.inspect(spec, seq_len=17, context_len=8)["warnings"][0]


def test_a_composite_default_length_past_a_component_limit_warns():
    """The default T is the longest max_seq_len: a component with a shorter one refuses it."""
    encoder = {**LEARNED, "attn_layers": layers("Encoder")}
    decoder = {**LEARNED, "max_seq_len": 32, "attn_layers": layers("Decoder", cross_attend=True)}
    spec = xtc.loads_spec(yaml.safe_dump({
        "xtc": 1, "name": "pair", "components": {"encoder": encoder, "decoder": decoder},
        "connections": [{"from": "encoder", "to": "decoder.context"}]}, sort_keys=False))
    default = "the default length T=32 (the longest max_seq_len)"
    assert xtc.inspect(spec)["warnings"] == [refusal(default, "components.encoder", 16, 32)]


def test_cli_warns_on_stderr_and_in_json(capsys):
    code = cli.main(["inspect", "examples/gpt.yaml", "--seq-len", "5000", "--format", "json"])
    out, err = capsys.readouterr()
    warning = refusal("--seq-len 5000", "model", 1024, 5000)
    assert code == 0 and err == f"xtc: warning: {warning}\n"
    assert json.loads(out)["warnings"] == [warning]
    assert cli.main(["inspect", "examples/gpt.yaml", "--seq-len", "1024"]) == 0
    assert "warning" not in capsys.readouterr().err
