"""Shared test options: `pytest --regen` rewrites snapshot files and golden modules instead of
comparing against them (then review the diff and commit it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_addoption(parser):
    parser.addoption("--regen", action="store_true", help="rewrite snapshots and golden files")


@pytest.fixture
def regen(request) -> bool:
    return request.config.getoption("--regen")


@pytest.fixture(params=["libyaml", "pure"])
def yaml_backend(request, monkeypatch):
    """Run a test with PyYAML's C loader and with its pure-Python one: same verdict either way."""
    monkeypatch.setenv("XTC_PURE_YAML", "1" if request.param == "pure" else "0")
    return request.param


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile traces with dynamo and runs eagerly (backend "eager"): inductor's code
    generation takes seconds to minutes a model here, and the scripts' logic is what is tested."""
    import torch

    compile_with_inductor = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: compile_with_inductor(
        model, **kwargs, backend="eager"))


def check_snapshot(path: Path, actual: str, regen: bool) -> None:
    if regen or not path.exists():
        path.write_text(actual)
        if not regen:
            pytest.fail(f"snapshot {path.name} was missing and has been written; review it")
        return
    assert actual == path.read_text(), f"output differs from {path.name} (pytest --regen rewrites)"


def load_script(relative_path: str) -> ModuleType:
    """A script of the repository (benchmarks/*.py) imported as a module, for testing its logic."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module
