"""The models of an IR graph, each seen whole: its record, its ops, and the rules that lowering
and the views share (whether it generates, keeps a kv cache, how long an input it accepts).

A model is the ops of one scope and the graph's `ModelAttrs` for that scope (compiler/ir.py).
Everything here reads the IR only, so a graph pass that changes an op changes what follows
from it.

>>> import xtc
>>> from xtc.compiler import compile_graph
>>> model = Model(compile_graph(xtc.load_spec("examples/gpt.yaml")), "")
>>> (model.attrs.type, model.depth, model.dim, model.generative, model.cacheable, model.length_limit)
('TransformerWrapper', 6, 512, True, True, 1024)
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cached_property

from .ir import Graph, ModelAttrs, Op, OpKind

# The payload fields that per-layer values (spec/support.py's PER_LAYER_KEYWORDS) may set
# differently in each layer of a stack; every other field is the same in all of them.
PER_LAYER_FIELDS = {
    OpKind.ATTENTION: ("dropout", "qk_norm_scale", "head_scale", "gate_values", "sublayer_dropout",
                       "max_attend_past", "dim_latent_q", "dim_latent_kv", "latent_rope_subheads",
                       "rotate_heads", "fused_qkv",  # (a latent layer's projections are not fused)
                       "value_residual",  # (the first layer has no learned mix)
                       "qkv_views",  # (integrate_layers: the first self-attention reads one input)
                       "output_init_depth"),  # (depth_scale_residual: true)
    OpKind.CROSS_ATTENTION: ("dropout", "sublayer_dropout", "output_init_depth"),
    OpKind.FEEDFORWARD: ("inner_dim", "dropout", "glu", "post_act_ln", "sublayer_dropout",
                         "output_init_depth"),
    OpKind.RESIDUAL: ("layer_dropout", "token_shifts"),
}


class Model:
    """The model a graph holds in `scope`."""

    def __init__(self, graph: Graph, scope: str):
        self.graph, self.scope = graph, scope
        self.attrs: ModelAttrs = graph.models[scope]

    @cached_property
    def ops(self) -> list[Op]:
        return [op for op in self.graph.ops() if op.scope == self.scope]

    def find(self, kind: OpKind, role: str | None = None) -> Op | None:
        """The model's first op of a kind (and role), or None."""
        return next((op for op in self.ops if op.kind is kind and role in (None, op.role)), None)

    def shared(self, kind: OpKind):
        """The first payload of a kind, or None where there is none. The layers of a stack agree
        on all its fields but PER_LAYER_FIELDS (an internal invariant): read those per layer,
        from `layer_ops`."""
        same = [op.attrs for op in self.ops if op.kind is kind]
        if not same:
            return None
        blank = dict.fromkeys(PER_LAYER_FIELDS.get(kind, ()), None)
        assert all(replace(attrs, **blank) == replace(same[0], **blank) for attrs in same), \
            f"{kind.value} ops differ"
        return same[0]

    def layer_ops(self, kind: OpKind) -> list[Op]:
        """One op per layer of a kind the stack builds, in the order the reference builds
        them: a custom layout's by their place in it (an execution order may run one twice),
        else block by block."""
        ops = [op for op in self.ops if op.kind is kind]
        if not self.attrs.custom_layout:
            return ops
        return sorted({sublayer_role(op): op for op in reversed(ops)}.values(), key=layout_index)

    @property
    def depth(self) -> int:
        """Its blocks: one holds a custom layout."""
        return len({op.block for op in self.ops if op.block is not None})

    @property
    def dim(self) -> int:
        """The width of its blocks, which every sublayer's norm has."""
        return next(op.attrs.dim for op in self.ops
                    if op.block is not None and op.kind is OpKind.NORM)

    @property
    def causal(self) -> bool:
        return self.attrs.layers == "Decoder"

    @property
    def prefix_lm(self) -> bool:
        """A PrefixDecoder's stack: forward takes prefix_attn_len, the keys every query sees."""
        return self.attrs.layers == "PrefixDecoder"

    @property
    def generative(self) -> bool:
        """A TransformerWrapper or an xVal model around a Decoder (or a PrefixDecoder), or a
        continuous decoder whose outputs are as wide as its inputs (build_ir gives it a loss op):
        it has loss() and generate(), unless pooled or its head is not one logit per token."""
        if self.attrs.type == "ContinuousTransformerWrapper":
            return self.find(OpKind.LOSS) is not None
        return self.attrs.type in ("TransformerWrapper", "XValTransformerWrapper") and (
            self.causal or self.prefix_lm) and self.next_token_head and not self.pooled

    @property
    def pooled(self) -> bool:
        """Whether its output is one vector per sequence (average_pool_embed; use_cls_token: one
        per CLS token; attn_pool: one per learned query): class logits or pooled embeddings,
        not a next-token distribution, so it neither generates nor learns the next token."""
        return self.pooled_by is not None

    @property
    def pooled_by(self) -> str | None:
        """"mean" (average_pool_embed), "cls" (use_cls_token) or "attention" (attn_pool); None
        where not pooled."""
        if self.find(OpKind.ATTENTION_POOL) is not None:
            return "attention"
        pool = self.find(OpKind.POOL)
        return None if pool is None else "cls" if pool.attrs.first else "mean"

    @property
    def next_token_head(self) -> bool:
        """Whether the output gives one logit per token of the vocabulary (a TransformerWrapper
        may have a head of another width, logits_dim, or none, return_only_embed)."""
        if self.attrs.type != "TransformerWrapper":
            return True
        logits = self.find(OpKind.LOGITS)
        return logits is not None and not logits.attrs.squeeze and \
            logits.attrs.num_tokens == self.find(OpKind.TOKEN_EMBEDDING).attrs.num_tokens

    @property
    def cacheable(self) -> bool:
        """Whether generate() keeps a kv cache. Memory tokens are prepended at every call, so a
        cache of past keys cannot serve them (x-transformers' can_cache_kv, in
        TransformerWrapper.__init__). Token shifting reads earlier inputs: the cache keeps the
        last ones of each sublayer (x-transformers' cache does not, and shifts in zeros). A
        custom layout caches each attention sublayer run; layers without self-attention keep
        their contexts' keys and count the positions (ModelCache.advance). Belief attention
        (orthog_projected_values) projects every position against the whole sequence, so each
        step recomputes it (x-transformers caches and then projects the newest position
        alone: its uncached tokens are the model's).
        Selective attention's penalties sum over every earlier query: the cache carries the
        sum (x-transformers' can_cache_kv is false for it). Inverted cross-attention takes a
        softmax over every query, so it recomputes them all too, as do the orthogonal and the
        mean / variance split residual updates, which read every position of the row
        (x-transformers caches them and then reads the newest position alone). Value residuals
        mix each step's values with the first layer's before the cache keeps them, but a
        latent cache re-projects every past value at each step: without their mixes, so it
        recomputes. A PrefixDecoder is built bidirectional: its token shifts and data-dependent
        ALiBi read later positions too, so those recompute. A recycling model's later passes
        read the last pass's output at every position: each step recomputes them all, as
        x-transformers does (its can_cache_kv is false); a looped LM caches per loop
        (loops_cache_plainly)."""
        attention = [op for op in self.ops if op.kind is OpKind.ATTENTION]
        reads_later = self.prefix_lm and any(
            op.kind is OpKind.RESIDUAL and op.attrs.token_shifts
            or op.kind is OpKind.ATTENTION and op.attrs.data_dependent_alibi for op in self.ops)
        reads_whole_rows = any(
            op.kind is OpKind.CROSS_ATTENTION and op.attrs.inverted_attention
            or op.kind is OpKind.RESIDUAL and (op.attrs.orthogonal or op.attrs.mv_split)
            for op in self.ops)
        latent_mixed = any(op.attrs.value_residual for op in attention) and any(
            op.attrs.dim_latent_kv for op in attention)
        attends = bool(attention) or self.find(OpKind.CROSS_ATTENTION) is not None
        return (self.generative and self.find(OpKind.MEMORY_TOKENS) is None and attends
                and self.loops_cache_plainly
                and not any(op.attrs.orthog_copies for op in attention)
                and not reads_whole_rows and not latent_mixed and not reads_later)

    @property
    def loops(self) -> int:
        """How many times generation runs the layers by default, each with its own kv cache
        (a looped LM's max_looped_steps); 1 for any other model."""
        loop = self.find(OpKind.LOOP)
        return 1 if loop is None or loop.attrs.recycled else loop.attrs.steps

    @property
    def loops_cache_plainly(self) -> bool:
        """Whether the layers' repetition leaves a cache to keep: none for recycling (each pass
        reads the last one's output at every position); a looped LM's LoopedCache keeps plain
        keys and values per loop: not a sliding window, a latent, the scores' running sums or
        token shifts' last inputs."""
        loop = self.find(OpKind.LOOP)
        if loop is None:
            return True
        if loop.attrs.recycled:
            return False
        return not any(
            op.kind is OpKind.ATTENTION and (op.attrs.max_attend_past or op.attrs.dim_latent_kv
                                             or op.attrs.selective or op.attrs.data_dependent_alibi)
            or op.kind is OpKind.RESIDUAL and op.attrs.token_shifts for op in self.ops)

    @property
    def recurrent(self) -> bool:
        """Whether its self-attention layers keep a memory of earlier segments (Transformer-XL:
        max_mem_len): forward takes and returns the memories, loss and generate run by
        segments."""
        return self.attrs.max_mem_len > 0 and self.find(OpKind.ATTENTION) is not None

    @property
    def length_limit(self) -> int | None:
        """The longest input the emitted model accepts: max_seq_len where positions are learned
        (one embedding row per position, so the run-time check refuses longer inputs); None
        where any length runs (no absolute positions, or scaled sinusoidal ones). `xtc inspect`
        warns by the same rule."""
        positions = self.find(OpKind.POSITION_EMBEDDING)
        return positions.attrs.max_seq_len if positions and positions.attrs.scheme == "learned" else None

    @property
    def sequence_input(self) -> Op:
        """The input whose length the limit applies to: the token ids or vectors it embeds."""
        read = [self.graph[name] for op in self.ops for name in (op.name, *op.inputs)]
        return next(op for op in read
                    if op.kind is OpKind.INPUT and op.attrs.role in ("tokens", "features"))

    @property
    def numerical_token_id(self) -> int | None:
        """An xVal model's number token, whose embedding its number scales; None elsewhere."""
        embedding = self.find(OpKind.TOKEN_EMBEDDING)
        return None if embedding is None else embedding.attrs.numerical_token_id


def sublayer_role(op: Op) -> str:
    """The role of a sublayer, or of the sublayer a residual op adds."""
    return op.attrs.branch if op.kind is OpKind.RESIDUAL else op.role


def layout_index(op: Op) -> int:
    """A custom layout's sublayer's place in it."""
    return role_index(sublayer_role(op))


def role_index(role: str) -> int:
    """A custom layout's sublayer's place in it, which its role ends with (`attn2`)."""
    return int(re.search(r"\d+$", role)[0])


def models(graph: Graph) -> list[Model]:
    """Every model of the graph but a composite itself: its components in the order written,
    each followed by the models inside it (an XTransformer's encoder and decoder)."""
    top = graph.models[""]
    if top.type != "composite":
        return [Model(graph, scope) for scope in graph.models]
    return [Model(graph, scope) for name in top.components for scope in graph.models
            if scope.split(".")[0] == name]
