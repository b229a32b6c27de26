"""The import rules of docs/design.md ("Import rules"), checked by reading imports.

spec/ imports only the standard library and PyYAML; compiler/ adds spec, networkx and jinja2,
never torch; runtime/ imports only torch and einops; interop/ only spec and PyYAML. Within
compiler/ imports run one way: spec -> IR -> passes -> lowering -> the package, with the views
reading the IR only. Validating never imports torch.

Every import counts: absolute and relative (resolved to the module it names, `from . import costs`
in compiler/ is `xtc.compiler.costs`), at the top of a file or inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# Each folder's import name (pyproject.toml's package-dir).
PACKAGES = {"xtc": "xtc", "spec": "xtc.spec", "compiler": "xtc.compiler", "runtime": "xtc.runtime",
            "interop": "xtc.interop"}

ALLOWED = {  # beyond the standard library and the folder's own package
    "spec": {"yaml"},
    "compiler": {"yaml", "networkx", "jinja2", "xtc.spec"},
    "runtime": {"torch", "einops"},
    "interop": {"yaml", "xtc.spec"},  # Python read and written as text; checks are handed in
}


def module_name(path: Path) -> str | None:
    """`compiler/passes/modules.py` -> `xtc.compiler.passes.modules`; None outside the packages."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] not in PACKAGES:
        return None
    rest = parts[1:-1] if parts[-1] == "__init__" else parts[1:]
    return ".".join((PACKAGES[parts[0]], *rest))


def source_of(name: str) -> Path | None:
    """The file of an xtc module (`xtc.compiler.costs` -> compiler/costs.py), if there is one."""
    parts = name.split(".")
    if parts[0] != "xtc":
        return None
    folder = parts[1] if len(parts) > 1 and parts[1] in PACKAGES and parts[1] != "xtc" else None
    base = ROOT / folder if folder else ROOT / "xtc"
    rest = parts[2:] if folder else parts[1:]
    for candidate in (base.joinpath(*rest).with_suffix(".py") if rest else None,
                      base.joinpath(*rest, "__init__.py")):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The absolute names of the modules a file imports. `from PACKAGE import name` names the
    submodule where `name` is one (`from . import costs`), else the package itself."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else (here or "").rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert here is not None, f"{path.relative_to(ROOT)}: relative import outside xtc"
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.add(submodule if source_of(submodule) else base)
    return names


def third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top != "__future__"


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_imports_only_what_it_may(folder):
    allowed = ALLOWED[folder] | {PACKAGES[folder]}
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            if third_party(name):
                assert any(name == a or name.startswith(a + ".") for a in allowed), \
                    f"{path.relative_to(ROOT)} imports {name}"


def test_no_top_level_package_named_spec_or_compiler():
    folders = ("xtc", "spec", "compiler", "runtime", "interop", "scripts", "tests")
    for path in sorted(p for folder in folders
                       for p in (ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            assert name.split(".")[0] not in {"spec", "compiler", "runtime", "interop"}, \
                f"{path.relative_to(ROOT)} imports {name}: use xtc.{name} or a relative import"


# -- the layers of compiler/ ------------------------------------------------------------------

# In the order imports may run: a module imports from its own layer and the layers before it.
# The IR layer holds costs.py and models.py too: they read the IR alone, and graph checks (the
# parameter budget), the lowering and the views use them.
ORDER = ("spec", "IR", "passes", "lowering", "package", "xtc")
LAYER = {
    "xtc.spec": "spec",
    "xtc.compiler.ir": "IR",
    "xtc.compiler.resolve": "IR",
    "xtc.compiler.build_ir": "IR",
    "xtc.compiler.costs": "IR",
    "xtc.compiler.models": "IR",  # the models of a graph: rules that lowering and views share
    "xtc.compiler.passes": "passes",  # and every module of compiler/passes/
    "xtc.compiler.lower": "lowering",
    "xtc.compiler.context": "lowering",
    "xtc.compiler.render": "lowering",
    "xtc.compiler.share": "lowering",
    "xtc.compiler.verify": "lowering",
    "xtc.compiler.standalone": "lowering",
    "xtc.compiler": "package",  # compile_spec runs the lowering; checks() the passes
    "xtc.compiler.regen": "package",
    "xtc": "xtc",  # the API and the CLI
    # Views read the IR (and spec/) only; only the package and xtc/ import them.
    "xtc.compiler.inspection": "views",
    "xtc.compiler.inspect_format": "views",
    "xtc.compiler.explain": "views",
    "xtc.compiler.state_dict": "views",
    "xtc.compiler.spec_diff": "views",
    "xtc.compiler.diff_format": "views",
}
# Edges that still run the wrong way, each with why; the test fails once one is gone, so that
# it is taken off this list. None today.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def layer_of(name: str) -> str | None:
    """The layer of a module: its own entry or its nearest package's; None for xtc.runtime and
    modules outside xtc."""
    if name == "xtc.runtime" or name.startswith("xtc.runtime."):
        return None
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYER and (prefix != "xtc.compiler" or end == len(parts)):
            return LAYER[prefix]
        if prefix == "xtc.compiler":
            return None  # a module of compiler/ that LAYER does not place
    return None


def may_import(source: str, target: str) -> bool:
    if target == "views":
        return source in ("views", "package", "xtc")
    if source == "views":
        return target in ("spec", "IR", "views")
    return ORDER.index(target) <= ORDER.index(source)


def layered_files() -> list[Path]:
    return sorted(p for folder in ("spec", "compiler") for p in (ROOT / folder).rglob("*.py"))


def import_graph() -> set[tuple[str, str]]:
    """(importer, imported) for every import of an xtc module in spec/ and compiler/."""
    return {(module_name(path), name) for path in layered_files()
            for name in imported_modules(path) if name == "xtc" or name.startswith("xtc.")}


def test_every_module_of_compiler_has_a_layer():
    for path in layered_files():
        assert layer_of(module_name(path)) is not None, \
            f"{path.relative_to(ROOT)}: place it in LAYER (tests/test_imports.py)"


def test_the_import_graph_sees_relative_and_deferred_imports():
    edges = import_graph()
    assert ("xtc.compiler.inspection", "xtc.compiler.costs") in edges  # from . import costs
    assert ("xtc.compiler", "xtc.compiler.lower") in edges  # inside compile_spec
    assert ("xtc.compiler.explain", "xtc.spec.keywords") in edges  # from ..spec.keywords
    assert ("xtc.compiler.passes", "xtc.compiler.build_ir") in edges  # from ..build_ir


def test_imports_in_compiler_run_one_way():
    """spec -> IR (ir, resolve, build_ir, costs, models) -> passes -> lowering (lower, context, render,
    verify, standalone) -> the package; views (inspection, inspect_format, explain, state_dict,
    spec_diff, diff_format)
    read spec/ and the IR, and only the package and xtc/ import them. Nothing imports
    xtc.runtime (standalone.py reads it as text)."""
    wrong = {}
    for source, target in sorted(import_graph()):
        where, what = layer_of(source), layer_of(target)
        if what is None:
            wrong[source, target] = f"{where} -> {target} (not a module of spec/ or compiler/)"
        elif not may_import(where, what):
            wrong[source, target] = f"{where} -> {what}"
    unexpected = {edge: why for edge, why in wrong.items() if edge not in KNOWN_EXCEPTIONS}
    assert not unexpected, f"imports against the layer order: {unexpected}"
    gone = set(KNOWN_EXCEPTIONS) - set(wrong)
    assert not gone, f"no longer imported the wrong way, take off KNOWN_EXCEPTIONS: {gone}"


def test_passes_import_neither_the_package_nor_a_view():
    for source, target in import_graph():
        if layer_of(source) == "passes":
            assert layer_of(target) in ("spec", "IR", "passes"), f"{source} imports {target}"


# -- what commands import -------------------------------------------------------------------


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


def test_validating_an_over_budget_spec_does_not_import_torch():
    """The parameter budget compiles the IR and refuses it before anything is allocated."""
    assert modules_after(["validate", str(ROOT / "examples" / "gpt.yaml"),
                          "--max-params", "1000"]) == ["1", "False", "False"]


def test_import_does_not_import_torch(tmp_path):
    (tmp_path / "gpt.py").write_text("from x_transformers import TransformerWrapper, Decoder\n"
                                     "gpt = TransformerWrapper(num_tokens = 256, max_seq_len = 64,\n"
                                     "    attn_layers = Decoder(dim = 64, depth = 1))\n")
    assert modules_after(["import", str(tmp_path / "gpt.py")])[:2] == ["0", "False"]


def test_export_python_does_not_import_torch():
    for example in ("gpt.yaml", "pali.yaml"):
        assert modules_after(["export-python", str(ROOT / "examples" / example)])[:2] == ["0", "False"]


@pytest.mark.parametrize("command", ["explain", "schema", "inspect"])
def test_explain_schema_and_inspect_do_not_import_torch(command):
    argv = [command] + ([str(ROOT / "examples" / "gpt.yaml")] if command != "schema" else [])
    assert modules_after(argv)[:2] == ["0", "False"]


def test_diff_does_not_import_torch():
    """diff reads the specs, their graphs and the cost model: validation's dependencies alone."""
    examples = [str(ROOT / "examples" / name) for name in ("gpt.yaml", "char_gpt.yaml")]
    assert modules_after(["diff", *examples])[:2] == ["0", "False"]
