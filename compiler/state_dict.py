"""Which reference parameter becomes which parameter of the emitted model.

The emitted model uses plain `nn.LayerNorm(dim, bias=False)`, whose weight is the gain itself;
x-transformers stores norm gains inside its layer stacks with a unit offset (`gamma`, used as
`gamma + 1`, initialised to 0). Conversion adds the 1, so both models compute the same function
and receive the same gradients.

>>> from .ir import NormAttrs
>>> g = Graph()
>>> _ = g.add("n", OpKind.NORM, NormAttrs("layernorm", 8), ref_path="attn_layers.layers.0.0.0",
...           block=0, role="attn_norm")
>>> parameter_rules(g)
[Rule(reference='attn_layers.layers.0.0.0.gamma', emitted='blocks.0.attn_norm.weight', offset=1.0, rows=None, columns=None, reference_columns=None)]
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import TALKING_HEADS, Graph, Op, OpKind


@dataclass(frozen=True)
class Rule:
    reference: str
    emitted: str
    offset: float = 0.0  # the reference stores the value minus this (norm_add_unit_offset)
    rows: tuple[int, int] | None = None  # the reference tensor is these rows of the emitted one
    columns: int | None = None  # the emitted tensor is the reference's first columns (the rest unread)
    reference_columns: int | None = None  # with `columns`: the reference tensor's full width

    def part(self, emitted):
        """The part of an emitted tensor (or its gradient) that this rule's reference tensor is."""
        return emitted if self.rows is None else emitted[self.rows[0]:self.rows[1]]

    def read(self, reference):
        """The part of a reference tensor (or its gradient) that the emitted tensor holds."""
        return reference if self.columns is None else reference[..., :self.columns]

    def reference_shape(self, emitted: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the reference tensor, from the emitted tensor's."""
        if self.rows is not None:
            return (self.rows[1] - self.rows[0], *emitted[1:])
        if self.columns is not None:
            return (*emitted[:-1], self.reference_columns)
        return tuple(emitted)


def parameter_rules(graph: Graph, components: bool = False) -> list[Rule]:
    """Every parameter's reference and emitted names. For a composite (`components`), reference
    names start with the component, as in `{component: state_dict}` flattened."""
    rules = []
    for op in graph.ops():
        prefix = graph.module_path(op)
        component = op.component if components else ""
        for reference, emitted, *how in parameter_names(op):
            offset, *how = how
            rule = Rule(join(component, op.ref_path, reference), join(prefix, emitted),
                        float(offset), *how)
            if rule not in rules:  # tied weights: every block names the same parameters
                rules.append(rule)
    return rules


def unread_parameters(graph: Graph, components: bool = False) -> dict[str, tuple[int, int]]:
    """Reference parameters that the emitted model has no use for, so no rule, and their shapes:
    an attention-pooled TransformerWrapper's logits head, LinearNoBias(dim, num_tokens) (the
    reference computes logits that its forward never returns; check-model-structure refuses
    logits_dim and tie_embedding beside attn_pool). Conversion accepts and drops them."""
    found = {}
    for op in graph.ops(OpKind.ATTENTION_POOL):
        num_tokens = next(embedding.attrs.num_tokens
                          for embedding in graph.ops(OpKind.TOKEN_EMBEDDING)
                          if embedding.scope == op.scope)
        name = join(op.component if components else "", op.ref_path.removesuffix("attn_pool"),
                    "to_logits.weight")
        found[name] = (num_tokens, op.attrs.dim_context)
    return found


def join(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def parameter_names(op: Op) -> list[tuple]:
    """(reference suffix, emitted suffix, offset[, rows]) for each parameter an op owns: the
    offset a number the reference subtracts, or True for one, False for none."""
    attrs = op.attrs
    if op.kind is OpKind.TOKEN_EMBEDDING:
        return [("weight", "weight", False)]
    if op.kind is OpKind.POSITION_EMBEDDING:
        own = {"learned": ("weight", "weight"), "scaled_sinusoidal": ("scale", "scale"),
               "patches": ("", "")}[attrs.scheme]
        return [(*own, False)]
    if op.kind is OpKind.LOGITS:
        if attrs.tied:
            return []
        if attrs.heads > 1:  # a ModuleList of bias-free heads on both sides
            return [(f"{head}.weight", f"{head}.weight", False) for head in range(attrs.heads)]
        return [("weight", "weight", False)] + ([("bias", "bias", False)] if attrs.bias else [])
    if op.kind is OpKind.NORM:
        return norm_parameters(attrs)
    if op.kind is OpKind.RESIDUAL:
        return residual_parameters(attrs)
    if op.kind is OpKind.REINJECT:  # AttentionLayers' reinject_input_proj, and its gate
        pairs = [("reinject_input_proj", "proj")] + ([("learned_reinject_input_gate", "gate")] if attrs.gated else [])
        return [(f"{ours}.weight", f"{theirs}.weight", False) for ours, theirs in pairs]
    if op.kind is OpKind.CONDITION:  # AttentionLayers.adaptive_mlp: Sequential(Linear, SiLU)
        return [("0.weight", "0.weight", 0.0)] if attrs.hidden else []
    if op.kind is OpKind.STREAMS:  # AttentionLayers.stream_emb (merging has no parameters)
        return [] if attrs.merge or attrs.streams == 1 else [("stream_emb", "", False)]
    if op.kind is OpKind.STREAM_MIX:
        return stream_mix_parameters(attrs)
    if op.kind is OpKind.AGGREGATE:  # AttentionResidual: to_query is Sequential(RMSNorm, LoRALinear)
        pairs = (("to_keys", "key_norm"), ("to_query.0", "query_norm"),
                 ("to_query.1.down", "down"), ("to_query.1.up", "up"), ("norm", "norm"))
        return [(f"{ours}.weight", f"{theirs}.weight", False) for ours, theirs in pairs]
    if op.kind is OpKind.LAYER_MIX:  # DynamicLIMe: to_weights is Sequential(RMSNorm, Linear, ...)
        return [("to_weights.0.g", "norm.weight", False), ("to_weights.1.weight", "to_weights.weight", False),
                ("to_weights.1.bias", "to_weights.bias", False)]
    if op.kind is OpKind.SKIP_COMBINE:  # ConcatCombine
        return [("combine.weight", "proj.weight", False)]
    if op.kind is OpKind.LOOP:  # the start holds recycled_proj or exit_gate, bias-free Linears
        return [] if attrs.end else [("weight", "weight", False)]
    if op.kind is OpKind.PROJECT:
        return [("weight", "weight", False)] + ([("bias", "bias", False)] if attrs.bias else [])
    if op.kind is OpKind.NEXT_EMBED:  # Sequential(Linear, SiLU, Linear) on both sides
        return [("0.weight", "0.weight", False), ("2.weight", "2.weight", False)]
    if op.kind is OpKind.PATCH_EMBEDDING:
        # Sequential(LayerNorm, Linear, LayerNorm), plain gains (no unit offset) outside the layers
        return [("0.gamma", "0.weight", False), ("1.weight", "1.weight", False),
                ("1.bias", "1.bias", False), ("2.gamma", "2.weight", False)]
    if op.kind is OpKind.NAMED_EMBEDDINGS:  # a ModuleDict of nn.Embeddings, as the reference's
        return [(f"{name}_embed.weight", f"{name}_embed.weight", False) for name, _ in attrs.sizes]
    if op.kind in (OpKind.MEMORY_TOKENS, OpKind.DEEP_EMBED):  # the parameter itself
        return [("", "", False)]
    if op.kind is OpKind.ROTARY:  # persistent buffers in the reference too
        return [("inv_freq", "inv_freq", False)] + (
            [("scale", "scale", False)] if attrs.xpos_scale_base is not None else [])
    if op.kind is OpKind.POLAR:  # inv_freq is a persistent buffer in the reference
        return [("inv_freq", "inv_freq", False), ("learned_bias", "learned_bias", False)]
    if op.kind is OpKind.POSITION_BIAS:
        return position_bias_parameters(attrs)
    if op.kind in (OpKind.ATTENTION, OpKind.CROSS_ATTENTION):
        return attention_parameters(attrs)
    if op.kind is OpKind.FEEDFORWARD:
        return feedforward_parameters(attrs)
    if op.kind is OpKind.ATTENTION_POOL:
        return attention_pool_parameters(attrs)
    return []


def attention_pool_parameters(attrs) -> list[tuple]:
    """x-transformers' AttentionPool: its `pooler` is one Attention at depth 1, else a
    CrossAttender, whose layers alternate cross-attention and feedforward, each behind a norm
    (gains stored minus one), and whose final norm ends it."""
    projections = ("to_q", "to_k", "to_v", "to_out")
    if attrs.depth == 1:
        return [("queries", "queries", False)] + [
            (f"pooler.{name}.weight", f"attn.{name}.weight", False) for name in projections]
    found = [("queries", "queries", False)]
    for block in range(attrs.depth):
        attn, ff = f"pooler.layers.{2 * block}", f"pooler.layers.{2 * block + 1}"
        ours = f"blocks.{block}"
        found += [(f"{attn}.0.0.gamma", f"{ours}.attn_norm.weight", True)]
        found += [(f"{attn}.1.{name}.weight", f"{ours}.attn.{name}.weight", False)
                  for name in projections]
        found += [(f"{ff}.0.0.gamma", f"{ours}.ff_norm.weight", True)]
        found += [(f"{ff}.1.ff.{theirs}.{kind}", f"{ours}.ff.{index}.{kind}", False)
                  for theirs, index in (("0.0", 0), ("2", 2)) for kind in ("weight", "bias")]
    return found + [("pooler.final_norm.gamma", "norm.weight", True)]


def norm_parameters(attrs) -> list[tuple[str, str, float]]:
    """A norm's gains, which the reference stores minus their identity value where
    unit_offset: one for gains, DyT's initial alpha for its alpha, one for Derf's alpha."""
    unit = 1.0 if attrs.unit_offset else 0.0
    if attrs.condition:  # AdaptiveLayerNorm / AdaptiveRMSNorm: the gain's map of the condition
        return [("to_gamma.weight", "to_gain.weight", 0.0)]
    if attrs.norm_type == "dynamic_tanh":
        return [("pre_tanh_scale", "alpha", attrs.init_alpha if attrs.unit_offset else 0.0),
                ("gamma", "weight", unit), ("beta", "bias", 0.0)]
    if attrs.norm_type == "derf":
        return [("alpha", "alpha", unit), ("s", "shift", 0.0), ("gamma", "weight", unit),
                ("beta", "bias", 0.0)]
    if attrs.norm_type == "simple_rmsnorm":
        return []
    return [("gamma" if attrs.norm_type == "layernorm" else "g", "weight", unit)]


def position_bias_parameters(attrs) -> list[tuple[str, str, bool]]:
    """ALiBi has no state; T5 one table; the dynamic bias an MLP whose hidden layers are
    Sequential(Linear, SiLU) and whose last layer is a Linear."""
    if attrs.scheme == "t5":
        names = ["relative_attention_bias.weight"]
    elif attrs.scheme == "dynamic":
        return dynamic_bias_parameters(attrs)
    else:
        names = []
    return [(name, name, False) for name in names]


def dynamic_bias_parameters(attrs) -> list[tuple[str, str, bool]]:
    """mlp.i = Sequential(Linear, [norm], SiLU): the first norm is x-transformers' LayerNorm
    (a `gamma`), the others torch's (weight and bias)."""
    pairs = []
    for i in range(attrs.mlp_depth):
        pairs += [(f"mlp.{i}.0.{p}", f"mlp.{i}.0.{p}") for p in ("weight", "bias")]
        if attrs.norm and i == 0:
            pairs.append(("mlp.0.1.gamma", "mlp.0.1.weight"))
        elif attrs.norm:
            pairs += [(f"mlp.{i}.1.{p}", f"mlp.{i}.1.{p}") for p in ("weight", "bias")]
    pairs += [(f"mlp.{attrs.mlp_depth}.{p}", f"mlp.{attrs.mlp_depth}.{p}") for p in ("weight", "bias")]
    return [(reference, emitted, False) for reference, emitted in pairs]


def attention_parameters(attrs) -> list[tuple]:
    projections = [f"to_{part}.weight" for part in ("q", "k", "v")]
    fused = qkv_rows(attrs) if getattr(attrs, "fused_qkv", False) else []
    names = [] if fused else projections
    # multi-head latent attention's latents and decoupled-rope keys, named as the reference
    names += ["to_latent_q.weight"] if getattr(attrs, "dim_latent_q", 0) else []
    names += ["to_latent_kv.weight"] if getattr(attrs, "dim_latent_kv", 0) else []
    names += ["to_rotateable_k.weight"] if getattr(attrs, "latent_rope_subheads", 0) else []
    on_attn = getattr(attrs, "on_attn", False)
    names += [("to_out.0.weight" if on_attn else "to_out.weight")] if attrs.project_out else []
    names += ["mem_k", "mem_v"] if attrs.num_mem_kv else []
    pairs = [(name, name) for name in names]
    if getattr(attrs, "qk_norm_dim_scale", False):
        pairs += [("qk_norm_q_scale", "q_scale"), ("qk_norm_k_scale", "k_scale")]
    pairs += value_gate_parameters(attrs)
    pairs += [("head_scale_params", "head_scale")] if getattr(attrs, "head_scale", False) else []
    if getattr(attrs, "value_residual", "") == "learned":  # the reference's Sequential(Linear, ...)
        pairs += [(f"to_value_residual_mix.0.{p}", f"to_value_residual_mix.{p}") for p in ("weight", "bias")]
    for used, (name, reference, _) in zip(getattr(attrs, "talking_heads", ()), TALKING_HEADS):
        pairs += [(f"attend.{reference}.weight", f"{name}.weight")] if used else []
    pairs += [("attend.head_attn_sink", "attn_sink")] if getattr(attrs, "head_learned_sink", False) else []
    pairs += [("attend.cope.pos_emb", "cope.pos_emb")] if getattr(attrs, "use_cope", False) else []
    pairs += ([("attend.cope.talking_heads.weight", "cope.talking_heads.weight")]
              if getattr(attrs, "cope_talking_heads", False) else [])
    if getattr(attrs, "data_dependent_alibi", False):
        parts = ("weight",) if attrs.data_dependent_alibi_per_row else ("weight", "bias")
        pairs += [(f"data_dependent_alibi.to_forget_gates.0.{p}", f"forget_gates.to_forget_gates.{p}")
                  for p in parts]
    if getattr(attrs, "use_rel_proj_pos_bias", False):
        pairs += [(f"rel_proj_pos_bias.to_distance_weights.0.{p}",
                   f"rel_proj_bias.to_distance_weights.{p}") for p in ("weight", "bias")]
        pairs += [("rel_proj_pos_bias.distance_bank", "rel_proj_bias.distance_bank")]
    # MultiheadRMSNorm's gamma is used as gamma + 1
    norms = [name for name in ("q_rmsnorm", "k_rmsnorm", "value_rmsnorm") if getattr(attrs, name, False)]
    return fused + [(reference, emitted, False) for reference, emitted in pairs] + [
        (f"{name}.gamma", f"{name}.weight", True) for name in norms]


def value_gate_parameters(attrs) -> list[tuple[str, str]]:
    """A low-rank value gate is Sequential(down, [SiLU], up): LoRALinear's `down` and `up`."""
    pairs = []
    if attrs.gate_value_heads:
        pairs += [(f"to_v_head_gate.{p}", f"to_v_head_gate.{p}") for p in ("weight", "bias")]
    up = 2 if attrs.low_rank_silu_gates else 1
    for name, used, rank in (("to_v_gate", attrs.gate_values, attrs.gate_values_rank),
                             ("to_output_gate", attrs.output_gate, attrs.output_gate_rank)):
        parts = (("down", "0"), ("up", str(up))) if rank else ()
        pairs += ([(f"{name}.{ours}.weight", f"{name}.{theirs}.weight") for ours, theirs in parts]
                  if rank else [(f"{name}.weight", f"{name}.weight")]) if used else []
    return pairs


def qkv_rows(attrs) -> list[tuple]:
    """The reference's to_q, to_k and to_v weights, stacked in that order in `to_qkv`."""
    parts, start = [], 0
    for part, width in zip(("q", "k", "v"), attrs.qkv_widths):
        parts.append((f"to_{part}.weight", "to_qkv.weight", False, (start, start + width)))
        start += width
    return parts


def stream_mix_parameters(attrs) -> list[tuple]:
    """GatedMultiResidual's (`rank`), or HyperConnection's: the read's static and dynamic weights are the first `views` columns
    of static_alpha and dynamic_alpha_fn (`views + streams` wide); the rest, the stream
    mixing's, 2.31.10 never reads (its Sinkhorn step makes that mixing all ones)."""
    if attrs.rank:
        return [(theirs, ours, False) for theirs, ours in (
            ("read_gain", "read_gain"), ("static_read_logit", "read"), ("static_write_logit", "write"),
            ("to_bottleneck.weight", "down.weight"), ("to_read_gate.weight", "to_read.weight"),
            ("to_write_gate.weight", "to_write.weight"), ("dynamic_gate_scale", "scale"))]
    found = [("norm.weight", "norm.weight", False)]
    width = attrs.views + attrs.streams
    found += [(theirs, ours, False, None, attrs.views, width) for theirs, ours in (
        ("static_alpha", "read"), ("dynamic_alpha_fn", "read_proj"))]
    return found + [(theirs, ours, False) for theirs, ours in (
        ("dynamic_alpha_scale", "read_scale"), ("static_beta", "write"),
        ("dynamic_beta_fn", "write_proj"), ("dynamic_beta_scale", "write_scale"))]


def residual_parameters(attrs) -> list[tuple[str, str, bool]]:
    """LayerScale's gain (`.1.gamma`, stored minus one; `.1.fn.gamma` in depth_scale_residual's
    Scale) and the residual module's (`.2.*`)."""
    role = attrs.branch
    scaled = ".fn" if attrs.depth_scale != 1.0 else ""  # under depth_scale_residual's Scale
    found = [(f"1{scaled}.gamma", f"{role}_layerscale", attrs.layerscale_offset)
             ] if attrs.layerscale is not None else []
    if attrs.layerscale_condition:  # AdaptiveLayerScale's to_gamma: adaLN-Zero's gate
        found += [(f"1{scaled}.to_gamma.{p}", f"{role}_gate.{p}", 0.0) for p in ("weight", "bias")]
    if attrs.scale_residual:
        found.append(("2.residual_scale", f"{role}_residual.residual_scale", False))
    if attrs.gated:
        found += [(f"2.gru.{p}", f"{role}_residual.gru.{p}", False)
                  for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if attrs.mv_split:
        names = ([f"{gain}.{p}" for gain in ("to_alpha", "to_beta") for p in ("weight", "bias")]
                 if attrs.mv_split_learned else ["alpha", "beta"])
        found += [(f"2.{name}", f"{role}_residual.{name}", False) for name in names]
    return found


def feedforward_parameters(attrs) -> list[tuple[str, str, bool]]:
    """x-transformers nests the input projection: `ff.0.proj` (GLU, always with a bias, its
    activation `ff.0.act`) or `ff.0.0` (Linear before the activation); the output projection
    is `ff.2`."""
    if attrs.glu:
        pairs = [("ff.0.proj.weight", "proj_in.weight"), ("ff.0.proj.bias", "proj_in.bias")]
        pairs += [("ff.0.mult_bias", "mult_bias")] if attrs.mult_bias else []
        activation = "ff.0.act"
    else:
        pairs = [("ff.0.0.weight", "proj_in.weight")]
        pairs += [("ff.0.0.bias", "proj_in.bias")] if attrs.bias else []
        # the soft cap, when used, is ff.0.1 and moves the activation to ff.0.2
        activation = "ff.0.1" if attrs.softclamp_value is None else "ff.0.2"
    if attrs.activation == "solu":  # SoLU's LayerNorm gain
        pairs += [(f"{activation}.norm.gamma", "act.norm.weight")]
    out = "ff.2"
    if getattr(attrs, "post_act_ln", False):  # the norm takes ff.1 and moves proj_out to ff.3
        pairs += [("ff.1.gamma", "post_act_norm.weight")]
        out = "ff.3"
    pairs += [(f"{out}.weight", "proj_out.weight")]
    pairs += [(f"{out}.bias", "proj_out.bias")] if attrs.bias else []
    return [(reference, emitted, False) for reference, emitted in pairs]


# -- shapes -------------------------------------------------------------------------------------

Shape = tuple[int, ...]


def parameter_shapes(op: Op) -> dict[str, Shape]:
    """Emitted suffix -> shape of the parameters an op owns, for the common ops: embeddings,
    norms, projections, attention and feedforward weights, LayerScale. A parameter not listed
    has a shape xtc does not compute (`xtc diff` then compares its op's parameter count);
    tests/test_inspect.py checks every listed one against the built model."""
    a, kind = op.attrs, op.kind
    if kind is OpKind.TOKEN_EMBEDDING:
        return {"weight": (a.num_tokens, a.dim)}
    if kind is OpKind.NAMED_EMBEDDINGS:
        return {f"{name}_embed.weight": (size, a.dim) for name, size in a.sizes}
    if kind is OpKind.POSITION_EMBEDDING:
        return {"weight": (a.max_seq_len, a.dim)} if a.scheme == "learned" else {}
    if kind is OpKind.NORM:
        return norm_shapes(a)
    if kind is OpKind.LOGITS:
        if a.heads > 1:
            return {f"{head}.weight": (a.num_tokens, a.dim) for head in range(a.heads)}
        return {"weight": (a.num_tokens, a.dim), "bias": (a.num_tokens,)}
    if kind is OpKind.PROJECT:
        return {"weight": (a.dim, a.dim_in), "bias": (a.dim,)}
    if kind is OpKind.MEMORY_TOKENS:
        return {"": (a.count, a.dim)}
    if kind is OpKind.PATCH_EMBEDDING:
        return {"0.weight": (a.patch_dim,), "1.weight": (a.dim, a.patch_dim), "1.bias": (a.dim,),
                "2.weight": (a.dim,)}
    if kind is OpKind.ROTARY:
        return {"inv_freq": (a.dim // 2,), "scale": (a.dim // 2,)}
    if kind is OpKind.POSITION_BIAS and a.scheme == "t5":
        return {"relative_attention_bias.weight": (a.num_buckets, a.heads)}
    if kind is OpKind.ATTENTION:
        return attention_shapes(a)
    if kind is OpKind.CROSS_ATTENTION:
        inner = a.heads * a.dim_head
        return head_shapes(a, a.heads) | {
            "to_q.weight": (inner, a.dim), "to_k.weight": (inner, a.dim_context),
            "to_v.weight": (inner, a.dim_context), "to_out.weight": (a.dim, inner),
            "mem_k": (a.heads, a.num_mem_kv, a.dim_head), "mem_v": (a.heads, a.num_mem_kv, a.dim_head)}
    if kind is OpKind.FEEDFORWARD:
        into = a.inner_dim * (2 if a.glu else 1)
        return {"proj_in.weight": (into, a.dim), "proj_in.bias": (into,),
                "proj_out.weight": (a.dim, a.inner_dim), "proj_out.bias": (a.dim,),
                "mult_bias": (a.inner_dim,), "post_act_norm.weight": (a.inner_dim,),
                "act.norm.weight": (a.inner_dim,)}
    if kind is OpKind.RESIDUAL and op.shape:
        return residual_shapes(a, op.shape[-1])
    if kind in (OpKind.REINJECT, OpKind.LOOP) and not getattr(a, "end", False):
        return {"proj.weight": (a.dim, a.dim)} if kind is OpKind.REINJECT else \
            {"weight": (a.dim if a.recycled else 1, a.dim)}
    if kind is OpKind.SKIP_COMBINE:
        return {"proj.weight": (a.dim, 2 * a.dim)}
    if kind is OpKind.POLAR:
        return {"inv_freq": (a.dim_head,), "learned_bias": (a.heads, 1, a.dim_head)}
    return {}


def residual_shapes(a, dim: int) -> dict[str, Shape]:
    """LayerScale's gain, the residual's scale and GTrXL's GRU cell."""
    role = a.branch
    return {f"{role}_layerscale": (dim,), f"{role}_residual.residual_scale": (dim,),
            f"{role}_residual.gru.weight_ih": (3 * dim, dim),
            f"{role}_residual.gru.weight_hh": (3 * dim, dim),
            f"{role}_residual.gru.bias_ih": (3 * dim,), f"{role}_residual.gru.bias_hh": (3 * dim,)}


def head_shapes(a, kv_heads: int) -> dict[str, Shape]:
    """What attention keeps per head: RMSNorm gains of queries, keys and values, a learned
    sink, a head scale, talking-heads convolutions."""
    return {"q_rmsnorm.weight": (a.heads, 1, a.dim_head), "k_rmsnorm.weight": (kv_heads, 1, a.dim_head),
            "value_rmsnorm.weight": (a.heads, 1, a.dim_head), "attn_sink": (a.heads,),
            "head_scale": (1, a.heads, 1, 1)} | {
            f"{name}.weight": (a.heads, a.heads, 1, 1) for name in getattr(a, "talking_head_names", ())}


def norm_shapes(a) -> dict[str, Shape]:
    if a.condition:
        return {"to_gain.weight": (a.dim, a.condition)}
    if a.norm_type == "scalenorm":
        return {"weight": (1,)}
    return {"weight": (a.dim,), "bias": (a.dim,), "alpha": (), "shift": ()}


def attention_shapes(a) -> dict[str, Shape]:
    """Self-attention's projections (fused or apart, with multi-head latent attention's), its
    output projection and memory keys and values."""
    q, k, v = a.qkv_widths
    rope = a.latent_rope_subheads * a.dim_head
    q_in, kv_in = a.dim_latent_q or a.dim, a.dim_latent_kv or a.dim
    kv_heads, value_dim = a.kv_heads or a.heads, a.value_dim_head or a.dim_head
    out = (2 * a.dim if a.on_attn else a.dim, a.out_width)
    return head_shapes(a, kv_heads) | {"to_qkv.weight": (q + k + v, a.dim), "to_q.weight": (q, q_in),
            "to_k.weight": (k - rope, kv_in), "to_v.weight": (v, kv_in),
            "to_latent_q.weight": (a.dim_latent_q, a.dim),
            "to_latent_kv.weight": (a.dim_latent_kv, a.dim),
            "to_rotateable_k.weight": (rope, a.dim),
            "to_out.weight": out, "to_out.0.weight": out,
            "mem_k": (kv_heads, a.num_mem_kv, a.dim_head),
            "mem_v": (kv_heads, a.num_mem_kv, value_dim)}
