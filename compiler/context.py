"""Render contexts: plain dataclasses holding every decision, name and import of the emitted
module, so that templates only loop, branch and format (STYLE.md principle 8).

Each class context names its template and reports the imports its code needs; the model class
holds one op context per top-level op, each rendered by `templates/ops/<kind>.py.jinja` through
its `init`, `reset` and `forward` macros. `module.py.jinja` assembles the banner, the imports
collected from the classes, `Config` and the classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# (group, line): the standard library, then third-party packages, as isort sorts them. For the
# emitted module xtc.runtime is a third-party package like torch.
STDLIB, THIRD_PARTY = 0, 1
Import = tuple[int, str]

DATACLASS = (STDLIB, "from dataclasses import dataclass")
TORCH = (THIRD_PARTY, "import torch")
FUNCTIONAL = (THIRD_PARTY, "import torch.nn.functional as F")
NN = (THIRD_PARTY, "from torch import Tensor, nn")
REARRANGE = (THIRD_PARTY, "from einops import rearrange")


def runtime(module: str, name: str) -> Import:
    return (THIRD_PARTY, f"from xtc.runtime.{module} import {name}")


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
    dropout: bool
    num_mem_kv: bool

    @property
    def description(self) -> str:
        return "causal self-attention" if self.causal else "bidirectional self-attention"

    @property
    def attend_arguments(self) -> str:
        key_mask = "key_mask" if self.num_mem_kv else "mask"
        arguments = f"q, k, v, causal={self.causal}, key_mask={key_mask}"
        return arguments + (", dropout=dropout" if self.dropout else "")

    def imports(self) -> set[Import]:
        wanted = {NN, REARRANGE, runtime("attention", "attend")}
        return wanted | ({TORCH, FUNCTIONAL} if self.num_mem_kv else set())


@dataclass(frozen=True)
class FeedForwardClass:
    template: ClassVar[str] = "feedforward.py.jinja"
    activation: str  # constructor code, e.g. "nn.GELU()"
    activation_name: str
    glu: bool
    bias: bool
    dropout: bool

    @property
    def description(self) -> str:
        if self.glu:
            return (f"Gated MLP: value * {self.activation_name}(gate) -> Linear "
                    "(Shazeer 2020, https://arxiv.org/abs/2002.05202).")
        return f"Position-wise MLP: Linear -> {self.activation_name} -> Linear."

    @property
    def bias_argument(self) -> str:
        return "" if self.bias else ", bias=False"

    def imports(self) -> set[Import]:
        wanted = {NN}
        return wanted | ({runtime("activations", "ReluSquared")} if "ReluSquared" in self.activation else set())


@dataclass(frozen=True)
class BlockStep:
    """One residual sublayer: `x = update`."""

    norm: str
    norm_init: str
    branch: str
    branch_init: str
    update: str
    diagram: str


@dataclass(frozen=True)
class BlockClass:
    template: ClassVar[str] = "block.py.jinja"
    pre_norm: bool
    layer_dropout: bool
    steps: tuple[BlockStep, ...]
    norm_imports: frozenset = frozenset()

    @property
    def norm_position(self) -> str:
        return "pre" if self.pre_norm else "post"

    def imports(self) -> set[Import]:
        wanted = {NN} | set(self.norm_imports)
        return wanted | ({runtime("layers", "layer_drop")} if self.layer_dropout else set())


# -- the model class and its top-level ops --------------------------------------------------------


@dataclass(frozen=True)
class TokenEmbeddingOp:
    template: ClassVar[str] = "ops/token_embedding.py.jinja"
    width: str  # the Config field: "dim", or "emb_dim" when embeddings are narrower or wider
    symbol: str  # the shape-comment letter: C or E
    l2norm: bool


@dataclass(frozen=True)
class PositionEmbeddingOp:
    template: ClassVar[str] = "ops/position_embedding.py.jinja"
    scheme: str  # "learned" or "scaled_sinusoidal"
    width: str
    symbol: str
    l2norm: bool


@dataclass(frozen=True)
class NormOp:
    template: ClassVar[str] = "ops/norm.py.jinja"
    name: str
    init: str


@dataclass(frozen=True)
class DropoutOp:
    template: ClassVar[str] = "ops/dropout.py.jinja"
    name: str  # attribute and Config field


@dataclass(frozen=True)
class ProjectOp:
    template: ClassVar[str] = "ops/project.py.jinja"


@dataclass(frozen=True)
class MemoryTokensOp:
    template: ClassVar[str] = "ops/memory_tokens.py.jinja"


@dataclass(frozen=True)
class BlocksOp:
    template: ClassVar[str] = "ops/blocks.py.jinja"


@dataclass(frozen=True)
class StripOp:
    template: ClassVar[str] = "ops/strip.py.jinja"


@dataclass(frozen=True)
class LogitsOp:
    template: ClassVar[str] = "ops/logits.py.jinja"
    tied: bool


@dataclass(frozen=True)
class WrapperClass:
    template: ClassVar[str] = "transformer_wrapper.py.jinja"
    class_name: str
    docstring: str
    length_limit: str  # code: "self.config.max_seq_len", or "None" without absolute positions
    ops: tuple  # op contexts in forward order; the last one is the logits head
    extra_imports: frozenset = frozenset()

    @property
    def body(self) -> tuple:
        return self.ops[:-1]

    @property
    def head(self):
        return self.ops[-1]

    def imports(self) -> set[Import]:
        return {TORCH, NN, runtime("checks", "check_mask, check_tokens")} | set(self.extra_imports)


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
        for group, line in sorted(wanted, key=import_order):
            if previous_group is not None and group != previous_group:
                lines.append("")
            lines.append(line)
            previous_group = group
        return lines


def import_order(item: Import) -> tuple:
    """isort's order: by group, `import x` before `from x import y`, then by module."""
    group, line = item
    return group, not line.startswith("import"), line.split()[1]
