"""Every example on a GPU in bfloat16: parity with x-transformers, tokens per second, TFLOP/s.

    python benchmarks/gpu_check.py                    # CUDA, bfloat16, batch 8, length 256
    python benchmarks/gpu_check.py --examples gpt,bert --seq-len 512 --json build/gpu.json
    python benchmarks/gpu_check.py --device cpu --batch 2 --seq-len 32 --repeats 2   # the logic

For each example (examples/*.yaml) the reference and xtc's module are built with the same
weights (tests/reference.py's mapping), in float32 on the CPU. On the device, the reference's
float32 output is the ground truth; then both models are cast to `--dtype` and run again under
a restricted SDPA backend (`sdpa_backend`):

- a mask-free call may use the flash kernel only (Dao et al. 2022,
  https://arxiv.org/abs/2205.14135); a call with a padding mask the memory-efficient one, since
  flash takes no mask tensor. Each example that takes a padding mask gets a second, masked row
  (the second half of every other sequence padded).
- On the CPU, which has no memory-efficient kernel, masked calls use the math backend.
- Where a model cannot run under the restriction (SDPA raises "No available kernel" or "No
  viable backend": an option that needs an explicit float mask, say), it runs under PyTorch's
  default choice instead and the row's backend reads `default (<wanted> refused)`; the row is
  still checked and timed.
- The reference's attention outputs are cast back to bfloat16 where x-transformers promotes
  them to float32 under a padding mask (`keep_attention_dtype`), without which its masked
  bfloat16 forward fails.

Parity. Both bfloat16 models are compared with the float32 ground truth. bfloat16 keeps 8
significant bits (eps = 2**-7), so the reference itself is off by some amount E_ref after a
dozen layers; xtc passes if its own error E_xtc <= 2 * E_ref + 2 * eps * max(1, max |truth|).
Two implementations of the same maths in bfloat16 differ only in rounding order (fused
kernels, fp32 accumulation inside SDPA against the reference's explicit bf16 softmax), which
keeps their errors within a small factor of each other, hence the first 2. The second term is
two to four units in the last place of the largest output: a scalar loss (the encoder /
decoder's output) is a single bfloat16 number, so the two models' errors differ by whole
steps of 2**-5 near a loss of 5 (one step, measured on the CPU), and a reference that happens
to round exactly (E_ref = 0) must not demand exactness. A real bug (a wrong scale, a dropped
mask, a missing norm) puts the error at the size of the output, far above either; a weight of
one layer moved by 10% of its spread already fails (at toy size on the CPU). The plain
difference between the two bfloat16 outputs is reported too.

Composites (image_caption, pali) have no single reference model (tests/test_composites.py
wires theirs by hand, in float32); here xtc's bfloat16 output is compared with xtc's own
float32 output instead, the row says `self (fp32)`, and it passes if the error is at most
SELF_RELATIVE_TOLERANCE of the largest output: a check that bfloat16 is numerically sound,
not a parity check (parity is what test_composites.py checks).

Timing: after warm-up calls, the median of `--repeats` forward passes in inference mode,
synchronised with the device; tokens per second = batch * output positions / median, and
achieved TFLOP/s = `xtc.inspect`'s forward matmul FLOPs per sequence * batch / median / 1e12
(its count takes the full attention square, also for causal masks, where the flash kernel skips
half: the figure is the model's FLOPs at the speed measured, not the kernel's). For decoder
language models, cached greedy generation of `--new-tokens` tokens after a 16-token prompt (all
`--batch` rows) is timed too, xtc's `generate(..., temperature=0)` against x-transformers'
`AutoregressiveWrapper.generate(..., cache_kv=True)`. One example (`--compile gpt`, the
default; `''` skips it) also generates with `generate(..., compile=True)`: the first call's
seconds (it compiles, with inductor's dynamic shapes and no CUDA graphs, since the key length
grows at every step), compiled and eager tokens per second, and whether the two give the same
tokens: in `--dtype`, where a near-tie of a random-weight model can go either way under another
rounding order (the line then says from which new token on they part), and in float32, where
they must agree.

One example failing (to build, to run) gives an error row and the check goes on. The exit
status is 1 if any row failed its parity check or raised, or compiled generation raised or
differed from eager in float32; 2 if CUDA was asked for and is not there. With the defaults
(17 examples, 33 rows) the forward rows take about a minute on one H200, most of it building the models on the CPU; `tests/test_gpu_check.py` checks the logic on
the CPU with tiny models.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "tests"))  # the spec -> reference mapping lives with the tests

from inputs import Inputs, make_inputs
from reference import paired_models

import xtc

# A composite's bfloat16 output against its own float32 output, as a fraction of the largest
# output. The reference's bfloat16 error on the single-model examples stays near 1% of the
# largest logit (6 layers, width 512); 4% leaves room for a composite's 12 layers.
SELF_RELATIVE_TOLERANCE = 0.04
PROMPT_LENGTH = 16
# What SDPA raises when the backends allowed cannot serve a call: the kernel choice of CUDA and
# of the CPU (aten/src/ATen/native/transformers/), and of the dispatcher when none is viable.
SDPA_REFUSALS = ("No available kernel", "No viable backend")
BACKEND_NAMES = {SDPBackend.FLASH_ATTENTION: "flash", SDPBackend.EFFICIENT_ATTENTION:
                 "memory-efficient", SDPBackend.MATH: "math"}


@dataclass(frozen=True)
class Settings:
    device: str = "cuda"
    dtype: torch.dtype = torch.bfloat16
    batch: int = 8
    seq_len: int = 256
    repeats: int = 10
    new_tokens: int = 64
    generation_repeats: int = 3


# --- inputs -------------------------------------------------------------------------------

def takes_padding_mask(spec: xtc.Spec) -> bool:
    """Whether a masked row applies: every model but a lone ViT (which takes no mask)."""
    return spec.model is None or spec.model.type != "ViTransformerWrapper"


def is_decoder_lm(spec: xtc.Spec) -> bool:
    """A decoder-only language model, which has `generate` (cross-attending ones need a context)."""
    model = spec.model
    if model is None or model.type != "TransformerWrapper":
        return False
    layers = model.children["attn_layers"]
    return layers.type == "Decoder" and not layers.options.get("cross_attend")


def to_device(inputs: Inputs, device: str, dtype: torch.dtype) -> Inputs:
    """Inputs on the device, floating ones (images, vectors, contexts) cast to dtype."""
    def move(t):
        return t.to(device, dtype) if t.is_floating_point() else t.to(device)
    return Inputs(tuple(move(t) for t in inputs.args),
                  {k: move(v) for k, v in inputs.kwargs.items()}, inputs.lengths)


# --- backends and timing ------------------------------------------------------------------

def sdpa_backend(device: str, masked: bool) -> SDPBackend:
    """The one SDPA kernel a call may use. CUDA: flash for mask-free calls, memory-efficient
    for masked ones (flash takes no mask tensor). CPU, where the memory-efficient kernel does
    not exist: flash for mask-free calls, math for masked ones.

    >>> sdpa_backend("cuda", masked=True).name
    'EFFICIENT_ATTENTION'
    """
    if masked:
        return SDPBackend.EFFICIENT_ATTENTION if device.startswith("cuda") else SDPBackend.MATH
    return SDPBackend.FLASH_ATTENTION


def backend_context(run, wanted: SDPBackend):
    """Call run() once under the wanted backend alone and return (its output, a context factory
    for later calls, the backend's label). If SDPA has no kernel of that kind for the call, run
    under PyTorch's default choice and say so in the label."""
    try:
        with warnings.catch_warnings():  # SDPA warns about each kernel it rules out
            warnings.simplefilter("ignore")
            with sdpa_kernel(wanted):
                output = run()
        return output, lambda: sdpa_kernel(wanted), BACKEND_NAMES[wanted]
    except RuntimeError as error:
        if not any(refusal in str(error) for refusal in SDPA_REFUSALS):
            raise
    return run(), contextlib.nullcontext, f"default ({BACKEND_NAMES[wanted]} refused)"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def median_seconds(run, context, repeats: int, device: str, warmup: int = 2) -> float:
    """The median wall time of run() under context(), synchronised, after warm-up calls."""
    times = []
    with context(), torch.inference_mode():
        for i in range(warmup + repeats):
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


# --- parity -------------------------------------------------------------------------------

def output_tensors(output) -> tuple[torch.Tensor, ...]:
    """A model's outputs as a tuple: xVal returns (logits, numbers), the others one tensor."""
    return tuple(output) if isinstance(output, tuple) else (output,)


def max_abs_error(actual, expected) -> float:
    """The largest absolute difference over every output tensor."""
    return max((a.float() - e.float()).abs().max().item()
               for a, e in zip(output_tensors(actual), output_tensors(expected), strict=True))


def largest_magnitude(output) -> float:
    return max(t.float().abs().max().item() for t in output_tensors(output))


def parity_verdict(ours_error: float, reference_error: float | None, largest: float,
                   dtype: torch.dtype) -> tuple[bool, float]:
    """(ok, tolerance) for xtc's error against the float32 truth; reference_error None: a
    composite's self check (module docstring). NaN errors fail.

    >>> parity_verdict(0.05, 0.03125, 4.0, torch.bfloat16)  # 2 * 0.03125 + 2 * 2**-7 * 4
    (True, 0.125)
    """
    scale = max(1.0, largest)
    if reference_error is None:
        tolerance = SELF_RELATIVE_TOLERANCE * scale
    else:
        tolerance = 2 * reference_error + 2 * torch.finfo(dtype).eps * scale
    return ours_error <= tolerance, tolerance


def parity_row(ours, reference, expected: torch.Tensor, inputs: Inputs, dtype: torch.dtype,
               wanted: SDPBackend) -> tuple[dict, dict]:
    """Run both low-precision models once under the wanted backend and judge xtc's output
    (reference None: a composite against its own float32 output). Also returns the backend
    contexts to time them under."""
    def call(model):
        return lambda: model(*inputs.args, **inputs.kwargs)

    with torch.inference_mode():
        ours_out, ours_context, ours_backend = backend_context(call(ours), wanted)
        ours_error = max_abs_error(ours_out, expected)
        yardstick = "self (fp32)" if reference is None else "reference"
        row = {"backend": ours_backend, "yardstick": yardstick,
               "ours_error": ours_error, "reference_error": None, "ours_vs_reference": None}
        contexts = {"ours": ours_context}
        if reference is not None:
            ref_out, contexts["reference"], row["reference_backend"] = backend_context(
                call(reference), wanted)
            row["reference_error"] = max_abs_error(ref_out, expected)
            row["ours_vs_reference"] = max_abs_error(ours_out, ref_out)
    largest = largest_magnitude(expected)
    row["ok"], row["tolerance"] = parity_verdict(ours_error, row["reference_error"], largest, dtype)
    return row, contexts


# --- one example --------------------------------------------------------------------------

def forward_figures(models: dict, contexts: dict, inputs: Inputs, spec: xtc.Spec,
                    settings: Settings) -> dict:
    """Median forward seconds, tokens/s and achieved TFLOP/s of each model."""
    lengths = inputs.lengths
    figures = xtc.inspect(spec, seq_len=lengths.get("T"), context_len=lengths.get("S"))
    flops = figures["flops"]["forward"]["per_sequence"] * settings.batch
    tokens = figures["tokens"] * settings.batch
    row = {"tokens_per_forward": tokens, "flops_per_forward": flops}
    for side, model in models.items():
        seconds = median_seconds(lambda m=model: m(*inputs.args, **inputs.kwargs), contexts[side],
                                 settings.repeats, settings.device)
        row[f"{side}_s"] = seconds
        row[f"{side}_tokens_per_s"] = tokens / seconds
        row[f"{side}_tflops"] = flops / seconds / 1e12
    return row


def generation_figures(ours, reference, tokens: torch.Tensor, spec: xtc.Spec, settings: Settings,
                       wanted: SDPBackend) -> dict:
    """Cached greedy generation after the first tokens of every row, new tokens per second of
    xtc and the reference. Prompt and new tokens stay within max_seq_len (absolute positions)."""
    import x_transformers

    wrapper = x_transformers.AutoregressiveWrapper(reference)
    max_seq_len = spec.model["max_seq_len"]
    prompt = tokens[:, :min(PROMPT_LENGTH, max_seq_len // 2, tokens.shape[1])]
    n = min(settings.new_tokens, max_seq_len - prompt.shape[1])
    runs = {"ours": lambda: ours.generate(prompt, n, temperature=0, cache=True),
            "reference": lambda: wrapper.generate(prompt, n, temperature=0.0, cache_kv=True)}
    row = {"new_tokens": n, "prompt": tuple(prompt.shape)}
    for side, run in runs.items():
        try:  # a model that cannot generate (cache) is a note in the cell, not a failed row
            with torch.inference_mode():
                _, context, row[f"{side}_backend"] = backend_context(run, wanted)
            seconds = median_seconds(run, context, settings.generation_repeats, settings.device,
                                     warmup=1)
            row[f"{side}_tokens_per_s"] = prompt.shape[0] * n / seconds
        except Exception as error:  # noqa: BLE001
            row[f"{side}_error"] = error_message(error)
    return row


def compiled_generation(name: str, spec: xtc.Spec, settings: Settings) -> dict:
    """One example's cached greedy generation, eager and with generate(compile=True), in
    settings.dtype on the device: the first compiled call's seconds (it compiles; inductor with
    dynamic shapes, no CUDA graphs: the key length grows at every step) and both tokens per
    second, after comparing the two paths' tokens.

    Greedy decoding of a random-weight model meets near-ties, where bfloat16's rounding order
    (inductor fuses what eager runs op by op) can pick the other token, and every later token
    follows from it. So the comparison is repeated in float32, where the paths must agree; the
    bfloat16 row says from which new token on they part (`first_difference`)."""
    _, ours = build_pair(spec)
    tokens = make_inputs(spec, settings.batch, settings.seq_len).args[0].to(settings.device)
    prompt = tokens[:, :min(PROMPT_LENGTH, spec.model["max_seq_len"] // 2, tokens.shape[1])]
    n = min(settings.new_tokens, spec.model["max_seq_len"] - prompt.shape[1])
    row = {"example": name, "new_tokens": n, "prompt": tuple(prompt.shape)}
    exact = on_device(ours, settings.device)
    row["same_tokens_float32"] = first_difference(
        exact.generate(prompt, n, temperature=0, compile=True),
        exact.generate(prompt, n, temperature=0), prompt.shape[1]) is None
    torch._dynamo.reset()  # the float32 graphs are not the ones timed
    ours = exact.to(settings.dtype)
    runs = {"eager": lambda: ours.generate(prompt, n, temperature=0),
            "compiled": lambda: ours.generate(prompt, n, temperature=0, compile=True)}
    started = time.perf_counter()
    compiled_tokens = runs["compiled"]()
    synchronize(settings.device)
    row["compile_s"] = time.perf_counter() - started
    row["first_difference"] = first_difference(compiled_tokens, runs["eager"](), prompt.shape[1])
    row["same_tokens"] = row["first_difference"] is None
    for side, run in runs.items():
        seconds = median_seconds(run, contextlib.nullcontext, settings.generation_repeats,
                                 settings.device, warmup=1)
        row[f"{side}_tokens_per_s"] = prompt.shape[0] * n / seconds
    return row


def first_difference(ours: torch.Tensor, other: torch.Tensor, prompt_length: int) -> int | None:
    """The first new-token index where two generations differ in any row, None if they agree.

    >>> first_difference(torch.tensor([[5, 1, 2, 3]]), torch.tensor([[5, 1, 4, 4]]), 1)
    1
    """
    differs = (ours != other).any(dim=0)[prompt_length:].nonzero()
    return None if differs.numel() == 0 else int(differs[0])


def compiled_line(row: dict) -> str:
    agreement = ("the same tokens" if row["same_tokens"]
                 else f"the same tokens up to new token {row['first_difference']}")
    control = "the same" if row["same_tokens_float32"] else "DIFFERENT"
    return (f"generate(compile=True), {row['example']}, prompt {row['prompt']}, "
            f"{row['new_tokens']} new tokens: {row['compiled_tokens_per_s']:,.0f} tokens/s against "
            f"{row['eager_tokens_per_s']:,.0f} eager; the first call compiled for "
            f"{row['compile_s']:.0f} s; {agreement} (float32: {control} tokens)")


def keep_attention_dtype(reference: torch.nn.Module) -> torch.nn.Module:
    """Cast the outputs of the reference's attention sublayers back to their input's dtype.

    x-transformers 2.31.10 zeroes padded positions with `einx.where('b n, b n d, -> b n d',
    mask, out, 0.)` (Attention.forward, a mask and no cache), and the Python float promotes a
    bfloat16 `out` to float32, so the next bfloat16 linear layer fails on mixed dtypes. The
    promoted values are bfloat16 values and zeros, so the cast back is exact: the reference
    computes what it would in bfloat16 without the promotion."""
    from x_transformers.x_transformers import Attention

    def cast_back(module, args, output):
        dtype = args[0].dtype
        if isinstance(output, tuple):
            return (output[0].to(dtype), *output[1:])
        return output.to(dtype)

    for module in reference.modules():
        if isinstance(module, Attention):
            module.register_forward_hook(cast_back)
    return reference


def build_pair(spec: xtc.Spec):
    """(reference or None for a composite, ours), float32 on the CPU, same weights."""
    if spec.model is None:
        torch.manual_seed(0)
        return None, xtc.build(spec).eval()
    return paired_models(spec)


def check_case(spec: xtc.Spec, reference, ours, masked: bool, settings: Settings) -> dict:
    """One row: parity (`parity_case`), then the timings under the backends it ran."""
    row, contexts, models, inputs = parity_case(spec, reference, ours, masked, settings)
    row |= forward_figures(models, contexts, inputs, spec, settings)
    if not masked and is_decoder_lm(spec):
        row["generation"] = generation_figures(ours, reference, inputs.args[0], spec, settings,
                                               sdpa_backend(settings.device, masked))
    return row


def parity_case(spec: xtc.Spec, reference, ours, masked: bool, settings: Settings):
    """The float32 truth, then both models in settings.dtype under the SDPA backend for
    (device, masked): (parity row, backend contexts, models, inputs). The models are float32
    on the device when called and in settings.dtype after."""
    device, dtype = settings.device, settings.dtype
    inputs = make_inputs(spec, settings.batch, settings.seq_len, masked=masked)
    truth_model = ours if reference is None else reference
    exact = to_device(inputs, device, torch.float32)
    with torch.inference_mode():
        expected = truth_model(*exact.args, **exact.kwargs)
    models = {"ours": ours.to(dtype)}
    if reference is not None:
        models["reference"] = keep_attention_dtype(reference.to(dtype))
    inputs = to_device(inputs, device, dtype)
    wanted = sdpa_backend(device, masked)
    row, contexts = parity_row(ours, reference, expected, inputs, dtype, wanted)
    return row, contexts, models, inputs


def check_example(name: str, spec: xtc.Spec, settings: Settings) -> list[dict]:
    """The mask-free row and, where the model takes a padding mask, the masked row. A failure
    in either becomes that row's `error`, and the other row still runs."""
    try:
        reference, ours = build_pair(spec)
    except Exception as error:  # noqa: BLE001 - report it and go on with the next example
        return [error_row(name, False, error)]
    rows = []
    for masked in (False, True) if takes_padding_mask(spec) else (False,):
        try:
            # each case casts its models: it gets float32 copies, not bfloat16-rounded weights
            rows.append({"example": name, "masked": masked}
                        | check_case(spec, on_device(reference, settings.device),
                                     on_device(ours, settings.device), masked, settings))
        except Exception as error:  # noqa: BLE001
            rows.append(error_row(name, masked, error))
    return rows


def on_device(model, device: str):
    """A float32 copy of a CPU model on the device (None stays None)."""
    return None if model is None else copy.deepcopy(model).to(device)


def error_row(name: str, masked: bool, error: Exception) -> dict:
    return {"example": name, "masked": masked, "ok": False, "error": error_message(error)}


def error_message(error: Exception) -> str:
    """The exception's type and first line, short enough for a table cell."""
    message = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {message}"


def run_checks(specs: dict[str, xtc.Spec], settings: Settings) -> list[dict]:
    rows = []
    for name, spec in specs.items():
        started = time.perf_counter()
        rows += check_example(name, spec, settings)
        print(f"checked {name} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        if settings.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


# --- report -------------------------------------------------------------------------------

def table(rows: list[dict]) -> str:
    """A Markdown table, one line per row (error rows say what went wrong)."""
    lines = [("| example | mask | backend | parity error ours / ref (tolerance) | ok | "
              "ours tok/s | ref tok/s | ours TFLOP/s | greedy generation ours / ref tok/s |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        mask = "padding" if r["masked"] else "-"
        if "error" in r:
            lines.append(f"| {r['example']} | {mask} | - | {r['error']} | **no** | - | - | - | - |")
            continue
        reference_speed = r.get("reference_tokens_per_s")
        lines.append(f"| {r['example']} | {mask} | {r['backend']} | {parity_cell(r)} | "
                     f"{'yes' if r['ok'] else '**no**'} | {r['ours_tokens_per_s']:,.0f} | "
                     f"{'-' if reference_speed is None else f'{reference_speed:,.0f}'} | "
                     f"{r['ours_tflops']:.3g} | {generation_cell(r.get('generation'))} |")
    return "\n".join(lines)


def parity_cell(row: dict) -> str:
    if row["reference_error"] is None:
        return f"{row['ours_error']:.3g} / self (fp32) ({row['tolerance']:.3g})"
    return f"{row['ours_error']:.3g} / {row['reference_error']:.3g} ({row['tolerance']:.3g})"


def generation_cell(generation: dict | None) -> str:
    if generation is None:
        return "-"
    speeds = [generation.get(f"{side}_error") or f"{generation[f'{side}_tokens_per_s']:,.0f}"
              for side in ("ours", "reference")]
    return " / ".join(speeds)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return "cpu"


def use_exact_float32() -> None:
    """The float32 truth must be float32: no TF32 in matmuls or convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per median")
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens generated")
    parser.add_argument("--examples", default=",".join(names), help=f"comma-separated: {names}")
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "gpu_check.json")
    parser.add_argument("--compile", default="gpt", metavar="EXAMPLE",
                        help="the one example whose generation is also timed with "
                             "generate(compile=True), compile time included; '' skips it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here (pass --device cpu to check the logic)",
              file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        use_exact_float32()
    settings = Settings(args.device, getattr(torch, args.dtype), args.batch, args.seq_len,
                        args.repeats, args.new_tokens, min(3, args.repeats))
    specs = {name: xtc.load_spec(EXAMPLES / f"{name}.yaml") for name in args.examples.split(",")}
    started = time.perf_counter()
    rows = run_checks(specs, settings)
    compiled = None
    if args.compile:
        try:
            spec = xtc.load_spec(EXAMPLES / f"{args.compile}.yaml")
            compiled = compiled_generation(args.compile, spec, settings)
        except Exception as error:  # noqa: BLE001 - reported, the checks above still stand
            compiled = {"example": args.compile, "error": error_message(error)}
    report = {"device": device_name(args.device), "dtype": args.dtype, "torch": torch.__version__,
              "batch": args.batch, "seq_len": args.seq_len, "repeats": args.repeats,
              "wall_s": time.perf_counter() - started, "rows": rows, "compiled": compiled}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{report['device']}, {args.dtype}, batch {args.batch}, length <= {args.seq_len}, "
          f"torch {torch.__version__}, {report['wall_s']:.0f} s\n")
    print(table(rows))
    if compiled is not None:
        print("\n" + (compiled_line(compiled) if "error" not in compiled
                      else f"generate(compile=True), {compiled['example']}: {compiled['error']}"))
    print(f"\nJSON: {args.json}")
    failed = [f"{r['example']}{' (masked)' if r['masked'] else ''}" for r in rows if not r["ok"]]
    if compiled is not None and not compiled.get("same_tokens_float32", False):
        failed.append(f"generate(compile=True) of {compiled['example']}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
