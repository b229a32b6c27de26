"""Render contexts: plain dataclasses holding every decision, name and import of the emitted
module, so that templates only loop, branch and format (docs/design.md, "Lowering and templates").

Each class context names its template and reports the imports its code needs. The sublayer
classes hold their IR payload (`AttentionClass.attrs`), so an option is read where it is
declared. A model class holds one op context per top-level op, each rendered by
`templates/ops/<kind>.py.jinja` through its `init`, `reset` and `forward` macros; a block holds
one `ResidualStep` per residual sublayer (`templates/residual_step.py.jinja`) and the
`BlockSignature` that both its forward and the model's loop over the blocks read.
`module.py.jinja` assembles the banner, the imports collected from the classes, the `Config`
dataclasses and the classes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import ClassVar

from .ir import AttentionAttrs, CrossAttentionAttrs, FeedForwardAttrs, LossAttrs, ResidualAttrs

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
    value: str  # repr() of a validated value, or a constructor call of a nested config
    comment: str = ""

    @property
    def lines(self) -> tuple[str, ...]:
        """The field's lines in its class (indented 4): one where it fits in 100 columns, else
        its comment above it, and a tuple too long even then (per-layer values) one item a
        line, as ruff formats it."""
        line = f"{self.name}: {self.type} = {self.value}"
        comment = f"# {self.comment}" if self.comment else ""
        if 4 + len(line) + (2 + len(comment) if comment else 0) <= 100:
            return (f"{line}  {comment}" if comment else line,)
        above = (comment,) if comment else ()
        if 4 + len(line) <= 100 or not self.value.startswith("("):
            return (*above, line)
        items = ast.literal_eval(self.value)
        return (*above, f"{self.name}: {self.type} = (", *(f"    {item!r}," for item in items), ")")


@dataclass(frozen=True)
class ConfigClass:
    name: str
    fields: tuple[ConfigField, ...]
    docstring: str = ""


def nested_config(name: str, config: str, overrides: tuple[tuple[str, str], ...] = ()) -> ConfigField:
    """A field that holds another model's Config (a component's, a side's). overrides: (field,
    repr) where this model's values differ from the class's defaults (a config class that two
    models with the same fields share). Configs are frozen, so one default instance is safe to
    share."""
    return ConfigField(name, config, config_call(config, overrides))


def config_call(config: str, overrides: tuple[tuple[str, str], ...]) -> str:
    """`Config(depth=2, heads=4)`: a config class called with some fields' values."""
    return f"{config}({', '.join(f'{name}={value}' for name, value in overrides)})"


def defined_name(cls) -> str:
    """The name of a class context: sublayers and blocks keep it in `name`, models in
    `class_name`."""
    return getattr(cls, "name", getattr(cls, "class_name", ""))


# -- the classes of a layer stack ---------------------------------------------------------------


def attention_imports(attrs: AttentionAttrs | CrossAttentionAttrs) -> set[Import]:
    """Both attention classes call `attend`, or `attend_explicit` with the score matrix in hand
    (then only that); persistent memory needs torch.cat and F.pad."""
    wanted = {NN, runtime("attention", "attend_explicit" if attrs.explicit else "attend")}
    wanted |= {FUNCTIONAL} if attrs.swiglu_values else set()  # the value gates' SiLU
    return wanted | ({TORCH, FUNCTIONAL} if attrs.num_mem_kv else set())


class ReadsConfig:
    """A sublayer or block class built from its stack's Config. Where the stack's layers hold
    different values of a field (per-layer values), the field is a tuple with one entry per
    layer of the class's kind, and the class takes `layer`, its index among them."""

    per_layer: tuple[str, ...]  # the Config fields it reads at its layer's entry

    @property
    def takes_layer(self) -> bool:
        return bool(self.per_layer)

    def read(self, field: str) -> str:
        """The expression of a Config field's value for this layer."""
        return f"config.{field}[layer]" if field in self.per_layer else f"config.{field}"


@dataclass(frozen=True)
class AttentionClass(ReadsConfig):
    """Self-attention, as its payload says; the template reads the options from `attrs`."""

    template: ClassVar[str] = "attention.py.jinja"
    concept: ClassVar[str] = "Attention"
    name: str
    config: str
    attrs: AttentionAttrs
    attn_mask: bool = False  # takes a user attention mask (XTransformer's encoder)
    cache: bool = False  # takes a KVCache (decoders that generate)
    xpos: bool = False  # the rotary angles come with xPos scales
    per_layer: tuple[str, ...] = ()

    @property
    def rotary_before_cache(self) -> bool:
        """A key's rotation depends on its position only, so new keys are cached rotated; xPos
        scales are centred on the current length and are applied to every key at each step.
        Multi-head latent attention caches the latent and re-projects its keys at each step:
        rotary comes after its cache too."""
        return self.attrs.rotary and not self.xpos and not (self.attrs.dim_latent_kv and self.cache)

    @property
    def fixed_scale(self) -> bool:
        """Scores scaled by self.scale, not by SDPA's 1 / sqrt(width of q): qk-norm's fixed
        scale, or a head's 1 / sqrt(dim_head) where polar positions make q and k 2 D wide."""
        return self.attrs.qk_norm and not self.attrs.qk_norm_dim_scale or self.attrs.polar

    @property
    def grouped_qk_norm(self) -> bool:
        """qk-norm in config.qk_norm_groups groups."""
        return self.attrs.qk_norm_groups > 1

    @property
    def kv_heads_field(self) -> str:
        return "config.kv_heads" if self.attrs.kv_heads else "config.heads"

    @property
    def uniform_qkv(self) -> bool:
        """Queries, keys and values as wide as each other: one projection splits into (3, H, D)."""
        return len(set(self.attrs.qkv_widths)) == 1

    @property
    def kv_heads_symbol(self) -> str:
        """The key / value heads in shape comments: K with grouped-query attention."""
        return "K" if self.attrs.kv_heads else "H"

    @property
    def value_dim_field(self) -> str:
        return "config.value_dim_head" if self.attrs.value_dim_head else "config.dim_head"

    @property
    def description_extra(self) -> str:
        notes = []
        if self.attrs.kv_heads:
            notes.append("Grouped-query attention (Ainslie et al. 2023, https://arxiv.org/abs/2305.13245):\n"
                         "    query head h reads key / value head h % kv_heads, as in x-transformers.")
        if self.attrs.qk_norm:
            notes.append("QK-norm (https://arxiv.org/abs/2010.04245): unit-length queries and keys.")
        return "\n".join(f"    {note}" for note in notes)

    @property
    def parameters(self) -> tuple[str, ...]:
        a = self.attrs
        parameters = ["x: Tensor", "mask: Tensor | None = None"]
        parameters += ["attn_mask: Tensor | None = None"] if self.attn_mask else []
        parameters += ["rotary: tuple[Tensor, Tensor, Tensor | float] | None = None"] if a.rotary else []
        parameters += ["polar: tuple[Tensor, Tensor] | None = None"] if a.polar else []
        parameters += ["bias: Tensor | None = None"] if a.bias else []
        parameters += ["prev_scores: Tensor | None = None"] if a.residual else []
        parameters += ["first_values: Tensor | None = None"] if a.value_residual else []
        parameters += ["memory: Tensor | None = None"] if a.memory else []
        parameters += [str(ATTN_LSE)] if a.z_loss else []
        return (*parameters, *([f"cache: {self.cache_class} | None = None"] if self.cache else []))

    @property
    def cache_class(self) -> str:
        """What the layer's kv cache is: multi-head latent attention keeps its latent."""
        return "LatentCache" if self.attrs.dim_latent_kv else "KVCache"

    @property
    def returns(self) -> str:
        return attention_returns(self.attrs)

    @property
    def handed_on(self) -> tuple[str, ...]:
        return handed_on(self.attrs)

    @property
    def description(self) -> str:
        return "causal self-attention" if self.attrs.causal else "bidirectional self-attention"

    def imports(self) -> set[Import]:
        a = self.attrs
        wanted = attention_imports(a)
        wanted |= {runtime("kv_cache", self.cache_class)} if self.cache else set()
        wanted |= {runtime("positions", "apply_rotary")} if a.rotary else set()
        wanted |= {runtime("positions", "apply_polar")} if a.polar else set()
        wanted |= {TORCH} if a.rotate_heads or a.qk_norm_dim_scale or a.head_scale else set()
        wanted |= {runtime("attention", "l2norm")} if a.qk_norm else set()
        norms = a.q_rmsnorm or a.k_rmsnorm or a.value_rmsnorm
        wanted |= {runtime("norms", "HeadRMSNorm")} if norms else set()
        wanted |= {TORCH} if a.head_learned_sink else set()
        wanted |= {runtime("positions", "ContextualPositions")} if a.use_cope else set()
        wanted |= {runtime("attention", "sliding_window")} if a.max_attend_past is not None else set()
        wanted |= {FUNCTIONAL} if a.add_zero_kv else set()
        wanted |= {runtime("biases", "ProjectedDistanceBias")} if a.use_rel_proj_pos_bias else set()
        wanted |= {runtime("layers", "stack_qkv_weights")} if a.fused_qkv else set()
        wanted |= {TORCH, FUNCTIONAL} if a.memory else set()
        wanted |= {runtime("attention", "orthogonal_part")} if a.orthog_copies else set()
        wanted |= {runtime("attention", "tile_heads")} if a.orthog_copies and a.kv_heads else set()
        wanted |= {TORCH} if a.orthog_copies == 2 else set()
        if a.data_dependent_alibi:
            form = "PerRowDataDependentAlibi" if a.data_dependent_alibi_per_row else "DataDependentAlibi"
            wanted |= {runtime("biases", form)}
        return wanted | ({FUNCTIONAL} if a.scores_bias and a.num_mem_kv else set())


def attention_returns(attrs: AttentionAttrs | CrossAttentionAttrs) -> str:
    """An attention's output, then what it hands on (handed_on)."""
    count = 1 + len(handed_on(attrs))
    return f"tuple[{', '.join(['Tensor'] * count)}]" if count > 1 else "Tensor"


def handed_on(attrs: AttentionAttrs | CrossAttentionAttrs) -> tuple[str, ...]:
    """What an attention returns beside its output, for the layers after it: its residual
    scores, the first layer's values (value residual), the z-loss's running sum."""
    return (*(["scores"] if attrs.residual else []),
            *(["first_values"] if attrs.value_residual else []),
            *(["attn_lse"] if attrs.z_loss else []))


@dataclass(frozen=True)
class CrossAttentionClass(ReadsConfig):
    template: ClassVar[str] = "cross_attention.py.jinja"
    concept: ClassVar[str] = "CrossAttention"
    name: str
    config: str
    attrs: CrossAttentionAttrs
    cache: bool = False  # takes a ContextCache (decoders that generate)
    per_layer: tuple[str, ...] = ()

    @property
    def returns(self) -> str:
        return attention_returns(self.attrs)

    @property
    def handed_on(self) -> tuple[str, ...]:
        return handed_on(self.attrs)

    def imports(self) -> set[Import]:
        a = self.attrs
        wanted = attention_imports(a)
        wanted |= {runtime("kv_cache", "ContextCache")} if self.cache else set()
        norms = a.q_rmsnorm or a.k_rmsnorm or a.value_rmsnorm
        wanted |= {runtime("norms", "HeadRMSNorm")} if norms else set()
        wanted |= {TORCH} if a.head_learned_sink else set()
        return wanted | ({FUNCTIONAL} if a.add_zero_kv else set())


# activation -> (constructor code, name in the docstring)
ACTIVATIONS = {
    "gelu": ("nn.GELU()", "GELU"),
    "silu": ("nn.SiLU()", "SiLU"),
    "relu_squared": ("ReluSquared()", "ReLU²"),
    "solu": ("SoLU({inner_dim})", "SoLU"),  # its LayerNorm is inner_dim wide
}


@dataclass(frozen=True)
class FeedForwardClass(ReadsConfig):
    template: ClassVar[str] = "feedforward.py.jinja"
    concept: ClassVar[str] = "FeedForward"
    name: str
    config: str
    attrs: FeedForwardAttrs
    per_layer: tuple[str, ...] = ()

    def activation(self, inner_dim: str) -> str:
        """The activation's constructor, given the expression of the hidden width."""
        return ACTIVATIONS[self.attrs.activation][0].format(inner_dim=inner_dim)

    @property
    def gate_nonlinearity(self) -> str:
        """glu_softclamp: what multiplies the gate's soft-capped linear factor, GELU's Phi(gate)
        or SiLU's sigmoid(gate) (the reference allows only those two activations there)."""
        return "torch.special.ndtr(gate)" if self.attrs.activation == "gelu" else "gate.sigmoid()"

    @property
    def description(self) -> str:
        name = ACTIVATIONS[self.attrs.activation][1]
        if self.attrs.glu_softclamp:
            return (f"Gated MLP with soft caps (SiTU-GLU): softclamp(value) * softclamp(gate) * "
                    f"{name}'s nonlinearity of the gate -> Linear.")
        if self.attrs.glu:
            return (f"Gated MLP: value * {name}(gate) -> Linear "
                    "(Shazeer 2020, https://arxiv.org/abs/2002.05202).")
        return f"Position-wise MLP: Linear -> {name} -> Linear."

    @property
    def bias_argument(self) -> str:
        return "" if self.attrs.bias else ", bias=False"

    def imports(self) -> set[Import]:
        a = self.attrs
        wanted = {NN}
        if not a.glu_softclamp and a.activation in ("relu_squared", "solu"):
            wanted.add(runtime("activations", {"relu_squared": "ReluSquared", "solu": "SoLU"}[a.activation]))
        if a.glu_softclamp or a.softclamp_value is not None:
            wanted.add(runtime("activations", "softclamp"))
        return wanted | ({TORCH} if a.mult_bias or a.glu_softclamp else set())


@dataclass(frozen=True)
class Parameter:
    """A forward parameter: how the definition writes it (its str) and how a caller passes it."""

    name: str
    annotation: str = ""  # none for the keyword-only marker `*`
    default: str = ""  # "None": optional
    keyword: bool = True  # callers pass it as `name=value`; False: positionally
    returned: bool = False  # residual attention scores, the z-loss's sum: the block hands
    # the new ones back

    def __str__(self) -> str:
        if not self.annotation:
            return self.name
        return f"{self.name}: {self.annotation}" + (f" = {self.default}" if self.default else "")


KEYWORD_ONLY = Parameter("*")
# the attention z-loss's running sum over the attention layers of each query's log-sum-exp of
# its scores (B, H, T): each block and each attention takes it and returns it with its own added
ATTN_LSE = Parameter("attn_lse", "Tensor | float", "0.0", returned=True)


def call_statement(head: str, callee: str, arguments: list[str], indent: int) -> str:
    """`<head><callee>(arguments)` at `indent`: one line where it fits in 100 columns, else
    one argument a line, as ruff formats it."""
    line = f"{head}{callee}({', '.join(arguments)})"
    if len(line) + indent <= 100:
        return line
    inner = "".join(f"\n{' ' * (indent + 4)}{argument}," for argument in arguments)
    return f"{head}{callee}({inner}\n{' ' * indent})"


def wrapped_call(target: str, call: str, indent: int, comment: str = "") -> str:
    """`<target><call><comment>` (a call `callee(arguments)`) as ruff formats it at `indent`:
    one line where it fits in 100 columns, else the arguments on a line of their own, else one
    argument a line; a trailing comment follows the closing parenthesis."""
    if indent + len(target) + len(call) + len(comment) <= 100:
        return f"{target}{call}{comment}"
    callee, _, rest = call.partition("(")
    arguments, pad = rest[:-1], " " * (indent + 4)
    if indent + 4 + len(arguments) <= 100:
        return f"{target}{callee}(\n{pad}{arguments}\n{' ' * indent}){comment}"
    inner = "".join(f"\n{pad}{argument}," for argument in top_level_split(arguments))
    return f"{target}{callee}({inner}\n{' ' * indent}){comment}"


def top_level_split(arguments: str) -> list[str]:
    """`a, f(b, c), d` -> ['a', 'f(b, c)', 'd']: split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(arguments):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(arguments[start:i].strip())
            start = i + 1
    return [*parts, arguments[start:].strip()]


def optional(name: str) -> Parameter:
    """An optional tensor argument, None by default."""
    return Parameter(name, "Tensor | None", "None")


# a PrefixDecoder's: the keys every query sees, one length or one per row (B,)
PREFIX_ATTN_LEN = Parameter("prefix_attn_len", "int | Tensor | None", "None")


# embed_num_tokens: each name's ids (B, T) of its further embedding, required
EMBED_IDS = Parameter("embed_ids", "dict[str, Tensor]")


# a looped LM's decoding: a row leaves the loops once its summed exit chance reaches this
EXIT_THRESHOLD = Parameter("looped_exit_prob_threshold", "float", "0.9")
# num_output_heads: forward's one head to compute (None: every head's, a tuple), and the head
# whose logits generate samples from
HEAD = Parameter("head", "int | None", "None")
GENERATED_HEAD = Parameter("head", "int", "0")


def passes(name: str) -> Parameter:
    """How many times a model runs its layers (recycle_steps, looped_steps): None by default."""
    return Parameter(name, "int | None", "None")


# generate(): what it decodes from, then the sampling options every generating model takes
PROMPT = Parameter("prompt", "Tensor", keyword=False)
START_TOKENS = Parameter("start_tokens", "Tensor", keyword=False)  # an xVal model's prompt
START_NUMBERS = Parameter("start_numbers", "Tensor", keyword=False)
MAX_NEW_TOKENS = Parameter("max_new_tokens", "int", keyword=False)
SAMPLING = (
    Parameter("temperature", "float", "1.0"),
    Parameter("top_k", "int | None", "None"),
    Parameter("top_p", "float | None", "None"),
    Parameter("min_p", "float | None", "None"),
    Parameter("eos_token", "int | None", "None"),
    Parameter("cache", "bool", "True"),
    Parameter("compile", "bool", "False"),
    optional("prompt_lens"),
)
GENERATOR = Parameter("generator", "torch.Generator | None", "None")
MEMS = Parameter("mems", "list[Tensor] | None", "None")  # Transformer-XL memories to start from


def generate_signature(positional: tuple[Parameter, ...], before: tuple[Parameter, ...] = (),
                       after: tuple[Parameter, ...] = ()) -> tuple[Parameter, ...]:
    """generate's parameters: `positional`, then keywords: the model's own inputs `before` the
    sampling options, its context `after` them, and the random generator last."""
    return (*positional, KEYWORD_ONLY, *before, *SAMPLING, *after, GENERATOR)


@dataclass(frozen=True)
class BlockSignature:
    """A Block's forward parameters, in order: its definition and every call read them here."""

    parameters: tuple[Parameter, ...]

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.parameters)


    @property
    def scores(self) -> tuple[str, ...]:
        """What each block takes and returns: the residual attention scores, the z-loss's
        running sum of log-sum-exps."""
        return tuple(p.name for p in self.parameters if p.returned)

    def arguments(self, values: dict[str, str]) -> tuple[tuple[str, str], ...]:
        """(keyword or "", value) of a call that passes `values` (parameter -> the caller's
        expression), in the definition's order; the others keep their defaults."""
        return tuple(("" if not p.keyword else p.name, values[p.name])
                     for p in self.parameters if p.name in values)


@dataclass(frozen=True)
class ResidualStep:
    """One residual sublayer of a block, rendered by residual_step.py.jinja: pre-norm
    `x = x + f(norm(x))` or post-norm `x = norm(x + f(x))`, with what `residual` wraps around f
    (token shift, macaron's half step, LayerScale, a gated or scaled residual)."""

    residual: ResidualAttrs
    branch: str  # the sublayer's attribute: "attn", "cross_attn", "ff", "attn0"
    branch_class: str  # its class, unprefixed: "Attention" (for the diagram)
    branch_type: str  # the class of its module: "Attention", "EncoderAttention"
    norm: str  # the norm's attribute: "attn_norm"
    norm_init: str
    norm_name: str  # for the diagram: "LayerNorm"
    arguments: tuple[tuple[str, str], ...] = ()  # the sublayer's, after its input: (keyword or "", value)
    shift_mask: bool = False  # a token-shifted input keeps its padding mask (attention's)
    scores: str = ""  # residual attention: the block's scores the sublayer adds and replaces
    values: str = ""  # value residual: the block's first values the sublayer mixes in or sets
    drop_context: bool = False  # cross_attn_tokens_dropout: context tokens dropped first, in training
    attn_lse: bool = False  # the attention z-loss: the sublayer adds to the block's attn_lse
    post_norm: str = ""  # sandwich norm: a norm on the sublayer's output
    post_norm_init: str = ""
    main_norm: str = ""  # pre_and_post_norm: the norm after the sum, beside the pre-norm
    defines: bool = True  # defines the sublayer's modules (an execution order runs some twice)
    shift_cache: int | None = None  # decoding with token shifting: its place among the block's runs
    aggregate: str = ""  # the attribute of its LayerAttention (attn_aggregated_residuals) or LayerMix
    aggregate_rank: int = 0
    mix_layers: str = ""  # integrate_layers: how many inputs its LayerMix weighs ("2 * layer + 1")
    mix_softmax: bool = True
    reinject: bool = False  # reinject_input: its input takes the block's `inject` added
    streams: str = ""  # hyper-connections: the attribute of its HyperConnection
    stream_count: int = 0
    stream_layer: str = "0"  # the sublayer's index in the stack: the stream it reads at first
    stream_rank: int = 0  # gated_multi_residual: its GatedMultiResidual's rank (0: HyperConnection)
    views: int = 1  # qkv_receive_diff_residuals: the mixes its streams or aggregate give (3: q, k, v)
    condition: str = ""  # adaptive norms: the Config field with the condition's width they read
    gate_condition: str = ""  # use_adaptive_layerscale: that of its output gate

    layer: str = ""  # what its class takes as `layer` (per-layer values): "2 * layer + 1", "3"
    drop: str = "self.layer_dropout"  # its layer dropout probability
    shifts: str = "self.token_shifts"  # its token shifts

    @property
    def keyword_arguments(self) -> tuple[str, ...]:
        """The call's arguments after the input, as written: `mask=mask`, `context`."""
        return tuple(f"{keyword}={value}" if keyword else value for keyword, value in self.arguments)

    @property
    def names_output(self) -> bool:
        """Whether the sublayer's output needs a name (`out`) before the residual takes it."""
        r = self.residual
        return bool(self.returned or self.post_norm or r.layerscale is not None
                    or self.residual_module or self.streams or self.gate_condition)

    @property
    def sum_norm(self) -> str:
        """The attribute of the norm after the residual sum ("" where none): post-norm's own,
        or pre_and_post_norm's second."""
        return self.main_norm or ("" if self.residual.pre_norm else self.norm)

    @property
    def residual_class(self) -> str:
        """The runtime class that joins the output to x ("" where a sum does): the streams'
        HyperConnection or GatedMultiResidual, else residual_module's."""
        if self.streams:
            return "GatedMultiResidual" if self.stream_rank else "HyperConnection"
        return self.residual_module.partition("(")[0]

    @property
    def residual_module(self) -> str:
        """The constructor of the module that joins the output to x, where a sum does not:
        `Residual(config.dim, gated=True)`, `MeanSplitResidual(config.dim)`; else ""."""
        r = self.residual
        if r.mv_split:
            alpha, beta = r.mv_split_init
            options = [f"init_alpha={alpha!r}"] if alpha != 0.0 else []
            options += [f"init_beta={beta!r}"] if beta != 0.03 else []
            options += ["learned=True"] if r.mv_split_learned else []
            return f"MeanSplitResidual({', '.join(['config.dim', *options])})"
        options = ["scale_residual=True"] if r.scale_residual else []
        # (a constant without the learned scale is written into the sum: x * c + f(x))
        options += [f"constant={r.residual_constant!r}"] if r.scale_residual and r.residual_constant != 1.0 else []
        options += [f"{name}=True" for name in ("gated", "orthogonal") if getattr(r, name)]
        return f"Residual({', '.join(['config.dim', *options])})" if options else ""

    @property
    def returned(self) -> tuple[str, ...]:
        """What the sublayer hands back beside its output: the block variables it replaces."""
        return (*([self.scores] if self.scores else []), *([self.values] if self.values else []),
                *(["attn_lse"] if self.attn_lse else []))

    @property
    def output_scale(self) -> float:
        """What the branch's output is scaled by: macaron's half, depth_scale_residual's."""
        return self.residual.branch_scale * self.residual.depth_scale

    @property
    def branch_scale(self) -> str:
        return repr(self.output_scale)

    @property
    def layerscale(self) -> str:
        return repr(float(self.residual.layerscale))


@dataclass(frozen=True)
class BlockClass:
    template: ClassVar[str] = "block.py.jinja"
    concept: ClassVar[str] = "Block"
    name: str
    config: str
    steps: tuple[ResidualStep, ...]
    signature: BlockSignature
    norm_imports: frozenset = frozenset()
    runs: tuple[int, int] = ()  # a custom layout's block: its self- and cross-attention runs
    per_layer: tuple[str, ...] = ()  # Config fields with one entry per sublayer it reads its own of
    width: int = 0  # sublayers per block (0: a custom layout's one block, which holds them all)
    takes_layer: bool = False  # built with its index among the blocks (per-layer values)

    def own(self, field: str) -> str:
        """The expression of a Config field for this block: its sublayers' entries of a
        per-layer field."""
        if field not in self.per_layer or not self.width:
            return f"config.{field}"
        w = self.width
        return f"config.{field}[{w} * layer : {w} * layer + {w}]"

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return self.signature.parameters

    @property
    def returns(self) -> str:
        # what the block hands on is set by then, but for a context without its padding mask
        returned = [p.annotation if p.name == "context_mask" else "Tensor"
                    for p in self.parameters if p.returned]
        return f"tuple[{', '.join(['Tensor', *returned])}]" if returned else "Tensor"

    @property
    def drops_context(self) -> bool:
        """cross_attn_tokens_dropout: whether a cross-attention drops context tokens first."""
        return any(step.drop_context for step in self.steps)

    @property
    def pre_norm(self) -> bool:
        return self.steps[0].residual.pre_norm

    @property
    def norm_placement(self) -> str:
        """Where the block norms: "pre", "post", or "pre- and post" (pre_and_post_norm)."""
        if not self.pre_norm:
            return "post"
        return "pre- and post" if self.steps[0].main_norm else "pre"

    @property
    def layer_dropout(self) -> bool:
        return any(step.residual.layer_dropout > 0 for step in self.steps) or (
            "layer_dropout" in self.per_layer)

    @property
    def token_shifts(self) -> bool:
        return any(step.residual.token_shifts for step in self.steps)

    @property
    def cache(self) -> bool:
        return "cache" in self.signature

    @property
    def cross(self) -> bool:
        return "context" in self.signature

    @property
    def memory_norm(self) -> str:
        """The norm a Transformer-XL memory goes through, as the attention's input does: the
        attention's pre-norm ("" under post-norm, or without a memory)."""
        if "memory" not in self.signature or not self.pre_norm:
            return ""
        return next(step.norm for step in self.steps if step.branch_class == "Attention")

    def imports(self) -> set[Import]:
        residuals = [step.residual for step in self.steps]
        wanted = {NN} | set(self.norm_imports)
        cache_class = "ModelCache" if self.runs else "LayerCache"
        wanted |= {runtime("kv_cache", cache_class)} if self.cache else set()
        wanted |= {runtime("layers", "layer_drop")} if self.layer_dropout else set()
        wanted |= {runtime("layers", "shift_tokens")} if self.token_shifts else set()
        wanted |= {runtime("layers", "drop_tokens")} if self.drops_context else set()
        wanted |= {TORCH} if any(r.layerscale is not None for r in residuals) else set()
        wanted |= {runtime("layers", step.residual_class) for step in self.steps
                   if step.residual_class}
        wanted |= {runtime("layers", "LayerMix" if step.mix_layers else "LayerAttention")
                   for step in self.steps if step.aggregate}
        return wanted

    @property
    def streams(self) -> int:
        """Hyper-connections: how many residual streams x holds (0: x is the one stream)."""
        return self.steps[0].stream_count

    @property
    def views(self) -> bool:
        """Whether self-attention reads three mixes (qkv_receive_diff_residuals)."""
        return any(step.views > 1 for step in self.steps)


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


class DefaultConfig:
    """A model class's default config: its config class called without arguments, or where the
    class is shared with another model, with this model's values (`config_default`)."""

    @property
    def default_config(self) -> str:
        return self.config_default or f"{self.config}()"


# the return annotations of an xVal model's methods (runtime/numbers.py holds the tuples)
XVAL_RETURNS = {"forward": "tuple[Tensor, Tensor] | Tensor",
                "loss": "Tensor | tuple[Tensor, LossBreakdown]", "generate": "NumberGeneration"}


def returns_of(method: str, numbers: bool) -> str:
    """The return annotation of a model's forward, loss or generate (`numbers`: an xVal
    model's)."""
    return XVAL_RETURNS[method] if numbers else "Tensor"


@dataclass(frozen=True)
class ContinuousDecoder:
    """What a continuous decoder's loss and generate compute: its loss payload, and whether its
    outputs are means and variances."""

    attrs: LossAttrs
    probabilistic: bool

    @property
    def function(self) -> str:
        """The element-wise error, a torch.nn.functional name."""
        if self.probabilistic:  # x-transformers' wrapper picks it before use_l1_loss
            return "gaussian_nll_loss"
        return "l1_loss" if self.attrs.use_l1_loss else "mse_loss"

    @property
    def name(self) -> str:
        return {"gaussian_nll_loss": "Gaussian negative log-likelihood",
                "l1_loss": "mean absolute error", "mse_loss": "mean squared error"}[self.function]

    @property
    def generate_signature(self) -> tuple[Parameter, ...]:
        """generate(start, n, *, [temperature,] cache[, generator]): only a probabilistic
        model samples, so only its generate takes a temperature and a random generator."""
        sampling = (Parameter("temperature", "float", "1.0"),) if self.probabilistic else ()
        random = (GENERATOR,) if self.probabilistic else ()
        return (Parameter("start", "Tensor", keyword=False), Parameter("n", "int", keyword=False),
                KEYWORD_ONLY, *sampling, Parameter("cache", "bool", "True"), *random)


@dataclass(frozen=True)
class ModelClass(DefaultConfig):
    """A model: its config, its ops in forward order, and its forward signature and checks."""

    template: ClassVar[str] = "model.py.jinja"
    class_name: str
    config: str
    docstring: str
    forward_doc: str
    parameters: tuple[Parameter, ...]  # of forward, after self
    checks: tuple[str, ...]  # code lines
    ops: tuple[OpContext, ...]
    extra_imports: frozenset = frozenset()
    generative: bool = False  # a decoder: loss() and generate()
    cacheable: bool = False  # generate can use a kv cache (memory tokens prevent it)
    cross: bool = False
    length_limit: str = "None"
    cache_heads: str = "heads"  # the Config field with the number of key / value heads
    cache_dim_head: str = "dim_head"  # and the one with their width
    cache_value_dim: bool = False  # values have their own width
    cache_windows: str = ""  # sliding windows that size the caches (code), "" for none
    cache_latent: str = ""  # multi-head latent attention: the latent widths its cache keeps (code)
    cache_rope_heads: str = ""  # and its decoupled-rope key heads (code)
    config_default: str = ""  # where not config(): a shared config class with this model's values
    cache_layers: tuple[str, str] = ("self.config.depth", "")  # new_cache's self / cross runs
    prefixed: bool = False  # takes prepend_embeds: embeddings in front of the tokens
    step_parameters: tuple[Parameter, ...] = ()  # a decoder's decode_step: forward's and the cache's
    forgetful: bool = False  # loss() masks random keys in training (the config's mask_prob)
    cache_like: str = "self.token_emb.weight"  # a parameter whose device and dtype the cache takes
    continuous: ContinuousDecoder | None = None  # a continuous decoder: vectors, not tokens
    recurrent: bool = False  # Transformer-XL memories: forward takes and returns them
    tbptt: bool = False  # tbptt_steps above 1: loss keeps the memories' gradient across segments
    numbers: bool = False  # an xVal model: numbers in and out beside the tokens
    z_loss: bool = False  # loss() adds the attention z-loss; forward can return its input
    looped: bool = False  # loss() reads every loop's logits and exit logits (a looped LM)
    cache_class: str = "ModelCache"  # what new_cache allocates (LoopedCache: a looped LM's)
    conditioned: bool = False  # adaptive norms / layer scales: every method takes a condition
    prefix_lm: bool = False  # a PrefixDecoder's: every method takes prefix_attn_len
    named_embeddings: bool = False  # embed_num_tokens: every method takes embed_ids
    # recycling's recycle_steps or a looped LM's looped_steps: every method takes it
    loop_argument: str | None = None
    # pooled class logits: loss(x, labels) is their cross entropy; the axes of the logits
    # between batch and classes ("" or "num_cls_tokens, "); None: no such loss
    classifier: str | None = None
    heads: int = 1  # num_output_heads: forward returns a tuple of logits, or one head's (`head`)
    next_embed: bool = False  # add_continuous_pred_head: forward can return the next embeddings
    # predicted and their targets (return_next_embed_pred), which loss adds the error of

    @property
    def returns(self) -> str:
        """forward's return annotation: with memories, with the attentions' summed log-sum-exps
        (return_attn_lse), several heads' logits, or an xVal model's logits and numbers."""
        if self.heads > 1:  # (return_attn_lse's pair too)
            return "Tensor | tuple[Tensor, ...]"
        if self.next_embed:
            return "Tensor | tuple[Tensor, tuple[Tensor, Tensor]]"
        if self.recurrent:
            returned = self.returns_of("forward")
            return f"{returned} | tuple[{returned}, list[Tensor]]"
        if self.z_loss:
            return "Tensor | tuple[Tensor, Tensor]"
        if self.looped:
            return "Tensor | tuple[Tensor, Tensor, Tensor]"
        return self.returns_of("forward")

    @property
    def segmented(self) -> bool:
        """Whether loss and generate run by segments, carrying memories (a TransformerWrapper's,
        as XLAutoregressiveWrapper): the continuous and xVal training wrappers read none."""
        return self.recurrent and self.continuous is None and not self.numbers

    def returns_of(self, method: str) -> str:
        """The return annotation of forward, loss or generate."""
        return returns_of(method, self.numbers)

    @property
    def step_call(self) -> str:
        """forward's call of decode_step, each of its own arguments by keyword: one line where
        it fits in 100 columns (indented 8), else one argument a line."""
        names = [p.name for p in self.parameters if p is not KEYWORD_ONLY]
        arguments = [names[0], *(f"{name}={name}" for name in names[1:])]
        return call_statement("return ", "self.decode_step", arguments, indent=8)

    @property
    def context_parameters(self) -> tuple[Parameter, ...]:
        """What the model reads beside the sequence: the ids of further embeddings, the
        context, the adaptive norms' condition."""
        context = (EMBED_IDS,) if self.named_embeddings else ()
        context += (optional("context"), optional("context_mask")) if self.cross else ()
        context += (optional("condition"),) if self.conditioned else ()
        return (context + ((PREFIX_ATTN_LEN,) if self.prefix_lm else ())
                + ((passes(self.loop_argument),) if self.loop_argument else ()))

    @property
    def loss_signature(self) -> tuple[Parameter, ...]:
        if self.segmented:  # segment by segment: a padding mask would not fit them
            return (Parameter("x", "Tensor"), KEYWORD_ONLY, MEMS, *self.context_parameters)
        if self.numbers:
            return (Parameter("x", "Tensor"), Parameter("x_num", "Tensor"), KEYWORD_ONLY,
                    optional("mask"), *self.context_parameters,
                    Parameter("return_loss_breakdown", "bool", "False"))
        return (Parameter("x", "Tensor"), KEYWORD_ONLY, optional("mask"), *self.context_parameters)

    @property
    def classifier_loss_signature(self) -> tuple[Parameter, ...]:
        """loss(x, labels, *, mask, ...): a class id per sequence."""
        return (Parameter("x", "Tensor"), Parameter("labels", "Tensor"), KEYWORD_ONLY,
                optional("mask"), *self.context_parameters)

    @property
    def classifier_call(self) -> str:
        """The classifier loss's call of forward, formatted as ruff would (indented 8)."""
        arguments = ["x", "mask=mask", *self.context_arguments, *self.first_head]
        return call_statement("logits = ", "self", arguments, indent=8)

    @property
    def first_head(self) -> tuple[str, ...]:
        """What loss passes forward for the logits it reads: head 0's, of several."""
        return ("head=0",) if self.heads > 1 else ()

    @property
    def loss_call(self) -> str:
        forgotten = ", attn_mask=attn_mask" if self.forgetful else ""
        context = "".join(f", {argument}" for argument in self.context_arguments)
        inputs = "x[:, :-1], x_num[:, :-1], mask=mask" if self.numbers else "inputs, mask=mask"
        return f"{inputs}{context}{forgotten}"

    @property
    def loss_forward(self) -> str:
        """loss's call of forward (with the z-loss, for the summed log-sum-exps too), formatted
        as ruff would (indented 8): the logits' shape as a comment where it fits on the line."""
        returned = (["return_attn_lse=True"] if self.z_loss
                    else ["return_loops=True"] if self.looped
                    else ["return_next_embed_pred=True"] if self.next_embed else [])
        targets = ("logits, attn_lse = " if self.z_loss
                   else "_, loop_logits, exit_logits = " if self.looped
                   else "logits, (predicted, embeddings) = " if self.next_embed else "logits = ")
        line = call_statement(targets, "self",
                              [*self.loss_call.split(", "), *self.first_head, *returned], indent=8)
        comment = "  # (B, T, num_tokens)"
        fits = "\n" not in line and 8 + len(line) + len(comment) <= 100 and not returned
        return line + comment if fits else line

    @property
    def generate_signature(self) -> tuple[Parameter, ...]:
        if self.continuous is not None:
            return self.continuous.generate_signature + (optional("condition"),) * self.conditioned
        if self.segmented:  # XLAutoregressiveWrapper.generate: always cached, whole prompts
            sampling = tuple(p for p in SAMPLING if p.name not in ("cache", "compile", "prompt_lens"))
            return (PROMPT, MAX_NEW_TOKENS, KEYWORD_ONLY, *sampling, MEMS,
                    *self.context_parameters, GENERATOR)
        prefix = (optional("prepend_embeds"),) if self.prefixed else ()
        prompt = (START_TOKENS, START_NUMBERS) if self.numbers else (PROMPT,)
        exits = (EXIT_THRESHOLD,) if self.exits_early else ()
        head = (GENERATED_HEAD,) if self.heads > 1 else ()
        return generate_signature((*prompt, MAX_NEW_TOKENS),
                                  after=(*self.context_parameters, *exits, *prefix, *head))

    @property
    def generate_arguments(self) -> tuple[str, ...]:
        exits = [f"{EXIT_THRESHOLD.name}={EXIT_THRESHOLD.name}"] if self.exits_early else []
        return (*self.context_arguments, *exits,
                *(["prepend_embeds=prepend_embeds"] if self.prefixed else []),
                *(["head=head"] if self.heads > 1 else []))

    @property
    def exits_early(self) -> bool:
        """A looped LM that decodes with its cache: each row leaves the loops early."""
        return self.cache_class == "LoopedCache"

    @property
    def context_arguments(self) -> tuple[str, ...]:
        context = ("embed_ids=embed_ids",) if self.named_embeddings else ()
        context += ("context=context", "context_mask=context_mask") if self.cross else ()
        context += ("condition=condition",) if self.conditioned else ()
        return (context + (("prefix_attn_len=prefix_attn_len",) if self.prefix_lm else ())
                + ((f"{self.loop_argument}={self.loop_argument}",) if self.loop_argument else ()))

    @property
    def has_reset(self) -> bool:
        return any(op.args.get("reset", False) for op in self.ops)

    def imports(self) -> set[Import]:
        wanted = {NN} | set(self.extra_imports)
        if self.generative and self.segmented:
            wanted |= {TORCH, runtime("recurrence", "generate_segments"),
                       runtime("recurrence", "segment_loss")}
        elif self.generative and self.numbers:
            wanted |= {TORCH, FUNCTIONAL, runtime("generation", "generate_numbers"),
                       runtime("numbers", "LossBreakdown"), runtime("numbers", "NumberGeneration")}
        elif self.generative:
            generate = "generate" if self.continuous is None else "generate_vectors"
            wanted |= {TORCH, FUNCTIONAL, runtime("generation", generate)}
        if self.forgetful:
            wanted.add(runtime("layers", "forgetful_mask"))
        if self.looped and self.generative:
            wanted.add(runtime("looped", "looped_loss"))
        if self.classifier is not None:
            wanted.add(FUNCTIONAL)
        return wanted | ({runtime("kv_cache", "ModelCache")} if self.cacheable else set())


@dataclass(frozen=True)
class XTransformerClass(DefaultConfig):
    template: ClassVar[str] = "xtransformer.py.jinja"
    class_name: str
    config: str
    encoder: str  # class names
    decoder: str
    tie_token_emb: bool
    prepend_pads_mask: bool = True
    drop_context_tokens: bool = False
    config_default: str = ""  # as ModelClass's

    @property
    def generate_signature(self) -> tuple[Parameter, ...]:
        source = (Parameter("src", "Tensor", keyword=False),
                  Parameter("start_tokens", "Tensor", keyword=False), MAX_NEW_TOKENS)
        inputs = (optional("mask"), optional("attn_mask"), optional("src_prepend_embeds"))
        return generate_signature(source, before=inputs)

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
        wanted = {DATACLASS}.union(*(c.imports() for c in self.classes))
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
class CompositeMethod:
    """A method of a composite: its parameters, its calls of the components (the last returns)
    and its docstring's lines. `generate` runs in eval mode without gradients."""

    name: str  # "forward", "loss", "generate"
    parameters: tuple[Parameter, ...]  # after self
    calls: tuple[str, ...]  # code, producers first
    doc: tuple[str, ...]
    returns: str = "Tensor"  # the sink's method's return annotation


@dataclass(frozen=True)
class CompositeClass:
    """Components as submodules; each method calls them in order, wired by the connections."""

    template: ClassVar[str] = "composite.py.jinja"
    class_name: str
    config: str  # the class of its Config
    components: tuple[tuple[str, str], ...]  # (attribute, class name), as written
    methods: tuple[CompositeMethod, ...]  # forward first
    wiring: tuple[str, ...]  # "encoder -> decoder.context"
    sink: str  # the component whose output is returned
    loss_is_forward: bool = False  # the sink is an XTransformer, whose forward is its loss

    def imports(self) -> set[Import]:
        generates = any(method.name == "generate" for method in self.methods)
        return {NN} | ({TORCH} if generates else set())
