"""Checkpoint files both ways (`xtc convert`, `xtc.load_reference_checkpoint`).

A checkpoint is a state dict in a `.pt` file (`torch.save`; read with `weights_only=True`, so a
pickle of anything but tensors and plain containers is refused, never run) or a `.safetensors`
file. A composite's is `{component: state_dict}`: nested in a `.pt` file, and flattened to
`component.key` names in a `.safetensors` file, which holds one flat mapping of tensors (a name
of no component is refused as an unexpected key).

Tied weights are one tensor under several names (an XTransformer's shared token embedding,
`weight_tie_layers`). safetensors refuses tensors that share memory, so a tie is written once,
under its first name, as `safetensors.torch.save_model` writes it; reading restores the other
names from the spec, which says which names are one tensor (`fill_ties`).

Writing is atomic (a temporary file beside the output, renamed over it), so a failure leaves
the output path as it was. torch and safetensors are imported inside the calls.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Mapping
from typing import Any

from . import extras
from .output import replace_atomically

SAFETENSORS = ".safetensors"
PICKLED = (".pt", ".pth", ".bin", ".ckpt")
FORMATS = (*PICKLED, SAFETENSORS)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or written as asked: refused content, a missing key."""


def checkpoint_format(path: str | os.PathLike) -> str:
    """The format a path's extension names, or a ValueError saying which ones are known."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"{os.fspath(path)!a}: a checkpoint is {', '.join(FORMATS)} "
                         f"(by its extension), not {suffix or 'a file without one'!a}")
    return SAFETENSORS if suffix == SAFETENSORS else ".pt"


def packages_for(path: str | os.PathLike, writing: bool = False) -> tuple[str, ...]:
    """The packages of the torch extra that reading (or writing) a checkpoint at `path` needs:
    safetensors writes through numpy, and a pickle needs torch alone."""
    if checkpoint_format(path) != SAFETENSORS:
        return (extras.TORCH,)
    return (extras.TORCH, extras.SAFETENSORS, *((extras.NUMPY,) if writing else ()))


# -- reading -------------------------------------------------------------------------------------

def read_checkpoint(path: str | os.PathLike, key: str | None = None,
                    components: Iterable[str] = ()) -> dict[str, Any]:
    """The state dict in a checkpoint file (under `key` in a `.pt` file's mapping, if given);
    for a composite (`components` named), `{component: state_dict}`."""
    components = tuple(components)
    if checkpoint_format(path) == SAFETENSORS:
        if key is not None:
            raise CheckpointError("--key reads a mapping in a .pt file; a .safetensors file holds "
                                  "one flat mapping of tensors")
        from .state_dicts import by_component

        state = read_safetensors(path)
        return by_component(state, components) if components else state
    loaded = read_pickled(path)
    if key is not None:
        if not isinstance(loaded, Mapping) or key not in loaded:
            held = sorted(map(str, loaded)) if isinstance(loaded, Mapping) else []
            raise CheckpointError(f"the checkpoint holds no key {key!a}"
                                  + (f"; its keys: {', '.join(map(ascii, held[:20]))}" if held else ""))
        loaded = loaded[key]
    if components:
        if not isinstance(loaded, Mapping) or not all(isinstance(v, Mapping) for v in loaded.values()):
            raise CheckpointError("a composite's checkpoint is a mapping of component names to "
                                  f"state dicts ({', '.join(components)})")
        return {name: tensors_of(part, f"component {name!a}") for name, part in loaded.items()}
    return tensors_of(loaded, "the checkpoint")


def read_pickled(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only. Anything else in
    the pickle (a class, a function, code to run) is refused before it is built."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # not a pickle that torch.save wrote (torch's own text advises unsafe loading)
            raise CheckpointError(f"cannot read {os.fspath(path)!a}: it is not a checkpoint "
                                  "written by torch.save") from None
        raise CheckpointError(f"refused to load {os.fspath(path)!a}: it holds {found[1]!a}, not "
                              "only tensors and plain containers, and xtc never unpickles other "
                              "objects (torch.load with weights_only=True)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {os.fspath(path)!a} as a torch checkpoint: "
                              f"{first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def read_safetensors(path: str | os.PathLike) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {os.fspath(path)!a} as safetensors: "
                              f"{first_line(exc)}") from None


def tensors_of(value: Any, what: str) -> dict[str, Any]:
    """A mapping of names to tensors, or a CheckpointError naming what else it holds."""
    import torch

    if not isinstance(value, Mapping):
        raise CheckpointError(f"{what} is a {type(value).__name__}, not a state dict (a mapping "
                              "of names to tensors); name the key that holds it with --key")
    wrong = [name for name, tensor in value.items()
             if not isinstance(name, str) or not isinstance(tensor, torch.Tensor)]
    if wrong:
        raise CheckpointError(f"{what} is not a state dict: {len(wrong)} entries are not tensors "
                              f"({', '.join(map(ascii, wrong[:5]))}); name the key that holds the "
                              "state dict with --key")
    return dict(value)


# -- ties ----------------------------------------------------------------------------------------

def tie_groups(state: Mapping[str, Any]) -> list[list[str]]:
    """The names that hold one tensor (the same storage, offset, shape and strides), in order."""
    groups: dict[tuple, list[str]] = {}
    for name, tensor in state.items():
        if tensor.device.type == "meta":
            continue
        where = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                 tensor.stride(), tensor.dtype)
        groups.setdefault(where, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def fill_ties(state: Mapping[str, Any], ties: Iterable[Iterable[str]]) -> dict[str, Any]:
    """Each name of a tie that the state lacks, given the tensor of one that it holds (a
    safetensors file holds a tie once)."""
    filled = dict(state)
    for names in ties:
        names = list(names)
        present = next((name for name in names if name in filled), None)
        if present is not None:
            for name in names:
                filled.setdefault(name, filled[present])
    return filled


# -- writing -------------------------------------------------------------------------------------

def write_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], composite: bool = False) -> None:
    """A state dict (a composite's `{component: state_dict}`) to `path`, atomically, in the
    format its extension names. Dtypes are kept; a tie is written once to a .safetensors file."""
    if checkpoint_format(path) == SAFETENSORS:
        from .state_dicts import flattened

        tensors = flattened(state) if composite else state
        replace_atomically(path, lambda temporary: write_safetensors(temporary, tensors))
    else:
        import torch

        replace_atomically(path, lambda temporary: torch.save(dict(state), temporary))


def write_safetensors(path: str, state: Mapping[str, Any]) -> None:
    from safetensors.torch import save_file

    once = dict(state)
    for names in tie_groups(state):
        for alias in names[1:]:
            del once[alias]
    save_file({name: tensor.contiguous() for name, tensor in once.items()}, path,
              metadata={"format": "pt"})


# -- between the reference's names and xtc's --------------------------------------------------------

def reference_ties(spec) -> list[list[str]]:
    """Reference names that are one tensor: those the rules read into one emitted tensor whole
    (an XTransformer's shared token embedding, layers tied by weight_tie_layers)."""
    from .compiler import compile_graph
    from .compiler.state_dict import parameter_rules

    groups: dict[tuple, list[str]] = {}
    for rule in parameter_rules(compile_graph(spec), components=spec.model is None):
        if rule.rows is None:
            groups.setdefault((rule.emitted, rule.columns), []).append(rule.reference)
    return [names for names in groups.values() if len(names) > 1]


def module_ties(model) -> list[list[str]]:
    """The names of a built model's state dict that are one tensor (a shared module)."""
    groups: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def with_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{name}": tensor for name, tensor in state.items()}


def reference_to_xtc(spec, state: Mapping[str, Any], prefix: str | None = None) -> dict[str, Any]:
    """A reference checkpoint's state dict (a composite's `{component: state_dict}`) as xtc's:
    a wrapper's prefix taken off (`prefix`, else an AutoregressiveWrapper's `net.` where every
    key has it), ties that the file holds once filled in, then convert_state_dict (strict about
    names and shapes)."""
    from .api import convert_state_dict, without_wrapper_prefix
    from .state_dicts import by_component, flattened, strip_prefix

    composite = spec.model is None
    if prefix:
        state = ({name: strip_prefix(part, prefix) for name, part in state.items()} if composite
                 else strip_prefix(state, prefix))
    else:
        state, _ = without_wrapper_prefix(spec, state)
    filled = fill_ties(flattened(state) if composite else state, reference_ties(spec))
    return convert_state_dict(spec, by_component(filled, spec.components) if composite else filled)


def xtc_to_reference(spec, state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """xtc's state dict as the reference model's (a composite's as `{component: state_dict}`),
    each key with `prefix` in front (`net.` for an AutoregressiveWrapper's)."""
    import torch

    from .api import build, reference_state_dict

    with torch.device("meta"):
        ties = module_ties(build(spec))
    converted = reference_state_dict(spec, fill_ties(state, ties))
    if spec.model is None:
        return {name: with_prefix(part, prefix) for name, part in converted.items()}
    return with_prefix(converted, prefix)


def load_checkpoint_into(model, state: Mapping[str, Any]) -> None:
    """Load xtc's state dict strictly, each tie restored from whichever of its names the state
    holds (a .safetensors file holds it once)."""
    model.load_state_dict(fill_ties(state, module_ties(model)), strict=True)
