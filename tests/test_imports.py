"""The import rules of docs/design.md ("Import rules"), checked by reading imports.

spec/ imports only the standard library and PyYAML; compiler/ adds spec, networkx and jinja2,
never torch; runtime/ imports only torch and einops. Validating never imports torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import ROOT

ALLOWED = {
    "spec": {"yaml"},
    "compiler": {"yaml", "networkx", "jinja2", "xtc.spec"},
    "runtime": {"torch", "einops"},
}


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top != "__future__"


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_imports_only_what_it_may(folder):
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            if third_party(name):
                allowed = ALLOWED[folder]
                assert any(name == a or name.startswith(a + ".") for a in allowed), \
                    f"{path.relative_to(ROOT)} imports {name}"


def test_no_top_level_package_named_spec_or_compiler():
    for path in sorted(p for folder in ("xtc", "spec", "compiler", "runtime", "scripts", "tests")
                       for p in (ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            assert name.split(".")[0] not in {"spec", "compiler", "runtime"}, \
                f"{path.relative_to(ROOT)} imports {name}: use xtc.{name} or a relative import"


def modules_after(argv: list[str]) -> list[str]:
    """Exit code of `xtc ARGV` and whether torch and networkx were imported, in a fresh process
    (printed to stderr: explain and schema write their result to stdout)."""
    code = ("import sys; from xtc.cli import main; "
            f"rc = main({argv!r}); "
            "print(rc, 'torch' in sys.modules, 'networkx' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return result.stderr.split()[-3:]


def test_validate_does_not_import_torch():
    assert modules_after(["validate", str(ROOT / "examples" / "gpt.yaml")]) == ["0", "False", "False"]


@pytest.mark.parametrize("command", ["explain", "schema", "inspect"])
def test_explain_schema_and_inspect_do_not_import_torch(command):
    argv = [command] + ([str(ROOT / "examples" / "gpt.yaml")] if command != "schema" else [])
    assert modules_after(argv)[:2] == ["0", "False"]
