"""`--standalone`: the emitted module with the xtc.runtime helpers it uses copied in.

The result needs only torch and einops. Only the definitions the module reaches are copied: the
names it imports from xtc.runtime and, transitively, the runtime definitions those refer to, each
in its runtime module's order (modules in dependency order), under a comment naming its origin.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

RUNTIME_PACKAGE = "xtc.runtime"
# compiler/ and runtime/ are siblings both in the repository and in an installed xtc/.
RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"


@dataclass(frozen=True)
class Definition:
    module: str
    name: str
    source: str
    references: frozenset[str]  # names used inside it
    order: tuple[int, int]  # (module rank, position), so copies keep a valid definition order


class Runtime:
    """Top-level definitions of the runtime modules, read as text (nothing is imported)."""

    def __init__(self, directory: Path = RUNTIME_DIR):
        self.definitions: dict[tuple[str, str], Definition] = {}
        self.imports: dict[str, list[str]] = {}  # module -> its torch/einops/stdlib import lines
        self.aliases: dict[str, dict[str, str]] = {}  # module -> {name: module it comes from}
        self.modules = sorted(p.stem for p in directory.glob("*.py") if p.stem != "__init__")
        for rank, module in enumerate(self.dependency_order(directory)):
            self.read(module, (directory / f"{module}.py").read_text(encoding="utf-8"), rank)

    def dependency_order(self, directory: Path) -> list[str]:
        depends = {m: relative_imports(ast.parse((directory / f"{m}.py").read_text(encoding="utf-8")))
                   for m in self.modules}
        ordered: list[str] = []

        def visit(module: str) -> None:
            if module not in ordered:
                for dependency in sorted(depends[module]):
                    visit(dependency)
                ordered.append(module)

        for module in self.modules:
            visit(module)
        return ordered

    def read(self, module: str, text: str, rank: int) -> None:
        tree = ast.parse(text)
        self.imports[module], self.aliases[module] = [], {}
        for position, node in enumerate(tree.body):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                for alias in node.names:
                    self.aliases[module][alias.asname or alias.name] = node.module
            elif isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports[module].append(ast.get_source_segment(text, node))
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
                for name in defined_names(node):
                    self.definitions[(module, name)] = Definition(
                        module, name, source_with_decorators(text, node),
                        frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name)),
                        (rank, position))

    def closure(self, wanted: list[tuple[str, str]]) -> list[Definition]:
        """The wanted definitions and every runtime definition they reach, in definition order."""
        found: dict[tuple[str, str], Definition] = {}
        stack = list(wanted)
        while stack:
            module, name = stack.pop()
            if (module, name) in found:
                continue
            if name in self.aliases[module]:
                stack.append((self.aliases[module][name], name))
                continue
            definition = self.definitions[(module, name)]
            found[(module, name)] = definition
            stack += [(module, ref) for ref in definition.references
                      if (module, ref) in self.definitions or ref in self.aliases[module]]
        return sorted(found.values(), key=lambda d: d.order)


def inline_runtime(source: str, runtime: Runtime | None = None) -> str:
    """The emitted module `source` with its xtc.runtime imports replaced by the code itself."""
    runtime = runtime or Runtime()
    tree = ast.parse(source)
    runtime_imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)
                       and (node.module or "").startswith(RUNTIME_PACKAGE + ".")]
    if not runtime_imports:
        return source
    wanted = [(node.module.rpartition(".")[2], alias.name)
              for node in runtime_imports for alias in node.names]
    definitions = runtime.closure(wanted)
    names = [d.name for d in definitions]
    assert len(names) == len(set(names)), f"runtime names collide when inlined: {names}"

    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    statements = [ast.get_source_segment(source, node) for node in imports
                  if node not in runtime_imports]
    bound = {name for line in statements for name in bound_names(ast.parse(line).body[0])}
    for module in dict.fromkeys(d.module for d in definitions):
        for line in runtime.imports[module]:
            names = bound_names(ast.parse(line).body[0])
            if not names <= bound:
                statements.append(line)
                bound |= names
    lines = source.splitlines()
    head, tail = lines[:imports[0].lineno - 1], lines[imports[-1].end_lineno:]
    return "\n".join([*head, *import_block(statements), *copied_code(definitions), *tail]) + "\n"


def import_block(statements: list[str]) -> list[str]:
    """The imports in isort's order: __future__, standard library, third party; in each group
    `import x` lines first, then `from x import ...`, each by module name."""
    groups: dict[int, list[tuple[bool, str, str]]] = {0: [], 1: [], 2: []}
    for line in dict.fromkeys(statements):
        node = ast.parse(line).body[0]
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        top = module.partition(".")[0]
        group = 0 if top == "__future__" else 1 if top in sys.stdlib_module_names else 2
        groups[group].append((isinstance(node, ast.ImportFrom), module, line))
    out: list[str] = []
    for entries in groups.values():
        if entries:
            out += [*([""] if out else []), *(line for *_, line in sorted(entries))]
    return out


def copied_code(definitions: list[Definition]) -> list[str]:
    """The definitions, one copy per statement, a comment where each runtime module begins."""
    out: list[str] = []
    module = None
    for definition in {d.order: d for d in definitions}.values():
        out += ["", ""]
        if definition.module != module:
            module = definition.module
            out.append(f"# ---- copied from {RUNTIME_PACKAGE}.{module} ----")
        out.append(definition.source)
    return out


def bound_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    return {alias.asname or alias.name.partition(".")[0] if isinstance(node, ast.Import)
            else alias.asname or alias.name for alias in node.names}


def relative_imports(tree: ast.Module) -> set[str]:
    return {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1}


def defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def source_with_decorators(text: str, node: ast.stmt) -> str:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
    return "\n".join(text.splitlines()[first - 1:node.end_lineno])
