"""State dicts between x-transformers' naming and the emitted model's, both ways, checked.

The rules (compiler/state_dict.py) name each reference tensor's emitted tensor; the shapes come
from the emitted model built on the meta device (no memory, no initialisation cost), so that a
state dict of the wrong model is refused by key and shape before any tensor is read. Pure
functions on mappings of tensors: reading and writing files is the caller's.

torch is imported inside the functions that make tensors: `import xtc` must not pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# x-transformers' training wrappers (AutoregressiveWrapper, XLAutoregressiveWrapper, ...) hold
# the model as `net`, so their state dicts name every tensor under it
WRAPPER_PREFIX = "net."

Shape = tuple[int, ...]


class StateDictMismatch(ValueError):
    """A state dict that does not fit the spec's model: every missing key, every unexpected key
    and every tensor of the wrong shape, `(key, got, expected)`, reported together."""

    def __init__(self, missing: Iterable[str] = (), unexpected: Iterable[str] = (),
                 wrong_shape: Iterable[tuple[str, Shape, Shape]] = ()):
        self.missing = sorted(missing)
        self.unexpected = sorted(unexpected)
        self.wrong_shape = sorted(wrong_shape)
        super().__init__(self.describe())

    def __reduce__(self):  # pickles (across processes) by its fields, not its message
        return type(self), (self.missing, self.unexpected, self.wrong_shape)

    def describe(self) -> str:
        parts = [f"missing keys {self.missing}"] if self.missing else []
        parts += [f"unexpected keys {self.unexpected}"] if self.unexpected else []
        parts += ["wrong shapes [" + ", ".join(
            f"{key!r} {list(got)} (expected {list(expected)})"
            for key, got, expected in self.wrong_shape) + "]"] if self.wrong_shape else []
        return "state dict does not fit the spec: " + "; ".join(parts)


def check_fits(state: Mapping[str, Any], shapes: Mapping[str, Shape],
               optional: Mapping[str, Shape] | None = None) -> None:
    """Raise StateDictMismatch unless `state` holds exactly the keys of `shapes` (and any of
    `optional`), each of its shape."""
    optional = optional or {}
    allowed = {**optional, **shapes}
    missing = shapes.keys() - state.keys()
    unexpected = state.keys() - allowed.keys()
    wrong = [(key, tuple(value.shape), allowed[key]) for key, value in state.items()
             if key in allowed and tuple(value.shape) != allowed[key]]
    if missing or unexpected or wrong:
        raise StateDictMismatch(missing, unexpected, wrong)


def reference_shapes(rules: list, emitted: Mapping[str, Shape]) -> dict[str, Shape]:
    """Each reference tensor's shape, from the emitted tensor its rule names."""
    return {rule.reference: rule.reference_shape(emitted[rule.emitted]) for rule in rules}


def converted_by_rules(rules: list, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The emitted model's state dict from the reference's, by `rules` (compiler/state_dict.py):
    norm gains un-offset, the reference tensors of one stacked tensor concatenated in order."""
    import torch

    converted: dict[str, Any] = {}
    for rule in rules:
        value = rule.read(state_dict[rule.reference])
        value = value + rule.offset if rule.offset else value
        if rule.rows is None:
            converted[rule.emitted] = value
        else:  # rows of one emitted tensor (a fused projection), in order
            converted.setdefault(rule.emitted, []).append(value)
    return {name: torch.cat(value) if isinstance(value, list) else value
            for name, value in converted.items()}


def written_by_rules(rules: list, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The reference's state dict from the emitted model's: the inverse of converted_by_rules.
    A fused tensor's rows are copied out, so that no two keys share memory unless the
    reference's do (XTransformer's tie_token_emb); the columns the reference never reads are
    zeros."""
    import torch

    written = {}
    for rule in rules:
        emitted = state_dict[rule.emitted]
        value = rule.part(emitted)
        value = value.clone() if rule.rows is not None else value
        value = value - rule.offset if rule.offset else value
        if rule.columns is not None:
            full = torch.zeros(rule.reference_shape(tuple(emitted.shape)), dtype=value.dtype,
                               device=value.device)
            full[..., :rule.columns] = value
            value = full
        written[rule.reference] = value
    return written


def zeros_like_state(shapes: Mapping[str, Shape], state: Mapping[str, Any]) -> dict[str, Any]:
    """Zero tensors of `shapes`, of the dtype and device of the state's floating tensors."""
    import torch

    like = next((value for value in state.values() if value.is_floating_point()), None)
    how = {} if like is None else {"dtype": like.dtype, "device": like.device}
    return {name: torch.zeros(shape, **how) for name, shape in shapes.items()}


def flattened(parts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`{component: state_dict}` as one state dict, keys `component.key`."""
    return {f"{name}.{key}": value for name, part in parts.items() for key, value in part.items()}


def by_component(state: Mapping[str, Any], components: Iterable[str]) -> dict[str, dict]:
    """The inverse of `flattened`: one state dict per component (component names hold no dot),
    each component present even where it holds no tensor. Keys that name no component (a
    checkpoint file's, say) are refused together, as unexpected keys."""
    parts: dict[str, dict] = {name: {} for name in components}
    stray = []
    for key, value in state.items():
        component, _, rest = key.partition(".")
        if component in parts and rest:
            parts[component][rest] = value
        else:
            stray.append(key)
    if stray:
        raise StateDictMismatch(unexpected=stray)
    return parts


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The state dict with `prefix` (a module path: `net` or `net.`) taken off every key that
    starts with it; the others are kept as they are, to be refused as unexpected by name."""
    prefix = prefix if prefix.endswith(".") else f"{prefix}."
    return {key.removeprefix(prefix): value for key, value in state.items()}


def stripped_of_wrapper(state: Mapping[str, Any], expected: set[str]) -> tuple[dict, str]:
    """The state dict without a training wrapper's `net.` prefix where every key has it and the
    stripped keys name more of the `expected` keys than the keys as they are; and the prefix
    taken off ("" where none). A model whose own keys hold `net.` further in (XTransformer's
    `decoder.net.`) is left alone: its keys do not all start with it."""
    if not state or not all(key.startswith(WRAPPER_PREFIX) for key in state):
        return dict(state), ""
    stripped = strip_prefix(state, WRAPPER_PREFIX)
    if len(expected & stripped.keys()) > len(expected & state.keys()):
        return stripped, WRAPPER_PREFIX
    return dict(state), ""
