"""A spec's name becomes a class name: it must never shadow a class the emitted module defines
or imports (spec/names.py keeps the list; these tests keep the list complete)."""

from __future__ import annotations

import ast

import pytest
from conftest import ROOT
from xtc.spec.model import pascal_case
from xtc.spec.names import (
    MODULE_MEMBERS,
    RESERVED_CLASS_NAMES,
    component_name_problem,
    name_problem,
)

import xtc


def classes_defined(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def test_every_runtime_class_is_reserved():
    for path in sorted((ROOT / "runtime").glob("*.py")):
        assert classes_defined(path) <= RESERVED_CLASS_NAMES, path.name


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_emitted_class_not_named_by_the_spec_is_reserved(path):
    spec = xtc.load_spec(path)
    golden = ROOT / "examples" / "generated" / f"{path.stem}.py"
    prefixes = [spec.class_name] + [pascal_case(name) for name in spec.components]
    fixed = {name for name in classes_defined(golden)
             if not any(name.startswith(prefix) for prefix in prefixes)}
    assert fixed <= RESERVED_CLASS_NAMES


@pytest.mark.parametrize("name", ["model_cache", "rotary_embedding", "residual", "t5_relative_bias",
                                  "decoder_block", "config"])
def test_names_that_would_shadow_are_refused(name):
    assert "collides" in name_problem(name)


def test_component_names_cannot_replace_module_members():
    import torch

    members = {name for name in dir(torch.nn.Module) if not name.startswith("_")}
    members |= {name for name in vars(torch.nn.Module()) if not name.startswith("_")}
    assert members <= MODULE_MEMBERS, sorted(members - MODULE_MEMBERS)
    assert all(component_name_problem(name) for name in members)
