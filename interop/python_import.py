"""`xtc import`: the specs of the x-transformers models a Python file builds, read without
running it.

The file is parsed under bounds (python_source.py) and its statements are read in order, as
Python would run them, but only as data:

- imports say which names are x-transformers' classes (`from x_transformers import Decoder as D`,
  `import x_transformers as xt` then `xt.Decoder`); a snippet without its imports may call the
  classes by their bare names;
- `name = <literal>` binds a value that later arguments may use (`dim = 512`, `4 * dim`), by the
  bounded evaluator of literals.py; any other rebinding forgets the name;
- `name = Class(...)` builds a model: each keyword argument goes where the spec language writes
  it (docs/spec-language.md: `attn_flash` into `attn: {flash}`, XTransformer's `enc_` keywords
  into `encoder:`), and `.cuda()`, `.to(device)`, `.eval()` after the call are ignored;
  `name = AutoregressiveWrapper(name, ...)` (and its kin) writes the wrapper's keywords into
  the model's `autoregressive:`;
- `out = encoder(x, return_embeddings = True)` then `decoder(y, context = out)` connects two
  models: the models so connected become one composite spec, named after the file, whose
  components are named after the variables; every other model is a spec of its own, named
  after its variable.

The spec is then written as YAML (commented_yaml.py, with the comments of the arguments it came
from) and checked by the same code as `xtc validate`; its diagnostics are reported at the
Python argument they came from. Nothing is written unless every spec is valid.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from xtc.spec.diagnostics import ERROR, Diagnostic, echo
from xtc.spec.keywords import (
    LAYER_TYPES,
    MODEL_TYPES,
    ROUTED_SECTIONS,
    SIDE_PREFIXES,
    WRAPPERS,
    keyword_table,
    trainer_of,
)
from xtc.spec.load import Check, read_spec
from xtc.spec.model import Spec
from xtc.spec.names import MAX_NAME_LENGTH, component_name_problem, name_problem

from .commented_yaml import Block, Items, dump_lines, text_of
from .literals import NotALiteral, literal_value
from .python_source import Comment, PythonSource, parse_python

REFERENCE_PACKAGE = "x_transformers"
TRAINERS = ("AutoregressiveWrapper", "XLAutoregressiveWrapper", "ContinuousAutoregressiveWrapper",
            "XValAutoregressiveWrapper")
# Calls after a constructor that move or switch a model but do not change what it computes.
DEVICE_MOVES = frozenset({"cuda", "cpu", "to", "eval", "train", "float", "double", "half",
                          "bfloat16", "requires_grad_", "share_memory"})
# A model's forward arguments that take another model's embeddings (a composite's `to: Y.arg`).
CONNECTING_ARGUMENTS = ("context", "prepend_embeds", "src_prepend_embeds")
TRAINING_KEY = "autoregressive"

Path = tuple[str, ...]


@dataclass
class Origin:
    """Where a spec key came from: the Python keyword (or call) and its comments."""

    line: int
    col: int
    python: str  # what the author wrote: `attn_flash`, `TransformerWrapper(...)`
    comments: tuple[Comment, ...] = ()


@dataclass
class Model:
    """One model the file builds: its spec mapping, and the origin of each key in it."""

    variable: str | None
    mapping: Block
    origins: dict[Path, Origin]
    unread: set[Path] = field(default_factory=set)  # keys whose value was refused
    refusals: list[Diagnostic] = field(default_factory=list)  # keyed under the model
    trainer: tuple[str, ast.Call] | None = None
    inside: bool = False  # another model's attn_layers


@dataclass(frozen=True)
class Output:
    """A variable holding what a model's forward returned."""

    model: Model
    embeddings: bool


@dataclass
class Connection:
    source: Model
    target: Model
    argument: str
    origin: Origin


@dataclass
class ImportedSpec:
    """One spec read from the file: its YAML text and the checked Spec."""

    name: str
    text: str
    spec: Spec
    variables: tuple[str, ...]  # the variables of its models


def import_python(data: bytes, path: str, checks: Iterable[Check] = ()) -> tuple[list[ImportedSpec], list[Diagnostic]]:
    """Every spec the file at `path` (its bytes `data`) builds, and every diagnostic, located in
    the Python file. The specs are empty when any diagnostic is an error."""
    source, problems = parse_python(data, path)
    if source is None:
        return [], problems
    reader = Reader(source)
    reader.read_statements(source.tree.body)
    reader.refuse_unread_calls(source.tree)
    drafts = list(reader.specs())
    problems = [*problems, *reader.problems]
    if not drafts and not problems:
        problems.append(Diagnostic(path, 1, 1, "", "import-no-model",
                                   "no x-transformers model is built in this file (expected a "
                                   "call such as `model = TransformerWrapper(...)`)"))
    specs = []
    for draft in drafts:
        problems += draft.refusals
        text, spec, found = draft.check(tuple(checks))
        problems += found
        if spec is not None:
            specs.append(ImportedSpec(draft.name, text, spec, draft.variables))
    if any(d.severity == ERROR for d in problems):
        return [], problems
    return specs, problems


class Reader:
    """Reads a module's statements in order, keeping what each name is bound to."""

    def __init__(self, source: PythonSource):
        self.source = source
        self.lines = source.text.splitlines()
        self.problems: list[Diagnostic] = []
        self.modules: set[str] = set()  # names bound to x_transformers or a module of it
        self.classes: dict[str, str] = {}  # names bound to one of its classes -> class name
        self.shadowed: set[str] = set()  # names bound to something else
        self.values: dict[str, object] = {}  # names bound to literal values
        self.imported: dict[str, str] = {}  # names imported from other modules -> the module
        self.models: dict[str, Model] = {}
        self.outputs: dict[str, Output] = {}
        self.built: list[Model] = []
        self.connections: list[Connection] = []
        self.read_calls: set[int] = set()  # id() of the constructor calls read
        # A comment after several arguments on one line is the last one's.
        self.last_on_line = {k.end_lineno: id(k) for k in sorted(
            (n for n in ast.walk(source.tree) if isinstance(n, ast.keyword)),
            key=lambda k: (k.end_lineno, k.end_col_offset))}

    # -- statements ------------------------------------------------------------------------

    def read_statements(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.read_statement(statement)

    def read_statement(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Import):
            self.read_import(statement)
        elif isinstance(statement, ast.ImportFrom):
            self.read_import_from(statement)
        elif isinstance(statement, ast.Assign) and single_name(statement.targets):
            self.read_assignment(statement.targets[0].id, statement.value)
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            if statement.value is not None:
                self.read_assignment(statement.target.id, statement.value)
        elif isinstance(statement, ast.Expr):
            self.read_expression(statement.value, None)
        elif isinstance(statement, ast.If | ast.With):  # no new scope: read their bodies in order
            self.read_statements(statement.body)
            self.read_statements(getattr(statement, "orelse", []))
        elif isinstance(statement, ast.Try):
            for body in (statement.body, *(h.body for h in statement.handlers),
                         statement.orelse, statement.finalbody):
                self.read_statements(body)
        else:  # anything else may rebind a name: forget what it held
            for name in bound_names(statement):
                self.forget(name)

    def read_import(self, statement: ast.Import) -> None:
        for alias in statement.names:
            root = alias.name.partition(".")[0]
            bound = alias.asname or root
            self.forget(bound)
            self.imported[bound] = alias.name
            if root == REFERENCE_PACKAGE:  # the package, or a module of it under an alias
                self.modules.add(bound)
                self.shadowed.discard(bound)

    def read_import_from(self, statement: ast.ImportFrom) -> None:
        module = statement.module or ""
        ours = statement.level == 0 and (module == REFERENCE_PACKAGE
                                         or module.startswith(REFERENCE_PACKAGE + "."))
        for alias in statement.names:
            bound = alias.asname or alias.name
            self.forget(bound)
            self.imported[bound] = "." * statement.level + module
            if not ours:
                continue
            self.shadowed.discard(bound)
            if alias.name[:1].islower():  # a module: `from x_transformers import xval`
                self.modules.add(bound)
            else:
                self.classes[bound] = alias.name

    def forget(self, name: str) -> None:
        for table in (self.values, self.models, self.outputs, self.classes, self.imported):
            table.pop(name, None)
        self.modules.discard(name)
        self.shadowed.add(name)

    def read_assignment(self, name: str, value: ast.expr) -> None:
        model = self.read_expression(value, name)
        self.forget(name)
        if isinstance(model, Model):
            self.models[name] = model
        elif isinstance(model, Output):
            self.outputs[name] = model
        elif model is None and not contains_call(value):
            try:
                self.values[name] = literal_value(value, self.values)
            except NotALiteral:
                pass  # not a value: the name is forgotten, and a use of it is an error then

    def read_expression(self, node: ast.expr, variable: str | None) -> Model | Output | None:
        """The model a constructor call builds, or the output of a model's forward, or None."""
        node = without_device_moves(node)
        if isinstance(node, ast.Name) and node.id in self.models:  # `model = model.to(device)`
            return self.models[node.id]
        if not isinstance(node, ast.Call):
            return None
        cls = self.reference_class(node.func)
        if cls in MODEL_TYPES:
            return self.read_model(node, cls, variable)
        if cls in TRAINERS:
            return self.read_trainer(node, cls, variable)
        if cls is not None and cls[:1].isupper():
            self.read_calls.add(id(node))
            self.problem(node, "", "import-unsupported-class",
                         f"x-transformers' {cls} is not a model xtc compiles (it compiles "
                         f"{', '.join(MODEL_TYPES)}, and the training wrappers {', '.join(TRAINERS)})")
            return None
        model = self.model_called(node.func)
        if model is not None:
            return self.read_forward(node, model)
        return None

    # -- which names are x-transformers' -----------------------------------------------------

    def reference_class(self, func: ast.expr) -> str | None:
        """The x-transformers class a call's function names, or None."""
        if isinstance(func, ast.Name):
            if func.id in self.classes:
                return self.classes[func.id]
            known = func.id in (*MODEL_TYPES, *TRAINERS)
            return func.id if known and func.id not in self.shadowed else None
        parts = dotted(func)
        if parts and len(parts) > 1 and parts[0] in self.modules:
            return parts[-1]
        return None

    def model_called(self, func: ast.expr) -> Model | None:
        """The model a call runs: `model(...)` or `model.forward(...)`."""
        if isinstance(func, ast.Attribute) and func.attr == "forward":
            func = func.value
        return self.models.get(func.id) if isinstance(func, ast.Name) else None

    # -- models ------------------------------------------------------------------------------

    def read_model(self, call: ast.Call, cls: str, variable: str | None) -> Model:
        self.read_calls.add(id(call))
        model = Model(variable, Block(type=cls), {(): self.origin(call, f"{cls}(...)")})
        for argument in call.args:
            self.problem(argument, "", "import-positional",
                         f"{cls} takes keyword arguments only (`{cls}(dim = 512, ...)`); "
                         f"this argument has no keyword")
        for keyword in self.written_keywords(call):
            path = key_path(cls, keyword.arg)
            origin = self.origin(keyword, keyword.arg)
            if is_extension(cls, path):
                self.refuse_extension(model, keyword, cls, path)
            elif cls in WRAPPERS and keyword.arg == "attn_layers":
                self.place_layers(model, keyword, origin)
            else:
                self.place_value(model, path, keyword.value, origin)
        self.built.append(model)
        return model

    def refuse_extension(self, model: Model, keyword: ast.keyword, cls: str, path: Path) -> None:
        """`Decoder(norm_eps = 1e-6)`: x-transformers has no such keyword (the call fails with
        it), though the spec language has one of that name, an xtc extension."""
        line, col = self.location(keyword)
        model.refusals.append(Diagnostic(
            self.source.path, line, col, ".".join(path), "import-extension",
            f"x-transformers' {cls} has no keyword {keyword.arg} (the call fails with it); "
            f"{path[-1]} is an xtc extension, which only a spec can set"))
        model.unread.add(path)

    def written_keywords(self, call: ast.Call) -> Iterator[ast.keyword]:
        """A call's keyword arguments; `**options` is refused, since its keys are not in the file."""
        for keyword in call.keywords:
            if keyword.arg is None:
                self.problem(keyword, "", "import-not-a-literal",
                             f"`**{unparsed(keyword.value)}`: xtc import reads keyword arguments "
                             f"written out, not unpacked from a mapping")
            else:
                yield keyword

    def place_layers(self, model: Model, keyword: ast.keyword, origin: Origin) -> None:
        """A wrapper's attn_layers: a layers constructor, written there or bound to a name."""
        node = without_device_moves(keyword.value)
        layers = None
        if isinstance(node, ast.Call) and self.reference_class(node.func) in LAYER_TYPES:
            layers = self.read_model(node, self.reference_class(node.func), None)
        elif isinstance(node, ast.Name) and node.id in self.models:
            bound = self.models[node.id]
            if bound.mapping["type"] in LAYER_TYPES and bound.inside:
                self.problem(keyword, "attn_layers", "import-shared-layers",
                             f"`{node.id}` is already the attn_layers of another model; two "
                             "wrappers of one layers object share its weights, which a spec "
                             "cannot say: build the layers once per model")
                model.unread.add(("attn_layers",))
                return
            layers = bound if bound.mapping["type"] in LAYER_TYPES else None
        if layers is None:
            self.problem(keyword.value, "attn_layers", "import-not-a-literal",
                         f"`attn_layers`: expected a call of {', '.join(LAYER_TYPES)} "
                         f"(or a name bound to one), got {describe(keyword.value)}")
            model.unread.add(("attn_layers",))
            return
        layers.inside = True
        root = layers.origins.pop(())
        origin.comments = (*origin.comments, *(c for c in root.comments if c not in origin.comments))
        model.mapping["attn_layers"] = layers.mapping
        model.origins[("attn_layers",)] = origin
        model.origins.update({("attn_layers", *path): o for path, o in layers.origins.items()})
        model.unread.update(("attn_layers", *path) for path in layers.unread)
        model.refusals += [under("attn_layers", d) for d in layers.refusals]

    def place_value(self, model: Model, path: Path, node: ast.expr, origin: Origin) -> None:
        try:
            value = literal_value(node, self.values)
        except NotALiteral as refused:
            named = "" if origin.python == path[-1] else f"`{origin.python}`: "
            if isinstance(refused.node, ast.Name) and refused.node.id in self.imported:
                refused.message = (f"`{refused.node.id}` is imported from "
                                   f"{self.imported[refused.node.id]}, which xtc import does not "
                                   "read: write the value, or bind it in this file")
            line, col = self.location(refused.node)
            model.refusals.append(Diagnostic(self.source.path, line, col, ".".join(path),
                                             "import-not-a-literal", named + refused.message))
            model.unread.add(path)
            return
        mapping = model.mapping
        for key in path[:-1]:
            mapping = mapping.setdefault(key, Block())
        mapping[path[-1]] = spec_value(value)
        model.origins[path] = origin

    def read_trainer(self, call: ast.Call, cls: str, variable: str | None) -> Model | None:
        """`AutoregressiveWrapper(model, ...)`: the model, with the wrapper's keywords."""
        self.read_calls.add(id(call))
        if not call.args:
            self.problem(call, "", "import-trainer-without-model",
                         f"{cls} takes the model it trains as its first argument")
            return None
        net = without_device_moves(call.args[0])
        model = self.read_expression(net, variable) if isinstance(net, ast.Call) else (
            self.models.get(net.id) if isinstance(net, ast.Name) else None)
        if not isinstance(model, Model):
            self.problem(call.args[0], "", "import-trainer-without-model",
                         f"{cls}'s first argument must be a model built in this file, got "
                         f"{describe(call.args[0])}")
            return None
        for extra in call.args[1:]:
            self.problem(extra, "", "import-positional",
                         f"{cls} takes its options as keyword arguments")
        model.trainer = (cls, call)
        for keyword in self.written_keywords(call):
            self.place_value(model, (TRAINING_KEY, keyword.arg), keyword.value,
                             self.origin(keyword, keyword.arg))
        return model

    # -- data flow ---------------------------------------------------------------------------

    def read_forward(self, call: ast.Call, model: Model) -> Output:
        """A model's forward: the connections its arguments make, and what it returns."""
        embeddings = False
        for keyword in call.keywords:
            if keyword.arg == "return_embeddings":
                try:
                    embeddings = literal_value(keyword.value, self.values) is True
                except NotALiteral:
                    embeddings = False
            elif keyword.arg in CONNECTING_ARGUMENTS:
                self.connect(keyword, model)
        return Output(model, embeddings)  # bare layers return their embeddings as they are

    def connect(self, keyword: ast.keyword, target: Model) -> None:
        value = without_device_moves(keyword.value)
        source = None
        if isinstance(value, ast.Name) and value.id in self.outputs:
            source = self.outputs[value.id]
        elif isinstance(value, ast.Call) and self.model_called(value.func) is not None:
            source = self.read_forward(value, self.model_called(value.func))
        if source is None:
            return  # a tensor from elsewhere: an input of the model, not a connection
        if not source.embeddings and source.model.mapping["type"] not in LAYER_TYPES:
            self.problem(keyword.value, "", "import-connection-without-embeddings",
                         f"`{keyword.arg}` takes another model's output, which xtc connects as "
                         "its embeddings: call that model with `return_embeddings = True`")
            return
        self.connections.append(Connection(source.model, target, keyword.arg,
                                           self.origin(keyword, keyword.arg)))

    def refuse_unread_calls(self, tree: ast.Module) -> None:
        """A model built anywhere but in a statement read above (inside a function, a loop,
        a list) is located, not silently left out."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and id(node) not in self.read_calls:
                cls = self.reference_class(node.func)
                if cls in MODEL_TYPES or cls in TRAINERS:
                    self.problem(node, "", "import-model-not-at-top-level",
                                 f"{cls}(...) is built where xtc import does not read: it reads "
                                 "models bound to a name at the top level of the file (also "
                                 "under `if` and `with`), as `model = TransformerWrapper(...)`")

    # -- specs -------------------------------------------------------------------------------

    def specs(self) -> Iterator[SpecDraft]:
        """One spec per model, but for models connected by data flow: one composite each."""
        models = [m for m in self.built if not m.inside]
        for model in models:
            self.check_trainer(model)
        groups = connected_groups(models, self.connections)
        stem = file_stem(self.source.path)
        composites = sum(len(group) > 1 for group in groups)
        taken: set[str] = set()
        for group in groups:
            if len(group) == 1:
                model = group[0]
                name = spec_name(model.variable or stem, taken)
                yield SpecDraft.single(name, model, self.source)
            else:
                sink = [m for m in group if not any(c.source is m for c in self.connections)][-1]
                base = stem if composites == 1 else f"{stem}_{sink.variable}"
                links = [c for c in self.connections if c.target in group]
                yield SpecDraft.composite(spec_name(base, taken), group, links, self.source)

    def check_trainer(self, model: Model) -> None:
        if model.trainer is None:
            return
        cls, call = model.trainer
        layers = model.mapping.get("attn_layers")
        layer_type = layers.get("type") if isinstance(layers, dict) else None
        expected = trainer_of(model.mapping["type"], layer_type, model.mapping.get("max_mem_len", 0))
        if expected == cls:
            return
        model.unread.add((TRAINING_KEY,))
        if expected is None:
            why = (f"a {model.mapping['type']}" + (f" with an {layer_type}" if layer_type else "")
                   + " generates nothing, so xtc gives it no training wrapper")
        else:
            why = f"xtc trains this model as x-transformers' {expected} does"
        self.problem(call, TRAINING_KEY, "import-wrong-trainer", f"{cls}(...): {why}")

    # -- locations ---------------------------------------------------------------------------

    def origin(self, node: ast.AST, python: str) -> Origin:
        line, col = self.location(node)
        return Origin(line, col, python, self.comments_of(node))

    def location(self, node: ast.AST) -> tuple[int, int]:
        """1-based line and column (in characters: ast counts UTF-8 bytes)."""
        line = getattr(node, "lineno", 1)
        offset = getattr(node, "col_offset", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return line, len(text.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1

    def comments_of(self, node: ast.AST) -> tuple[Comment, ...]:
        """The comment lines right above a keyword argument (or a constructor call), and the
        comment after it: on its line, or for a call written over several lines, on its first
        line (`attn_layers = Decoder(  # the layers`) unless an argument starts there."""
        comments = self.source.comments
        first, last = getattr(node, "lineno", 0), getattr(node, "end_lineno", 0)
        above = []
        previous = first - 1
        while previous in comments and comments[previous].own_line:
            above.append(comments[previous])
            previous -= 1
        crowded = any(isinstance(n, ast.keyword) and n is not node and n.lineno == first
                      for n in ast.walk(node))
        if first == last:
            line = first if self.last_on_line.get(first, id(node)) == id(node) else None
        else:
            line = None if crowded else first
        after = comments.get(line) if line is not None else None
        found = (*reversed(above), *([after] if after is not None and not after.own_line else []))
        return tuple(printable_comment(c) for c in found)

    def problem(self, node: ast.AST, key: str, code: str, message: str) -> None:
        line, col = self.location(node)
        self.problems.append(Diagnostic(self.source.path, line, col, key, code, message))


@dataclass
class SpecDraft:
    """A spec to be: its mapping, the origins of its keys (full key paths), its YAML."""

    name: str
    mapping: Block
    origins: dict[Path, Origin]
    unread: set[Path]
    variables: tuple[str, ...]
    path: str
    refusals: list[Diagnostic] = field(default_factory=list)

    @classmethod
    def single(cls, name: str, model: Model, source: PythonSource) -> SpecDraft:
        draft = cls(name, Block(xtc=1, name=name), {}, set(),
                    (model.variable,) if model.variable else (), source.path)
        draft.add(("model",), model)
        return draft

    @classmethod
    def composite(cls, name: str, models: list[Model], links: list[Connection],
                  source: PythonSource) -> SpecDraft:
        draft = cls(name, Block(xtc=1, name=name, components=Block()), {}, set(),
                    tuple(m.variable for m in models if m.variable), source.path)
        names: dict[int, str] = {}
        for model in models:
            names[id(model)] = component_name(model.variable or "model", set(names.values()))
            draft.add(("components", names[id(model)]), model)
        connections = Items()
        for link in links:
            item = {"from": names[id(link.source)], "to": f"{names[id(link.target)]}.{link.argument}"}
            if item not in connections:
                connections.append(item)
                draft.origins[("connections", str(len(connections) - 1))] = link.origin
        draft.mapping["connections"] = connections
        return draft

    def add(self, at: Path, model: Model) -> None:
        mapping = self.mapping
        for key in at[:-1]:
            mapping = mapping[key]
        mapping[at[-1]] = model.mapping
        self.origins.update({(*at, *path): origin for path, origin in model.origins.items()})
        self.unread.update((*at, *path) for path in model.unread)
        self.refusals += [under(".".join(at), d) for d in model.refusals]

    def lines(self) -> list[tuple[str, Path]]:
        comments = {path: origin.comments for path, origin in self.origins.items() if origin.comments}
        return dump_lines(self.mapping, comments,
                          header=f"Imported by `xtc import` from {os.path.basename(self.path)}.")

    def check(self, checks: tuple[Check, ...]) -> tuple[str, Spec | None, list[Diagnostic]]:
        """The spec's YAML, and the spec as `xtc validate` checks it, its diagnostics moved to
        the Python."""
        lines = self.lines()
        text = text_of(lines)
        spec, problems = read_spec(text, f"{self.name}.yaml", checks)
        written = [path for _, path in lines]
        moved = [self.located(d, written) for d in problems if not self.about_unread(d.key)]
        return text, spec, moved

    def about_unread(self, key: str) -> bool:
        """Whether a diagnostic is about a value already refused (a required key missing
        because its argument was not a literal, say): the refusal said it."""
        path = tuple(key.split("."))
        return any(path[:len(unread)] == unread for unread in self.unread)

    def located(self, diagnostic: Diagnostic, written: list[Path]) -> Diagnostic:
        """At the Python that made its key; else at what made its line of the YAML."""
        path = tuple(diagnostic.key.split(".")) if diagnostic.key else ()
        if path not in self.origins and 0 < diagnostic.line <= len(written):
            path = written[diagnostic.line - 1]
        while path and path not in self.origins:
            path = path[:-1]
        origin = self.origins.get(path) or self.root_origin()
        message = diagnostic.message
        if path and path[-1] != origin.python and not origin.python.endswith("(...)"):
            message = f"`{origin.python}`: {message}"
        return Diagnostic(self.path, origin.line, origin.col, diagnostic.key, diagnostic.code,
                          message, diagnostic.severity)

    def root_origin(self) -> Origin:
        roots = [o for p, o in self.origins.items() if len(p) <= 2 and o.python.endswith("(...)")]
        return roots[0] if roots else Origin(1, 1, "")


# -- where each keyword goes (docs/spec-language.md: the mapping rule, read backwards) ---------

def under(key: str, diagnostic: Diagnostic) -> Diagnostic:
    """A diagnostic keyed under a model, keyed from the top of the spec."""
    return dataclasses.replace(diagnostic, key=f"{key}.{diagnostic.key}")


def key_path(cls: str, keyword: str) -> Path:
    """The spec key path of a constructor keyword, under the model's own mapping.

    >>> key_path("Decoder", "attn_flash"), key_path("Decoder", "attn_aggregated_residuals")
    (('attn', 'flash'), ('attn_aggregated_residuals',))
    >>> key_path("XTransformer", "enc_ff_glu"), key_path("XTransformer", "tie_token_emb")
    (('encoder', 'ff', 'glu'), ('tie_token_emb',))
    """
    table = keyword_table()
    if cls == "XTransformer":
        if keyword not in table.wrapper(cls):
            for side, prefix in SIDE_PREFIXES.items():
                if keyword.startswith(prefix):
                    rest = keyword.removeprefix(prefix)
                    return (side, *layer_key_path(rest, table.side(side)))
        return (keyword,)
    if cls in LAYER_TYPES:
        return layer_key_path(keyword, table.classes["AttentionLayers"])
    return (keyword,)


def is_extension(cls: str, path: Path) -> bool:
    """Whether a keyword's spec key path names an xtc extension (spec/extensions.py), which
    x-transformers' classes do not take.

    >>> is_extension("Decoder", ("norm_eps",)), is_extension("XTransformer", ("decoder", "norm_eps"))
    (True, True)
    >>> is_extension("Decoder", ("attn", "norm_eps")), is_extension("Decoder", ("use_rmsnorm",))
    (False, False)
    """
    table = keyword_table()
    if cls == "XTransformer" and len(path) > 1 and path[0] in table.sides:
        cls, path = table.sides[path[0]]["layers"], path[1:]
    section = path[0] if len(path) == 2 and path[0] in ROUTED_SECTIONS else ""
    if len(path) != (2 if section else 1):
        return False
    return table.extension(cls, path[-1], section) is not None


def layer_key_path(keyword: str, own: Iterable[str]) -> Path:
    """The layers' own keywords stay flat; the rest go to the section their prefix names, as
    the reference's layers pass them on (cross_attn_ before attn_: neither is a prefix of the
    other, but the longer name is the one meant)."""
    if keyword in own:
        return (keyword,)
    for section in sorted(ROUTED_SECTIONS, key=len, reverse=True):
        if keyword.startswith(f"{section}_"):
            return (section, keyword.removeprefix(f"{section}_"))
    return (keyword,)


def spec_value(value: object) -> object:
    """A literal as the spec writes it: lists and tuples alike are YAML lists."""
    if isinstance(value, list | tuple):
        return tuple(spec_value(v) for v in value)
    if isinstance(value, dict):
        return {k: spec_value(v) for k, v in value.items()}
    return value


# -- names -------------------------------------------------------------------------------------

def spec_name(base: str, taken: set[str]) -> str:
    """A spec name the language accepts, made from a variable or file name."""
    return free_name(identifier(base), taken, lambda name: name_problem(name) is None)


def component_name(base: str, taken: set[str]) -> str:
    return free_name(identifier(base), taken, lambda name: component_name_problem(name) is None)


def free_name(name: str, taken: set[str], accepted) -> str:
    for candidate in (name, f"{name}_model", f"my_{name}", *(f"{name}_{n}" for n in range(2, 100))):
        candidate = candidate[:MAX_NAME_LENGTH]
        if candidate not in taken and accepted(candidate):
            taken.add(candidate)
            return candidate
    raise AssertionError(f"no free name for {name!r}")  # 100 candidates, each distinct


def identifier(text: str) -> str:
    """`imageEncoder-v2` -> `image_encoder_v2`: snake case, [a-z][a-z0-9_]*.

    >>> identifier("imageEncoder-v2"), identifier("_2nd"), identifier("")
    ('image_encoder_v2', 'model_2nd', 'model')
    """
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text).lower()
    snake = re.sub(r"[^a-z0-9]+", "_", snake).strip("_")
    snake = re.sub(r"_+", "_", snake)
    return snake if snake[:1].isalpha() else f"model_{snake}".rstrip("_")


def file_stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] or "model"


# -- small readers -----------------------------------------------------------------------------

def connected_groups(models: list[Model], connections: list[Connection]) -> list[list[Model]]:
    """The models, grouped by the connections between them, in the order they were built."""
    group_of = {id(m): i for i, m in enumerate(models)}

    def root(i: int) -> int:
        while group_of[id(models[i])] != i:
            i = group_of[id(models[i])]
        return i

    for link in connections:
        if id(link.source) in group_of and id(link.target) in group_of:
            a, b = root(group_of[id(link.source)]), root(group_of[id(link.target)])
            group_of[id(models[max(a, b)])] = min(a, b)
    groups: dict[int, list[Model]] = {}
    for i, model in enumerate(models):
        groups.setdefault(root(i), []).append(model)
    return list(groups.values())


def single_name(targets: list[ast.expr]) -> bool:
    return len(targets) == 1 and isinstance(targets[0], ast.Name)


def without_device_moves(node: ast.expr) -> ast.expr:
    """`Model(...).cuda().eval()` -> `Model(...)`."""
    while (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
           and node.func.attr in DEVICE_MOVES):
        node = node.func.value
    return node


def dotted(node: ast.expr) -> tuple[str, ...] | None:
    """`a.b.C` -> ('a', 'b', 'C'); None for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(parts))


def contains_call(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


def bound_names(statement: ast.stmt) -> Iterator[str]:
    """Names a statement may bind (assignment targets, loop variables, definitions)."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield statement.name
        return
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            yield node.id


def printable_comment(comment: Comment) -> Comment:
    """A comment without the control characters a spec may not hold (a form feed, an escape)."""
    text = "".join(ch for ch in comment.text if ch.isprintable() or ch == "\t")
    return dataclasses.replace(comment, text=text)


def describe(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return f"`{node.id}`, which is not bound to a model earlier in the file"
    return f"`{unparsed(node)}`"


def unparsed(node: ast.expr) -> str:
    return echo(ast.unparse(node))[1:-1]
