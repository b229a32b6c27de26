"""Build and run the model of every spec given, with the xtc that Python imports: the installed
check (.ci/check-install) runs it from a fresh virtual environment with xtc installed from its
wheel, outside the checkout, so a file missing from the package fails here.

    python scripts/run_examples.py examples/*.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import xtc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the input maker of the tests serves every model type
from inputs import make_inputs


def run(path: Path) -> str:
    """One line on what the model of `path` did with a batch of two masked inputs."""
    spec = xtc.load_spec(path)
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    inputs = make_inputs(spec, 2, 16, masked=True)
    with torch.no_grad():
        output = model(*inputs.args, **inputs.kwargs)
    outputs = output if isinstance(output, tuple) else (output,)  # an xVal model's: two
    if not all(torch.isfinite(t).all() for t in outputs):
        raise SystemExit(f"{path}: the output is not finite")
    params = sum(p.numel() for p in model.parameters())
    shapes = ", ".join(str(tuple(t.shape)) for t in outputs)
    return f"{path.name}: {spec.class_name}, {params:,} parameters -> {shapes}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", type=Path, metavar="SPEC", help="spec files to run")
    args = parser.parse_args(argv)
    print(f"xtc {xtc.__version__} from {Path(xtc.__file__).parent}")
    for path in args.specs:
        print(run(path))


if __name__ == "__main__":
    main()
