"""Render contexts: plain dataclasses holding every decision, name and import of the emitted
module, so that templates only loop, branch and format (STYLE.md principle 8).

Each class context names its template and reports the imports its code needs; `module.py.jinja`
assembles the banner, the imports collected from the rendered classes, `Config` and the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# (group, line): the standard library, then third-party packages, as isort sorts them. For the
# emitted module xtc.runtime is a third-party package like torch.
STDLIB, THIRD_PARTY = 0, 1
Import = tuple[int, str]

TORCH = (THIRD_PARTY, "import torch")
NN = (THIRD_PARTY, "from torch import Tensor, nn")
REARRANGE = (THIRD_PARTY, "from einops import rearrange")
ATTEND = (THIRD_PARTY, "from xtc.runtime.attention import attend")
DATACLASS = (STDLIB, "from dataclasses import dataclass")


@dataclass(frozen=True)
class ConfigField:
    name: str
    type: str
    value: str  # repr() of a validated value
    comment: str = ""


@dataclass(frozen=True)
class AttentionClass:
    template: ClassVar[str] = "attention.py.jinja"
    causal: bool
    flash: bool
    project_out: bool

    @property
    def description(self) -> str:
        return "causal self-attention" if self.causal else "bidirectional self-attention"

    def imports(self) -> set[Import]:
        return {NN, REARRANGE, ATTEND}


@dataclass(frozen=True)
class FeedForwardClass:
    template: ClassVar[str] = "feedforward.py.jinja"
    activation: str  # constructor code, e.g. "nn.GELU()"
    activation_name: str
    inner_dim: int

    def imports(self) -> set[Import]:
        return {NN}


@dataclass(frozen=True)
class BlockStep:
    """One residual sublayer: `x = x + call`."""

    norm: str
    norm_init: str
    branch: str
    branch_init: str
    call: str
    diagram: str


@dataclass(frozen=True)
class BlockClass:
    template: ClassVar[str] = "block.py.jinja"
    steps: tuple[BlockStep, ...]

    def imports(self) -> set[Import]:
        return {NN}


@dataclass(frozen=True)
class WrapperClass:
    template: ClassVar[str] = "transformer_wrapper.py.jinja"
    class_name: str
    docstring: str
    norm_init: str

    def imports(self) -> set[Import]:
        return {TORCH, NN}


@dataclass(frozen=True)
class ModuleContext:
    spec_name: str
    sha256: str
    class_name: str
    summary: str
    diagram: tuple[str, ...]
    config: tuple[ConfigField, ...]
    classes: tuple  # class contexts, in the order they are defined

    @property
    def imports(self) -> list[str]:
        """Import lines, grouped and sorted, blank lines between groups."""
        wanted = {DATACLASS}.union(*(cls.imports() for cls in self.classes))
        lines, previous_group = [], None
        for group, line in sorted(wanted, key=lambda item: (item[0], not item[1].startswith("import"), item[1])):
            if previous_group is not None and group != previous_group:
                lines.append("")
            lines.append(line)
            previous_group = group
        return lines
