"""Where one cached decoding step's time goes: a per-op profile of xtc's step, eager and compiled.

    python benchmarks/profile_step.py                     # the gpt config, 1 thread
    python benchmarks/profile_step.py --config gpt_llama --steps 50

The model of a config (benchmarks/specs/) takes a 16-token prompt into its kv cache, then runs
`--steps` one-token decoding steps under torch.profiler, eagerly and through the compiled step
of generate(compile=True). Printed per variant: the wall time of a step (median of 7 timed
loops, without the profiler), the share of the profiled time in matrix products (what reading
the weights costs), and the ops by self time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench import SPECS, fastest
from xtc.runtime.compiled import compiled_decode_step

import xtc

MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::mv", "aten::addmv", "aten::bmm")


def primed_cache(model, prompt: torch.Tensor, capacity: int):
    """A cache holding the prompt, as generate's first step leaves it."""
    cache = model.new_cache(prompt.shape[0], capacity)
    model.decode_step(prompt, cache=cache)
    return cache


def step_ms(model, step, prompt: torch.Tensor, steps: int) -> float:
    """Median wall time of one decoding step over 7 loops of `steps` steps."""
    times = []
    for _ in range(7):
        cache = primed_cache(model, prompt, prompt.shape[1] + steps)
        token = prompt[:, -1:]
        start = time.perf_counter()
        for _ in range(steps):
            step(token, cache=cache)
        times.append((time.perf_counter() - start) / steps * 1e3)
    return statistics.median(times)


def profiled(model, step, prompt: torch.Tensor, steps: int):
    cache = primed_cache(model, prompt, prompt.shape[1] + steps)
    token = prompt[:, -1:]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(token, cache=cache)
    return prof.key_averages()


def report(name: str, ms: float, averages, steps: int, rows: int) -> str:
    total = sum(event.self_cpu_time_total for event in averages)
    products = sum(event.self_cpu_time_total for event in averages if event.key in MATRIX_PRODUCTS)
    lines = [(f"## {name}: {ms:.3f} ms a step; under the profiler {total / steps / 1e3:.3f} ms, "
              f"{products / total:.0%} of it in matrix products"),
             "", "| op | calls a step | self us a step | share |", "| --- | --- | --- | --- |"]
    events = sorted(averages, key=lambda event: event.self_cpu_time_total, reverse=True)
    for event in events[:rows]:
        lines.append(f"| {event.key} | {event.count / steps:.0f} | "
                     f"{event.self_cpu_time_total / steps:.1f} | "
                     f"{event.self_cpu_time_total / total:.1%} |")
    rest = events[rows:]
    rest_time = sum(event.self_cpu_time_total for event in rest)
    lines.append(f"| {len(rest)} other ops | {sum(event.count for event in rest) / steps:.0f} | "
                 f"{rest_time / steps:.1f} | {rest_time / total:.1%} |")
    calls = sum(event.count for event in averages if event.key.startswith("aten::"))
    lines.append(f"\n{calls / steps:.0f} aten op calls a step (views and copies included)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="gpt")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--rows", type=int, default=12, help="ops shown per variant")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = fastest(SPECS / f"{args.config}.yaml")
    model = xtc.build(spec).eval()
    prompt = torch.randint(0, spec.model["num_tokens"], (1, 16))
    compiled = compiled_decode_step(model)
    with torch.inference_mode():  # as generate runs its steps
        for name, step in (("eager", model.decode_step), ("compiled", compiled)):
            step_ms(model, step, prompt, 2)  # warm up (and compile)
            ms = step_ms(model, step, prompt, args.steps)
            print(report(f"{args.config}, {name}", ms, profiled(model, step, prompt, args.steps),
                         args.steps, args.rows), end="\n\n")


if __name__ == "__main__":
    main()
