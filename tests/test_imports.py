"""The import rules of DESIGN.md section 2 and STYLE.md principle 1, checked by reading imports.

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


def test_validate_does_not_import_torch():
    code = ("import sys; from xtc.cli import main; "
            f"rc = main(['validate', {str(ROOT / 'examples' / 'gpt.yaml')!r}]); "
            "print(rc, 'torch' in sys.modules, 'networkx' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["0", "False", "False"], result.stderr
