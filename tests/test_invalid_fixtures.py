"""Every tests/fixtures/invalid/*.yaml is rejected with exactly one error, and the full rendered
`xtc validate` output is a snapshot (`<name>.expected`), identical with and without libyaml."""

from __future__ import annotations

import os

import pytest
from conftest import FIXTURES, check_snapshot
from xtc.compiler.passes import CHECKS
from xtc.spec.load import read_spec

from xtc.cli import main

INVALID = FIXTURES / "invalid"
CASES = sorted(p.stem for p in INVALID.glob("*.yaml"))


def errors_of(case: str) -> list:
    _, problems = read_spec((INVALID / f"{case}.yaml").read_bytes(), f"{case}.yaml", CHECKS)
    return [d for d in problems if d.severity == "error"]


@pytest.mark.parametrize("case", CASES)
def test_invalid_spec_gets_one_located_error(case, capsys, regen, monkeypatch):
    monkeypatch.chdir(INVALID)
    code = main(["validate", f"{case}.yaml"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert "Traceback" not in captured.err
    check_snapshot(INVALID / f"{case}.expected", captured.err, regen)
    errors = errors_of(case)
    assert len(errors) == 1, [d.render() for d in errors]


@pytest.mark.parametrize("case", CASES)
def test_same_verdict_without_libyaml(case, monkeypatch):
    """E6: the pure-Python parser gives the same place, key and rule (PyYAML words its own
    syntax errors differently in C and Python, so their message text may differ)."""
    with_libyaml = errors_of(case)
    monkeypatch.setenv("XTC_PURE_YAML", "1")
    pure = errors_of(case)
    strip = lambda ds: [(d.line, d.col, d.key, d.code) for d in ds]
    assert strip(pure) == strip(with_libyaml)
    if with_libyaml[0].code != "yaml-syntax":
        assert pure == with_libyaml


def test_no_fixture_is_left_without_a_snapshot():
    orphans = {p.stem for p in INVALID.glob("*.expected")} - set(CASES)
    assert not orphans


def test_python_tag_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = (INVALID / "python-tag.yaml").read_text()
    (tmp_path / "spec.yaml").write_text(spec)
    assert main(["validate", "spec.yaml"]) == 1
    assert sorted(os.listdir(tmp_path)) == ["spec.yaml"]
