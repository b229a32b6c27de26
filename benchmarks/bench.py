"""Compiled models against x-transformers, in one process, with the same weights.

    python benchmarks/bench.py                       # every config, 1 thread; table + JSON
    python benchmarks/bench.py --configs gpt --rounds 3 --json out.json

For each config (benchmarks/specs/*.yaml) the reference and xtc's module are built with the same
weights (tests/reference.py's mapping) and their outputs are checked equal first. Then, on one
thread, A B B A rounds time a forward (eval, no grad) and a training step (forward, loss,
backward, AdamW step); for decoders and the encoder-decoder, interleaved turns time cached
greedy generation, eager and compiled, against the reference and the weight-streaming ceiling.
Each figure is a median; the ratio is xtc over the reference (below 1: xtc is faster). An A/A
control times the reference against a copy of itself the same way, so a ratio can be read
against the noise.
Peak memory is the process's peak resident set during the training steps (Linux VmHWM, reset
before each model's run).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "benchmarks" / "specs"
sys.path.insert(0, str(ROOT / "tests"))  # the spec -> reference mapping lives with the tests
sys.path.insert(0, str(ROOT / "benchmarks"))  # peer.py

import peer
from inputs import padding_mask
from reference import TOLERANCE, paired_models

import xtc


@dataclass
class Config:
    name: str
    inputs: tuple  # positional forward inputs
    kwargs: dict = field(default_factory=dict)
    generate: bool = False  # a model with generate(): time cached greedy generation too


def fastest(path: Path) -> xtc.Spec:
    """The spec of a config as a user who wants speed writes it: `attn: {flash: true}` on every
    layer stack where the checks allow it (x-transformers then takes its flash path, as xtc
    always does), else as written."""
    document = yaml.safe_load(path.read_text())
    model = document["model"]
    stacks = [model[side] for side in ("encoder", "decoder")] if model["type"] == "XTransformer" \
        else [model["attn_layers"]]
    for stack in stacks:
        stack["attn"] = {**stack.get("attn", {}), "flash": True}
    try:
        return xtc.loads_spec(yaml.safe_dump(document, sort_keys=False), str(path))
    except xtc.SpecError:
        return xtc.load_spec(path)


def make_inputs(name: str, spec: xtc.Spec, batch: int) -> Config:
    """Inputs fitting each benchmark spec: tokens (with a padding mask for BERT), images,
    source and target tokens."""
    model = spec.model
    gen = torch.Generator().manual_seed(0)
    if model.type == "ViTransformerWrapper":
        size = model["image_size"]
        return Config(name, (torch.randn(batch, model["channels"], size, size, generator=gen),))
    if model.type == "XTransformer":
        side = model.children["encoder"]
        tokens = [torch.randint(1, side["num_tokens"], (batch, side["max_seq_len"]), generator=gen)
                  for _ in range(2)]
        return Config(name, tuple(tokens), generate=True)
    length, vocab = model["max_seq_len"], model["num_tokens"]
    tokens = torch.randint(0, vocab, (batch, length), generator=gen)
    layers = model.children["attn_layers"]
    if layers.type == "Encoder":  # BERT: the second half of every other sequence is padding
        return Config(name, (tokens,), {"mask": padding_mask(batch, length)})
    return Config(name, (tokens,), generate=True)


def scalar_loss(output: torch.Tensor) -> torch.Tensor:
    return output if output.ndim == 0 else output.float().pow(2).mean()


def forward_runner(model, config: Config):
    model.eval()

    def run():
        with torch.no_grad():
            model(*config.inputs, **config.kwargs)
    return run


def training_runner(model, config: Config):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run():
        optimizer.zero_grad(set_to_none=True)
        scalar_loss(model(*config.inputs, **config.kwargs)).backward()
        optimizer.step()
    return run


def generation_runner(model, prompt: tuple, steps: int, reference: bool):
    """Cached greedy generation of `steps` tokens. prompt: (tokens,) for a decoder, (source,
    start tokens) for an encoder-decoder, whose reference generates by itself."""
    model.eval()
    if reference:
        import x_transformers

        generating = model if len(prompt) == 2 else x_transformers.AutoregressiveWrapper(model)

        def run():
            with torch.no_grad():
                generating.generate(*prompt, steps, temperature=0.0, cache_kv=True)
    else:
        def run():
            with torch.no_grad():
                model.generate(*prompt, steps, temperature=0, cache=True)
    return run


def compiled_generation_runner(model, prompt: tuple, steps: int):
    """xtc's cached greedy generation with the decoding step compiled (generate(compile=True)),
    and the seconds its first call took, which compiles."""
    model.eval()

    def run():
        with torch.no_grad():
            model.generate(*prompt, steps, temperature=0, cache=True, compile=True)
    start = time.perf_counter()
    run()
    return run, time.perf_counter() - start


def decoding_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """The matrices one decoding step multiplies a token's vector by: every Linear of the
    generating model (an encoder-decoder's decoder) but a cross-attention's key and value
    projections, which read the context once."""
    generating = getattr(model, "decoder", model)
    return [module.weight.detach() for name, module in generating.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith(("cross_attn.to_k",
                                                                         "cross_attn.to_v"))]


def ceiling_runner(weights: list[torch.Tensor], steps: int):
    """The weight-streaming ceiling of generating `steps` tokens: what a decoding step would
    take if it did nothing but its matrix-vector products, `steps` passes of torch.mv over every
    weight in a tight loop (batch 1). The weights are read once per token, so this is what the
    machine's memory bandwidth allows; everything else a step does (attention, norms, sampling,
    Python) comes on top."""
    vectors = {w.shape[1]: torch.randn(w.shape[1]) for w in weights}

    def run():
        with torch.inference_mode():
            for _ in range(steps):
                for weight in weights:
                    torch.mv(weight, vectors[weight.shape[1]])
    return run


def generation_prompt(spec: xtc.Spec, config: Config, new_tokens: int) -> tuple:
    """One sequence's prompt: 16 tokens (fewer where absolute positions leave less room); an
    encoder-decoder's whole first source sequence and one start token."""
    if spec.model.type == "XTransformer":
        source, target = config.inputs
        return source[:1], target[:1, :1]
    room = spec.model["max_seq_len"] - new_tokens  # absolute positions bound the total
    return (config.inputs[0][:1, :max(1, min(16, room))],)


def timed(run, repeats: int) -> float:
    """The median of `repeats` timings of run(), after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def abba(run_a, run_b, rounds: int, repeats: int) -> tuple[float, float]:
    """Medians over A B B A rounds (drift in the machine's speed hits both sides alike)."""
    a, b = [], []
    for _ in range(rounds):
        a.append(timed(run_a, repeats))
        b.append(timed(run_b, repeats))
        b.append(timed(run_b, repeats))
        a.append(timed(run_a, repeats))
    return statistics.median(a), statistics.median(b)


def interleaved(runs: dict, turns: int) -> dict[str, list[float]]:
    """The time of each run in each of `turns` turns (after one warm-up call each): a turn runs
    every one once, in the order given, the next turn in reverse (A B C, C B A, ...), so all are
    timed within seconds of each other and drift in the machine's speed hits them alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for turn in range(turns):
        for name in order if turn % 2 == 0 else reversed(order):
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def paired(times: dict[str, list[float]], slower: str, faster: str) -> float:
    """The median over turns of `slower`'s time over `faster`'s in the same turn: how many times
    faster `faster` ran, each turn read against the machine's speed of that turn."""
    return statistics.median(a / b for a, b in zip(times[slower], times[faster]))


def peak_rss_during(run, repeats: int) -> int:
    """Peak resident bytes while `run` repeats (Linux: VmHWM, reset first); 0 elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return 0
    for _ in range(repeats):
        run()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def check_outputs_equal(reference, ours, config: Config) -> None:
    reference.eval(), ours.eval()
    with torch.no_grad():
        expected = reference(*config.inputs, **config.kwargs)
        actual = ours(*config.inputs, **config.kwargs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)


def measure(name: str, spec: xtc.Spec, batch: int, rounds: int, repeats: int,
            new_tokens: int) -> dict:
    config = make_inputs(name, spec, batch)
    reference, ours = paired_models(spec)
    twin = copy.deepcopy(reference)  # the A/A control: the reference against itself
    check_outputs_equal(reference, ours, config)
    result = {"config": name, "batch": batch}
    for kind, runner in (("forward", forward_runner), ("training_step", training_runner)):
        ref_time, our_time = abba(runner(reference, config), runner(ours, config), rounds, repeats)
        ref_a, ref_b = abba(runner(reference, config), runner(twin, config), rounds, repeats)
        result[kind] = {"reference_s": ref_time, "xtc_s": our_time, "ratio": our_time / ref_time,
                        "control_ratio": ref_b / ref_a}
    result["peak_rss_bytes"] = {
        "reference": peak_rss_during(training_runner(reference, config), repeats),
        "xtc": peak_rss_during(training_runner(ours, config), repeats),
    }
    if config.generate:
        result["generation"] = measure_generation(spec, config, reference, ours, twin,
                                                  rounds * repeats * 2, new_tokens)
    if windowed(spec):
        result["cache_bytes"] = measure_cache(spec, ours, config, new_tokens)
    return result


def windowed(spec: xtc.Spec) -> bool:
    layers = spec.model.children.get("attn_layers")
    return layers is not None and layers.section("attn")["max_attend_past"] is not None


def without_windows(spec: xtc.Spec) -> xtc.Spec:
    """The same spec with every attention seeing every position (the full-cache model)."""
    document = yaml.safe_load(Path(spec.path).read_text())
    document["model"]["attn_layers"]["attn"].pop("max_attend_past")
    return xtc.loads_spec(yaml.safe_dump(document, sort_keys=False), spec.path)


def cache_bytes(model, tokens: torch.Tensor) -> int:
    """The bytes a model's kv cache holds once it has read `tokens` (B, T): buffers, and what
    the layers keep beside them."""
    cache = model.new_cache(tokens.shape[0], tokens.shape[1])
    with torch.no_grad():
        model.decode_step(tokens, cache=cache)
    return sum(t.nbytes for kv in cache.self_attn for t in (kv.keys, kv.values, *kv.extra.values()))


def measure_cache(spec: xtc.Spec, ours, config: Config, new_tokens: int) -> dict:
    """A windowed model's kv cache after a generation's positions (the prompt and the new
    tokens) and after max_seq_len of them, beside the same model's without windows."""
    full = xtc.build(without_windows(spec)).eval()
    prompt = generation_prompt(spec, config, new_tokens)[0]
    lengths = {"generation": prompt.shape[1] + new_tokens, "max_seq_len": spec.model["max_seq_len"]}
    figures = {}
    for name, length in lengths.items():
        tokens = config.inputs[0][:1, :1].repeat(1, length)
        figures[name] = {"positions": length, "xtc": cache_bytes(ours, tokens),
                         "full_cache": cache_bytes(full, tokens)}
    return figures


def cache_line(name: str, figures: dict) -> str:
    """The kv cache a windowed config keeps, against the full-cache model's."""
    cells = [f"{f['positions']} positions: {f['xtc'] / 2**10:.0f} KiB against "
             f"{f['full_cache'] / 2**10:.0f} KiB ({f['xtc'] / f['full_cache']:.0%})"
             for f in figures.values()]
    return f"kv cache of {name} (sliding windows, batch 1) after " + "; after ".join(cells)


def measure_generation(spec: xtc.Spec, config: Config, reference, ours, twin, turns: int,
                       new_tokens: int) -> dict:
    """Cached greedy generation of the reference, its A/A twin, xtc eager and compiled, and the
    weight-streaming ceiling, interleaved turn by turn: one timing per run per turn, many turns
    (a generation takes a few hundred ms, and this machine's speed drifts by ~10% within
    seconds), each ratio the median of the turns' ratios."""
    prompt = generation_prompt(spec, config, new_tokens)
    compiled, compile_s = compiled_generation_runner(ours, prompt, new_tokens)
    weights = decoding_weights(ours)
    times = interleaved({"reference": generation_runner(reference, prompt, new_tokens, True),
                         "twin": generation_runner(twin, prompt, new_tokens, True),
                         "xtc": generation_runner(ours, prompt, new_tokens, False),
                         "compiled": compiled,
                         "ceiling": ceiling_runner(weights, new_tokens)}, turns)
    per_s = {name: new_tokens / statistics.median(t) for name, t in times.items()}
    return {"new_tokens": new_tokens, "turns": turns,
            "reference_tokens_per_s": per_s["reference"], "xtc_tokens_per_s": per_s["xtc"],
            "compiled_tokens_per_s": per_s["compiled"], "ceiling_tokens_per_s": per_s["ceiling"],
            "speedup": paired(times, "reference", "xtc"),
            "control_speedup": paired(times, "reference", "twin"),
            "compiled_speedup": paired(times, "reference", "compiled"),
            "ceiling_fraction": paired(times, "ceiling", "xtc"),
            "compiled_ceiling_fraction": paired(times, "ceiling", "compiled"),
            "compile_s": compile_s, "matrices": len(weights),
            "weight_bytes": sum(w.nbytes for w in weights)}


def measure_inductor(name: str, spec: xtc.Spec, batch: int, rounds: int, repeats: int) -> dict:
    """The forward of one config under torch.compile's default backend (inductor), against the
    same module run eagerly and against the reference; the first call's compile time too."""
    config = make_inputs(name, spec, batch)
    reference, ours = paired_models(spec)
    eager = forward_runner(ours, config)
    compiled_model = torch.compile(ours, fullgraph=True)
    start = time.perf_counter()
    with torch.no_grad():
        compiled_model(*config.inputs, **config.kwargs)
    compile_s = time.perf_counter() - start
    check_outputs_equal(reference, compiled_model, config)
    compiled = forward_runner(compiled_model, config)
    eager_s, compiled_s = abba(eager, compiled, rounds, repeats)
    reference_s, _ = abba(forward_runner(reference, config), compiled, rounds, repeats)
    return {"config": name, "batch": batch, "compile_s": compile_s, "eager_s": eager_s,
            "inductor_s": compiled_s, "reference_s": reference_s}


def built_without(spec: xtc.Spec, rewrite, weights: dict) -> torch.nn.Module:
    """The model as it is emitted without one graph rewrite (a pass of GRAPH_PASSES), with the
    reference's `weights` mapped by that graph's parameter rules."""
    from xtc.compiler.build_ir import build_graph
    from xtc.compiler.lower import lower
    from xtc.compiler.passes import GRAPH_PASSES, run_graph_passes
    from xtc.compiler.render import render_module
    from xtc.compiler.state_dict import parameter_rules
    from xtc.compiler.verify import verify_source

    from xtc.api import converted_by_rules

    graph = run_graph_passes(build_graph(spec), tuple(p for p in GRAPH_PASSES if p is not rewrite))
    source = render_module(lower(graph))
    verify_source(source)
    namespace: dict = {}
    code = compile(source, f"<{spec.name} without {rewrite.__name__}>", "exec")
    exec(code, namespace)  # noqa: S102 - xtc's own output, verified above
    model = namespace[spec.class_name]()
    model.load_state_dict(converted_by_rules(parameter_rules(graph), weights), strict=True)
    return model.eval()


def measure_rewrite(name: str, spec: xtc.Spec, rewrite, rounds: int, repeats: int,
                    new_tokens: int) -> dict:
    """What one graph rewrite buys: cached greedy generation (batch 1) of the model emitted with
    it against the model emitted without it, the same weights, in interleaved turns, with the A/A
    control (the model with it against itself) beside it."""
    config = make_inputs(name, spec, 1)
    prompt = generation_prompt(spec, config, new_tokens)
    reference, ours = paired_models(spec)
    without = built_without(spec, rewrite, reference.state_dict())
    check_outputs_equal(without, ours, config)
    times = interleaved({"with": generation_runner(ours, prompt, new_tokens, False),
                         "without": generation_runner(without, prompt, new_tokens, False),
                         "twin": generation_runner(copy.deepcopy(ours), prompt, new_tokens, False)},
                        rounds * repeats * 2)
    return {"config": name, "rewrite": rewrite.__name__,
            "with_tokens_per_s": new_tokens / statistics.median(times["with"]),
            "without_tokens_per_s": new_tokens / statistics.median(times["without"]),
            "speedup": paired(times, "without", "with"),
            "control_speedup": paired(times, "twin", "with")}


def rewrite_line(figures: dict) -> str:
    return (f"{figures['rewrite']} ({figures['config']}, cached generation, batch 1): "
            f"{figures['with_tokens_per_s']:.0f} tok/s with it, "
            f"{figures['without_tokens_per_s']:.0f} without = **{figures['speedup']:.2f}x** "
            f"(A/A {figures['control_speedup']:.2f}x)")


def measure_peer(name: str, spec: xtc.Spec, rounds: int, repeats: int, new_tokens: int) -> dict:
    """Cached greedy generation of transformers' LlamaForCausalLM with the shapes of a llama-style
    config (benchmarks/peer.py), against xtc's: its default cache and a static cache against
    xtc eager, its compiled static-cache recipe against xtc compiled; batch 1, the prompt of
    the config's generation figures. Speedups are xtc's tokens per second over transformers'."""
    config = make_inputs(name, spec, 1)
    (prompt,) = generation_prompt(spec, config, new_tokens)
    layers = spec.model.children["attn_layers"]
    _, ours = paired_models(spec)
    hf = peer.llama_like(spec.model["num_tokens"], spec.model["max_seq_len"], layers["dim"],
                         layers["depth"], layers["heads"], layers.sections["attn"]["dim_head"],
                         layers.sections["attn"]["kv_heads"], ours.config.ff_inner_dim)
    eager = generation_runner(ours, (prompt,), new_tokens, False)
    compiled, _ = compiled_generation_runner(ours, (prompt,), new_tokens)
    hf_compiled, hf_compile_s = peer.compiled_generation_runner(hf, prompt, new_tokens)
    times = interleaved({"dynamic": peer.generation_runner(hf, prompt, new_tokens, "dynamic"),
                         "static": peer.generation_runner(hf, prompt, new_tokens, "static"),
                         "compiled_static": hf_compiled, "xtc": eager, "xtc_compiled": compiled},
                        rounds * repeats * 2)
    per_s = {name: new_tokens / statistics.median(t) for name, t in times.items()}
    figures = {"config": name, "new_tokens": new_tokens, "hf_compile_s": hf_compile_s,
               "parameters": {"xtc": peer.parameter_count(ours), "hf": peer.parameter_count(hf)}}
    for key, mine in (("dynamic", "xtc"), ("static", "xtc"), ("compiled_static", "xtc_compiled")):
        figures[key] = {"hf_tokens_per_s": per_s[key], "xtc_tokens_per_s": per_s[mine],
                        "speedup": paired(times, key, mine)}
    return figures


def peer_line(figures: dict) -> str:
    parts = [f"{what}: {figures[key]['xtc_tokens_per_s']:.0f} / "
             f"{figures[key]['hf_tokens_per_s']:.0f} tok/s = **{figures[key]['speedup']:.2f}x**"
             for key, what in (("dynamic", "xtc eager / HF default cache"),
                               ("static", "xtc eager / HF static cache"),
                               ("compiled_static", "xtc compiled / HF compiled static cache"))]
    return (f"transformers LlamaForCausalLM ({figures['config']} shapes, "
            f"{figures['parameters']['hf']:,} parameters against xtc's "
            f"{figures['parameters']['xtc']:,}; HF compiles for {figures['hf_compile_s']:.0f} s): "
            + "; ".join(parts))


def inductor_line(figures: dict) -> str:
    return (f"inductor ({figures['config']}, forward, batch {figures['batch']}): "
            f"{figures['inductor_s'] * 1e3:.1f} ms against {figures['eager_s'] * 1e3:.1f} ms eager "
            f"({figures['eager_s'] / figures['inductor_s']:.2f}x) and "
            f"{figures['reference_s'] * 1e3:.1f} ms for the reference; the first call compiles "
            f"for {figures['compile_s']:.0f} s")


def command_time(argv: list[str], repeats: int = 5) -> float:
    """Median wall time of an `xtc` command in a fresh process (imports included)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "xtc", *argv], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_times() -> dict:
    examples = sorted(str(p) for p in (ROOT / "examples").glob("*.yaml"))
    out = ROOT / "build" / "bench_gpt.py"
    out.parent.mkdir(exist_ok=True)
    return {"validate_all_examples_s": command_time(["validate", *examples]),
            "compile_gpt_s": command_time(["compile", str(ROOT / "examples" / "gpt.yaml"),
                                           "-o", str(out)])}


def timing_cell(figures: dict) -> str:
    return (f"{figures['xtc_s'] * 1e3:.1f} / {figures['reference_s'] * 1e3:.1f} ms = "
            f"**{figures['ratio']:.3f}** ({figures['control_ratio']:.3f})")


def table(results: list[dict]) -> str:
    rows = ["| config | forward xtc / ref (A/A) | training step xtc / ref (A/A) | peak RSS xtc / ref |",
            "| --- | --- | --- | --- |"]
    for r in results:
        peak = r["peak_rss_bytes"]
        memory = f"{peak['xtc'] / 2**20:.0f} / {peak['reference'] / 2**20:.0f} MiB"
        rows.append(f"| {r['config']} | {timing_cell(r['forward'])} | "
                    f"{timing_cell(r['training_step'])} | {memory} |")
    return "\n".join(rows)


def generation_table(results: list[dict]) -> str:
    """Tokens per second of cached greedy generation, batch 1: the reference, xtc eager and
    compiled (speedup over the reference; the A/A control's beside the eager one), and the
    weight-streaming ceiling with the fraction of it each of xtc's paths reaches."""
    rows = [("| config | reference | xtc eager (A/A) | xtc compiled (compile) | ceiling "
             "(matrices, MB) | eager / compiled of ceiling |"),
            "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "generation" not in r:
            continue
        g = r["generation"]
        rows.append(
            f"| {r['config']} | {g['reference_tokens_per_s']:.0f} tok/s | "
            f"{g['xtc_tokens_per_s']:.0f} tok/s = **{g['speedup']:.2f}x** "
            f"({g['control_speedup']:.2f}x) | {g['compiled_tokens_per_s']:.0f} tok/s = "
            f"**{g['compiled_speedup']:.2f}x** ({g['compile_s']:.0f} s) | "
            f"{g['ceiling_tokens_per_s']:.0f} tok/s ({g['matrices']}, "
            f"{g['weight_bytes'] / 1e6:.1f}) | "
            f"{g['ceiling_fraction']:.0%} / {g['compiled_ceiling_fraction']:.0%} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = sorted(p.stem for p in SPECS.glob("*.yaml"))
    parser.add_argument("--configs", default=",".join(names), help=f"comma-separated: {names}")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="A B B A rounds")
    parser.add_argument("--repeats", type=int, default=5, help="timings per median")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "benchmark.json")
    parser.add_argument("--no-cli", action="store_true", help="skip the xtc command timings")
    parser.add_argument("--inductor", default="gpt", metavar="CONFIG",
                        help="the config whose forward is also timed under torch.compile "
                             "(inductor; compiling takes a minute); '' skips it")
    parser.add_argument("--rewrites", default="gpt,gpt_llama", metavar="CONFIGS",
                        help="configs whose generation is timed with and without each graph "
                             "rewrite; '' skips them")
    parser.add_argument("--peer", default="gpt_llama", metavar="CONFIG",
                        help="the llama-style config whose generation is also timed against "
                             "transformers' LlamaForCausalLM (when transformers is installed); "
                             "'' skips it")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    results = []
    for name in args.configs.split(","):
        spec = fastest(SPECS / f"{name}.yaml")
        results.append(measure(name, spec, args.batch, args.rounds, args.repeats, args.new_tokens))
        print(f"measured {name}", file=sys.stderr)
    report = {"threads": args.threads, "torch": torch.__version__, "configs": results}
    if args.inductor:
        spec = fastest(SPECS / f"{args.inductor}.yaml")
        report["inductor"] = measure_inductor(args.inductor, spec, args.batch, args.rounds,
                                              args.repeats)
    from xtc.compiler.passes import GRAPH_PASSES, infer_shapes

    rewrites = [p for p in GRAPH_PASSES if p is not infer_shapes]  # those that change the model
    report["rewrites"] = [
        measure_rewrite(name, fastest(SPECS / f"{name}.yaml"), rewrite, args.rounds, args.repeats,
                        args.new_tokens)
        for name in filter(None, args.rewrites.split(",")) for rewrite in rewrites]
    if args.peer and peer.hf_available():
        spec = fastest(SPECS / f"{args.peer}.yaml")
        report["peer"] = measure_peer(args.peer, spec, args.rounds, args.repeats, args.new_tokens)
    if not args.no_cli:
        report["cli"] = cli_times()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(f"\n{generation_table(results)}")
    for r in results:
        if "cache_bytes" in r:
            print(f"\n{cache_line(r['config'], r['cache_bytes'])}")
    if "cli" in report:
        cli = report["cli"]
        print(f"\nxtc validate (all examples): {cli['validate_all_examples_s']:.2f} s; "
              f"xtc compile examples/gpt.yaml: {cli['compile_gpt_s']:.2f} s (medians of 5)")
    if "inductor" in report:
        print(f"\n{inductor_line(report['inductor'])}")
    for figures in report["rewrites"]:
        print(f"\n{rewrite_line(figures)}")
    if "peer" in report:
        print(f"\n{peer_line(report['peer'])}")
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
