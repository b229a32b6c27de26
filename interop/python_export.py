"""`xtc export-python`: a spec as the x-transformers code that builds it, written the way
x-transformers' README writes it (docs/cli.md, "xtc export-python").

The mapping is the inverse of the spec language's (docs/spec-language.md): a module's keywords
as the author wrote them (never the defaults), a nested `attn:`/`ff:`/`cross_attn:` key with its
prefix put back, an XTransformer's `encoder:`/`decoder:` keys with `enc_`/`dec_`, lists as
tuples. Values are validated, so each is written as the Python literal it is (`literal`).

A model's `autoregressive:` options are its training wrapper's, written as the model's variable
rebound to the wrapper: `gpt = AutoregressiveWrapper(gpt, mask_prob = 0.15)`. A composite writes
each component as a variable of its name, example inputs of the shapes the spec implies, the
calls that connect them (producers first, `return_embeddings = True`), and then the wrappers of
the components that have them, so that the calls run the models themselves.

Only text is made here: nothing imports torch or runs what is written.
"""

from __future__ import annotations

import itertools
import keyword
import math
from collections.abc import Mapping

from xtc.spec import Connection, Diagnostic, ModuleSpec, Spec, SpecError
from xtc.spec.keywords import LAYER_TYPES, keyword_table

INDENT = " " * 4
LINE_LIMIT = 100
# An XTransformer's sides and the prefixes of their keywords.
SIDES = (("encoder", "enc_"), ("decoder", "dec_"))
# The layers' switches that make them read a condition (compiler/resolve.py's ADAPTIVE; interop
# imports spec/ alone).
ADAPTIVE = ("use_adaptive_layernorm", "use_adaptive_rmsnorm", "use_adaptive_layerscale")
# The sequence length of an example input where the spec sets none (bare layers; max_seq_len 0)
EXAMPLE_LENGTH = 1024


def export_python(spec: Spec) -> str:
    """The Python source that builds the spec's model(s) with x-transformers; SpecError where
    the spec sets what x-transformers cannot express (`export_problems`)."""
    problems = export_problems(spec)
    if problems:
        raise SpecError(problems)
    if spec.model is not None:
        return single_model(spec)
    return Composite(spec).source()


# -- what x-transformers cannot express ----------------------------------------------------------

def export_problems(spec: Spec) -> list[Diagnostic]:
    """An `export-extension` error at each xtc extension (spec/extensions.py) the spec sets to
    other than its default: x-transformers has no such keyword. One written at its default (as
    `xtc explain` writes `norm_eps: null`) is left out of the code instead."""
    roots = [spec.model] if spec.model is not None else list(spec.components.values())
    problems = []
    for module in (found for root in roots for found in modules_in(root)):
        for section, name, value in given_values(module):
            kw = keyword_table().extension(module.type, name, section)
            if kw is not None and value != kw.default:
                key = ".".join(filter(None, (module.key, section, name)))
                line, col = spec.location(key)
                problems.append(Diagnostic(
                    spec.path, line, col, key, "export-extension",
                    f"{name} is an xtc extension, a keyword x-transformers does not have, so "
                    f"the code cannot say it: remove it to export (the exported model then "
                    f"computes without it)"))
    return problems


def modules_in(module: ModuleSpec):
    """A module and the modules inside it (attn_layers, an XTransformer's sides), outermost
    first."""
    yield module
    for child in module.children.values():
        yield from modules_in(child)


def given_values(module: ModuleSpec):
    """(section, keyword, value) of every key the author wrote: section "" for the module's own."""
    for name in module.given:
        if name not in module.children:
            yield "", name, module.options[name]
    for section, given in module.sections_given.items():
        for name in given:
            yield section, name, module.sections[section][name]


def is_extension(module: ModuleSpec, name: str, section: str = "") -> bool:
    """Whether a written key is an xtc extension; then it is at its default (export_problems
    refused the rest) and the code leaves it out."""
    return keyword_table().extension(module.type, name, section) is not None


# -- values and constructor calls --------------------------------------------------------------

def literal(value: object) -> str:
    """A validated value as the Python literal that evaluates to it: tuples for lists, dicts for
    mappings. Anything else is a bug in the caller, never written as text.

    >>> print(literal((0.1, None, True)), literal({"slopes": (0.5,)}), literal("it's"))
    (0.1, None, True) {'slopes': (0.5,)} "it's"
    """
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a non-finite float has no literal: {value!r}")
        return repr(value)
    if isinstance(value, tuple):
        items = [literal(item) for item in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Python literal for a {type(value).__name__}")


def constructor(module: ModuleSpec) -> str:
    """`Type(\\n    key = value,\\n    ...\\n)`: one keyword a line, nested modules indented."""
    arguments = keyword_arguments(module)
    if not arguments:
        return f"{module.type}()"
    lines = [f"{name} = {value}".replace("\n", "\n" + INDENT) for name, value in arguments]
    body = ",\n".join(INDENT + line for line in lines)
    return f"{module.type}(\n{body}\n)"


def keyword_arguments(module: ModuleSpec) -> list[tuple[str, str]]:
    """(keyword, Python text) of what the author wrote: the module's keys in their order, a
    nested module as its constructor, then the prefixed section keys; an XTransformer's sides
    flat after its own."""
    arguments = [(name, constructor(module.children[name]) if name in module.children
                  else literal(module.options[name])) for name in module.given
                 if not is_extension(module, name)]
    arguments += section_arguments(module, "")
    if module.type == "XTransformer":
        for side, prefix in SIDES:
            arguments += side_arguments(module.children[side], prefix)
    return arguments


def section_arguments(module: ModuleSpec, prefix: str) -> list[tuple[str, str]]:
    """`attn: {flash: true}` -> `attn_flash = True` (with an XTransformer side's prefix)."""
    return [(f"{prefix}{section}_{name}", literal(module.sections[section][name]))
            for section, given in module.sections_given.items() for name in given
            if not is_extension(module, name, section)]


def side_arguments(side: ModuleSpec, prefix: str) -> list[tuple[str, str]]:
    """An XTransformer's `encoder:` or `decoder:` keys as `enc_`/`dec_` keywords."""
    own = [(f"{prefix}{name}", literal(side.options[name])) for name in side.given
           if not is_extension(side, name)]
    return own + section_arguments(side, prefix)


def wrapper_line(variable: str, module: ModuleSpec) -> str | None:
    """`gpt = AutoregressiveWrapper(gpt, mask_prob = 0.15)` where `autoregressive:` has keys."""
    if not module.training_given:
        return None
    options = "".join(f", {name} = {literal(module.training[name])}"
                      for name in module.training_given)
    return f"{variable} = {module.trainer}({variable}{options})"


def classes_of(module: ModuleSpec) -> list[str]:
    """The x-transformers classes that build a module, outermost first, its wrapper last."""
    names = [module.type]
    for name in module.given:
        if name in module.children:
            names += classes_of(module.children[name])
    if module.training_given:
        names.append(module.trainer)
    return names


def import_lines(classes: list[str], uses_torch: bool) -> list[str]:
    """`from x_transformers import A, B`: each class once, in the order first used (every model
    and training wrapper is exported at x-transformers' top level in 2.31.10)."""
    unique = list(dict.fromkeys(classes))
    line = f"from x_transformers import {', '.join(unique)}"
    if len(line) > LINE_LIMIT:
        line = "from x_transformers import (\n" + "".join(f"{INDENT}{c},\n" for c in unique) + ")"
    return (["import torch"] if uses_torch else []) + [line]


def comment_lines(description: str | None) -> list[str]:
    """The spec's description as comment lines, followed by a blank line. Characters that are
    not printable (tabs, bidi controls, line separators) are written escaped, so that the
    comment says exactly what the spec does and nothing can end it early."""
    if description is None:
        return []
    lines = [escaped(line) for line in description.split("\n")]
    return [f"# {line}".rstrip() for line in lines] + [""]


def escaped(text: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def variable_name(name: str) -> str:
    """A spec name as a variable: itself, or with a trailing underscore where it is a Python
    keyword (a spec may be called `class`; its class is `Class`)."""
    return f"{name}_" if keyword.iskeyword(name) else name


# -- one model -----------------------------------------------------------------------------------

def single_model(spec: Spec) -> str:
    model, variable = spec.model, variable_name(spec.name)
    lines = [*comment_lines(spec.description), *import_lines(classes_of(model), uses_torch=False),
             "", f"{variable} = {constructor(model)}"]
    wrapped = wrapper_line(variable, model)
    if wrapped:
        lines.append(wrapped)
    return "\n".join(lines) + "\n"


# -- composites ----------------------------------------------------------------------------------

class Names:
    """Variable names, each used once: a component's name is its own; anything else takes the
    name it prefers if free, else with the component's name in front, else numbered."""

    def __init__(self, taken):
        self.taken = set(taken)

    def fresh(self, preferred: str, owner: str | None = None) -> str:
        candidates = [preferred] + ([f"{owner}_{preferred}"] if owner else [])
        numbered = (f"{candidates[-1]}_{number}" for number in itertools.count(2))
        name = next(c for c in itertools.chain(candidates, numbered)
                    if c not in self.taken and not keyword.iskeyword(c))
        self.taken.add(name)
        return name


class Composite:
    """The source of a composite spec: components, example inputs, connecting calls, wrappers."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.names = Names(spec.components)
        self.torch = self.names.fresh("torch")
        self.feeds: dict[str, list[Connection]] = {name: [] for name in spec.components}
        for connection in spec.connections:
            self.feeds[connection.target].append(connection)
        self.producers = list(dict.fromkeys(c.source for c in spec.connections))

    def source(self) -> str:
        spec = self.spec
        classes = [c for module in spec.components.values() for c in classes_of(module)]
        if self.torch != "torch":
            head = [f"import torch as {self.torch}", *import_lines(classes, uses_torch=False)]
        else:
            head = import_lines(classes, uses_torch=True)
        parts = [[*comment_lines(spec.description), *head]]
        parts += [[f"{name} = {constructor(module)}"] for name, module in spec.components.items()]
        inputs = self.inputs()
        parts.append([f"{variable} = {expression}" for variable, expression in inputs.values()])
        parts.append(self.calls({key: variable for key, (variable, _) in inputs.items()}))
        wrappers = [wrapper_line(name, module) for name, module in spec.components.items()]
        if any(wrappers):
            parts.append([line for line in wrappers if line])
        return "\n\n".join("\n".join(part) for part in parts) + "\n"

    def inputs(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(component, argument) -> (variable, expression) of every example input: the primary
        inputs in the order the components are written, named after the argument (with the
        component's name in front where two components take one of that name)."""
        wanted = [(name, argument, expression)
                  for name, module in self.spec.components.items()
                  for argument, expression in example_inputs(module, self.torch)]
        counts: dict[str, int] = {}
        for _, argument, _ in wanted:
            counts[argument] = counts.get(argument, 0) + 1
        inputs = {}
        for name, argument, expression in wanted:
            preferred = argument if counts[argument] == 1 else f"{name}_{argument}"
            inputs[name, argument] = (self.names.fresh(preferred, owner=name), expression)
        return inputs

    def calls(self, inputs: dict[tuple[str, str], str]) -> list[str]:
        """Each component called once, producers first: a producer's output kept in a variable
        (`encoded`, or `<producer>_encoded` where there are several) that its consumers take by
        keyword; the last one's call stands alone."""
        outputs = {name: self.names.fresh("encoded" if len(self.producers) == 1
                                          else f"{name}_encoded") for name in self.producers}
        lines = []
        for name in self.order():
            module = self.spec.components[name]
            positional = [v for (owner, argument), v in inputs.items()
                          if owner == name and argument != "condition"]
            keywords = [f"{c.argument} = {outputs[c.source]}" for c in self.feeds[name]]
            if (name, "condition") in inputs:
                keywords.append(f"condition = {inputs[name, 'condition']}")
            if name in outputs and module.type not in LAYER_TYPES:
                keywords.append("return_embeddings = True")
            call = f"{name}({', '.join(positional + keywords)})"
            lines.append(f"{outputs[name]} = {call}" if name in outputs else call)
        return lines

    def order(self) -> list[str]:
        """The components with every producer before its consumers, else as written."""
        done: list[str] = []
        waiting = list(self.spec.components)
        while waiting:
            ready = next(name for name in waiting
                         if all(c.source in done for c in self.feeds[name]))
            done.append(ready)
            waiting.remove(ready)
        return done


def example_inputs(module: ModuleSpec, torch: str) -> list[tuple[str, str]]:
    """(argument, expression) of the inputs a component's forward needs, batch 1, of the sizes
    its spec sets: token ids below num_tokens, max_seq_len long; images of its channels and
    size; vectors of its input width; a condition where its norms or layer scales read one."""
    layers = module.children.get("attn_layers", module)
    kind = module.type
    if kind == "ViTransformerWrapper":
        size = module["image_size"]
        found = [("img", f"{torch}.randn(1, {module['channels']}, {size}, {size})")]
    elif kind == "XTransformer":
        found = [(argument, token_ids(module.children[side], torch))
                 for argument, side in (("src", "encoder"), ("tgt", "decoder"))]
    elif kind in ("TransformerWrapper", "XValTransformerWrapper"):
        found = [("x", token_ids(module, torch))]
        if kind == "XValTransformerWrapper":
            found.append(("x_num", f"{torch}.randn(1, {length_of(module)})"))
    else:  # vectors: a ContinuousTransformerWrapper's, or bare layers'
        width = module.options.get("dim_in") or layers["dim"]
        found = [("x", f"{torch}.randn(1, {length_of(module)}, {width})")]
    if kind != "XTransformer" and any(layers.options.get(switch) for switch in ADAPTIVE):
        width = layers["dim_condition"] or layers["dim"]
        found.append(("condition", f"{torch}.randn(1, {width})"))
    return found


def token_ids(module: ModuleSpec, torch: str) -> str:
    return f"{torch}.randint(0, {module['num_tokens']}, (1, {length_of(module)}))"


def length_of(module: ModuleSpec) -> int:
    return module.options.get("max_seq_len") or EXAMPLE_LENGTH

