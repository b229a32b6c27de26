"""IR graph -> render context: choose the classes, their code and the configs of the module.

Lowering reads the graph alone: each model's record and ops (compiler/models.py) decide every
class, Config field, forward signature and docstring, so a graph pass that changes an op changes
the emitted code. The graph has one op per norm, attention and feedforward of every block; the
emitted module has one class per concept and a loop over its blocks, as a person would write
it. Blocks agree but for per-layer values (`Model.shared` checks it): numbers that differ are
Config tuples each class reads at its layer's entry, and a value that adds a submodule makes
one class per kind of layer and of block (`stack_classes`). Top-level ops become op contexts,
rendered by one template per kind; each residual op of a block becomes a `ResidualStep`. A model with two
stacks (XTransformer) gets one set of classes per stack, prefixed `Encoder` / `Decoder`.
"""

from __future__ import annotations

import functools
import itertools
import textwrap
from collections import Counter
from dataclasses import dataclass, replace

from xtc.spec.model import pascal_case
from xtc.spec.names import is_free_class_name

from .context import (
    ATTN_LSE,
    EMBED_IDS,
    EXIT_THRESHOLD,
    FUNCTIONAL,
    GENERATOR,
    HEAD,
    KEYWORD_ONLY,
    PREFIX_ATTN_LEN,
    REARRANGE,
    SAMPLING,
    TORCH,
    AttentionClass,
    BlockClass,
    BlockSignature,
    CompositeClass,
    CompositeMethod,
    ConfigClass,
    ConfigField,
    ContinuousDecoder,
    CrossAttentionClass,
    FeedForwardClass,
    Import,
    ModelClass,
    ModuleContext,
    OpContext,
    Parameter,
    ResidualStep,
    XTransformerClass,
    call_statement,
    defined_name,
    nested_config,
    optional,
    passes,
    returns_of,
    runtime,
)
from .ir import Feed, Graph, LossAttrs, NormAttrs, Op, OpKind
from .models import Model, role_index
from .share import blanked_body, share_classes

NORM_NAME = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm", "scalenorm": "ScaleNorm",
             "simple_rmsnorm": "SimpleRMSNorm", "dynamic_tanh": "DynamicTanh", "derf": "Derf",
             "adaptive_layernorm": "AdaptiveLayerNorm", "adaptive_rmsnorm": "AdaptiveRMSNorm"}
NORM_IMPORTS = {norm_type: runtime("norms", name) for norm_type, name in NORM_NAME.items()
                if norm_type != "layernorm"}
# norm_eps (an xtc extension): Hugging Face's RMSNorm, an epsilon inside the root, in float32
EPS_RMSNORM = "EpsRMSNorm"
# the Config field with the width adaptive modules read: the condition, or its MLP's output
CONDITION_WIDTH = {False: "dim_condition", True: "dim_condition_hidden"}
POSITION_BIASES = {"alibi": "AlibiBias", "t5": "T5RelativeBias", "dynamic": "DynamicPositionBias"}


@dataclass(frozen=True)
class Component:
    """What lowering one model (a spec's model, or one component of a composite) gives."""

    configs: tuple
    classes: tuple
    class_name: str
    config: str
    parameters: tuple[Parameter, ...]  # of its forward, after self
    summary: str
    diagram: str
    generate: tuple[Parameter, ...] = ()  # of its generate, where it has one
    loss: tuple[Parameter, ...] = ()  # of its loss, where it has one
    forward_is_loss: bool = False  # an XTransformer: forward returns the loss
    numbers: bool = False  # an xVal model: its methods return numbers too


def lower(graph: Graph) -> ModuleContext:
    class_name = pascal_case(graph.origin.name)
    if graph.models[""].type == "composite":
        context = lower_composite(graph, class_name)
    else:
        part = lower_model(Model(graph, ""), class_name)
        context = module_context(graph, class_name, part.summary, part.diagram, part.configs,
                                 part.classes)
    context = share_classes(context)
    defined = {cls.name for cls in context.configs} | {defined_name(cls) for cls in context.classes}
    assert len(defined) == len(context.configs) + len(context.classes), "two classes, one name"
    return context


def module_context(graph: Graph, class_name: str, summary: str, diagram: str, configs,
                   classes) -> ModuleContext:
    return ModuleContext(spec_name=graph.origin.name, sha256=graph.origin.sha256,
                         class_name=class_name, summary=summary, diagram=(diagram,),
                         configs=tuple(configs), classes=tuple(classes))


# -- class names --------------------------------------------------------------------------------
# The spec's class is its PascalCased name (the API looks it up by that name). Every other class
# is `<prefix><suffix>`: the suffix says what it is (Config, Attention, CrossAttention,
# FeedForward, Block; EncoderConfig, Encoder, ... in an XTransformer; empty for a component's own
# class), the prefix whose it is. The usual prefix is empty for a spec's one model and the
# PascalCased name for a component, so `gpt` defines Config, Attention, FeedForward, Block and
# Gpt, and a component `vit` VitConfig, ..., Vit. Only when one of a model's names is taken (by
# the spec's class, a class named before, an import, a builtin or a keyword) does its prefix
# change, for all its classes at once: to the owner's class followed by the usual prefix (a spec
# `attention` defines AttentionConfig, AttentionAttention, ..., Attention; a component `pali` of
# a composite `pali` PaliPali, PaliPaliConfig, ...), which still says whose class it is; if that
# is taken too, with 2, 3, ... appended, which always ends (finitely many names are taken).
# Components are named in the order they are written, so a name never depends on a later one.
# Always prefixing would make the common case read GptAttention, GptBlock for nothing; a
# separator that PascalCase never makes (`Gpt_Block`) is not how Python classes are spelled.


def lower_model(model: Model, class_name: str) -> Component:
    """A spec's one model: its own class, and helpers named around it."""
    part = lower_component(model, "", class_name)
    prefix = free_prefix("", class_name, helper_suffixes(part, ""), {class_name})
    return part if prefix == "" else lower_component(model, prefix, class_name)


def lower_parts(graph: Graph, class_name: str) -> tuple[str, dict[str, Component]]:
    """A composite's Config class name and its components, each named around those before."""
    taken = {class_name}
    config_name = free_prefix("", class_name, ("Config",), taken) + "Config"
    taken.add(config_name)
    parts = {}
    for name in graph.models[""].components:
        parts[name] = lower_part(Model(graph, name), class_name, taken)
        taken |= class_names(parts[name])
    return config_name, parts


def lower_part(model: Model, owner: str, taken: set[str]) -> Component:
    """A composite's component: its classes, named around the `taken` ones."""
    usual = pascal_case(model.scope)
    part = lower_component(model, usual, usual)
    prefix = free_prefix(usual, owner, ("", *helper_suffixes(part, usual)), taken)
    return part if prefix == usual else lower_component(model, prefix, prefix)


def free_prefix(usual: str, owner: str, suffixes, taken: set[str]) -> str:
    """The first candidate prefix that gives every suffix a name neither taken nor reserved."""
    def is_free(prefix: str) -> bool:
        names = {prefix + suffix for suffix in suffixes}
        return not names & taken and all(is_free_class_name(name) for name in names)

    return next(filter(is_free, prefix_candidates(usual, owner)))


def prefix_candidates(usual: str, owner: str):
    yield usual
    yield owner + usual
    for number in itertools.count(2):
        yield f"{owner}{usual}{number}"


def helper_suffixes(part: Component, prefix: str) -> list[str]:
    """The suffixes of the classes a model defines besides its own (the last one)."""
    assert defined_name(part.classes[-1]) == part.class_name
    names = [config.name for config in part.configs]
    names += [defined_name(cls) for cls in part.classes[:-1]]
    assert all(name.startswith(prefix) for name in names)
    return [name[len(prefix):] for name in names]


def class_names(part: Component) -> set[str]:
    return {config.name for config in part.configs} | {defined_name(cls) for cls in part.classes}


def lower_component(model: Model, prefix: str, class_name: str) -> Component:
    kind = model.attrs.type
    if kind == "XTransformer":
        return lower_xtransformer(model, prefix, class_name)
    config = f"{prefix}Config"
    # forgetful causal masking gives the loss an attention mask to pass
    # a PrefixDecoder's stack builds the mask of its prefix and gives it to the blocks
    signature = block_signature(model, attn_mask=forgets(model) or model.prefix_lm,
                                cache=model.cacheable)
    classes = stack_classes(model, prefix, config, signature)
    blocks, dim = f"{model.depth} x Block", model.dim
    if kind in ("TransformerWrapper", "XValTransformerWrapper"):
        top, fields, summary = wrapper_model(model, prefix, class_name, config, signature)
        pool = POOL_DIAGRAM.get(model.pooled_by, "")
        heads = output_heads(model)
        output = (f"{f'{heads} x ' if heads > 1 else ''}logits {logits_shape(model, sizes=True)}"
                  if model.find(OpKind.LOGITS)
                  else f"pooled tokens {pooled_tokens_shape(model, sizes=True)}"
                  if model.pooled_by == "attention" else f"embeddings (B, {sequence_axes(model)}{dim})")
        diagram = f"tokens (B, T) -> embeddings -> {blocks}{pool} -> {output}"
        if model.numerical_token_id is not None:
            logits = model.find(OpKind.LOGITS).attrs.num_tokens
            diagram = (f"tokens (B, T) scaled by numbers (B, T) -> {blocks} -> logits "
                       f"(B, T, {logits}), numbers (B, T)")
    elif kind == "ViTransformerWrapper":
        top, fields, summary = vit_model(model, prefix, class_name, config, signature)
        patches = model.find(OpKind.PATCH_EMBEDDING).attrs
        size = image_size(model)
        diagram = f"images (B, {patches.channels}, {size}, {size}) -> {num_patches(model)} " \
                  f"patches -> {blocks} -> mean -> logits (B, {num_classes(model)})"
    elif kind == "ContinuousTransformerWrapper":
        top, fields, summary = continuous_model(model, prefix, class_name, config, signature)
        dim_in, dim_out = continuous_widths(model)
        stacked = "2, " if top.continuous and top.continuous.probabilistic else ""
        pool = POOL_DIAGRAM.get(model.pooled_by, "")
        diagram = f"x (B, T, {dim_in or dim}) -> {blocks}{pool} -> ({stacked}B, " \
                  f"{sequence_axes(model)}{dim_out or dim})"
    else:
        top, fields, summary = bare_model(model, prefix, class_name, config, signature)
        diagram = f"x (B, T, {dim}) -> {blocks} -> (B, T, {dim})"
    configs = (ConfigClass(config, tuple(fields) + stack_config(model)),)
    generates = getattr(top, "generative", False)
    return Component(configs, (*classes, top), class_name, config, top.parameters, summary, diagram,
                     generate=top.generate_signature if generates else (),
                     loss=top.loss_signature if generates else (),
                     numbers=getattr(top, "numbers", False))


# -- one stack, one model class ----------------------------------------------------------------

RETURN_EMBEDDINGS = Parameter("return_embeddings", "bool", "False")
# with the attention z-loss: also return the attentions' summed log-sum-exps, for `loss`
RETURN_ATTN_LSE = Parameter("return_attn_lse", "bool", "False")
# a looped LM's: also return every loop's logits and exit logits, for `loss`
RETURN_LOOPS = Parameter("return_loops", "bool", "False")
# add_continuous_pred_head's: also return the next embeddings predicted, and their targets
RETURN_NEXT_EMBED = Parameter("return_next_embed_pred", "bool", "False")
# what a decoding step takes besides forward's arguments: the kv cache, and where each
# left-padded prompt starts; forward, the method users call, takes neither
DECODING_ONLY = ("cache", "seq_start_pos", "looped_exit_prob_threshold")


def wrapper_model(model: Model, prefix: str, class_name: str, config: str,
                  signature: BlockSignature):
    """A TransformerWrapper: token ids in, logits (or embeddings) out; an xVal model also takes
    each token's number and predicts one at each position."""
    cross, numbers = takes_context(model), model.numerical_token_id is not None
    has_prepend = model.find(OpKind.PREPEND) is not None
    has_logits = model.find(OpKind.LOGITS) is not None
    generative, cacheable = model.generative, model.cacheable
    parameters = [Parameter("x", "Tensor"), *([X_NUM] if numbers else []), KEYWORD_ONLY,
                  optional("mask")]
    parameters += [EMBED_IDS] if named_embeddings(model) else []
    parameters += [optional("context"), optional("context_mask")] if cross else []
    # the loss's forgotten keys, or an XTransformer's mask; a PrefixDecoder's stack builds its
    # own from prefix_attn_len
    given_mask = forgets(model) or "attn_mask" in signature and not model.prefix_lm
    parameters += [optional("attn_mask")] if given_mask else []
    parameters += [optional("prepend_embeds")] if has_prepend else []
    parameters += condition_parameters(model)
    parameters += prefix_parameters(model)
    parameters += [loop_parameter(model)] if repeats(model) else []
    parameters += [RETURN_EMBEDDINGS] if computes_past_embeddings(model) else []
    parameters += [HEAD] if output_heads(model) > 1 else []
    parameters += [RETURN_NEXT_EMBED] if predicts_next_embed(model) else []
    parameters += list(MEMORY_PARAMETERS) if model.recurrent else []
    parameters += [DETACH_MEMS] if tbptt_steps(model) > 1 else []
    parameters += [RETURN_ATTN_LSE] if z_loss(model) else []
    parameters += [RETURN_LOOPS] if loop_loss(model) else []
    parameters += [Parameter("cache", "ModelCache | None", "None")] if cacheable else []
    parameters += [EXIT_THRESHOLD] if exits_early(model) else []
    parameters += [optional("seq_start_pos")] if generative else []
    limit = length_limit(model)
    cached = ", cached" if cacheable else ""
    checks = cached_positions(model) if cacheable else []
    checks += [f"check_tokens(x, self.config.num_tokens, {limit}{cached})",
               *(["check_numbers(x_num, x)"] if numbers else []), f"check_mask(mask, x{cached})"]
    checks += ["check_embed_ids(embed_ids, self.config.embed_num_tokens, x)"] \
        if named_embeddings(model) else []
    checks += context_checks() if cross else []
    checks += condition_checks(model)
    checks += prefix_checks(model)
    checks += memory_checks(model) if model.recurrent else []
    if has_prepend:
        checks.append(f"check_context(prepend_embeds, self.config.{embedding_width(model)[0]}, "
                      'x.shape[0], "prepend_embeds", required=False)')
    if memory_every(model) is not None:
        checks.append(f"check_memory_chunks(mask, {'prepend_embeds' if has_prepend else 'None'}, "
                      "self.config.memory_tokens_interspersed_every)")
    ops, imports = top_level_ops(model, prefix, signature, generative=generative)
    ops = nested(ops)
    if not has_logits and model.pooled_by != "attention":
        ops.append(OpContext("ops/return_hidden.py.jinja"))
    if exits_early(model):
        imports.add(runtime("looped", "LoopedCache"))
    imports.add(runtime("checks", check_imports(checks)))
    imports |= {runtime("recurrence", "next_memories")} if model.recurrent else set()
    if numbers:
        return xval_class(model, class_name, config, parameters, checks, ops, imports)
    what = ("prefix language model" if model.prefix_lm else
            "causal language model" if model.causal else "bidirectional encoder")
    returns = (f"{logits_name(model)} {logits_shape(model)}" if has_logits
               else f"pooled tokens {pooled_tokens_shape(model)}" if model.pooled_by == "attention"
               else f"embeddings (B, {sequence_axes(model)}dim)")
    if output_heads(model) > 1:
        returns = f"a tuple of num_output_heads {returns}, one per head (given head, that\n        head's alone),"
    step = tuple(parameters) if generative else ()
    parameters = [p for p in parameters if p.name not in DECODING_ONLY]
    parts = ", ".join(["embeddings", "blocks"] + (["final norm"] if model.find(OpKind.NORM, "norm") else [])
                      + ([POOL_PART[model.pooled_by]] if model.pooled else []))
    cls = ModelClass(class_name, config,
                     f"The {what}: {parts}{' and the logits head' if has_logits else ''}.",
                     f"{returns[0].upper()}{returns[1:]} for token ids x (B, T); mask (B, T) is True "
                     "where x is real." + (NAMED_IDS_DOC if named_embeddings(model) else "")
                     + (NEXT_EMBED_DOC if predicts_next_embed(model) else ""),
                     tuple(parameters), tuple(checks), tuple(ops), frozenset(imports), step_parameters=step,
                     generative=generative, cacheable=cacheable, cross=cross, length_limit=limit,
                     prefixed=has_prepend, forgetful=forgets(model), recurrent=model.recurrent,
                     tbptt=tbptt_steps(model) > 1,
                     z_loss=z_loss(model), looped=loop_loss(model), conditioned=conditioned(model),
                     cache_class="LoopedCache" if exits_early(model) else "ModelCache",
                     prefix_lm=model.prefix_lm, named_embeddings=named_embeddings(model),
                     loop_argument=loop_parameter(model).name if repeats(model) else None,
                     classifier=sequence_axes(model) if classifies(model) else None,
                     heads=output_heads(model), next_embed=predicts_next_embed(model),
                     **cache_shape(model))
    summary = f"{wrapper_kind(model)}, x-transformers TransformerWrapper + {model.attrs.layers}."
    return cls, wrapper_config(model), summary


def logits_shape(model: Model, sizes: bool = False) -> str:
    """The shape of a TransformerWrapper's logits, their width named by its config field (or
    sized): a pooled model's have no position axis, squeeze_out_last_dim's no width."""
    logits = model.find(OpKind.LOGITS).attrs
    vocabulary = model.find(OpKind.TOKEN_EMBEDDING).attrs.num_tokens
    width = "num_tokens" if logits.num_tokens == vocabulary else "logits_dim"
    axes = ["B", *filter(None, [sequence_axes(model).removesuffix(", ")])]
    if not logits.squeeze:
        axes.append(str(logits.num_tokens) if sizes else width)
    return f"({axes[0]},)" if len(axes) == 1 else f"({', '.join(axes)})"


def predicts_next_embed(model: Model) -> bool:
    """add_continuous_pred_head: forward(return_next_embed_pred=True) also returns each
    position's prediction of the next one's initial embedding, and those embeddings."""
    return model.find(OpKind.NEXT_EMBED) is not None


def embedding_shape(model: Model) -> str:
    """The shape of the embeddings before the layers, after any prepended embeddings."""
    return f"(B, {'P + ' if model.find(OpKind.PREPEND) is not None else ''}T, C)"


def output_heads(model: Model) -> int:
    """How many logits heads forward runs (num_output_heads): more than one returns a tuple."""
    logits = model.find(OpKind.LOGITS)
    return 1 if logits is None else logits.attrs.heads


def pooled_tokens_shape(model: Model, sizes: bool = False) -> str:
    """The shape of an attention-pooled model's output, named by its config fields (or sized)."""
    pool = model.find(OpKind.ATTENTION_POOL).attrs
    if sizes:
        return f"(B, {pool.queries}, {pool.dim})"
    return f"(B, num_pooled_tokens, {pooled_width(model)})"


def pooled_width(model: Model) -> str:
    """The Config field of an attention pool's width: dim_pooled_tokens only where not dim."""
    return "dim_pooled_tokens" if model.find(OpKind.ATTENTION_POOL).attrs.dim != model.dim else "dim"


def mask_holds_memory(model: Model) -> bool:
    """Whether the padding mask a pool reads still covers memory tokens in front (interleaved
    ones take no mask), which the pool must cut off first."""
    memory = model.find(OpKind.MEMORY_TOKENS, "memory_tokens")
    return memory is not None and memory.attrs.every is None


def classifies(model: Model) -> bool:
    """Whether the output is class logits, one set per sequence (or per CLS token): what
    loss(x, labels) reads. A pooled score (squeeze_out_last_dim) or embedding is not."""
    logits = model.find(OpKind.LOGITS)
    return model.pooled and logits is not None and not logits.attrs.squeeze


def logits_name(model: Model) -> str:
    """What the logits head gives: a mixture of softmaxes gives log-probabilities."""
    return "log-probabilities" if model.find(OpKind.LOGITS).attrs.mixture else "logits"


def mixture_shapes(model: Model) -> dict[str, str] | None:
    """The shapes a mixture of softmaxes goes through, K components per position: its
    components, their logits and the components' weights (None without a mixture)."""
    if not model.find(OpKind.LOGITS).attrs.mixture:
        return None
    lead, _, width = logits_shape(model)[1:-1].rpartition(", ")
    return {"components": f"({lead}, K, C)", "logits": f"({lead}, K, {width})",
            "weights": f"({lead}, K)"}


X_NUM = Parameter("x_num", "Tensor")

# how a pooled model (Model.pooled_by) makes one output per sequence
POOL_DIAGRAM = {"mean": " -> mean over the real positions", "cls": " -> the CLS tokens' outputs",
                "attention": " -> attention pool"}
POOL_PART = {"mean": "mean pool", "cls": "CLS tokens", "attention": "attention pool"}


def sequence_axes(model: Model) -> str:
    """The axes of the output between the batch and the features: a position each, one CLS
    token's or a mean (none), or several CLS tokens'."""
    if not model.pooled:
        return "T, "
    if model.pooled_by == "attention":  # several even where one
        return "num_pooled_tokens, "
    pool = model.find(OpKind.POOL)
    return "num_cls_tokens, " if pool.attrs.first > 1 else ""


def xval_class(model: Model, class_name: str, config: str, parameters: list, checks: list,
               ops: list, imports: set):
    """An xVal model (XValTransformerWrapper): token ids and their numbers in, logits and one
    number per position out; loss and generate as XValAutoregressiveWrapper's."""
    generative, cacheable = model.generative, model.cacheable
    what = "language model" if model.causal else "encoder"
    step = tuple(parameters) if generative else ()
    parameters = [p for p in parameters if p.name not in DECODING_ONLY]
    cls = ModelClass(class_name, config,
                     f"The xVal {what}: tokens scaled by their numbers in, logits and numbers out.",
                     "Logits (B, T, num_tokens) and numbers (B, T) for token ids x (B, T) and "
                     "their\n        numbers x_num (B, T), read where x is the number token; mask "
                     "(B, T) is True where x\n        is real.",
                     tuple(parameters), tuple(checks), tuple(ops), frozenset(imports),
                     step_parameters=step, generative=generative, cacheable=cacheable,
                     cross=takes_context(model), length_limit=length_limit(model),
                     **cache_shape(model), numbers=True, recurrent=model.recurrent,
                     conditioned=conditioned(model))
    stack = "Decoder" if model.causal else "Encoder"
    summary = f"an xVal transformer over tokens and numbers, x-transformers " \
              f"XValTransformerWrapper + {stack}."
    return cls, wrapper_config(model), summary


def wrapper_kind(model: Model) -> str:
    """What a TransformerWrapper's stack makes of it, with its article."""
    if model.prefix_lm:  # Raffel et al. 2019 (https://arxiv.org/abs/1910.10683), section 3.2.1
        return "a prefix language model (two-way attention within a prefix, causal after it)"
    kind = "a decoder-only (GPT-style)" if model.causal else "an encoder-only (BERT-style)"
    return f"{kind} transformer"


# forward's docstring, on the ids of embed_num_tokens' tables
# forward's docstring, on add_continuous_pred_head's extra output
NEXT_EMBED_DOC = ("\n        With return_next_embed_pred: (those logits, (each position's prediction "
                  "of the next\n        initial embedding, the initial embeddings)), each (B, T, dim).")
NAMED_IDS_DOC = ("\n        embed_ids maps each name of embed_num_tokens to its ids (B, T), whose "
                 "embeddings are\n        added to the tokens'.")


def named_embeddings(model: Model) -> bool:
    """Whether the model adds further embeddings looked up by embed_ids (embed_num_tokens)."""
    return model.find(OpKind.NAMED_EMBEDDINGS) is not None


def repeats(model: Model) -> bool:
    """Whether the model runs its layers several times (recycling, a looped LM)."""
    return model.find(OpKind.LOOP) is not None


def loop_parameter(model: Model) -> Parameter:
    """forward's number of passes: recycle_steps (drawn in training where not given) or
    looped_steps (max_looped_steps where not given)."""
    return passes(model.find(OpKind.LOOP).attrs.argument)


def loop_loss(model: Model) -> bool:
    """Whether `loss` reads every loop's logits and exit logits (a looped LM that learns the
    next token)."""
    return model.generative and loop_limit(model, False) is not None


def exits_early(model: Model) -> bool:
    """Whether a looped LM decodes with a cache per loop, each row leaving the loops on its own
    (runtime LoopedCache, EarlyExit)."""
    return loop_loss(model) and model.cacheable


def loop_limit(model: Model, recycled: bool) -> int | None:
    """train_max_recycle_steps or max_looped_steps (None: the model does not repeat so)."""
    op = model.find(OpKind.LOOP)
    return op.attrs.steps if op is not None and op.attrs.recycled == recycled else None


def prefix_parameters(model: Model) -> list[Parameter]:
    return [PREFIX_ATTN_LEN] if model.prefix_lm else []


def prefix_checks(model: Model) -> list[str]:
    return ["check_prefix_attn_len(prefix_attn_len, x)"] if model.prefix_lm else []


def conditioned(model: Model) -> bool:
    """Whether the model's adaptive norms or layer scales read a condition."""
    return model.find(OpKind.CONDITION) is not None


def condition_parameters(model: Model) -> list[Parameter]:
    return [optional("condition")] if conditioned(model) else []


def condition_checks(model: Model) -> list[str]:
    return ["check_condition(condition, self.config.dim_condition, x)"] if conditioned(model) else []


def length_limit(model: Model) -> str:
    """The longest input forward accepts, as code: None where any length runs."""
    return "self.config.max_seq_len" if model.length_limit else "None"


def bare_model(model: Model, prefix: str, class_name: str, config: str,
               signature: BlockSignature):
    """An Encoder / Decoder / CrossAttender on its own: vectors (B, T, dim) in and out."""
    cross = takes_context(model)
    parameters = [Parameter("x", "Tensor"), KEYWORD_ONLY, optional("mask")]
    parameters += [optional("context"), optional("context_mask")] if cross else []
    parameters += condition_parameters(model)
    parameters += prefix_parameters(model)
    checks = ["check_features(x, self.config.dim)", "check_mask(mask, x)"]
    checks += context_checks() if cross else []
    checks += condition_checks(model)
    checks += prefix_checks(model)
    ops, imports = top_level_ops(model, prefix, signature)
    ops.insert(0, OpContext("ops/input.py.jinja"))
    ops.append(OpContext("ops/return_hidden.py.jinja"))
    imports.add(runtime("checks", check_imports(checks)))
    layers = model.attrs.layers
    cls = ModelClass(class_name, config, f"A bare {layers} layer stack.",
                     "Hidden states (B, T, dim) for inputs x (B, T, dim).", tuple(parameters),
                     tuple(checks), tuple(ops), frozenset(imports))
    return cls, (), f"a bare x-transformers {layers}."


def vit_model(model: Model, prefix: str, class_name: str, config: str,
              signature: BlockSignature):
    """Patches, positions, [register tokens], an Encoder, mean pool and a linear head."""
    parameters = [Parameter("img", "Tensor"), KEYWORD_ONLY, RETURN_EMBEDDINGS]
    checks = ["check_image(img, self.config.channels, self.config.image_size)"]
    ops, imports = top_level_ops(model, prefix, signature, mask=False)
    head = num_classes(model) is not None
    ops.append(OpContext("ops/pool_head.py.jinja", {"head": head}))
    imports |= {REARRANGE, runtime("checks", "check_image")}
    cls = ModelClass(class_name, config,
                     "The vision transformer: patch embeddings, an encoder, "
                     + ("and a classifier." if head else "and mean pooling."),
                     "Class logits (B, num_classes) for images (B, channels, size, size)."
                     if head else
                     "The mean patch embedding (B, dim) for images (B, channels, size, size).",
                     tuple(parameters), tuple(checks), tuple(ops), frozenset(imports))
    return cls, vit_config(model), "a vision transformer, x-transformers ViTransformerWrapper."


def continuous_model(model: Model, prefix: str, class_name: str, config: str,
                     signature: BlockSignature):
    """Vectors in, vectors out: bias-free projections around the layers. A decoder whose
    outputs are as wide as its inputs has decode_step, new_cache, loss and generate."""
    dim_in, dim_out = continuous_widths(model)
    generative, cacheable = model.generative, model.cacheable
    parameters = [Parameter("x", "Tensor"), KEYWORD_ONLY, optional("mask"),
                  *condition_parameters(model), RETURN_EMBEDDINGS]
    parameters += list(MEMORY_PARAMETERS) if model.recurrent else []
    parameters += [Parameter("cache", "ModelCache | None", "None")] if cacheable else []
    limit = "self.config.max_seq_len" if model.length_limit else "None"
    width = "dim_in" if dim_in is not None else "dim"
    checks = [f"check_features(x, self.config.{width}, {limit})", "check_mask(mask, x)"]
    if cacheable:
        checks = ["cached = 0 if cache is None else cache.length",
                  f"check_features(x, self.config.{width}, {limit}, cached=cached)",
                  "check_mask(mask, x, cached)"]
    checks += condition_checks(model)
    checks += memory_checks(model) if model.recurrent else []
    ops, imports = top_level_ops(model, prefix, signature)
    if dim_in is None:
        ops.insert(0, OpContext("ops/input.py.jinja"))
    if dim_out is None:
        ops.append(OpContext("ops/return_hidden.py.jinja", {"memory": model.recurrent}))
    imports.add(runtime("checks", check_imports(checks)))
    imports |= {runtime("recurrence", "next_memories")} if model.recurrent else set()
    project_out = model.find(OpKind.PROJECT, "project_out")
    probabilistic = project_out is not None and project_out.attrs.probabilistic
    axes = sequence_axes(model)
    doc = (f"Means and variances (2, B, {axes}dim_out) for x (B, T, dim_in); mask (B, T): x is "
           "real." if probabilistic else f"Outputs (B, {axes}dim_out) for inputs x (B, T, dim_in); "
           "mask (B, T) is True where x is real.")
    step = tuple(parameters) if generative else ()
    parameters = [p for p in parameters if p.name not in DECODING_ONLY]
    loss = model.find(OpKind.LOSS)
    cls = ModelClass(class_name, config,
                     "The continuous transformer: vectors in, vectors out.",
                     doc, tuple(parameters), tuple(checks), tuple(ops),
                     frozenset(imports), step_parameters=step, generative=generative,
                     cacheable=cacheable, length_limit=limit, cache_like="next(self.parameters())",
                     **cache_shape(model), recurrent=model.recurrent, conditioned=conditioned(model),
                     continuous=ContinuousDecoder(loss.attrs, probabilistic) if loss else None)
    return cls, continuous_config(model), \
        "a transformer over vectors, x-transformers ContinuousTransformerWrapper."


# forward's Transformer-XL arguments: each block's memory, and whether to return the next ones
MEMORY_PARAMETERS = (Parameter("mems", "list[Tensor] | None", "None"),
                     Parameter("return_mems", "bool", "False"))
# with tbptt_steps: whether the next memories are detached (loss keeps the gradient through
# all but every tbptt_steps-th segment's)
DETACH_MEMS = Parameter("detach_mems", "bool", "True")


def tbptt_steps(model: Model) -> int:
    """The segments a Transformer-XL model's memories carry their gradient across in `loss`."""
    loss = model.find(OpKind.LOSS)
    return loss.attrs.tbptt_steps if loss is not None and model.recurrent else 1


def memory_checks(model: Model) -> list[str]:
    """The check of the memories a recurrent model is given and, where rotary angles or a
    position bias span its keys, the count of the memory's positions before the tokens."""
    checks = ["check_memories(mems, x, self.config.depth, self.config.dim)"]
    if spans_keys(model):
        checks.append("remembered = mems[0].shape[1] if mems is not None else 0  # before x")
    return checks


def spans_keys(model: Model) -> bool:
    """Whether the model computes something for every key position: rotary or polar angles,
    a position bias."""
    return any(model.find(kind) is not None
               for kind in (OpKind.ROTARY, OpKind.POLAR, OpKind.POSITION_BIAS))


def cached_positions(model: Model) -> list[str]:
    """The lines that count what a decoder's cache holds before x: `cached` tokens, and where
    rotary angles or a position bias span every key, `past` positions (a prefix of prepended
    embeddings, then the tokens)."""
    if model.find(OpKind.PREPEND) is None:
        return ["cached = 0 if cache is None else cache.length"]
    if not spans_keys(model):
        return ["cached = cache.length - cache.prefix if cache is not None else 0  # its tokens"]
    return ["past = cache.length if cache is not None else 0  # cached: a prefix, then tokens",
            "cached = past - cache.prefix if cache is not None else 0  # the tokens"]


def cache_shape(model: Model) -> dict:
    """The ModelClass fields new_cache reads: the Config field with the key / value heads,
    whether values have their own width, the attention runs it allocates for, and what sizes
    each run's cache: its sliding window, or its latent (multi-head latent attention)."""
    attention = model.shared(OpKind.ATTENTION)
    return {"cache_heads": "kv_heads" if attention and attention.kv_heads else "heads",
            # (without self-attention only the contexts' keys are kept, whatever the width)
            "cache_dim_head": "dim_head" if attention else "cross_dim_head",
            "cache_value_dim": bool(attention and attention.value_dim_head),
            "cache_layers": cache_layers(model),
            "cache_windows": cache_windows(model), **latent_cache(model)}


def latent_cache(model: Model) -> dict[str, str]:
    """What new_cache passes as the self-attention runs' latent widths and decoupled-rope key
    heads (code; "" for none), for LatentCache: the Config's where every run has the same,
    else each run's, in the order they run (0: that run keeps keys and values)."""
    runs = [op.attrs for op in model.ops if op.kind is OpKind.ATTENTION]
    latent = tuple(a.dim_latent_kv for a in runs)
    rope = tuple(a.latent_rope_subheads for a in runs)
    if not any(latent):
        return {"cache_latent": "", "cache_rope_heads": ""}
    same = len(set(latent)) == 1 and len(set(rope)) == 1  # then Config holds both
    return {"cache_latent": "self.config.dim_latent_kv" if same else repr(latent),
            "cache_rope_heads": ("" if not any(rope) else
                                 "self.config.rotate_num_heads" if same else repr(rope))}


def cache_windows(model: Model) -> str:
    """What new_cache passes as the sliding windows of its self-attention runs (code; "" for
    none): the config's, one or one per layer, or a custom layout's per run, in the order its
    sublayers run (an execution order may run a layer twice)."""
    used, value = layer_values(model, OpKind.ATTENTION, "max_attend_past")
    if not used:
        return ""
    if model.attrs.custom_layout and isinstance(value, tuple):
        return repr(tuple(op.attrs.max_attend_past for op in model.ops
                          if op.kind is OpKind.ATTENTION))
    return "self.config.max_attend_past"


def cache_layers(model: Model) -> tuple[str, str]:
    """What new_cache allocates for: self-attention runs, cross-attention runs (code). A
    custom layout's one block runs its attention sublayers in a fixed order: counted here."""
    if model.attrs.custom_layout:
        runs = Counter(op.kind for op in model.ops)
        cross = runs[OpKind.CROSS_ATTENTION]
        return str(runs[OpKind.ATTENTION]), str(cross) if cross else ""
    attention = model.find(OpKind.ATTENTION) is not None
    cross = model.find(OpKind.CROSS_ATTENTION) is not None
    return "self.config.depth" if attention else "0", "self.config.depth" if cross else ""


def takes_context(model: Model) -> bool:
    """Whether the model's forward takes a context: it cross-attends, or its layers were asked
    to (cross_attend with a custom layout that leaves cross-attention out still takes one)."""
    return model.find(OpKind.CROSS_ATTENTION) is not None or context_input(model) is not None


def context_input(model: Model) -> Op | None:
    return next((op for op in model.ops
                 if op.kind is OpKind.INPUT and op.attrs.role == "context"), None)


def context_checks() -> list[str]:
    return ["check_context(context, self.config.dim_context, x.shape[0])",
            "check_mask(context_mask, context)"]


def check_imports(checks: list[str]) -> str:
    return ", ".join(sorted({line.split("(")[0] for line in checks if line.startswith("check_")}))


# -- what a model's ops say about it ----------------------------------------------------------


def embedding_width(model: Model) -> tuple[str, str]:
    """The Config field and shape symbol of the embeddings' width: emb_dim (E) where a
    projection brings it to dim (C)."""
    embedding = model.find(OpKind.TOKEN_EMBEDDING)
    if embedding is not None and embedding.attrs.dim != model.dim:
        return "emb_dim", "E"
    return "dim", "C"


def image_size(model: Model) -> int:
    return model.graph[model.find(OpKind.PATCH_EMBEDDING).inputs[0]].attrs.shape[2]


def num_patches(model: Model) -> int:
    return model.find(OpKind.POSITION_EMBEDDING).attrs.max_seq_len


def num_classes(model: Model) -> int | None:
    head = model.find(OpKind.PROJECT, "mlp_head")
    return None if head is None else head.attrs.dim


def continuous_widths(model: Model) -> tuple[int | None, int | None]:
    """dim_in and dim_out of a continuous model: None where it has no projection."""
    project_in = model.find(OpKind.PROJECT, "project_in")
    project_out = model.find(OpKind.PROJECT, "project_out")
    dim_out = project_out and project_out.attrs.dim // (1 + project_out.attrs.probabilistic)
    return (project_in and project_in.attrs.dim_in), dim_out


def count(model: Model, kind: OpKind, role: str | None = None) -> int:
    """A count an op of the model carries (memory or register tokens), or 0 without one."""
    op = model.find(kind, role)
    return 0 if op is None else op.attrs.count


def memory_every(model: Model) -> int | None:
    """How many positions each chunk between memory tokens holds (None: one block in front)."""
    op = model.find(OpKind.MEMORY_TOKENS, "memory_tokens")
    return None if op is None else op.attrs.every


def dropout(model: Model, role: str) -> float:
    op = model.find(OpKind.DROPOUT, role)
    return 0.0 if op is None else op.attrs.p


def gradient_share(model: Model) -> float:
    """The share of the gradient the embeddings get (emb_frac_gradient)."""
    op = model.find(OpKind.GRADIENT_SCALE)
    return 1.0 if op is None else op.attrs.fraction


# -- XTransformer ------------------------------------------------------------------------------


def lower_xtransformer(model: Model, prefix: str, class_name: str) -> Component:
    classes, configs = [], []
    sides = {side: Model(model.graph, f"{model.scope}.{side}" if model.scope else side)
             for side in ("encoder", "decoder")}
    for side, view in sides.items():
        side_prefix = f"{prefix}{side.capitalize()}"
        config = f"{side_prefix}Config"
        signature = block_signature(view, attn_mask=side == "encoder", cache=view.cacheable)
        classes += stack_classes(view, side_prefix, config, signature)
        cls, fields, _ = wrapper_model(view, side_prefix, side_prefix, config, signature)
        classes.append(cls)
        configs.append(ConfigClass(config, tuple(fields) + stack_config(view)))
    config = f"{prefix}Config"
    loss, dropped = model.find(OpKind.LOSS).attrs, model.attrs.cross_attn_tokens_dropout
    top_fields = (
        nested_config("encoder", f"{prefix}EncoderConfig"),
        nested_config("decoder", f"{prefix}DecoderConfig"),
        ConfigField("ignore_index", "int", repr(loss.ignore_index), "target id the loss skips"),
        ConfigField("pad_value", "int", repr(loss.pad_value), "decoder input for ignored ids"),
        ConfigField("cross_attn_tokens_dropout", "float", repr(dropped)),
    )
    configs.append(ConfigClass(config, top_fields))
    decoder_table = sides["decoder"].find(OpKind.TOKEN_EMBEDDING)  # the encoder's, when tied
    classes.append(XTransformerClass(class_name, config, f"{prefix}Encoder", f"{prefix}Decoder",
                                     tie_token_emb=bool(decoder_table.shares),
                                     drop_context_tokens=dropped > 0))
    summary = "an encoder-decoder transformer, x-transformers XTransformer."
    diagram = ("src (B, S) -> Encoder -> context; tgt (B, T) -> Decoder (cross-attending) "
               "-> next-token loss")
    parameters = (Parameter("src", "Tensor"), Parameter("tgt", "Tensor"), KEYWORD_ONLY,
                  optional("mask"), optional("attn_mask"), optional("src_prepend_embeds"))
    return Component(tuple(configs), tuple(classes), class_name, config, parameters, summary,
                     diagram, generate=classes[-1].generate_signature, forward_is_loss=True)


# -- the classes of a stack ---------------------------------------------------------------------


def stack_classes(model: Model, prefix: str, config: str, signature: BlockSignature) -> list:
    """The sublayer classes of a stack, then its block classes. Layers whose per-layer values
    differ only in numbers share a class (the numbers are Config tuples it reads at its
    layer's entry); a value that adds or removes a submodule makes one class per kind of
    layer, and a block class per kind of block (docs/options.md, per-layer values)."""
    sublayers = sublayer_classes(model, prefix, config, signature)
    blocks, _ = stack_blocks(model, prefix, config, signature, sublayers)
    return [*dict.fromkeys(sublayers.values()), *blocks]


# Config fields that per-layer values may make tuples, per sublayer kind: the field -> (its
# value in a layer's payload, whether that layer reads it).
PER_LAYER_CONFIG = {
    OpKind.ATTENTION: {
        "attn_dropout": (lambda a: a.dropout, lambda a: a.dropout > 0),
        "attn_sublayer_dropout": (lambda a: a.sublayer_dropout, lambda a: a.sublayer_dropout > 0),
        "qk_norm_scale": (lambda a: float(a.qk_norm_scale),
                          lambda a: a.qk_norm and not a.qk_norm_dim_scale),
        "max_attend_past": (lambda a: a.max_attend_past, lambda a: a.max_attend_past is not None),
        "dim_latent_q": (lambda a: a.dim_latent_q, lambda a: a.dim_latent_q > 0),
        "dim_latent_kv": (lambda a: a.dim_latent_kv, lambda a: a.dim_latent_kv > 0),
        "rotate_num_heads": (lambda a: a.rotate_heads, lambda a: a.rotate_heads > 0),
    },
    OpKind.CROSS_ATTENTION: {
        "cross_attn_dropout": (lambda a: a.dropout, lambda a: a.dropout > 0),
        "cross_attn_sublayer_dropout": (lambda a: a.sublayer_dropout,
                                        lambda a: a.sublayer_dropout > 0),
    },
    OpKind.FEEDFORWARD: {
        "ff_inner_dim": (lambda a: a.inner_dim, lambda a: True),
        "ff_dropout": (lambda a: a.dropout, lambda a: a.dropout > 0),
        "ff_sublayer_dropout": (lambda a: a.sublayer_dropout, lambda a: a.sublayer_dropout > 0),
        "ff_softclamp_value": (lambda a: a.softclamp_value and float(a.softclamp_value),
                               lambda a: a.softclamp_value is not None),
        "ff_glu_gate_softclamp_value": (lambda a: float(a.glu_gate_softclamp_value),
                                        lambda a: a.glu_softclamp),
        "ff_glu_up_softclamp_value": (lambda a: float(a.glu_up_softclamp_value),
                                      lambda a: a.glu_softclamp),
    },
}


# Config fields that the model reads too, for every layer: one value stands for the stack only
# where every layer has it (new_cache sizes each layer's cache by its window, None for all).
READ_FOR_EVERY_LAYER = {"max_attend_past"}


def layer_values(model: Model, kind: OpKind, field: str) -> tuple[bool, object]:
    """Whether a layer of the kind reads a Config field, and the field's value: the one value
    the layers that read it agree on, else a tuple of every layer's (one per layer of the kind,
    in the order they are built)."""
    value, reads = PER_LAYER_CONFIG[kind][field]
    payloads = [op.attrs for op in model.layer_ops(kind)]
    read = list(dict.fromkeys(value(a) for a in payloads if reads(a)))
    every = field not in READ_FOR_EVERY_LAYER or all(reads(a) for a in payloads)
    if len(read) == 0 or (len(read) == 1 and every):
        return bool(read), read[0] if read else None
    return True, tuple(value(a) for a in payloads)


def window_row(model: Model) -> tuple:
    """The stack_config row of the sliding windows: one for every layer, or each layer's (None
    where a layer sees every position)."""
    used, value = layer_values(model, OpKind.ATTENTION, "max_attend_past")
    if isinstance(value, tuple):
        return (used, "max_attend_past", "tuple[int | None, ...]", value,
                "sliding windows: keys seen back, per layer (None: all)")
    return used, "max_attend_past", "int", value, "sliding window: keys seen back"


def layer_row(model: Model, kind: OpKind, field: str, type_: str, comment: str) -> tuple:
    """A stack_config row of a field that may hold one value per layer."""
    used, value = layer_values(model, kind, field)
    if isinstance(value, tuple):
        return used, field, f"tuple[{type_}, ...]", value, f"{comment}, per layer".lstrip(", ")
    return used, field, type_, value, comment


def sublayer_classes(model: Model, prefix: str, config: str, signature: BlockSignature) -> dict:
    """(block, role) of every sublayer -> its class: one class per kind of layer, the first
    named for its concept, the others numbered (`FeedForward2`) in the order they are built."""
    cache, found = "cache" in signature, {}
    for kind, concept in BRANCH_CLASSES.items():
        per_layer = tuple(field for field in PER_LAYER_CONFIG[kind]
                          if isinstance(layer_values(model, kind, field)[1], tuple))
        named: dict[str, object] = {}  # the code of a class, its name blanked -> the class
        for op in model.layer_ops(kind):
            reads = tuple(f for f in per_layer if PER_LAYER_CONFIG[kind][f][1](op.attrs))
            cls = sublayer_class(model, kind, op.attrs, config, signature, cache, reads)
            body = code_of(cls)
            if body not in named:
                number = str(len(named) + 1) if named else ""
                named[body] = replace(cls, name=f"{prefix}{concept}{number}")
            found[op.block, op.role] = named[body]
    return found


@functools.lru_cache(maxsize=4096)
def code_of(cls) -> str:
    """A class context's code, its name blanked (share.blanked_body), rendered once for the
    many layers and blocks that have the same context."""
    return blanked_body(cls)


def sublayer_class(model: Model, kind: OpKind, attrs, config: str, signature: BlockSignature,
                   cache: bool, per_layer: tuple[str, ...]):
    """The class context of one layer's payload, unnamed."""
    if kind is OpKind.ATTENTION:
        rotary = model.shared(OpKind.ROTARY)
        return AttentionClass("", config, attrs, attn_mask="attn_mask" in signature, cache=cache,
                              xpos=rotary is not None and rotary.xpos_scale_base is not None,
                              per_layer=per_layer)
    if kind is OpKind.CROSS_ATTENTION:
        return CrossAttentionClass("", config, attrs, cache, per_layer=per_layer)
    return FeedForwardClass("", config, attrs, per_layer=per_layer)


def stack_blocks(model: Model, prefix: str, config: str, signature: BlockSignature,
                 sublayers: dict) -> tuple[list[BlockClass], tuple[str, ...]]:
    """The block classes of a stack, one per kind of block (`Block`, `Block2`), and the class
    of each block in order. A custom layout's one block gives each attention sublayer run its
    own cache."""
    steps_of: dict[int, list[tuple[ResidualStep, object]]] = {}
    runs = Counter()  # attention kind -> sublayers run so far, in the custom layout's block
    for op in model.ops:
        if op.kind is OpKind.RESIDUAL:
            branch = sublayer(model.graph, op)
            run = runs[branch.kind] if model.attrs.custom_layout else None
            runs[branch.kind] += 1
            cls = sublayers[branch.block, branch.role]
            step = residual_step(model.graph, op, prefix, signature, run)
            steps_of.setdefault(op.block, []).append((replace(step, branch_type=cls.name), cls))
    per_layer = tuple(name for name, (_, separate) in residual_values(model).items() if separate)
    imports = frozenset(filter(None, (norm_import(op.attrs) for op in model.ops
                                      if op.kind is OpKind.NORM and op.block is not None)))
    custom = model.attrs.custom_layout
    layout_runs = (runs[OpKind.ATTENTION], runs[OpKind.CROSS_ATTENTION]) if custom else ()
    named: dict[str, BlockClass] = {}  # the code of a class, its name blanked -> the class
    names = []
    for pairs in steps_of.values():
        steps = block_steps(model, pairs, per_layer, "cache" in signature)
        cls = BlockClass("", config, tuple(first_definitions(steps)), signature, imports,
                         runs=layout_runs, per_layer=per_layer, width=0 if custom else len(steps),
                         takes_layer=not custom and (bool(per_layer) or any(s.layer or s.streams or s.mix_layers for s in steps)))
        body = code_of(cls)
        if body not in named:
            named[body] = replace(cls, name=f"{prefix}Block{len(named) + 1 if named else ''}")
        names.append(named[body].name)
    return list(named.values()), tuple(names)


def residual_values(model: Model) -> dict[str, tuple[object, bool]]:
    """layer_dropout and token_shifts: (the stack's one value, False), or (a tuple of every
    sublayer's, True) where per-layer values make them differ. Sublayers without token
    shifting do not count."""
    residuals = [op.attrs for op in model.layer_ops(OpKind.RESIDUAL)]
    drops = tuple(r.layer_dropout for r in residuals)
    shifts = tuple(r.token_shifts for r in residuals)
    shifting = list(dict.fromkeys(shift for shift in shifts if shift))
    return {"layer_dropout": (drops[0], False) if len(set(drops)) == 1 else (drops, True),
            "token_shifts": (shifting[0] if shifting else (), False) if len(shifting) <= 1
            else (shifts, True)}


def block_steps(model: Model, pairs: list, per_layer: tuple[str, ...],
                cache: bool) -> list[ResidualStep]:
    """A block's steps, each with its class, and what they read per layer: the index their
    class takes, their own layer dropout and token shifts."""
    counts = Counter(step.branch_class for step, _ in pairs)
    seen, result = Counter(), []
    for position, (step, cls) in enumerate(pairs):
        place = layout_place(step) if model.attrs.custom_layout else position
        layer = ""
        if cls.takes_layer:
            layer = str(layer_number(model, step)) if model.attrs.custom_layout else \
                index_expression(counts[step.branch_class], seen[step.branch_class])
        seen[step.branch_class] += 1
        if step.streams and not model.attrs.custom_layout:  # its index among all the sublayers
            step = replace(step, stream_layer=index_expression(len(pairs), position))
        if step.mix_layers and not model.attrs.custom_layout:  # the sublayers so far, its own too
            step = replace(step, mix_layers=count_expression(len(pairs), position + 1))
        result.append(replace(
            step, layer=layer,
            drop=f"self.layer_dropout[{place}]" if "layer_dropout" in per_layer else step.drop,
            shifts=f"self.token_shifts[{place}]" if "token_shifts" in per_layer else step.shifts))
    if cache and any(step.residual.token_shifts for step in result):  # each run shifts its own
        result = [replace(step, shift_cache=index) for index, step in enumerate(result)]
    return result


def index_expression(count: int, offset: int) -> str:
    """The index among the stack's layers of a kind of a block's sublayer, the `offset`-th of
    the `count` of its kind in each block: `layer`, `2 * layer + 1`."""
    if count == 1:
        return "layer"
    return f"{count} * layer" + (f" + {offset}" if offset else "")


def count_expression(count: int, offset: int) -> str:
    """How many sublayers the stack runs up to a block's `offset`-th of its `count`: `2 * layer
    + 1`."""
    return f"{count} * layer + {offset}" if count > 1 else f"layer + {offset}"


def layout_place(step: ResidualStep) -> int:
    """A custom layout's sublayer's place in it, which its attribute ends with (`attn2`)."""
    return role_index(step.branch)


def layer_number(model: Model, step: ResidualStep) -> int:
    """A custom layout's sublayer's index among the layers of its kind."""
    kind = next(k for k, name in BRANCH_CLASSES.items() if name == step.branch_class)
    return [op.role for op in model.layer_ops(kind)].index(step.branch)


def block_signature(model: Model, attn_mask: bool, cache: bool) -> BlockSignature:
    """Block.forward's parameters: the sequence, what its sublayers read (context, masks,
    rotary angles, a position bias), the residual attention scores it passes on, its cache."""
    attention, cross = model.shared(OpKind.ATTENTION), takes_context(model)
    scores = ["prev_scores"] if attention is not None and attention.residual else []
    cross_attention = model.shared(OpKind.CROSS_ATTENTION)
    scores += ["prev_cross_scores"] if cross_attention is not None and cross_attention.residual else []
    # cross_attn_tokens_dropout: each cross-attention drops context tokens in training, and the
    # block hands what is left to the next
    dropped = any(op.attrs.tokens_dropout > 0 for op in model.layer_ops(OpKind.CROSS_ATTENTION))
    parameters = [Parameter("x", "Tensor", keyword=False)]
    parameters += [Parameter("context", "Tensor", keyword=False, returned=dropped)] if cross else []
    # reinject_input: the stack's input, projected, which every sublayer's input takes added
    parameters += [Parameter("inject", "Tensor")] if model.find(OpKind.REINJECT) else []
    # adaptive norms / layer scales: the condition, (B, 1, D) or (B, T, D)
    parameters += [Parameter("condition", "Tensor")] if model.find(OpKind.CONDITION) else []
    # ff_deep_embed: the gains (B, T, C) of this block's feedforward for its tokens
    parameters += [Parameter("deep_embed", "Tensor")] if model.find(OpKind.DEEP_EMBED) else []
    parameters += [optional("mask")]
    parameters += [replace(optional("context_mask"), returned=dropped)] if cross else []
    parameters += [optional("attn_mask")] if attn_mask else []
    if model.find(OpKind.ROTARY) is not None:
        parameters.append(Parameter("rotary", "tuple[Tensor, Tensor, Tensor | float] | None", "None"))
    if model.find(OpKind.POLAR) is not None:
        parameters.append(Parameter("polar", "tuple[Tensor, Tensor] | None", "None"))
    parameters += [optional("bias")] if model.find(OpKind.POSITION_BIAS) else []
    parameters += [replace(optional(name), returned=True) for name in scores]
    parameters += [replace(optional(name), returned=True) for name in first_values(model)]
    parameters += [optional("memory")] if attention is not None and attention.memory else []
    # every sublayer's input so far, appended to
    if model.find(OpKind.AGGREGATE) is not None or model.find(OpKind.LAYER_MIX) is not None:
        parameters.append(Parameter("hiddens", "list[Tensor] | None", "None"))
    z_losses = (a is not None and a.z_loss for a in (attention, cross_attention))
    parameters += [ATTN_LSE] if any(z_losses) else []  # the attention z-loss's running sum
    cache_class = "ModelCache" if model.attrs.custom_layout else "LayerCache"  # one block: all
    parameters += [Parameter("cache", f"{cache_class} | None", "None")] if cache else []
    return BlockSignature(tuple(parameters))


def first_values(model: Model) -> list[str]:
    """The values the first self- and cross-attention hand to the later ones (value
    residual), as the block's variables."""
    payloads = {kind: model.shared(kind) for kind in VALUES}
    return [name for kind, name in VALUES.items()
            if payloads[kind] is not None and payloads[kind].value_residual]


# the block's variable with the first values each kind of attention hands on (value residual)
VALUES = {OpKind.ATTENTION: "first_values", OpKind.CROSS_ATTENTION: "first_cross_values"}
# the stack's variables with the scores residual attention hands on, self and cross
RESIDUAL_SCORES = ("scores", "cross_scores")


def first_definitions(steps: list[ResidualStep]) -> list[ResidualStep]:
    """With an execution order a sublayer may run twice: define its modules once."""
    seen, result = set(), []
    for step in steps:
        result.append(replace(step, defines=step.branch not in seen))
        seen.add(step.branch)
    return result


BRANCH_CLASSES = {OpKind.ATTENTION: "Attention", OpKind.CROSS_ATTENTION: "CrossAttention",
                  OpKind.FEEDFORWARD: "FeedForward"}


def sublayer(graph: Graph, residual: Op) -> Op:
    """The sublayer a residual op adds, through a sandwich norm on its output."""
    branch = graph[residual.inputs[1]]
    return graph[branch.inputs[0]] if branch.kind is OpKind.NORM else branch


def residual_step(graph: Graph, residual: Op, prefix: str, signature: BlockSignature,
                  run: int | None = None) -> ResidualStep:
    """The step of one residual op: its branch (through a sandwich norm), its norm, and what
    the residual's payload wraps around the branch. run: in a custom layout's block, the
    branch's place among the sublayers of its kind that run (its cache's index)."""
    branch = graph[residual.inputs[1]]
    post_norm = None
    if branch.kind is OpKind.NORM:  # sandwich norm: a norm on the sublayer's output
        post_norm, branch = branch, graph[branch.inputs[0]]
    # the norm is on the branch's input (pre-norm) or on the sum (post-norm)
    norm = graph[branch.inputs[0]] if residual.attrs.pre_norm else graph.users(residual.name)[0]
    assert norm.kind is OpKind.NORM and norm.block == residual.block
    # pre_and_post_norm: a second norm, after the sum
    main_norm = graph.users(residual.name)[0] if residual.attrs.pre_norm and residual.attrs.sum_norm else None
    branch_input = graph[(norm if residual.attrs.pre_norm else branch).inputs[0]]
    reinject = (branch_input.kind is OpKind.ADD  # reinject_input: x + inject
                and graph[branch_input.inputs[1]].kind is OpKind.REINJECT)
    branch_input = graph[branch_input.inputs[0]] if reinject else branch_input
    aggregate = branch_input if branch_input.kind in (OpKind.AGGREGATE, OpKind.LAYER_MIX) else None
    mix = aggregate.attrs if aggregate and aggregate.kind is OpKind.LAYER_MIX else None
    streams = branch_input if branch_input.kind is OpKind.STREAM_MIX else None
    class_name = BRANCH_CLASSES[branch.kind]
    return ResidualStep(
        residual=residual.attrs, branch=branch.role, branch_class=class_name,
        branch_type=f"{prefix}{class_name}", norm=norm.role,
        norm_init=norm_constructor(graph, norm), norm_name=norm_class(norm.attrs),
        condition=condition_field(graph.shared_input(norm, OpKind.CONDITION)),
        gate_condition=condition_field(graph.shared_input(residual, OpKind.CONDITION)),
        arguments=sublayer_arguments(branch, signature, run),
        shift_mask=branch.kind is not OpKind.FEEDFORWARD,  # attention passes its mask on
        scores=residual_scores(branch),
        values=handed_values(branch),
        drop_context=branch.kind is OpKind.CROSS_ATTENTION and branch.attrs.tokens_dropout > 0,
        attn_lse=branch.kind is not OpKind.FEEDFORWARD and branch.attrs.z_loss,
        post_norm=post_norm.role if post_norm else "",
        post_norm_init=norm_constructor(graph, post_norm) if post_norm else "",
        main_norm=main_norm.role if main_norm else "",
        aggregate=aggregate.role if aggregate else "",
        reinject=reinject,
        aggregate_rank=aggregate.attrs.lora_rank if aggregate and not mix else 0,
        mix_layers=str(mix.layers) if mix else "",
        mix_softmax=mix.softmax if mix else True,
        streams=streams.role if streams else "",
        stream_count=streams.attrs.streams if streams else 0,
        stream_layer=str(streams.attrs.layer) if streams else "0",
        stream_rank=streams.attrs.rank if streams else 0,
        views=(streams or aggregate).attrs.views if streams or aggregate else 1)


def norm_init(attrs: NormAttrs, width: str = "dim", condition: str = "") -> str:
    """A norm's constructor, over the Config field `width` (the norms inside the layers are
    LayerNorms without a bias, as x-transformers' own; DyT's alpha starts where the spec says);
    an adaptive norm's gain is a map of the Config field `condition` wide condition."""
    if attrs.eps is not None:
        assert attrs.norm_type == "rmsnorm", "check-extensions allows norm_eps on RMSNorm only"
        return f"{EPS_RMSNORM}(config.{width}, config.norm_eps)"
    if attrs.norm_type == "layernorm":
        return f"nn.LayerNorm(config.{width}, bias=False)"
    if attrs.norm_type == "dynamic_tanh" and attrs.init_alpha != 1.0:
        return f"DynamicTanh(config.{width}, init_alpha={attrs.init_alpha!r})"
    if condition:
        return f"{NORM_NAME[attrs.norm_type]}(config.{width}, config.{condition})"
    return f"{NORM_NAME[attrs.norm_type]}(config.{width})"


def norm_class(attrs: NormAttrs) -> str:
    """The class of a norm: "LayerNorm", "RMSNorm", ..., "EpsRMSNorm" under norm_eps."""
    return EPS_RMSNORM if attrs.eps is not None else NORM_NAME[attrs.norm_type]


def norm_import(attrs: NormAttrs) -> Import | None:
    """The runtime import a norm's class needs (None: torch's own LayerNorm)."""
    if attrs.eps is not None:
        return runtime("norms", EPS_RMSNORM)
    return NORM_IMPORTS.get(attrs.norm_type)


def norm_constructor(graph: Graph, norm: Op, width: str = "dim") -> str:
    """A NORM op's constructor; an adaptive norm reads the CONDITION op among its inputs."""
    condition = graph.shared_input(norm, OpKind.CONDITION)
    return norm_init(norm.attrs, width, condition_field(condition))


def condition_field(attrs) -> str:
    """The Config field of the condition an adaptive norm (NormAttrs) or layer scale reads."""
    return CONDITION_WIDTH[attrs.hidden > 0] if attrs is not None else ""


def handed_values(branch: Op) -> str:
    """The block's variable with the first values a value-residual attention sets or mixes in."""
    if branch.kind is OpKind.FEEDFORWARD or not branch.attrs.value_residual:
        return ""
    return VALUES[branch.kind]


def residual_scores(branch: Op) -> str:
    """The block's variable that holds the scores a residual attention adds and replaces."""
    if branch.kind is OpKind.FEEDFORWARD or not branch.attrs.residual:
        return ""
    return "prev_scores" if branch.kind is OpKind.ATTENTION else "prev_cross_scores"


def sublayer_arguments(branch: Op, signature: BlockSignature,
                       run: int | None = None) -> tuple[tuple[str, str], ...]:
    """What the block passes its sublayer after the input, as (keyword or "", value): what the
    sublayer's forward takes (AttentionClass.parameters, cross_attention.py.jinja) from the
    block's own parameters; in a custom layout, the cache of the sublayer's `run`."""
    cache = "cache" in signature
    if branch.kind is OpKind.FEEDFORWARD:  # ff_deep_embed: the gains of its tokens
        return (("", "deep_embed"),) if branch.attrs.deep_embed else ()
    if branch.kind is OpKind.CROSS_ATTENTION:
        found = [("", "context"), ("", "mask"), ("", "context_mask")]
        found += [("", "cross_cache" if run is None else f"cross_caches[{run}]")] if cache else []
        found += [("prev_scores", "prev_cross_scores")] if branch.attrs.residual else []
        found += [("first_values", "first_cross_values")] if branch.attrs.value_residual else []
        return tuple(found + ([("attn_lse", "attn_lse")] if branch.attrs.z_loss else []))
    a = branch.attrs
    found = [("mask", "mask")]
    found += [("attn_mask", "attn_mask")] if "attn_mask" in signature else []
    found += [("rotary", "rotary")] if a.rotary else []
    found += [("polar", "polar")] if a.polar else []
    found += [("bias", "bias")] if a.bias else []
    found += [("memory", "memory")] if a.memory else []
    found += [("cache", "self_cache" if run is None else f"self_caches[{run}]")] if cache else []
    found += [("prev_scores", "prev_scores")] if a.residual else []
    found += [("first_values", "first_values")] if a.value_residual else []
    return tuple(found + ([("attn_lse", "attn_lse")] if a.z_loss else []))


# -- the top-level ops of a model class ---------------------------------------------------------


def top_level_ops(model: Model, prefix: str, signature: BlockSignature, mask: bool = True,
                  generative: bool = False) -> tuple[list, set]:
    """Op contexts for the ops outside the blocks, in forward order, and their imports.
    `mask`: whether the model's forward has a padding mask to give the blocks."""
    cacheable = "cache" in signature
    ops, imports, blocks_seen = [], set(), False
    head = computes_past_embeddings(model)
    for op in model.ops:
        if op.kind is OpKind.OUTPUT and op.attrs.name == "embeddings" and head:
            ops.append(OpContext("ops/return_embeddings.py.jinja",
                                 {"memory": "memory" in signature}))
        elif op.block is not None and not blocks_seen:
            ops.append(blocks_op(model, prefix, signature, mask))
            imports |= {runtime("attention", "prefix_mask")} if model.prefix_lm else set()
            blocks_seen = True
            if model.find(OpKind.SKIP_COMBINE) is not None:  # the blocks' loop joins them
                imports.add(runtime("layers", "SkipCombine"))
        elif op.block is None:
            context = top_level_op(model, op, imports, generative, cacheable)
            ops += [context] if context is not None else []
    return ops, imports


def nested(ops: list[OpContext]) -> list[OpContext]:
    """Each op with its `nesting`: how many loops over the layers' passes it runs in (the ops
    from a loop's start to its end, the end included: its last statement)."""
    depth, result = 0, []
    for op in ops:
        result.append(OpContext(op.template, {**op.args, "nesting": depth}))
        depth += op.args.get("opens", 0) - op.args.get("closes", 0)
    return result


def computes_past_embeddings(model: Model) -> bool:
    """Whether forward goes on past its embeddings (a head, a ViT's pool), so that
    return_embeddings can stop it there. A model whose embeddings are its output has nothing
    to skip."""
    tops = [op for op in model.ops if op.block is None]
    names = [op.attrs.name if op.kind is OpKind.OUTPUT else None for op in tops]
    if "embeddings" not in names:
        return False
    return any(op.kind is not OpKind.OUTPUT for op in tops[names.index("embeddings") + 1:])


def blocks_op(model: Model, prefix: str, signature: BlockSignature, mask: bool) -> OpContext:
    """The loop over the blocks, calling each through the Block's signature: each parameter
    gets the model's variable of the same name, but for those named here."""
    scores = tuple(name.removeprefix("prev_") for name in signature.scores)
    values = {p.name: p.name for p in signature.parameters if p.name != "mask" or mask}
    single = model.attrs.custom_layout  # one block, given the whole cache
    values |= {"x": "h", "cache": "cache" if single else "layer_cache"}
    values |= dict(zip(signature.scores, scores))
    sublayers = sublayer_classes(model, prefix, f"{prefix}Config", signature)
    classes, names = stack_blocks(model, prefix, f"{prefix}Config", signature, sublayers)
    takes_layer = {cls.name: cls.takes_layer for cls in classes}
    return OpContext("ops/blocks.py.jinja", {
        "block": names[0], "cache": "cache" in signature,
        "memory": "memory" in signature, "shift": model.attrs.shift_mem_down > 0,
        "detach": tbptt_steps(model) > 1,
        # the new memories continue those read (TransformerWrapper) or not (the others)
        "extend": model.attrs.type == "TransformerWrapper",
        # each block's class, and whether it is built with its index (per-layer values)
        "blocks": tuple((name, takes_layer[name]) for name in names),
        "single": single, "attn_lse": "attn_lse" in signature, "hiddens": "hiddens" in signature,
        "deep_embeds": "deep_embed" in signature,
        # no self-attention cache counts the positions: the model's cache does
        "counts": "cache" in signature and not model.layer_ops(OpKind.ATTENTION),
        "prefix": model.prefix_lm, "forgetful": forgets(model),
        "hiddens_reader": "LayerMix" if model.find(OpKind.LAYER_MIX) is not None else "LayerAttention",
        "skips": len([op for op in model.ops if op.kind is OpKind.SKIP_COMBINE]),
        "tied": any(op.weights_of is not None for op in model.ops),
        "call": functools.partial(block_call, ("h", *scores), signature.arguments(values)),
        "scores": scores, "values": tuple(name for name in scores if name in VALUES.values()),
        "residual": tuple(name for name in scores if name in RESIDUAL_SCORES),
        **depth_scaled_outputs(model)})


# the attribute of each sublayer's output projection
OUTPUT_PROJECTIONS = {OpKind.ATTENTION: "to_out", OpKind.CROSS_ATTENTION: "to_out",
                      OpKind.FEEDFORWARD: "proj_out"}


def depth_scaled_outputs(model: Model) -> dict:
    """What reset_parameters draws depth-scaled (depth_scale_residual: true): the output
    projections of every block's sublayers, by their block's depth (`depth_roles`), or in one
    custom layout's block each at its own (`depth_pairs`: (depth, path))."""
    ops = [op for op in model.ops if op.kind in OUTPUT_PROJECTIONS and op.weights_of is None
           and op.attrs.output_init_depth]
    if not ops:
        return {"reset": False, "depth_roles": "", "depth_pairs": ""}
    if model.attrs.custom_layout:
        pairs = sorted({(op.attrs.output_init_depth,
                         f"self.block.{op.role}.{OUTPUT_PROJECTIONS[op.kind]}") for op in ops})
        return {"reset": True, "depth_roles": "",
                "depth_pairs": for_header("depth, out", [f"({d}, {path})" for d, path in pairs], 8)}
    paths = [f"block.{op.role}.{OUTPUT_PROJECTIONS[op.kind]}" for op in ops if op.block == 0]
    return {"reset": True, "depth_roles": for_header("out", paths, 12), "depth_pairs": ""}


def for_header(targets: str, items: list[str], indent: int) -> str:
    """`for <targets> in <a tuple of the items>:` at `indent`, one item a line where the line
    would pass 100 columns (as ruff formats it)."""
    written = f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    line = f"for {targets} in {written}:"
    if indent + len(line) <= 100:
        return line
    inner = "".join(f"\n{' ' * (indent + 4)}{item}," for item in items)
    return f"for {targets} in ({inner}\n{' ' * indent}):"


def block_call(targets: tuple[str, ...], arguments: tuple[tuple[str, str], ...], callee: str,
               indent: int) -> str:
    """`h, <what the blocks hand on> = <callee>(<arguments>)`, wrapped as ruff would."""
    written = [f"{keyword}={value}" if keyword else value for keyword, value in arguments]
    return call_statement(f"{', '.join(targets)} = ", callee, written, indent)


def top_level_op(model: Model, op: Op, imports: set, generative: bool,
                 cacheable: bool) -> OpContext | None:
    """The op context of a model-level op, or None for ops that render as part of another
    (the embedding sum, mask padding, inputs) or not at all."""
    attrs, kind = op.attrs, op.kind
    width, symbol = embedding_width(model)
    prefixed = model.find(OpKind.PREPEND) is not None  # its cache may hold a prefix
    keys = ("past" if prefixed else "cached") + " + h.shape[1]" if cacheable else "h.shape[1]"
    keys = f"remembered + {keys}" if model.recurrent else keys
    if kind is OpKind.TOKEN_EMBEDDING:
        if attrs.l2norm:
            imports.add(FUNCTIONAL)
        numbers = attrs.numerical_token_id is not None
        if numbers:
            imports.add(TORCH)  # torch.where
        return OpContext("ops/token_embedding.py.jinja",
                         {"width": width, "symbol": symbol, "l2norm": attrs.l2norm,
                          "reset": not numbers, "numbers": numbers})
    if kind is OpKind.POSITION_EMBEDDING and attrs.scheme != "patches":  # ViT's: with patches
        return position_op(op, width, symbol, imports, generative, cacheable)
    if kind is OpKind.PATCH_EMBEDDING:
        imports.add(TORCH)
        return OpContext("ops/patch_embedding.py.jinja")
    if kind is OpKind.NORM:
        norm_width = width if op.role == "post_emb_norm" else "dim"
        if norm_import(attrs) is not None:
            imports.add(norm_import(attrs))
        return OpContext("ops/norm.py.jinja", {
            "name": op.role, "init": norm_constructor(model.graph, op, norm_width),
            "condition": bool(attrs.condition)})
    if kind is OpKind.DROPOUT:
        return OpContext("ops/dropout.py.jinja", {"name": op.role})
    if kind is OpKind.OUTPUT and attrs.name == "initial_embeddings":
        return OpContext("ops/initial_embeddings.py.jinja", {"shape": embedding_shape(model)})
    if kind is OpKind.NEXT_EMBED:  # its forward is the logits op's: returned beside the logits
        return OpContext("ops/next_embed.py.jinja")
    if kind is OpKind.LOOP:  # the start opens the loop over the passes, the end closes it
        imports |= {runtime("layers", "recycle_count")} if attrs.recycled and not attrs.end else set()
        logits = model.find(OpKind.LOGITS)
        loss = loop_loss(model) and ("h @ self.token_emb.weight.t() * self.config.tie_embedding_scale"
                                     if logits.attrs.tied else "self.to_logits(h)")
        exits = exits_early(model)
        imports |= {runtime("looped", "EarlyExit")} if exits and not attrs.end else set()
        return OpContext("ops/loop.py.jinja", {"opens": not attrs.end, "closes": attrs.end,
                                               "recycled": attrs.recycled, "loss": loss,
                                               "exits": exits})
    if kind is OpKind.GRADIENT_SCALE:
        return OpContext("ops/gradient_scale.py.jinja", {"name": op.role})
    if kind is OpKind.NAMED_EMBEDDINGS:
        return OpContext("ops/named_embeddings.py.jinja", {"width": width, "symbol": symbol})
    if kind is OpKind.DEEP_EMBED:
        imports.add(TORCH)
        return OpContext("ops/deep_embed.py.jinja")
    if kind is OpKind.SOFTCLAMP:
        imports.add(runtime("activations", "softclamp"))
        return OpContext("ops/softclamp.py.jinja", {"value": attrs.value})
    if kind is OpKind.PROJECT and op.role == "to_numerical_output":
        return OpContext("ops/numerical_head.py.jinja", {"memory": model.recurrent})
    if kind is OpKind.PROJECT and op.role in ("to_mixture", "combine_mixture"):
        return None  # the logits op holds and applies a mixture of softmaxes' maps
    if kind is OpKind.PROJECT:
        if attrs.probabilistic:
            imports.add(TORCH)  # torch.stack of the means and variances
        return project_op(op, model.recurrent, sequence_axes(model))
    if kind is OpKind.MEMORY_TOKENS:
        imports |= {TORCH} | ({FUNCTIONAL} if not attrs.at_end else set())
        count = "num_cls_tokens" if op.role == "cls_token" else f"num_{op.role}"
        return OpContext("ops/memory_tokens.py.jinja", {
            "name": op.role, "count": count, "at_end": attrs.at_end,
            "every": attrs.every is not None})
    if kind is OpKind.PREPEND:
        imports |= {TORCH, FUNCTIONAL}
        if generative:
            imports.add(runtime("layers", "padding_first"))
        return OpContext("ops/prepend.py.jinja", {"cache": cacheable, "generative": generative})
    if kind is OpKind.STRIP:
        count = "num_register_tokens" if attrs.at_end else "num_memory_tokens"
        rest = "N + T" if model.find(OpKind.MEMORY_TOKENS, "cls_token") else "T"
        return OpContext("ops/strip.py.jinja", {"count": count, "at_end": attrs.at_end, "rest": rest,
                                                "every": attrs.every is not None})
    if kind is OpKind.POOL and attrs.masked:  # (a ViT's pools in its head: pool_head)
        imports.add(runtime("layers", "sequence_mean"))
        return OpContext("ops/mean_pool.py.jinja", {"memory": mask_holds_memory(model)})
    if kind is OpKind.POOL and attrs.first:
        return OpContext("ops/cls_pool.py.jinja", {"count": attrs.first})
    if kind is OpKind.ATTENTION_POOL:
        imports.add(runtime("pooling", "AttentionPool"))
        return OpContext("ops/attention_pool.py.jinja", {
            "memory": mask_holds_memory(model), "shape": pooled_tokens_shape(model),
            "blocks": attrs.depth > 1, "width": pooled_width(model)})
    if kind is OpKind.LOGITS:
        imports |= {FUNCTIONAL} if attrs.sigsoftmax else set()  # F.logsigmoid
        numbers = model.numerical_token_id is not None
        vocabulary = model.find(OpKind.TOKEN_EMBEDDING).attrs.num_tokens
        width = "num_tokens" if attrs.num_tokens == vocabulary else "logits_dim"
        return OpContext("ops/logits.py.jinja", {"tied": attrs.tied, "bias": attrs.bias,
                                                 "shape": logits_shape(model),
                                                 "mixture": mixture_shapes(model),
                                                 "width": width, "numbers": numbers,
                                                 "squeeze": attrs.squeeze,
                                                 "heads": attrs.heads,
                                                 "next_embed": predicts_next_embed(model),
                                                 "sigsoftmax": attrs.sigsoftmax,
                                                 "memory": model.recurrent,
                                                 "attn_lse": z_loss(model),
                                                 "loops": loop_loss(model)})
    if kind is OpKind.ROTARY:
        imports.add(runtime("positions", "RotaryEmbedding"))
        return OpContext("ops/rotary.py.jinja", {"attrs": attrs, "keys": keys,
                                                 "memory": model.recurrent})
    if kind is OpKind.POLAR:
        imports.add(runtime("positions", "PolarEmbedding"))
        return OpContext("ops/polar.py.jinja", {"attrs": attrs, "keys": keys})
    if kind is OpKind.STREAMS:  # hyper-connections: the residual streams made, then summed
        imports |= set() if attrs.merge or attrs.streams == 1 else {TORCH}
        return OpContext("ops/streams.py.jinja", {"merge": attrs.merge, "streams": attrs.streams})
    if kind is OpKind.REINJECT:
        imports.add(runtime("layers", "Reinjection"))
        return OpContext("ops/reinject.py.jinja", {"gated": attrs.gated})
    if kind is OpKind.CONDITION:
        return OpContext("ops/condition.py.jinja", {"mlp": attrs.hidden > 0})
    if kind is OpKind.POSITION_BIAS:
        imports.add(runtime("biases", POSITION_BIASES[attrs.scheme]))
        return OpContext("ops/position_bias.py.jinja", {"attrs": attrs, "keys": keys,
                                                        "memory": model.recurrent})
    return None


def position_op(op: Op, width: str, symbol: str, imports: set, generative: bool,
                cacheable: bool) -> OpContext:
    attrs = op.attrs
    imports.add(TORCH)  # torch.arange for the positions
    if attrs.scheme == "scaled_sinusoidal":
        imports.add(runtime("positions", "ScaledSinusoidalEmbedding"))
    if attrs.l2norm:
        imports.add(FUNCTIONAL)
    return OpContext("ops/position_embedding.py.jinja", {
        "scheme": attrs.scheme, "width": width, "symbol": symbol, "l2norm": attrs.l2norm,
        "reset": attrs.scheme == "learned" and attrs.l2norm, "generative": generative,
        "cache": cacheable})


def project_op(op: Op, memory: bool = False, axes: str = "T, ") -> OpContext:
    """A linear map: the embedding projection, a continuous model's projections, ViT's head.
    `memory`: the model returns its memories with its outputs (Transformer-XL); `axes`: the
    output's between the batch and the features (sequence_axes)."""
    fields = {"project_emb": ("emb_dim", "dim"), "project_in": ("dim_in", "dim"),
              "project_out": ("dim", "dim_out"), "mlp_head": ("dim", "num_classes")}
    dim_in, dim_out = fields[op.role]
    template = "ops/project_head.py.jinja" if op.role in ("project_out", "mlp_head") else "ops/project.py.jinja"
    return OpContext(template, {"name": op.role, "dim_in": dim_in, "dim_out": dim_out,
                                "bias": op.attrs.bias, "probabilistic": op.attrs.probabilistic,
                                "memory": memory, "axes": axes})


# -- configs ------------------------------------------------------------------------------------


def fields_from(rows) -> tuple[ConfigField, ...]:
    """ConfigFields from (used, name, type, value, comment) rows, keeping the used ones."""
    return tuple(ConfigField(name, type_, repr(value), comment)
                 for used, name, type_, value, comment in rows if used)


def stack_config(model: Model) -> tuple[ConfigField, ...]:
    """The Config fields of a layer stack, each from the payload of the ops that read it."""
    attn, cross = model.shared(OpKind.ATTENTION), model.shared(OpKind.CROSS_ATTENTION)
    rotary = model.shared(OpKind.ROTARY)
    bias, condition = model.shared(OpKind.POSITION_BIAS), model.shared(OpKind.CONDITION)
    (drops, separate_drops), (shifts, separate_shifts) = residual_values(model).values()
    heads = next((a.heads for a in (attn, cross, bias) if a is not None), None)
    dim_head = next((a.dim_head for a in (attn, rotary, model.shared(OpKind.POLAR)) if a is not None),
                    bias.dim_head if bias is not None and bias.scheme == "t5" else None)
    context = cross.dim_context if cross is not None else context_width(model)
    scheme = bias.scheme if bias else ""
    norm_eps = next((op.attrs.eps for op in model.ops
                     if op.kind is OpKind.NORM and op.attrs.eps is not None), None)
    return fields_from([
        (True, "dim", "int", model.dim, ""),
        (not model.attrs.custom_layout, "depth", "int", model.depth, ""),  # else one block
        (norm_eps is not None, "norm_eps", "float", norm_eps,
         "inside the RMSNorms' root (an xtc extension)"),
        (heads is not None, "heads", "int", heads, ""),
        (dim_head is not None, "dim_head", "int", dim_head, ""),
        layer_row(model, OpKind.FEEDFORWARD, "ff_inner_dim", "int", "feedforward width"),
        layer_row(model, OpKind.ATTENTION, "attn_dropout", "float", "on attention weights"),
        layer_row(model, OpKind.ATTENTION, "attn_sublayer_dropout", "float",
                  "on the attention branch's output"),
        layer_row(model, OpKind.FEEDFORWARD, "ff_dropout", "float", "after the activation"),
        layer_row(model, OpKind.FEEDFORWARD, "ff_sublayer_dropout", "float",
                  "on the feedforward branch's output"),
        layer_row(model, OpKind.FEEDFORWARD, "ff_softclamp_value", "float",
                  "feedforward pre-activations soft-capped at +-this"),
        layer_row(model, OpKind.FEEDFORWARD, "ff_glu_gate_softclamp_value", "float",
                  "the GLU gate's linear factor soft-capped at +-this"),
        layer_row(model, OpKind.FEEDFORWARD, "ff_glu_up_softclamp_value", "float",
                  "the GLU's up half soft-capped at +-this"),
        (bool(drops), "layer_dropout", "tuple[float, ...]" if separate_drops else "float", drops,
         "stochastic depth" + (", per sublayer" if separate_drops else "")),
        (attn is not None and attn.num_mem_kv > 0, "num_mem_kv", "int", attn and attn.num_mem_kv,
         "persistent memory slots"),
        (attn is not None and attn.kv_heads > 0, "kv_heads", "int", attn and attn.kv_heads,
         "key / value heads (grouped-query attention)"),
        (attn is not None and attn.value_dim_head > 0, "value_dim_head", "int",
         attn and attn.value_dim_head, ""),
        layer_row(model, OpKind.ATTENTION, "dim_latent_q", "int",
                  "queries' latent width (multi-head latent attention)"),
        layer_row(model, OpKind.ATTENTION, "dim_latent_kv", "int",
                  "keys' and values' latent width, what the kv cache keeps"),
        (attn is not None and attn.qk_norm and attn.qk_norm_groups > 1, "qk_norm_groups", "int",
         attn and attn.qk_norm_groups, ""),
        (attn is not None and attn.sparse_topk > 0, "sparse_topk", "int", attn and attn.sparse_topk,
         "scores kept per row"),
        (attn is not None and attn.softclamp_logits, "logit_softclamp_value", "float",
         attn and float(attn.logit_softclamp_value), "attention scores soft-capped at +-this"),
        (attn is not None and attn.use_cope, "cope_max_pos", "int", attn and attn.cope_max_pos,
         "CoPE's positions: 0 to this - 1"),
        (attn is not None and attn.gumbel_softmax, "gumbel_softmax_temp", "float",
         attn and float(attn.gumbel_softmax_temp), "Gumbel-softmax temperature"),
        (attn is not None and attn.laser, "laser_softclamp_value", "float",
         attn and float(attn.laser_softclamp_value), "LASER's values soft-capped at +-this"),
        layer_row(model, OpKind.ATTENTION, "qk_norm_scale", "float", "attention scale under qk-norm"),
        window_row(model),
        (attn is not None and attn.use_rel_proj_pos_bias, "rel_proj_num_distance_basis", "int",
         attn and attn.rel_proj_num_distance_basis, "learned distance curves per head"),
        (attn is not None and attn.use_rel_proj_pos_bias, "rel_proj_max_dist", "int",
         attn and attn.rel_proj_max_dist, "the distances the curves span"),
        (attn is not None and attn.data_dependent_alibi_per_row, "forget_gate_dim_head", "int",
         attn and attn.data_dependent_alibi_per_row_dim_head, "the forget gates' query / key width"),
        (attn is not None and attn.data_dependent_alibi and not attn.data_dependent_alibi_per_row,
         "forget_bias_init", "float", attn and attn.forget_bias_init, "the forget gates' initial bias"),
        (attn is not None and attn.data_dependent_alibi, "forget_post_log_scale", "float",
         attn and attn.forget_post_log_scale, "scales the log forget gates"),
        (attn is not None and attn.gate_values_rank > 0, "gate_values_rank", "int",
         attn and attn.gate_values_rank, "the low-rank input gate's width"),
        (attn is not None and attn.output_gate_rank > 0, "output_gate_rank", "int",
         attn and attn.output_gate_rank, "the low-rank output gate's width"),
        (condition is not None, "dim_condition", "int", condition and condition.dim,
         "the condition of the adaptive norms / layer scales"),
        (condition is not None and condition.hidden > 0, "dim_condition_hidden", "int",
         condition and condition.hidden, "what the adaptive modules read: the condition's MLP"),
        (context is not None, "dim_context", "int", context, "cross-attention"),
        (cross is not None, "cross_dim_head", "int", cross and cross.dim_head, ""),
        (cross is not None and cross.tokens_dropout > 0, "cross_attn_tokens_dropout", "float",
         cross and cross.tokens_dropout, "context tokens dropped at each cross-attention"),
        layer_row(model, OpKind.CROSS_ATTENTION, "cross_attn_dropout", "float", ""),
        layer_row(model, OpKind.CROSS_ATTENTION, "cross_attn_sublayer_dropout", "float",
                  "on the cross-attention branch's output"),
        (cross is not None and cross.gumbel_softmax, "cross_gumbel_softmax_temp", "float",
         cross and float(cross.gumbel_softmax_temp), ""),
        (cross is not None and cross.num_mem_kv > 0, "cross_num_mem_kv", "int",
         cross and cross.num_mem_kv, ""),
        (cross is not None and cross.laser, "cross_laser_softclamp_value", "float",
         cross and float(cross.laser_softclamp_value), "LASER's values soft-capped at +-this"),
        (cross is not None and cross.gate_values_rank > 0, "cross_gate_values_rank", "int",
         cross and cross.gate_values_rank, ""),
        (cross is not None and cross.output_gate_rank > 0, "cross_output_gate_rank", "int",
         cross and cross.output_gate_rank, ""),
        (rotary is not None, "rotary_dim", "int", rotary and rotary.dim, "rotated features per head"),
        (rotary is not None and rotary.interpolation_factor != 1.0, "rotary_interpolation_factor",
         "float", rotary and rotary.interpolation_factor, ""),
        (rotary is not None and rotary.base_rescale_factor != 1.0, "rotary_base_rescale_factor",
         "float", rotary and rotary.base_rescale_factor, ""),
        (rotary is not None and rotary.xpos_scale_base is not None, "rotary_xpos_scale_base",
         "float", rotary and rotary.xpos_scale_base, "xPos"),
        layer_row(model, OpKind.ATTENTION, "rotate_num_heads", "int", "heads that get rotary"),
        (scheme == "alibi", "alibi_heads", "int", bias and bias.alibi_heads, "heads with ALiBi"),
        (scheme == "alibi" and bool(bias.alibi_slopes), "alibi_slopes", "tuple[float, ...]",
         bias and bias.alibi_slopes, "one per ALiBi head (rel_pos_kwargs)"),
        (scheme == "t5", "rel_pos_num_buckets", "int", bias and bias.num_buckets, ""),
        (scheme == "t5", "rel_pos_max_distance", "int", bias and bias.max_distance, ""),
        (scheme == "dynamic", "dynamic_pos_bias_mlp_depth", "int", bias and bias.mlp_depth, ""),
        (scheme == "dynamic", "dynamic_pos_bias_log_distance", "bool", bias and bias.log_distance,
         ""),
        (bool(shifts), "token_shifts",
         "tuple[tuple[int, ...], ...]" if separate_shifts else "tuple[int, ...]", shifts,
         "shift_tokens, per sublayer" if separate_shifts else "shift of each feature chunk (shift_tokens)"),
    ])


def context_width(model: Model) -> int | None:
    """The width of a context the model takes without cross-attending to it, if it takes one."""
    context = context_input(model)
    return None if context is None else context.attrs.shape[-1]


def z_loss(model: Model) -> bool:
    """Whether the model's loss adds the attention z-loss (its blocks sum log-sum-exps)."""
    loss = model.find(OpKind.LOSS)
    return loss is not None and loss.attrs.add_attn_z_loss


def forgets(model: Model) -> bool:
    """Whether the model trains with forgetful causal masking (its loss masks random keys)."""
    loss = model.find(OpKind.LOSS)
    return loss is not None and loss.attrs.mask_prob > 0


def wrapper_config(model: Model) -> tuple[ConfigField, ...]:
    embedding, logits = model.find(OpKind.TOKEN_EMBEDDING).attrs, model.find(OpKind.LOGITS)
    tied = logits is not None and logits.attrs.tied
    width = logits.attrs.num_tokens if logits is not None else embedding.num_tokens
    mixture = logits.attrs.mixture if logits is not None else 0
    loss = model.find(OpKind.LOSS)
    return fields_from([
        (True, "num_tokens", "int", embedding.num_tokens, ""),
        (width != embedding.num_tokens, "logits_dim", "int", width, "logits per position"),
        (mixture > 0, "mixture_of_softmax_k", "int", mixture, "softmaxes mixed for the output"),
        (output_heads(model) > 1, "num_output_heads", "int", output_heads(model),
         "heads, each its own logits"),
        (True, "max_seq_len", "int", model.attrs.max_seq_len, ""),
        (embedding.numerical_token_id is not None, "numerical_token_id", "int",
         embedding.numerical_token_id, "its embedding is scaled by its number"),
        (embedding.dim != model.dim, "emb_dim", "int", embedding.dim, "embedding width"),
        (dropout(model, "emb_dropout") > 0, "emb_dropout", "float", dropout(model, "emb_dropout"), ""),
        (named_embeddings(model), "embed_num_tokens", "tuple[tuple[str, int], ...]",
         named_embeddings(model) and model.find(OpKind.NAMED_EMBEDDINGS).attrs.sizes,
         "further embeddings: (name, vocabulary size)"),
        (gradient_share(model) < 1, "emb_frac_gradient", "float", gradient_share(model),
         "share of the gradient the embeddings get"),
        (loop_limit(model, True) is not None, "train_max_recycle_steps", "int",
         loop_limit(model, True), "passes drawn in training without recycle_steps: 1 to this"),
        (loop_limit(model, False) is not None, "max_looped_steps", "int", loop_limit(model, False),
         "loops without looped_steps"),
        (count(model, OpKind.MEMORY_TOKENS, "memory_tokens") > 0, "num_memory_tokens", "int",
         count(model, OpKind.MEMORY_TOKENS, "memory_tokens"), ""),
        (count(model, OpKind.MEMORY_TOKENS, "cls_token") > 0, "num_cls_tokens", "int",
         count(model, OpKind.MEMORY_TOKENS, "cls_token"), "learned tokens whose outputs are pooled"),
        (memory_every(model) is not None, "memory_tokens_interspersed_every", "int",
         memory_every(model), "positions between memory tokens"),
        (tied, "tie_embedding_scale", "float", tied and logits.attrs.scale, ""),
        (model.recurrent, "max_mem_len", "int", model.attrs.max_mem_len,
         "positions each layer remembers (Transformer-XL)"),
        (model.recurrent and model.attrs.shift_mem_down > 0, "shift_mem_down", "int",
         model.attrs.shift_mem_down, "block l reads block l + this's memory"),
        *loss_config(loss.attrs if loss is not None else None,
                     numbers=embedding.numerical_token_id is not None,
                     looped=loop_limit(model, False) is not None,
                     next_embed=predicts_next_embed(model)),
        *pool_config(model),
    ])


def pool_config(model: Model) -> list[tuple]:
    """The Config rows of an attention pool; its heads and head width are the layers' (rows of
    their own only where the layers have none: no attention to read them from)."""
    pool = model.find(OpKind.ATTENTION_POOL)
    if pool is None:
        return []
    a, stack = pool.attrs, {field.name for field in stack_config(model)}
    return [
        (True, "num_pooled_tokens", "int", a.queries, "learned queries of the attention pool"),
        (True, "attn_pool_depth", "int", a.depth, "its blocks (1: one cross-attention)"),
        (a.dim != model.dim, "dim_pooled_tokens", "int", a.dim, "width of each pooled token"),
        ("heads" not in stack, "heads", "int", a.heads, ""),
        ("dim_head" not in stack, "dim_head", "int", a.dim_head, ""),
    ]


def loss_config(loss: LossAttrs | None, numbers: bool = False, looped: bool = False,
                next_embed: bool = False) -> list[tuple]:
    """The Config rows of what `loss` reads: the training wrapper's options (an xVal model's
    loss feeds its inputs as they are: no pad_value)."""
    if loss is None:
        return []
    return [
        (True, "ignore_index", "int", loss.ignore_index, "target id the loss skips"),
        (not numbers, "pad_value", "int", loss.pad_value, "input id fed in place of ignore_index"),
        (loss.mask_prob > 0, "mask_prob", "float", loss.mask_prob,
         "share of keys each row forgets in training"),
        (numbers, "numerical_loss_weight", "float", float(loss.numerical_loss_weight),
         "weight of the numbers' squared error"),
        (looped, "looped_loss_threshold_exit", "float", float(loss.looped_loss_threshold_exit),
         "a loop should lower the loss by this much, or exit"),
        (looped, "looped_loss_slope", "float", float(loss.looped_loss_slope),
         "sharpness of the exit gate's soft target"),
        (looped, "looped_exit_loss_weight", "float", float(loss.looped_exit_loss_weight),
         "weight of the exit gate's loss"),
        (loss.tbptt_steps > 1, "tbptt_steps", "int", loss.tbptt_steps,
         "segments the memories carry their gradient across"),
        (next_embed, "next_embed_loss_weight", "float", float(loss.next_embed_loss_weight),
         "weight of the next embedding's mean absolute error"),
    ]


def vit_config(model: Model) -> tuple[ConfigField, ...]:
    patches, classes = model.find(OpKind.PATCH_EMBEDDING).attrs, num_classes(model)
    registers = count(model, OpKind.MEMORY_TOKENS)
    return fields_from([
        (True, "image_size", "int", image_size(model), ""),
        (True, "patch_size", "int", patches.patch_size, ""),
        (True, "channels", "int", patches.channels, ""),
        (classes is not None, "num_classes", "int", classes, ""),
        (True, "num_patches", "int", num_patches(model), "(image_size // patch_size) ** 2"),
        (True, "patch_dim", "int", patches.patch_dim, "channels * patch_size ** 2"),
        (dropout(model, "emb_dropout") > 0, "emb_dropout", "float", dropout(model, "emb_dropout"), ""),
        (registers > 0, "num_register_tokens", "int", registers, ""),
    ])


def continuous_config(model: Model) -> tuple[ConfigField, ...]:
    dim_in, dim_out = continuous_widths(model)
    memory, max_seq_len = count(model, OpKind.MEMORY_TOKENS), model.attrs.max_seq_len
    return fields_from([
        (max_seq_len is not None, "max_seq_len", "int", max_seq_len, ""),
        (dim_in is not None, "dim_in", "int", dim_in, ""),
        (dim_out is not None, "dim_out", "int", dim_out, ""),
        (dropout(model, "emb_dropout") > 0, "emb_dropout", "float", dropout(model, "emb_dropout"), ""),
        (memory > 0, "num_memory_tokens", "int", memory, ""),
        (model.recurrent, "max_mem_len", "int", model.attrs.max_mem_len,
         "positions each layer remembers (Transformer-XL)"),
    ])


# -- composites ---------------------------------------------------------------------------------

def lower_composite(graph: Graph, class_name: str) -> ModuleContext:
    """Each component lowered under its own prefix, then one class whose methods are the wiring
    (docs/spec-language.md): unfed primary inputs positional, every other argument keyword-only
    as `<component>_<arg>`, producers called with return_embeddings=True. The graph's feeds say
    what each fed argument gets (build_ir: a context's padding mask travels with it). Where the
    last component generates, the class has its generate and loss too: the producers run as in
    forward, then the last component's method."""
    composite = graph.models[""]
    config_name, parts = lower_parts(graph, class_name)
    connections = [feed for feed in composite.feeds if feed.output == "embeddings"]
    producers = {feed.source for feed in connections}
    order = build_order(graph)
    sink = next(name for name in order if name not in producers)
    wiring = Wiring(composite.components, order, sink, parts,
                    {(feed.target, feed.argument): fed_value(feed) for feed in composite.feeds})
    methods = [wiring.method("forward", parts[sink].parameters, composite_doc(order, sink))]
    last = parts[sink]
    if last.loss:
        methods.append(wiring.method("loss", last.loss, (
            f"{sink}'s loss, after {', '.join(order[:-1])} as in forward.",)))
    if last.generate:
        methods.append(wiring.method("generate", last.generate, docstring_lines(
            f"{sink}'s generate, after {', '.join(order[:-1])} ran once as in forward: "
            f"{sink} decodes with its kv cache from what they gave it.")))
    configs = tuple(config for part in parts.values() for config in part.configs)
    top_config = ConfigClass(config_name, tuple(
        nested_config(name, part.config) for name, part in parts.items()))
    arrows = tuple(f"{c.source} -> {c.target}.{c.argument}" for c in connections)
    top = CompositeClass(class_name, top_config.name,
                         tuple((name, part.class_name) for name, part in parts.items()),
                         tuple(methods), arrows, sink, loss_is_forward=last.forward_is_loss)
    classes = tuple(cls for part in parts.values() for cls in part.classes)
    summary = f"a composite of {len(parts)} models: {', '.join(composite.components)}."
    return module_context(graph, class_name, summary, "; ".join(arrows) or "one component",
                          (*configs, top_config), (*classes, top))


@dataclass(frozen=True)
class Wiring:
    """How a composite calls its components: `method` writes one of its methods."""

    components: tuple[str, ...]  # as written
    order: list[str]  # producers first
    sink: str
    parts: dict
    fed: dict  # (component, argument) -> what it gets

    def method(self, method: str, sink_parameters: tuple[Parameter, ...],
               doc: tuple[str, ...]) -> CompositeMethod:
        """The composite's `method`: producers called as in forward, then the sink's `method`
        (its parameters `sink_parameters`). Sampling options of generate keep their names."""
        signatures = {name: sink_parameters if name == self.sink else self.parts[name].parameters
                      for name in self.components}
        primaries = [(name, p) for name in self.components for p in leading(signatures[name])]
        counts = Counter(p.name for _, p in primaries)
        positional = {(name, p.name): p.name if counts[p.name] == 1 else f"{name}_{p.name}"
                      for name, p in primaries}
        keywords, calls = [], []
        for name in self.order:
            arguments = []
            for parameter in signatures[name]:
                if parameter is KEYWORD_ONLY:
                    continue
                value = self.value(name, parameter, positional, keywords, method)
                arguments.append(value if (name, parameter.name) in positional
                                 else f"{parameter.name}={value}")
            target = name if name != self.sink or method == "forward" else f"{name}.{method}"
            calls.append(composite_call(target, name, arguments, name == self.sink,
                                        indent=12 if method == "generate" else 8))
        unfed = [replace(p, name=positional[name, p.name]) for name, p in primaries
                 if (name, p.name) not in self.fed]
        parameters = (*unfed, *([KEYWORD_ONLY] if keywords else []), *keywords)
        return CompositeMethod(method, parameters, tuple(calls), doc,
                               returns_of(method, self.parts[self.sink].numbers))

    def value(self, name: str, parameter: Parameter, positional: dict,
              keywords: list[Parameter], method: str) -> str:
        """What a component's argument gets: a producer's output, a composite input, or True
        for a producer's return_embeddings. Any other becomes the composite's keyword argument
        `<component>_<arg>` (a sampling option of generate: `<arg>`), added to `keywords`."""
        key = (name, parameter.name)
        if key in self.fed:
            return self.fed[key]
        if key in positional:
            return positional[key]
        if parameter.name == "return_embeddings" and name != self.sink:
            return "True"
        own = method == "generate" and name == self.sink and parameter in (*SAMPLING, GENERATOR)
        keywords.append(parameter if own else replace(parameter, name=f"{name}_{parameter.name}"))
        return keywords[-1].name


def leading(parameters: tuple[Parameter, ...]) -> list[Parameter]:
    """The parameters before the keyword-only marker: a method's primary inputs."""
    return list(itertools.takewhile(lambda p: p is not KEYWORD_ONLY, parameters))


def build_order(graph: Graph) -> list[str]:
    """The components in the order their ops are built: producers before consumers."""
    return list(dict.fromkeys(op.component for op in graph.ops()))


def fed_value(feed: Feed) -> str:
    """What a fed argument gets: the producer's output, or the composite's keyword argument
    that is the producer's mask."""
    return f"{feed.source}_mask" if feed.output == "mask" else output_name(feed.source)


def output_name(component: str) -> str:
    """The local that holds a producer's output. Not the component's bare name, which may be
    `self` or the name of an input (`x`); no forward argument ends in `_out`, so no
    `<component>_<arg>` keyword can be named like it either."""
    return f"{component}_out"


def composite_doc(order: list[str], sink: str) -> tuple[str, ...]:
    """The forward docstring's lines: what runs, what is returned, whose each argument is."""
    text = (f"Runs {', then '.join(order)}, and returns {sink}'s output. An argument "
            "`<component>_<name>` is that component's `<name>`; one without a prefix belongs to "
            "the one component that takes it.")
    return docstring_lines(text)


def docstring_lines(text: str) -> tuple[str, ...]:
    """A method's docstring wrapped to 100 columns: indented 8, beside the quotes."""
    return tuple(textwrap.wrap(text, width=100 - 8 - 3))


def composite_call(target: str, name: str, arguments: list[str], sink: bool, indent: int) -> str:
    """`self.<target>(...)`, returned by the sink, else kept in the producer's output."""
    head = "return " if sink else f"{output_name(name)} = "
    return call_statement(head, f"self.{target}", arguments, indent)
