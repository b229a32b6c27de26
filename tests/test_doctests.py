"""The examples in docstrings run, so they stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest
from conftest import ROOT

# Folder -> package (the code folders install under xtc, docs/design.md).
PACKAGES = {"xtc": "xtc", "spec": "xtc.spec", "compiler": "xtc.compiler", "interop": "xtc.interop"}


def modules() -> list[str]:
    names = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1:] != ("__main__",):  # importing it runs the command line
                names.append(".".join((package, *parts)))
    return sorted(names)


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
