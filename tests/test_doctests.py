"""The examples in docstrings run, so they stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest
from conftest import ROOT

# Folder -> package (the code folders install under xtc, DESIGN.md section 2).
PACKAGES = {"xtc": "xtc", "spec": "xtc.spec", "compiler": "xtc.compiler"}


def modules() -> list[str]:
    names = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join((package, *parts)))
    return sorted(names)


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name):
    if name == "xtc.__main__":
        pytest.skip("running it is the CLI")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
