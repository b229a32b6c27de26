"""Rewrite the golden modules: `python -m xtc.compiler.regen [EXAMPLES_DIR]`.

Every `EXAMPLES_DIR/*.yaml` (default `examples`) is compiled to `EXAMPLES_DIR/generated/<stem>.py`,
and its graph after the passes is written beside it as `<stem>.ir.txt` (Graph.review_text), so
that a change to the IR shows in review. tests/test_golden.py fails when a committed file drifts
from the compiler's output; run this, review the diff, and commit it with the change that caused
it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def regenerate(examples: Path) -> list[Path]:
    from xtc.spec import load_spec

    from . import CHECKS, compile_graph, compile_spec

    written = []
    out_dir = examples / "generated"
    out_dir.mkdir(exist_ok=True)
    for spec_path in sorted(examples.glob("*.yaml")):
        spec = load_spec(spec_path, CHECKS)
        target, ir = out_dir / f"{spec_path.stem}.py", out_dir / f"{spec_path.stem}.ir.txt"
        target.write_text(compile_spec(spec))
        ir.write_text(compile_graph(spec).review_text())
        written += [target, ir]
    return written


def main(argv: list[str]) -> int:
    examples = Path(argv[0]) if argv else Path("examples")
    for path in regenerate(examples):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
