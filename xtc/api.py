"""The public calls (docs/cli.md, "From Python"), behind `xtc.*`.

torch is imported only inside the calls that need it (`build`, the state-dict conversions):
loading, validating and compiling a spec must not pay its import.
"""

from __future__ import annotations

import builtins
import linecache
import os
import sys
import types
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from .compiler import CHECKS, compile_graph, compile_spec
from .compiler.state_dict import parameter_rules, unread_parameters
from .extras import EINOPS, TORCH, require
from .spec import Spec
from .spec import load as _load
from .state_dicts import (
    by_component,
    check_fits,
    converted_by_rules,
    flattened,
    reference_shapes,
    stripped_of_wrapper,
    written_by_rules,
    zeros_like_state,
)

SpecLike = Spec | str | os.PathLike


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and check a spec file: loader, schema, every spec check and graph check (the
    parameter budget, at XTC_MAX_PARAMS or 1e11)."""
    return _load.load_spec(path, CHECKS)


def loads_spec(text: str, path: str = "<string>") -> Spec:
    """Check spec text: loader, schema, every spec check and graph check. `path` names it in
    diagnostics."""
    return _load.loads_spec(text, path, CHECKS)


def as_spec(spec: SpecLike) -> Spec:
    """A Spec as is; a str or PathLike is always a path."""
    return spec if isinstance(spec, Spec) else load_spec(spec)


def compile(spec: SpecLike, standalone: bool = False) -> str:
    """The emitted module's source; `standalone`: with the xtc.runtime helpers it uses copied in,
    so that it needs only torch and einops."""
    return compile_spec(as_spec(spec), standalone)


def explain(spec: SpecLike) -> str:
    """The spec as YAML with every keyword written out: defaults marked, computed ones valued."""
    from .compiler.explain import explain as explain_spec

    return explain_spec(as_spec(spec))


def import_python(path: str | os.PathLike) -> list[Spec]:
    """The specs of the x-transformers models a Python file builds, read without running it
    (`xtc import`); SpecError holds every diagnostic, located in the file."""
    from .interop.python_import import import_python as read_python
    from .interop.python_source import read_python_bytes
    from .spec.diagnostics import SpecError, has_errors

    specs, problems = read_python(read_python_bytes(path), os.fspath(path), CHECKS)
    if has_errors(problems):
        raise SpecError(problems)
    return [imported.spec for imported in specs]


def import_hf(folder: str | os.PathLike) -> Spec:
    """The spec of a Hugging Face Llama-family checkpoint folder, from its config.json, read as
    data (`xtc import-hf`); SpecError holds every diagnostic, located in config.json."""
    from .interop.hf_config import import_hf as read_config
    from .interop.hf_config import read_config_bytes
    from .spec.diagnostics import SpecError, has_errors

    imported, problems = read_config(os.fspath(folder), read_config_bytes(folder), CHECKS)
    if has_errors(problems):
        raise SpecError(problems)
    return imported.spec


def convert_hf_checkpoint(spec: SpecLike, folder: str | os.PathLike,
                          output: str | os.PathLike) -> int:
    """A Hugging Face checkpoint folder's safetensors weights as the state dict of `build(spec)`
    (the spec `import_hf` wrote), written to `output` (.safetensors) one tensor at a time
    (`xtc import-hf --weights`); the number of tensors. Raises CheckpointError (a ValueError)
    naming every tensor that does not fit, before anything is written."""
    from .hf_weights import convert_hf_checkpoint as convert

    return convert(as_spec(spec), folder, output)


def export_python(spec: SpecLike) -> str:
    """The x-transformers code that builds the spec's model(s) (`xtc export-python`)."""
    from .interop.python_export import export_python as write_python

    return write_python(as_spec(spec))


def inspect(spec: SpecLike, seq_len: int | None = None, context_len: int | None = None,
            mem_len: int | None = None) -> dict:
    """What `xtc inspect --format json` prints, as data: parameters per component, matmul FLOPs
    per sequence and per token (forward, training step), kv-cache bytes per token, the attention
    path of every layer, the graph. Lengths default to the models' max_seq_len; a
    Transformer-XL memory to max_mem_len."""
    from .compiler.inspect_format import inspection_data
    from .compiler.inspection import inspect as inspect_spec

    spec = as_spec(spec)
    return inspection_data(inspect_spec(spec, compile_graph(spec), seq_len, context_len, mem_len))


def graph(spec: SpecLike):
    """The model's IR as a networkx.DiGraph (a DAG; node attribute `kind` from OpKind)."""
    return compile_graph(as_spec(spec)).to_networkx()


def module_for(spec: Spec) -> types.ModuleType:
    """The emitted module, executed once per spec content and registered in sys.modules so that
    its classes pickle; its source is registered with linecache so tracebacks show the code."""
    name = f"xtc_generated_{spec.name}_{spec.sha256[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    source = compile_spec(spec)
    filename = f"<xtc generated {spec.name}>"
    module = types.ModuleType(name)
    module.__file__ = filename
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    sys.modules[name] = module
    try:
        code = builtins.compile(source, filename, "exec")  # `compile` here is xtc.compile
        exec(code, module.__dict__)  # noqa: S102 - xtc's own output, verified by the compiler
    except BaseException:
        del sys.modules[name]
        raise
    return module


def build(spec: SpecLike, device: Any = None, dtype: Any = None):
    """An instance of the emitted class, initialised as the reference initialises."""
    require("xtc.build", TORCH, EINOPS)
    import torch

    spec = as_spec(spec)
    cls = getattr(module_for(spec), spec.class_name)
    with torch.device(device) if device is not None else nullcontext():
        model = cls()
    return model.to(dtype=dtype) if dtype is not None else model


def convert_state_dict(spec: SpecLike, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The reference model's state dict, renamed (and norm gains un-offset) for `build(spec)`.
    For a composite, pass `{component: state_dict}`. Dtypes are kept.

    Raises StateDictMismatch (a ValueError) listing every missing key, unexpected key and
    tensor of the wrong shape when it does not fit the spec.
    """
    require("xtc.convert_state_dict", TORCH, EINOPS)
    spec = as_spec(spec)
    composite = spec.model is None
    state_dict = flattened(state_dict) if composite else state_dict
    graph = compile_graph(spec)
    rules = parameter_rules(graph, components=composite)
    check_fits(state_dict, reference_shapes(rules, emitted_shapes(spec)),
               optional=unread_parameters(graph, composite))
    return converted_by_rules(rules, state_dict)


def load_reference_checkpoint(spec: SpecLike, path: str | os.PathLike, *, key: str | None = None,
                              prefix: str | None = None, device: Any = None):
    """The built model with the weights of an x-transformers checkpoint (`.pt`, read with
    weights_only=True, or `.safetensors`; a composite's `{component: state_dict}`): under `key`
    in the file's mapping if given, an AutoregressiveWrapper's `net.` prefix (or `prefix`)
    taken off, loaded strictly. Raises ValueError naming every key that does not fit."""
    from .checkpoints import load_checkpoint_into, packages_for, read_checkpoint, reference_to_xtc

    require("xtc.load_reference_checkpoint", TORCH, EINOPS, *packages_for(path))
    spec = as_spec(spec)
    state = read_checkpoint(path, key, spec.components if spec.model is None else ())
    model = build(spec, device)
    load_checkpoint_into(model, reference_to_xtc(spec, state, prefix))
    return model


def reference_state_dict(spec: SpecLike, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of convert_state_dict: from the state dict of `build(spec)`, the reference
    model's (`{component: state_dict}` for a composite), with exactly its keys and shapes, and
    the dtypes given. What the reference holds and never reads is written as zeros: a
    hyper-connection's stream-mixing columns, an attention-pooled model's logits head.

    Raises StateDictMismatch unless the state dict has exactly the built model's keys and shapes.
    """
    require("xtc.reference_state_dict", TORCH, EINOPS)
    spec = as_spec(spec)
    composite = spec.model is None
    check_fits(state_dict, emitted_shapes(spec))
    graph = compile_graph(spec)
    written = written_by_rules(parameter_rules(graph, components=composite), state_dict)
    written.update(zeros_like_state(unread_parameters(graph, composite), state_dict))
    return by_component(written, spec.components) if composite else written


def emitted_shapes(spec: Spec) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of the emitted model's state dict (built on the meta device)."""
    return {name: tuple(value.shape)
            for name, value in build(spec, device="meta").state_dict().items()}


def without_wrapper_prefix(spec: SpecLike, state_dict: Mapping[str, Any]) -> tuple[dict, str]:
    """A reference state dict saved from a training wrapper (AutoregressiveWrapper's `net.`
    before every key) as the model's own, and the prefix taken off ("" where there was none:
    the state dict is returned as it is). A composite's `{component: state_dict}` is looked at
    component by component; the prefix is returned where any had it."""
    spec = as_spec(spec)
    graph = compile_graph(spec)
    composite = spec.model is None
    expected = {rule.reference for rule in parameter_rules(graph, components=composite)}
    expected |= set(unread_parameters(graph, composite))
    if not composite:
        return stripped_of_wrapper(state_dict, expected)
    parts, found = {}, ""
    for name, part in state_dict.items():
        own = {key.removeprefix(f"{name}.") for key in expected if key.startswith(f"{name}.")}
        parts[name], prefix = stripped_of_wrapper(part, own)
        found = found or prefix
    return parts, found
