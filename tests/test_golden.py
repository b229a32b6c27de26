"""The emitted module of every example is committed in examples/generated/ and must match the
compiler's output (`python -m xtc.compiler.regen` or `pytest --regen` rewrites them), and every
example compiles, imports and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, check_snapshot

import xtc

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Examples that do not compile yet, with the issue that makes them: {"name": "#N"}.
XFAIL: dict[str, str] = {}


def cases():
    for path in EXAMPLES:
        marks = [pytest.mark.xfail(reason=XFAIL[path.stem], strict=True)] if path.stem in XFAIL else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("example", cases())
def test_golden_module_is_in_sync(example: Path, regen):
    source = xtc.compile(xtc.load_spec(example))
    check_snapshot(example.parent / "generated" / f"{example.stem}.py", source, regen)


def test_every_golden_has_its_spec():
    goldens = {p.stem for p in (ROOT / "examples" / "generated").glob("*.py")}
    assert goldens == {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("example", cases())
def test_example_builds_and_runs(example: Path):
    import torch

    spec = xtc.load_spec(example)
    model = xtc.build(spec).eval()
    num_tokens = spec.model["num_tokens"]
    x = torch.randint(0, num_tokens, (2, 8))
    with torch.no_grad():
        assert model(x).shape == (2, 8, num_tokens)
