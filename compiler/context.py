"""Render contexts: plain dataclasses holding every decision, name and import of the emitted
module, so that templates only loop, branch and format (docs/design.md, "Lowering and templates").

Each class context names its template and reports the imports its code needs. A model class
holds one op context per top-level op, each rendered by `templates/ops/<kind>.py.jinja` through
its `init`, `reset` and `forward` macros. `module.py.jinja` assembles the banner, the imports
collected from the classes, the `Config` dataclasses and the classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

# (group, line): the standard library, then third-party packages, as isort sorts them. For the
# emitted module xtc.runtime is a third-party package like torch.
STDLIB, THIRD_PARTY = 0, 1
Import = tuple[int, str]

DATACLASS = (STDLIB, "from dataclasses import dataclass")
DATACLASS_FIELD = (STDLIB, "from dataclasses import dataclass, field")
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
    value: str  # repr() of a validated value, or a constructor call of a nested config
    comment: str = ""


@dataclass(frozen=True)
class ConfigClass:
    name: str
    fields: tuple[ConfigField, ...]
    docstring: str = ""


# -- the classes of a layer stack ---------------------------------------------------------------


def attention_imports(num_mem_kv: bool) -> set[Import]:
    """Both attention classes call `attend`; persistent memory needs torch.cat and F.pad."""
    wanted = {NN, runtime("attention", "attend")}
    return wanted | ({TORCH, FUNCTIONAL} if num_mem_kv else set())


@dataclass(frozen=True)
class AttentionClass:
    template: ClassVar[str] = "attention.py.jinja"
    name: str
    config: str
    causal: bool
    flash: bool
    project_out: bool
    dropout: bool
    num_mem_kv: bool
    attn_mask: bool = False  # takes a user attention mask (XTransformer's encoder)
    cache: bool = False  # takes a KVCache (decoders that generate)
    rotary: bool = False  # rotates queries and keys with the model's rotary angles
    bias: bool = False  # adds the model's relative position bias
    rotate_heads: bool = False  # only the last config.rotate_num_heads heads
    kv_heads: bool = False  # grouped-query attention: config.kv_heads key / value heads
    value_dim: bool = False  # values config.value_dim_head wide
    qk_norm: bool = False
    qk_norm_groups: bool = False  # in config.qk_norm_groups groups
    qk_norm_dim_scale: bool = False
    on_attn: bool = False
    gate_values: bool = False
    head_scale: bool = False
    talking_heads: tuple = ()  # the names of the talking-heads convolutions used
    sparse_topk: bool = False
    residual: bool = False  # takes and returns pre-softmax scores (residual attention)
    xpos: bool = False  # the rotary angles come with xPos scales

    @property
    def rotary_before_cache(self) -> bool:
        """A key's rotation depends on its position only, so new keys are cached rotated; xPos
        scales are centred on the current length and are applied to every key at each step."""
        return self.rotary and not self.xpos

    @property
    def explicit(self) -> bool:
        return bool(self.talking_heads) or self.sparse_topk or self.residual

    @property
    def attend_call(self) -> str:
        """attend(...), or attend_explicit(...) with the score-matrix options."""
        if not self.explicit:
            return f"attend({self.attend_arguments})"
        extra = "".join(f", {name}=self.{name}" for name in self.talking_heads)
        extra += ", sparse_topk=self.sparse_topk" if self.sparse_topk else ""
        extra += ", prev_scores=prev_scores, return_scores=True" if self.residual else ""
        return f"attend_explicit({self.attend_arguments}{extra})"

    @property
    def kv_heads_field(self) -> str:
        return "config.kv_heads" if self.kv_heads else "config.heads"

    @property
    def kv_heads_symbol(self) -> str:
        """The key / value heads in shape comments: K with grouped-query attention."""
        return "K" if self.kv_heads else "H"

    @property
    def value_dim_field(self) -> str:
        return "config.value_dim_head" if self.value_dim else "config.dim_head"

    @property
    def description_extra(self) -> str:
        notes = []
        if self.kv_heads:
            notes.append("Grouped-query attention (Ainslie et al. 2023, https://arxiv.org/abs/2305.13245):\n"
                         "    query head h reads key / value head h % kv_heads, as in x-transformers.")
        if self.qk_norm:
            notes.append("QK-norm (https://arxiv.org/abs/2010.04245): unit-length queries and keys.")
        return "\n".join(f"    {note}" for note in notes)

    @property
    def parameters(self) -> tuple[str, ...]:
        parameters = ["x: Tensor", "mask: Tensor | None = None"]
        parameters += ["attn_mask: Tensor | None = None"] if self.attn_mask else []
        parameters += ["rotary: tuple[Tensor, Tensor, Tensor | float] | None = None"] if self.rotary else []
        parameters += ["bias: Tensor | None = None"] if self.bias else []
        parameters += ["prev_scores: Tensor | None = None"] if self.residual else []
        return (*parameters, *(["cache: KVCache | None = None"] if self.cache else []))

    @property
    def returns(self) -> str:
        return "tuple[Tensor, Tensor]" if self.residual else "Tensor"

    @property
    def description(self) -> str:
        return "causal self-attention" if self.causal else "bidirectional self-attention"

    @property
    def attend_arguments(self) -> str:
        key_mask = "key_mask" if self.num_mem_kv else "mask"
        arguments = f"q, k, v, causal={self.causal}, key_mask={key_mask}"
        arguments += ", attn_mask=attn_mask" if self.attn_mask else ""
        arguments += ", bias=bias" if self.bias else ""
        arguments += ", scale=self.scale" if self.qk_norm and not self.qk_norm_dim_scale else ""
        return arguments + (", dropout=dropout" if self.dropout else "")

    def imports(self) -> set[Import]:
        cache = {runtime("kv_cache", "KVCache")} if self.cache else set()
        rotary = {runtime("positions", "apply_rotary")} if self.rotary else set()
        rotary |= {TORCH} if self.rotate_heads or self.qk_norm_dim_scale or self.head_scale else set()
        rotary |= {runtime("attention", "l2norm")} if self.qk_norm else set()
        rotary |= {runtime("attention", "attend_explicit")} if self.explicit else set()
        bias = {FUNCTIONAL} if self.bias and self.num_mem_kv else set()
        return attention_imports(self.num_mem_kv) | cache | rotary | bias


@dataclass(frozen=True)
class CrossAttentionClass:
    template: ClassVar[str] = "cross_attention.py.jinja"
    name: str
    config: str
    flash: bool
    project_out: bool
    dropout: bool
    num_mem_kv: bool
    cache: bool = False  # takes a ContextCache (decoders that generate)
    residual: bool = False  # cross residual attention: takes and returns pre-softmax scores

    @property
    def attend_call(self) -> str:
        arguments = "q, k, v, causal=False, key_mask=context_mask"
        arguments += ", dropout=dropout" if self.dropout else ""
        if self.residual:
            return f"attend_explicit({arguments}, prev_scores=prev_scores, return_scores=True)"
        return f"attend({arguments})"

    @property
    def returns(self) -> str:
        return "tuple[Tensor, Tensor]" if self.residual else "Tensor"

    def imports(self) -> set[Import]:
        cache = {runtime("kv_cache", "ContextCache")} if self.cache else set()
        explicit = {runtime("attention", "attend_explicit")} if self.residual else set()
        return attention_imports(self.num_mem_kv) | cache | explicit


@dataclass(frozen=True)
class FeedForwardClass:
    template: ClassVar[str] = "feedforward.py.jinja"
    name: str
    config: str
    activation: str  # constructor code, e.g. "nn.GELU()"
    activation_name: str
    glu: bool
    bias: bool
    dropout: bool
    post_act_ln: bool = False

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
        relu_squared = {runtime("activations", "ReluSquared")} if "ReluSquared" in self.activation else set()
        return {NN} | relu_squared


@dataclass(frozen=True)
class BlockStep:
    """One residual sublayer: `x = update`, after the `prelude` line if there is one."""

    norm: str
    norm_init: str
    branch: str
    branch_init: str
    update: str
    diagram: str
    lines: tuple[str, ...] = ()  # statements before `x = update`
    inits: tuple[str, ...] = ()  # extra __init__ statements (post norms, scales, residuals)


@dataclass(frozen=True)
class BlockClass:
    template: ClassVar[str] = "block.py.jinja"
    name: str
    config: str
    pre_norm: bool
    layer_dropout: bool
    steps: tuple[BlockStep, ...]
    parameters: tuple[str, ...]  # of forward, after self
    norm_imports: frozenset = frozenset()
    prologue: tuple[str, ...] = ()  # code lines before the sublayers
    residual_scores: tuple[str, ...] = ()  # residual attention scores passed through
    setup: tuple[str, ...] = ()  # extra __init__ statements of the block

    @property
    def returns(self) -> str:
        return f"tuple[{', '.join(['Tensor'] * (1 + len(self.residual_scores)))}]" \
            if self.residual_scores else "Tensor"

    @property
    def norm_position(self) -> str:
        return "pre" if self.pre_norm else "post"

    def imports(self) -> set[Import]:
        wanted = {NN} | set(self.norm_imports)
        wanted |= {runtime("kv_cache", "LayerCache")} if self.prologue else set()
        return wanted | ({runtime("layers", "layer_drop")} if self.layer_dropout else set())


# -- model classes and their top-level ops ------------------------------------------------------


@dataclass(frozen=True)
class OpContext:
    """A top-level op of a model class, rendered by `templates/ops/<template>.py.jinja`."""

    template: str
    args: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        try:
            return self.args[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class ModelClass:
    """A model: its config, its ops in forward order, and its forward signature and checks."""

    template: ClassVar[str] = "model.py.jinja"
    class_name: str
    config: str
    docstring: str
    forward_doc: str
    parameters: tuple[str, ...]  # of forward, after self
    checks: tuple[str, ...]  # code lines
    ops: tuple[OpContext, ...]
    extra_imports: frozenset = frozenset()
    generative: bool = False  # a decoder: loss() and generate()
    cacheable: bool = False  # generate can use a kv cache (memory tokens prevent it)
    cross: bool = False
    length_limit: str = "None"
    cache_heads: str = "heads"  # the Config field with the number of key / value heads
    cache_value_dim: bool = False  # values have their own width

    @property
    def loss_parameters(self) -> tuple[str, ...]:
        cross = ("context: Tensor | None = None", "context_mask: Tensor | None = None")
        return ("mask: Tensor | None = None", *(cross if self.cross else ()))

    @property
    def loss_call(self) -> str:
        return "inputs, mask=mask" + (", context=context, context_mask=context_mask" if self.cross else "")

    @property
    def generate_parameters(self) -> tuple[str, ...]:
        return ("context: Tensor | None = None", "context_mask: Tensor | None = None") if self.cross else ()

    @property
    def generate_arguments(self) -> tuple[str, ...]:
        return ("context=context", "context_mask=context_mask") if self.cross else ()

    @property
    def has_reset(self) -> bool:
        return any(op.args.get("reset", False) for op in self.ops)

    def imports(self) -> set[Import]:
        wanted = {NN} | set(self.extra_imports)
        if self.generative:
            wanted |= {TORCH, FUNCTIONAL, runtime("generation", "generate")}
        return wanted | ({runtime("kv_cache", "ModelCache")} if self.cacheable else set())


@dataclass(frozen=True)
class XTransformerClass:
    template: ClassVar[str] = "xtransformer.py.jinja"
    class_name: str
    config: str
    encoder: str  # class names
    decoder: str
    tie_token_emb: bool
    prepend_pads_mask: bool = True
    drop_context_tokens: bool = False

    def imports(self) -> set[Import]:
        wanted = {TORCH, NN, FUNCTIONAL}
        return wanted | ({runtime("layers", "drop_tokens")} if self.drop_context_tokens else set())


@dataclass(frozen=True)
class ModuleContext:
    spec_name: str
    sha256: str
    class_name: str
    summary: str
    diagram: tuple[str, ...]
    configs: tuple[ConfigClass, ...]
    classes: tuple  # class contexts, in the order they are defined

    @property
    def imports(self) -> list[str]:
        """Import lines, grouped and sorted, blank lines between groups."""
        nested = any("field(" in f.value for config in self.configs for f in config.fields)
        wanted = {DATACLASS_FIELD if nested else DATACLASS}.union(*(c.imports() for c in self.classes))
        wanted = merge_from_imports(wanted)
        lines, previous_group = [], None
        for group, line in sorted(wanted, key=import_order):
            if previous_group is not None and group != previous_group:
                lines.append("")
            lines.append(line)
            previous_group = group
        return lines


def merge_from_imports(wanted: set[Import]) -> set[Import]:
    """`from m import a` and `from m import b` become `from m import a, b`."""
    merged: dict[tuple[int, str], set[str]] = {}
    plain = set()
    for group, line in wanted:
        if line.startswith("from "):
            module, names = line[len("from "):].split(" import ")
            merged.setdefault((group, module), set()).update(n.strip() for n in names.split(","))
        else:
            plain.add((group, line))
    return plain | {(group, f"from {module} import {', '.join(sorted(names, key=name_order))}")
                    for (group, module), names in merged.items()}


def name_order(name: str) -> tuple:
    """isort's order-by-type: CONSTANTS, then Classes, then functions and modules."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2), name


def import_order(item: Import) -> tuple:
    """isort's order: by group, `import x` before `from x import y`, then by module."""
    group, line = item
    return group, not line.startswith("import"), line.split()[1]


@dataclass(frozen=True)
class CompositeClass:
    """Components as submodules; the forward calls them in order, wired by the connections."""

    template: ClassVar[str] = "composite.py.jinja"
    class_name: str
    config: str  # the class of its Config
    components: tuple[tuple[str, str], ...]  # (attribute, class name), as written
    parameters: tuple[str, ...]  # of forward, after self
    calls: tuple[str, ...]  # code, producers first; the last one returns
    wiring: tuple[str, ...]  # "encoder -> decoder.context"
    sink: str  # the class whose output is returned

    def imports(self) -> set[Import]:
        return {NN}
