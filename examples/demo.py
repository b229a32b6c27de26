"""Compile a spec, import the emitted module, build the model, run it on sample tokens, and say
what happened at each step.

    python examples/demo.py examples/gpt.yaml            # writes build/gpt.py
    python examples/demo.py examples/bert.yaml -o bert.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch

import xtc

sys.dont_write_bytecode = True  # importing the emitted file leaves no __pycache__ beside it


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()

    spec = xtc.load_spec(args.spec)
    output = args.output or Path("build") / f"{spec.name}.py"
    output.parent.mkdir(parents=True, exist_ok=True)
    source = xtc.compile(spec)
    output.write_text(source)
    print(f"compiled {args.spec} -> {output}: {len(source.splitlines())} lines, class {spec.class_name}")

    module = import_file(output, f"{spec.name}_demo")
    torch.manual_seed(0)
    model = getattr(module, spec.class_name)().eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"built {spec.class_name}: {params:,} parameters")

    config = model.config
    tokens = torch.randint(0, config.num_tokens, (2, 32))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[1, 24:] = False  # the second sequence is 24 tokens long, padded to 32
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(tokens, mask=mask)
    elapsed = (time.perf_counter() - start) * 1000
    print(f"ran tokens {tuple(tokens.shape)} with a padding mask -> logits "
          f"{tuple(logits.shape)} in {elapsed:.0f} ms")
    last = mask.sum(dim=1) - 1  # the last real position of each sequence
    next_tokens = logits[torch.arange(len(tokens)), last].argmax(-1)
    print(f"most likely next token after each sequence: {next_tokens.tolist()}")


if __name__ == "__main__":
    main()
