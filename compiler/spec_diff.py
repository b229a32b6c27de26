"""`xtc diff`: what changing a spec does to the model, as data (diff_format.py renders it).

Two specs are compared once defaults are filled in: keyword by keyword, on the entries `xtc
explain` prints (explain.explanation: each value, what the compiler computes in its place, and
why), then by what they build, on `xtc inspect`'s figures (inspection.inspect): parameters,
FLOPs per token, kv-cache bytes per token, the attention path of each layer, the state-dict keys
and their shapes. A composite is compared component by component. No torch: everything is read
from the specs and their compiled graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xtc.spec import Spec

from .explain import Entry, explanation
from .inspection import AttentionPath, Inspection, StateKey, inspect
from .ir import Graph

MODEL = "model"  # the component of a single model's keys, layers and parameters


@dataclass(frozen=True)
class KeywordChange:
    """A keyword whose value, or the value the compiler uses for it, differs; or a module (a
    header entry) present on one side only, its keywords not listed one by one."""

    key: str
    before: Entry | None
    after: Entry | None

    @property
    def change(self) -> str:
        return "added" if self.before is None else "removed" if self.after is None else "changed"


@dataclass(frozen=True)
class Figure:
    """One figure of `xtc inspect`, before and after."""

    key: str  # its name in JSON: `forward_flops_per_token`
    name: str  # for people: `forward FLOPs per token`
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def ratio(self) -> float | None:
        """The change as a share of the figure before (None where it was 0)."""
        return self.delta / self.before if self.before else None


@dataclass(frozen=True)
class PathChange:
    """An attention layer whose path (SDPA or explicit) or flash eligibility changes."""

    layer: str  # the module path, `blocks.0.attn`
    before: AttentionPath
    after: AttentionPath


@dataclass(frozen=True)
class KeyChange:
    """A state-dict key that a checkpoint of the first spec cannot fill in the second's model."""

    key: str
    change: str  # "added", "removed" or "reshaped"
    before: StateKey | None
    after: StateKey | None


@dataclass
class ComponentDiff:
    """What changes in one component (MODEL for a single model)."""

    name: str
    keywords: list[KeywordChange] = field(default_factory=list)
    parameters: Figure | None = None  # None where the component is on one side only
    attention: list[PathChange] = field(default_factory=list)
    state_dict: list[KeyChange] = field(default_factory=list)


@dataclass
class SpecDiff:
    before: Spec
    after: Spec
    before_figures: Inspection
    after_figures: Inspection
    keywords: list[KeywordChange]  # the spec's own: name, description, connections
    components: list[ComponentDiff]
    figures: list[Figure]  # of the whole model

    @property
    def identical(self) -> bool:
        """The same model once defaults are filled in (whatever either spec writes out)."""
        return not self.every_keyword

    @property
    def every_keyword(self) -> list[KeywordChange]:
        """The spec's own keyword changes, then each component's."""
        return self.keywords + [change for c in self.components for change in c.keywords]

    @property
    def state_dict(self) -> list[KeyChange]:
        return [change for c in self.components for change in c.state_dict]

    @property
    def breaking(self) -> bool:
        """A checkpoint of the first spec's model does not load into the second's."""
        return bool(self.state_dict)

    @property
    def attention(self) -> list[PathChange]:
        return [change for c in self.components for change in c.attention]


def spec_diff(before: Spec, before_graph: Graph, after: Spec, after_graph: Graph) -> SpecDiff:
    """How `after` differs from `before`, both checked and compiled."""
    old, new = inspect(before, before_graph), inspect(after, after_graph)
    keywords = keyword_changes(explanation(before), explanation(after))
    names = list(dict.fromkeys(component_names(before) + component_names(after)))
    components = [ComponentDiff(name) for name in names]
    by_name = {c.name: c for c in components}
    spec_level = []
    for change in keywords:
        owner = key_component(change.key)
        (by_name[owner].keywords if owner in by_name else spec_level).append(change)
    for component in components:
        component.parameters = parameter_figure(component.name, before, old, after, new)
        component.attention = path_changes(component_paths(old, before, component.name),
                                           component_paths(new, after, component.name))
        component.state_dict = key_changes(component_keys(old, before, component.name),
                                           component_keys(new, after, component.name))
    return SpecDiff(before, after, old, new, spec_level, components, model_figures(old, new))


# -- keywords -------------------------------------------------------------------------------------


def keyword_changes(before: list[Entry], after: list[Entry]) -> list[KeywordChange]:
    """Entries that differ in value or computed value, in the order of the second spec (the
    first's removals after); a module on one side only is one change, not its every keyword."""
    old = {entry.key: entry for entry in before}
    new = {entry.key: entry for entry in after}
    changes, whole = [], []  # whole: the keys of modules added or removed
    for key in list(new) + [key for key in old if key not in new]:
        if any(key.startswith(module + ".") for module in whole):
            continue
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            if (a or b).is_header:
                whole.append(key)
            changes.append(KeywordChange(key, a, b))
        elif not a.is_header and (a.value != b.value or a.effective != b.effective):
            changes.append(KeywordChange(key, a, b))
    return changes


def key_component(key: str) -> str:
    """The component a dotted spec key belongs to: `components.vit.depth` -> vit, `model...` ->
    MODEL, the spec's own keys (`name`) -> ''."""
    parts = key.split(".")
    if parts[0] == "components" and len(parts) > 1:
        return parts[1]
    return MODEL if parts[0] == MODEL else ""


def component_names(spec: Spec) -> list[str]:
    return [MODEL] if spec.model is not None else list(spec.components)


# -- figures --------------------------------------------------------------------------------------


def model_figures(old: Inspection, new: Inspection) -> list[Figure]:
    """Parameters, FLOPs per token (forward, training step) and float32 cache bytes per token,
    as `xtc inspect` computes them (at each spec's default lengths)."""
    figures = [
        Figure("parameters", "parameters", old.total_parameters, new.total_parameters),
        Figure("forward_flops_per_token", "forward FLOPs per token",
               old.forward_flops / old.tokens, new.forward_flops / new.tokens),
        Figure("training_flops_per_token", "training FLOPs per token",
               old.training_flops / old.tokens, new.training_flops / new.tokens),
        Figure("kv_cache_bytes_per_token", "kv-cache bytes per token (float32)",
               old.cache_bytes_per_token, new.cache_bytes_per_token),
    ]
    if old.cross_cache_bytes_per_token or new.cross_cache_bytes_per_token:
        figures.append(Figure("cross_attention_cache_bytes_per_context_token",
                              "cross-attention cache bytes per context token (float32)",
                              old.cross_cache_bytes_per_token, new.cross_cache_bytes_per_token))
    return figures


def parameter_figure(name: str, before: Spec, old: Inspection, after: Spec,
                     new: Inspection) -> Figure | None:
    counts = [component_parameters(figures, spec, name) for spec, figures in ((before, old), (after, new))]
    if None in counts:
        return None
    return Figure("parameters", "parameters", *counts)


def component_parameters(figures: Inspection, spec: Spec, name: str) -> int | None:
    """A component's parameters (a single model's are keyed by the spec's name); None where the
    spec has no such component."""
    if name not in component_names(spec):
        return None
    parts = figures.parameters.get(spec.name if name == MODEL else name, {})
    return sum(parts.values())


# -- attention paths ------------------------------------------------------------------------------


def in_component(path: str, spec: Spec, name: str) -> bool:
    """Whether a module path of the emitted model lies in the component (a composite's start
    with its name)."""
    if spec.model is not None:
        return name == MODEL
    return path.split(".")[0] == name


def component_paths(figures: Inspection, spec: Spec, name: str) -> dict[str, AttentionPath]:
    return {p.layer: p for p in figures.attention if in_component(p.layer, spec, name)}


def path_changes(old: dict[str, AttentionPath], new: dict[str, AttentionPath]) -> list[PathChange]:
    """Layers on both sides whose path or flash eligibility differ (layers added or removed show
    in the keywords and the state dict)."""
    return [PathChange(layer, old[layer], path) for layer, path in new.items()
            if layer in old and (old[layer].path, old[layer].flash) != (path.path, path.flash)]


# -- state dict -----------------------------------------------------------------------------------


def component_keys(figures: Inspection, spec: Spec, name: str) -> dict[str, StateKey]:
    return {e.key: e for e in figures.state_dict if in_component(e.key, spec, name)}


def key_changes(old: dict[str, StateKey], new: dict[str, StateKey]) -> list[KeyChange]:
    """Keys added, removed, or of another shape: each stops a checkpoint of the first model
    loading strictly into the second. Where xtc does not compute a key's shape, a change in the
    parameters of the op that holds it stands for one."""
    changes = [KeyChange(key, "removed", entry, None) for key, entry in old.items() if key not in new]
    for key, entry in new.items():
        if key not in old:
            changes.append(KeyChange(key, "added", None, entry))
        elif reshaped(old[key], entry):
            changes.append(KeyChange(key, "reshaped", old[key], entry))
    return changes


def reshaped(old: StateKey, new: StateKey) -> bool:
    if old.shape is not None and new.shape is not None:
        return old.shape != new.shape
    return old.owner_parameters != new.owner_parameters
