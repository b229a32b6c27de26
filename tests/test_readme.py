"""The README stays true: its test command is the one CI runs, and what it names exists."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", README, flags=re.DOTALL)


def test_readme_opens_with_the_setup_and_test_commands():
    setup, tests = shell_blocks()[:2]
    assert "pip install torch==2.13.0" in setup and 'pip install -e ".[test]"' in setup
    assert "examples/demo.py examples/gpt.yaml" in setup
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci, "the README's test command must be what .ci/run runs"


def test_paths_named_in_the_readme_exist():
    for path in re.findall(r"`((?:examples|tests|scripts|spec|compiler|runtime)/[\w./-]+\.\w+)`", README):
        assert (ROOT / path).exists(), path


def test_readme_lists_every_node_kind():
    from xtc.compiler.ir import OpKind

    assert all(f"`{kind.value}`" in README for kind in OpKind)
