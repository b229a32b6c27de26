"""Spec -> IR graph, for every model type: the wrappers, bare layer stacks and XTransformer.

The graph spells out every op of the model, block by block; optional ops appear only when the
spec uses them ([brackets]):

    tokens ─► token_emb ─┬─ [+ pos_emb] ─► [post_emb_norm] ─► [dropout] ─► [project_emb]
                                         ─► [memory tokens] ─► [prepend] ─► block 0 ... block n-1
                                         ─► [final norm] ─► [strip] ─► logits
    mask (optional) ─► [pad over added tokens] ─► every attention
    context, context_mask (cross_attend) ─────────► every cross-attention

    pre-norm block (default)                  post-norm block (pre_norm: false)
      x = x + Attention(Norm(x))                x = Norm(x + Attention(x))
      x = x + CrossAttention(Norm(x), ctx)      x = Norm(x + CrossAttention(x, ctx))
      x = x + FeedForward(Norm(x))              x = Norm(x + FeedForward(x))

Each op records the spec key it comes from and the reference module that owns its parameters;
each model, the graph's `ModelAttrs` for its scope (what no op says: its class, max_seq_len, a
composite's wiring); the payloads come from compiler/resolve.py as they are.
x-transformers numbers sublayers, not blocks: with layer types ('a', 'f') block i's attention
is `layers.{2i}` and its feedforward `layers.{2i+1}`; with cross-attention ('a', 'c', 'f') they
are `3i`, `3i+1`, `3i+2`, and a CrossAttender is ('c', 'f'). In a sublayer `.0.0` is the
pre-norm, `.0.2` the post-norm, `.1` the sublayer itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from xtc.spec import Spec

from .ir import (
    AddAttrs,
    AggregateAttrs,
    DeepEmbedAttrs,
    DropoutAttrs,
    Feed,
    GradientScaleAttrs,
    Graph,
    InputAttrs,
    LayerMixAttrs,
    LogitsAttrs,
    LoopAttrs,
    LossAttrs,
    MemoryTokensAttrs,
    ModelAttrs,
    NamedEmbeddingsAttrs,
    NextEmbedAttrs,
    NormAttrs,
    OpKind,
    Origin,
    OutputAttrs,
    PadMaskAttrs,
    PatchEmbeddingAttrs,
    PoolAttrs,
    PositionEmbeddingAttrs,
    PrependAttrs,
    ProjectAttrs,
    ResidualAttrs,
    SkipCombineAttrs,
    SoftclampAttrs,
    StreamMixAttrs,
    StreamsAttrs,
    StripAttrs,
    TokenEmbeddingAttrs,
    scope_prefix,
)
from .resolve import (
    ResolvedContinuous,
    ResolvedLayers,
    ResolvedViT,
    ResolvedWrapper,
    ResolvedXTransformer,
    ResolvedXVal,
    resolve,
    resolve_module,
)


def build_graph(spec: Spec) -> Graph:
    if spec.model is None:
        return build_composite(spec)
    builder = Builder(Graph(Origin(spec.name, spec.sha256)))
    builder.model(resolve(spec))
    return builder.graph


def build_composite(spec: Spec) -> Graph:
    """Each component under its own scope, producers first; what feeds it (the producers'
    outputs) takes the place of its forward arguments."""
    graph = Graph(Origin(spec.name, spec.sha256))
    connections = [Feed(c.source, c.target, c.argument) for c in spec.connections]
    masks: list[Feed] = []
    for name in component_order(spec):
        feeds = [feed for feed in connections if feed.target == name]
        feeds += context_masks(graph, feeds)
        fed = {feed.argument: fed_op(graph, feed) for feed in feeds}
        Builder(graph, scope=name, fed=fed).model(resolve_module(spec.components[name]))
        masks += [feed for feed in feeds if feed.output == "mask"]
    graph.add_model("", ModelAttrs("composite", "", components=tuple(spec.components),
                                   feeds=tuple(connections + masks)))
    return graph


def context_masks(graph: Graph, feeds: list[Feed]) -> list[Feed]:
    """A context's padding mask travels with it: a producer that takes a mask feeds it to the
    consumer's context_mask too (the one place of this rule; lowering reads the feeds)."""
    return [Feed(feed.source, feed.target, "context_mask", "mask") for feed in feeds
            if feed.argument == "context" and scope_prefix(feed.source) + "mask" in graph]


def fed_op(graph: Graph, feed: Feed) -> str:
    """The op whose output a feed hands on: the producer's mask input, or its embeddings (what
    it returns with return_embeddings)."""
    if feed.output == "mask":
        return scope_prefix(feed.source) + "mask"
    outputs = [op for op in graph.ops(OpKind.OUTPUT)
               if op.scope == feed.source and op.attrs.name == "embeddings"]
    return outputs[0].inputs[0]


def component_order(spec: Spec) -> list[str]:
    """Producers before consumers, otherwise in the order written (the checks reject cycles)."""
    remaining = list(spec.components)
    order: list[str] = []
    while remaining:
        ready = next(name for name in remaining
                     if all(c.source in order for c in spec.connections if c.target == name))
        order.append(ready)
        remaining.remove(ready)
    return order


def model_record(model) -> ModelAttrs:
    """What the graph records of a model besides its ops."""
    if isinstance(model, ResolvedXTransformer):
        return ModelAttrs("XTransformer", model.key,
                          cross_attn_tokens_dropout=model.cross_attn_tokens_dropout)
    layers = model if isinstance(model, ResolvedLayers) else model.layers
    wrappers = {ResolvedWrapper: "TransformerWrapper", ResolvedViT: "ViTransformerWrapper",
                ResolvedContinuous: "ContinuousTransformerWrapper",
                ResolvedXVal: "XValTransformerWrapper"}
    return ModelAttrs(wrappers.get(type(model), layers.type), model.key, layers.type,
                      getattr(model, "max_seq_len", None), custom_layout=bool(layers.layout),
                      max_mem_len=getattr(model, "max_mem_len", 0),
                      shift_mem_down=getattr(model, "shift_mem_down", 0))


@dataclass
class Builder:
    """Adds ops to one graph. `scope` is the submodule being built ("decoder", "pali.encoder"),
    `ref` the prefix of the reference module path that owns its parameters ("encoder."), and
    `fed` the forward arguments that other components' outputs provide."""

    graph: Graph
    scope: str = ""
    ref: str = ""
    fed: dict = field(default_factory=dict)
    tied: bool = False  # the blocks being built share block 0's weights
    inject: str | None = None  # reinject_input: the op every sublayer's input takes added
    condition: str | None = None  # the CONDITION op that adaptive norms and layer scales read
    prefix_length: str | None = None  # a PrefixDecoder's: the input its self-attentions mask by
    deep_embed: str | None = None  # ff_deep_embed: the DEEP_EMBED op the feedforwards read
    block_inputs: list[str] = field(default_factory=list)  # the stack's being built, in order

    def name(self, local: str) -> str:
        """The graph name of this builder's op `local`."""
        return scope_prefix(self.scope) + local

    def add(self, name: str, kind: OpKind, attrs: object, inputs: tuple = (), **provenance) -> str:
        if self.tied and provenance.get("block") is not None:
            provenance["weights_of"] = 0
        ref_path = provenance.pop("ref_path", "")
        if ref_path:
            ref_path = self.ref + ref_path
        inputs = tuple(i for i in inputs if i is not None)
        return self.graph.add(self.name(name), kind, attrs, inputs, ref_path=ref_path,
                              scope=self.scope, **provenance)

    def input(self, name: str, role: str, shape: tuple, optional: bool = False, key: str = "") -> str:
        if name in self.fed:
            return self.fed[name]
        return self.add(name, OpKind.INPUT, InputAttrs(name, role, optional, shape), spec_key=key)

    def child(self, scope: str, ref: str) -> Builder:
        return Builder(self.graph, f"{self.scope}.{scope}" if self.scope else scope, self.ref + ref)

    def model(self, model) -> None:
        self.graph.add_model(self.scope, model_record(model))
        if isinstance(model, ResolvedWrapper):
            self.wrapper_model(model)
        elif isinstance(model, ResolvedViT):
            self.vit(model)
        elif isinstance(model, ResolvedContinuous):
            self.continuous(model)
        elif isinstance(model, ResolvedXVal):
            self.xval(model)
        elif isinstance(model, ResolvedXTransformer):
            self.xtransformer(model)
        else:
            self.bare_layers(model)

    # -- model types ------------------------------------------------------------------------

    def wrapper_model(self, model: ResolvedWrapper) -> None:
        """A TransformerWrapper: forward(x, *, mask, context, context_mask, prepend_embeds)."""
        layers = model.layers
        tokens = self.input("x", "tokens", ("B", "T"), key=model.key)
        mask = self.input("mask", "mask", ("B", "T"), optional=True, key=model.key)
        context, context_mask = self.context_inputs(layers)
        prepend = None
        if not model.ff_deep_embed:  # whose gains cover the tokens only: the reference fails
            prepend = self.input("prepend_embeds", "embeds", ("B", "P", layers.dim),
                                 optional=True, key=model.key)
        head = model.logits_dim is not None
        hidden = self.wrapper(model, tokens, mask, context, context_mask, prepend, logits=head)
        if head:  # without one (return_only_embed) the embeddings are the output
            self.add("output", OpKind.OUTPUT, OutputAttrs("logits"), (hidden,))
        elif model.attention_pool is not None:
            self.add("output", OpKind.OUTPUT, OutputAttrs("pooled"), (hidden,))
        # what `loss` computes beside forward (a pooled model's loss reads class labels instead)
        if model.loss is not None and not (model.average_pool_embed or model.num_cls_tokens):
            self.add("loss", OpKind.LOSS, model.loss, (hidden, tokens),
                     spec_key=f"{model.key}.autoregressive")

    def bare_layers(self, layers: ResolvedLayers) -> None:
        """An Encoder / Decoder / CrossAttender on its own: forward(x (B, T, dim), *, mask, ...)."""
        features = self.input("x", "features", ("B", "T", layers.dim), key=layers.key)
        mask = self.input("mask", "mask", ("B", "T"), optional=True, key=layers.key)
        context, context_mask = self.context_inputs(layers)
        hidden = self.layers(layers, features, mask, context, context_mask, ref="")
        self.add("output", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))

    def vit(self, model: ResolvedViT) -> None:
        """Patches + learned positions, [register tokens], an Encoder, mean pool, linear head
        (ViTransformerWrapper.forward)."""
        layers, key = model.layers, model.key
        image = self.input("img", "image", ("B", model.channels, model.image_size,
                                            model.image_size), key=key)
        hidden = self.add("patch_emb", OpKind.PATCH_EMBEDDING,
                          PatchEmbeddingAttrs(model.patch_size, model.channels, layers.dim),
                          (image,), spec_key=f"{key}.patch_size", ref_path="patch_to_embedding",
                          role="patch_to_embedding")
        positions = self.add("pos_emb", OpKind.POSITION_EMBEDDING,
                             PositionEmbeddingAttrs("patches", model.num_patches, layers.dim),
                             (image,), spec_key=f"{key}.image_size", ref_path="pos_embedding",
                             role="pos_embedding")
        hidden = self.add("embed", OpKind.ADD, AddAttrs(), (hidden, positions), spec_key=key)
        hidden = self.post_emb_norm(model, hidden, layers.dim)
        hidden = self.dropout("emb_dropout", model.emb_dropout, hidden, key)
        if model.num_register_tokens:
            hidden = self.add("register_tokens", OpKind.MEMORY_TOKENS,
                              MemoryTokensAttrs(model.num_register_tokens, layers.dim, at_end=True),
                              (hidden,), spec_key=f"{key}.num_register_tokens",
                              ref_path="register_tokens", role="register_tokens")
        hidden = self.layers(layers, hidden, None, None, None, ref="attn_layers.")
        if model.num_register_tokens:
            hidden = self.add("strip_registers", OpKind.STRIP,
                              StripAttrs(model.num_register_tokens, at_end=True), (hidden,),
                              spec_key=f"{key}.num_register_tokens")
        self.add("embeddings", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))
        # without num_classes the reference's head is an Identity: the pooled embedding is out
        out = self.add("pool", OpKind.POOL, PoolAttrs(), (hidden,), spec_key=key)
        if model.num_classes is not None:
            out = self.add("mlp_head", OpKind.PROJECT, ProjectAttrs(layers.dim, model.num_classes),
                           (out,), spec_key=f"{key}.num_classes", ref_path="mlp_head",
                           role="mlp_head")
        self.add("output", OpKind.OUTPUT, OutputAttrs("logits"), (out,))

    def continuous(self, model: ResolvedContinuous) -> None:
        """Bias-free projections around the layers, no token embedding
        (ContinuousTransformerWrapper.forward, continuous.py)."""
        layers, key = model.layers, model.key
        width = model.dim_in or layers.dim
        features = self.input("x", "features", ("B", "T", width), key=key)
        mask = self.input("mask", "mask", ("B", "T"), optional=True, key=key)
        hidden = features
        if model.dim_in is not None:
            hidden = self.add("project_in", OpKind.PROJECT,
                              ProjectAttrs(model.dim_in, layers.dim, bias=False), (hidden,),
                              spec_key=f"{key}.dim_in", ref_path="project_in", role="project_in")
        hidden = self.positions(model.positions, model.max_seq_len, layers.dim, False, hidden,
                                features, key)
        hidden = self.post_emb_norm(model, hidden, layers.dim)
        real = mask  # the positions a mean pool averages
        hidden, mask = self.memory_tokens(model.num_memory_tokens, layers.dim, hidden, mask, key)
        hidden = self.dropout("emb_dropout", model.emb_dropout, hidden, key)
        hidden = self.layers(layers, hidden, mask, None, None, ref="attn_layers.")
        hidden = self.strip_memory(model.num_memory_tokens, hidden, key)
        if model.average_pool_embed:
            hidden = self.add("pool", OpKind.POOL, PoolAttrs(masked=True), (hidden, real),
                              spec_key=f"{key}.average_pool_embed")
        self.add("embeddings", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))
        if model.dim_out is not None:  # probabilistic: a mean and a log-variance per output
            hidden = self.add("project_out", OpKind.PROJECT,
                              ProjectAttrs(layers.dim, model.dim_out * (1 + model.probabilistic),
                                           bias=False, probabilistic=model.probabilistic),
                              (hidden,), spec_key=f"{key}.dim_out", ref_path="project_out",
                              role="project_out")
        self.add("output", OpKind.OUTPUT, OutputAttrs("output"), (hidden,))
        if model.loss is not None:
            # what the emitted loss() computes: each position's output against the next input
            # (forward does not return it)
            self.add("loss", OpKind.LOSS, model.loss, (hidden, features),
                     spec_key=f"{key}.autoregressive")

    def xval(self, model: ResolvedXVal) -> None:
        """Token ids and their numbers: a number token's embedding is scaled by its number; the
        head gives logits and one number per position; the loss is the reference's
        XValAutoregressiveWrapper's (XValTransformerWrapper.forward, xval.py). Memory tokens
        come before the dropout here, unlike in a TransformerWrapper."""
        layers, key = model.layers, model.key
        tokens = self.input("x", "tokens", ("B", "T"), key=key)
        numbers = self.input("x_num", "numbers", ("B", "T"), key=key)
        mask = self.input("mask", "mask", ("B", "T"), optional=True, key=key)
        context, context_mask = self.context_inputs(layers)
        attrs = TokenEmbeddingAttrs(model.num_tokens, layers.dim,
                                    numerical_token_id=model.numerical_token_id)
        hidden = self.add("token_emb", OpKind.TOKEN_EMBEDDING, attrs, (tokens, numbers),
                          spec_key=f"{key}.num_tokens", ref_path="token_emb.emb",
                          role="token_emb")
        hidden = self.positions(model.positions, model.max_seq_len, layers.dim, False, hidden,
                                tokens, key)
        hidden, mask = self.memory_tokens(model.num_memory_tokens, layers.dim, hidden, mask, key)
        hidden = self.dropout("emb_dropout", model.emb_dropout, hidden, key)
        hidden = self.layers(layers, hidden, mask, context, context_mask, ref="attn_layers.")
        hidden = self.strip_memory(model.num_memory_tokens, hidden, key)
        self.add("embeddings", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))
        if model.tie_embedding:
            logits = self.add("logits", OpKind.LOGITS,
                              LogitsAttrs(layers.dim, model.num_tokens, tied=True,
                                          scale=layers.dim ** -0.5),
                              (hidden, self.name("token_emb")), spec_key=f"{key}.tie_embedding",
                              role="to_logits")
        else:
            logits = self.add("logits", OpKind.LOGITS,
                              LogitsAttrs(layers.dim, model.logits_dim, bias=True), (hidden,),
                              spec_key=f"{key}.num_tokens", ref_path="to_logits", role="to_logits")
        predicted = self.add("numerical_output", OpKind.PROJECT, ProjectAttrs(layers.dim, 1),
                             (hidden,), spec_key=f"{key}.numerical_token_id",
                             ref_path="to_numerical_output.0", role="to_numerical_output")
        self.add("output", OpKind.OUTPUT, OutputAttrs("logits"), (logits,))
        self.add("numbers", OpKind.OUTPUT, OutputAttrs("numbers"), (predicted,))
        if model.loss is not None:  # what `loss` computes beside forward
            self.add("loss", OpKind.LOSS, model.loss, (logits, predicted, tokens, numbers),
                     spec_key=f"{key}.autoregressive")

    def xtransformer(self, model: ResolvedXTransformer) -> None:
        """The encoder's embeddings are the decoder's context; the loss is next-token cross
        entropy on the target (XTransformer.forward, AutoregressiveWrapper)."""
        key = model.key
        src = self.input("src", "tokens", ("B", "S"), key=key)
        tgt = self.input("tgt", "tokens", ("B", "T"), key=key)
        mask = self.input("mask", "mask", ("B", "S"), optional=True, key=key)
        prepend = self.input("src_prepend_embeds", "embeds", ("B", "P", model.encoder.layers.dim),
                             optional=True, key=key)
        encoder, decoder = self.child("encoder", "encoder."), self.child("decoder", "decoder.net.")
        self.graph.add_model(encoder.scope, model_record(model.encoder))
        self.graph.add_model(decoder.scope, model_record(model.decoder))
        encoded = encoder.wrapper(model.encoder, src, mask, None, None, prepend, logits=False)
        context_mask = mask
        if prepend is not None:
            context_mask = self.add("context_mask", OpKind.PAD_MASK, PadMaskAttrs(0),
                                    (mask, prepend), spec_key=key)
        logits = decoder.wrapper(model.decoder, tgt, None, encoded, context_mask, None)
        if model.tie_token_emb:  # the decoder looks its tokens up in the encoder's table
            table = self.graph[decoder.name("token_emb")]
            self.graph.replace(replace(table, shares=encoder.name("token_emb")))
        loss = self.add("loss", OpKind.LOSS, LossAttrs(model.ignore_index, model.pad_value),
                        (logits, tgt), spec_key=f"{key}.ignore_index")
        self.add("output", OpKind.OUTPUT, OutputAttrs("loss"), (loss,))

    # -- pieces -----------------------------------------------------------------------------

    def context_inputs(self, layers: ResolvedLayers) -> tuple[str | None, str | None]:
        if layers.context_dim is None:
            return None, None
        width = layers.context_dim
        context = self.input("context", "context", ("B", "S", width), key=layers.key)
        mask = self.input("context_mask", "context_mask", ("B", "S"), optional=True, key=layers.key)
        return context, mask

    def wrapper(self, model: ResolvedWrapper, tokens: str, mask: str | None, context: str | None,
                context_mask: str | None, prepend: str | None, logits: bool = True) -> str:
        """A TransformerWrapper's ops from token ids to logits (or its embeddings), in the
        reference's order (TransformerWrapper.forward): token and position
        embeddings, post-embedding norm, prepended embeddings, dropout, projection, memory
        tokens."""
        key, emb_dim = model.key, model.emb_dim
        every = model.memory_tokens_interspersed_every if model.num_memory_tokens else None
        if every is not None:  # the chunks take no padding mask: forward refuses one
            mask = None
        hidden = self.add("token_emb", OpKind.TOKEN_EMBEDDING,
                          TokenEmbeddingAttrs(model.num_tokens, emb_dim, model.l2norm_embed),
                          (tokens,), spec_key=f"{key}.num_tokens", ref_path="token_emb.emb",
                          role="token_emb")
        hidden = self.positions(model.positions, model.max_seq_len, emb_dim, model.l2norm_embed,
                                hidden, tokens, key)
        hidden = self.named_embeddings(model, hidden)
        hidden = self.post_emb_norm(model, hidden, emb_dim)
        if prepend is not None:
            hidden = self.add("prepend", OpKind.PREPEND, PrependAttrs(emb_dim), (hidden, prepend),
                              spec_key=key)
            if mask is not None:
                mask = self.add("prepend_mask", OpKind.PAD_MASK, PadMaskAttrs(0), (mask, prepend),
                                spec_key=key)
        if model.emb_frac_gradient < 1:
            hidden = self.add("emb_frac_gradient", OpKind.GRADIENT_SCALE,
                              GradientScaleAttrs(model.emb_frac_gradient), (hidden,),
                              spec_key=f"{key}.emb_frac_gradient", role="emb_frac_gradient")
        initial = None
        if model.next_embed:  # what the next-embedding head predicts, before dropout
            initial = self.add("initial_embeddings", OpKind.OUTPUT, OutputAttrs("initial_embeddings"),
                               (hidden,), spec_key=f"{key}.add_continuous_pred_head")
        hidden = self.dropout("emb_dropout", model.emb_dropout, hidden, key)
        if emb_dim != model.layers.dim:
            hidden = self.add("project_emb", OpKind.PROJECT, ProjectAttrs(emb_dim, model.layers.dim),
                              (hidden,), spec_key=f"{key}.emb_dim", ref_path="project_emb",
                              role="project_emb")
        if model.num_cls_tokens:  # in front of the tokens, behind any memory tokens
            hidden, mask = self.memory_tokens(model.num_cls_tokens, model.layers.dim, hidden, mask,
                                              key, role="cls_token")
        embedded, real = hidden, mask  # real: the positions a mean pool averages
        hidden, mask = self.memory_tokens(model.num_memory_tokens, model.layers.dim, hidden, mask,
                                          key, every)
        if model.ff_deep_embed:  # TransformerWrapper.ff_deep_embed: (num_tokens, depth, dim)
            self.deep_embed = self.add(
                "ff_deep_embed", OpKind.DEEP_EMBED,
                DeepEmbedAttrs(model.num_tokens, model.layers.depth, model.layers.dim), (tokens,),
                spec_key=f"{key}.ff_deep_embed", ref_path="ff_deep_embed", role="ff_deep_embed")
        hidden = self.repeated_layers(model, hidden, mask, context, context_mask)
        self.deep_embed = None
        hidden = self.strip_memory(model.num_memory_tokens, hidden, key, every, embedded)
        if model.average_pool_embed:  # return_embeddings gives the pooled ones too
            hidden = self.add("pool", OpKind.POOL, PoolAttrs(masked=True), (hidden, real),
                              spec_key=f"{key}.average_pool_embed")
        if model.num_cls_tokens:
            hidden = self.add("pool", OpKind.POOL, PoolAttrs(first=model.num_cls_tokens), (hidden,),
                              spec_key=f"{key}.use_cls_token")
        self.add("embeddings", OpKind.OUTPUT, OutputAttrs("embeddings"), (hidden,))
        if model.attention_pool is not None:  # the reference's still makes logits, unread
            return self.add("attn_pool", OpKind.ATTENTION_POOL, model.attention_pool,
                            (hidden,) if real is None else (hidden, real), spec_key=f"{key}.attn_pool",
                            ref_path="attn_pool", role="attn_pool")
        if not logits:
            return hidden
        output = self.logits(model, hidden)
        if initial is not None:  # TransformerWrapper.to_next_embed_pred
            self.add("next_embed", OpKind.NEXT_EMBED, NextEmbedAttrs(model.layers.dim),
                     (hidden, initial), spec_key=f"{key}.add_continuous_pred_head",
                     ref_path="to_next_embed_pred", role="to_next_embed_pred")
        return output

    def repeated_layers(self, model: ResolvedWrapper, hidden: str, mask: str | None,
                        context: str | None, context_mask: str | None) -> str:
        """The layers, run several times where the model recycles (each pass on the embeddings
        plus a projection of the last one's output) or loops (each pass on the last one's
        output): TransformerWrapper.forward's recycling and looped branches."""
        recycled = model.recycle_steps is not None
        if not recycled and model.looped_steps is None:
            return self.layers(model.layers, hidden, mask, context, context_mask, ref="attn_layers.")
        attrs = LoopAttrs(model.layers.dim, model.recycle_steps or model.looped_steps, recycled)
        option, limit = ("recycling", "train_max_recycle_steps") if recycled else ("looped", "max_looped_steps")
        # recycling draws the passes in training where not given; a looped LM has a default
        steps = self.input(attrs.argument, "passes", (), optional=True, key=f"{model.key}.{limit}")
        role = "recycled_proj" if recycled else "exit_gate"
        start = self.add("loop", OpKind.LOOP, attrs, (hidden, steps), spec_key=f"{model.key}.{option}",
                         ref_path=role, role=role)
        hidden = self.layers(model.layers, start, mask, context, context_mask, ref="attn_layers.")
        return self.add("loop_end", OpKind.LOOP, replace(attrs, end=True), (hidden, start),
                        spec_key=f"{model.key}.{option}")

    def positions(self, scheme: str, max_seq_len: int | None, width: int, l2norm: bool,
                  hidden: str, source: str, key: str) -> str:
        if scheme == "none":
            return hidden
        attrs = PositionEmbeddingAttrs(scheme, max_seq_len or 0, width, l2norm)
        positions = self.add("pos_emb", OpKind.POSITION_EMBEDDING, attrs, (source,),
                             spec_key=f"{key}.max_seq_len",
                             ref_path="pos_emb.emb" if scheme == "learned" else "pos_emb",
                             role="pos_emb")
        return self.add("embed", OpKind.ADD, AddAttrs(), (hidden, positions), spec_key=key)

    def named_embeddings(self, model: ResolvedWrapper, hidden: str) -> str:
        """embed_num_tokens: one table per name, each looked up by its ids (the forward argument
        embed_ids, a dict of name -> (B, T)) and added to the token and position embeddings."""
        if not model.embed_num_tokens:
            return hidden
        key = f"{model.key}.embed_num_tokens"
        ids = self.input("embed_ids", "embed_ids", ("B", "T"), key=key)
        embedded = self.add("embeds", OpKind.NAMED_EMBEDDINGS,
                            NamedEmbeddingsAttrs(model.embed_num_tokens, model.emb_dim), (ids,),
                            spec_key=key, ref_path="embeds", role="embeds")
        return self.add("embed_named", OpKind.ADD, AddAttrs(), (hidden, embedded), spec_key=key)

    def post_emb_norm(self, model, hidden: str, width: int) -> str:
        """A plain LayerNorm after the embeddings (gain stored as itself: outside the layers)."""
        if not model.post_emb_norm:
            return hidden
        return self.add("post_emb_norm", OpKind.NORM,
                        NormAttrs("layernorm", width, unit_offset=False), (hidden,),
                        spec_key=f"{model.key}.post_emb_norm", ref_path="post_emb_norm",
                        role="post_emb_norm")

    def dropout(self, role: str, p: float, hidden: str, key: str) -> str:
        if not p:
            return hidden
        return self.add(role, OpKind.DROPOUT, DropoutAttrs(p), (hidden,), spec_key=f"{key}.{role}",
                        role=role)

    def memory_tokens(self, count: int, dim: int, hidden: str, mask: str | None,
                      key: str, every: int | None = None,
                      role: str = "memory_tokens") -> tuple[str, str | None]:
        """Memory tokens in front of the sequence, or in front of every chunk of `every`
        positions (which take no mask); role "cls_token": a TransformerWrapper's CLS tokens."""
        if not count:
            return hidden, mask
        spec_key = f"{key}.num_memory_tokens" if role == "memory_tokens" else f"{key}.use_cls_token"
        hidden = self.add(role, OpKind.MEMORY_TOKENS,
                          MemoryTokensAttrs(count, dim, every=every), (hidden,),
                          spec_key=spec_key, ref_path=role, role=role)
        if mask is not None:
            mask = self.add(f"{role.removesuffix('_tokens')}_mask", OpKind.PAD_MASK,
                            PadMaskAttrs(count), (mask,), spec_key=spec_key)
        return hidden, mask

    def strip_memory(self, count: int, hidden: str, key: str, every: int | None = None,
                     embedded: str | None = None) -> str:
        """Memory tokens off again; interleaved ones, and the padding of the last chunk, which
        the sequence before them (`embedded`) measures."""
        if not count:
            return hidden
        inputs = (hidden,) if every is None else (hidden, embedded)
        return self.add("strip_memory", OpKind.STRIP, StripAttrs(count, every=every), inputs,
                        spec_key=f"{key}.num_memory_tokens")

    def logits(self, model: ResolvedWrapper, hidden: str) -> str:
        key, dim = model.key, model.layers.dim
        hidden, weights = self.mixture(model, hidden)
        if model.tie_embedding:
            attrs = LogitsAttrs(dim, model.num_tokens, tied=True, scale=model.tie_embedding_scale,
                                sigsoftmax=model.sigsoftmax, mixture=model.mixture)
            token_emb = f"{self.scope}_token_emb" if self.scope else "token_emb"
            return self.add("logits", OpKind.LOGITS, attrs, (hidden, token_emb, *weights),
                            spec_key=f"{key}.tie_embedding", role="to_logits")
        attrs = LogitsAttrs(dim, model.logits_dim, squeeze=model.squeeze_out_last_dim,
                            sigsoftmax=model.sigsoftmax, mixture=model.mixture,
                            heads=model.output_heads)
        width_key = "num_tokens" if model.logits_dim == model.num_tokens else "logits_dim"
        return self.add("logits", OpKind.LOGITS, attrs, (hidden, *weights),
                        spec_key=f"{key}.{width_key}", ref_path="to_logits", role="to_logits")

    def mixture(self, model: ResolvedWrapper, hidden: str) -> tuple[str, tuple[str, ...]]:
        """A mixture of softmaxes' two bias-free maps: the hidden states into K components
        (B, T, K, C), and the components' mixture weights (B, T, K); the logits op mixes."""
        if not model.mixture:
            return hidden, ()
        key, dim, k = model.key, model.layers.dim, model.mixture
        weights = self.add("combine_mixture", OpKind.PROJECT, ProjectAttrs(dim, k, bias=False),
                           (hidden,), spec_key=f"{key}.mixture_of_softmax_k",
                           ref_path="combine_mixture", role="combine_mixture")
        components = self.add("to_mixture", OpKind.PROJECT, ProjectAttrs(dim, dim * k, bias=False),
                              (hidden,), spec_key=f"{key}.mixture_of_softmax",
                              ref_path="to_mixture.0", role="to_mixture")
        return components, (weights,)

    def layers(self, layers: ResolvedLayers, hidden: str, mask: str | None, context: str | None,
               context_mask: str | None, ref: str) -> str:
        """The shared position ops, the blocks of an Encoder / Decoder / CrossAttender, then its
        final norm."""
        positions = self.relative_positions(layers, hidden, ref)
        if layers.type == "PrefixDecoder":  # the keys every query sees: one length, or per row
            self.prefix_length = self.input("prefix_attn_len", "prefix_length", ("B",),
                                            optional=True, key=layers.key)
        if layers.condition is not None:  # adaptive norms / layer scales (DiT)
            given = self.input("condition", "condition", ("B", layers.condition.dim),
                               key=f"{layers.key}.dim_condition")
            self.condition = self.add("condition_mlp", OpKind.CONDITION, layers.condition,
                                      (given,), spec_key=f"{layers.key}.adaptive_condition_mlp",
                                      ref_path=f"{ref}adaptive_mlp", role="condition_mlp")
        if layers.reinject is not None:  # AttentionLayers.reinject_input_proj (and its gate)
            self.inject = self.add("reinject", OpKind.REINJECT, layers.reinject, (hidden,),
                                   spec_key=f"{layers.key}.reinject_input",
                                   ref_path=ref.rstrip("."), role="reinject")
        if layers.streams:  # hyper-connections: S copies of the input, each its embedding added
            hidden = self.add("streams", OpKind.STREAMS, StreamsAttrs(layers.dim, layers.streams),
                              (hidden,), spec_key=f"{layers.key}.num_residual_streams",
                              ref_path=ref.rstrip("."), role="stream_emb")
        self.tied = layers.weight_tie
        self.block_inputs = []
        for block in range(layers.depth):
            self.block_inputs.append(hidden)
            hidden = self.skip_combine(layers, block, hidden, ref)
            hidden = self.block(layers, block, hidden, mask, context, context_mask, ref, positions)
        self.tied, self.inject = False, None
        if layers.softclamp is not None:  # on each residual stream, before they are summed
            hidden = self.add("softclamp", OpKind.SOFTCLAMP, SoftclampAttrs(layers.softclamp),
                              (hidden,), spec_key=f"{layers.key}.softclamp_output",
                              role="softclamp_output")
        if layers.streams:  # the streams summed back (AttentionLayers.forward, before its norm)
            hidden = self.add("merge_streams", OpKind.STREAMS,
                              StreamsAttrs(layers.dim, layers.streams, merge=True), (hidden,),
                              spec_key=f"{layers.key}.num_residual_streams", role="merge_streams")
        if layers.final_norm:  # resolve.final_norm: not under post-norm, nor pre_and_post_norm
            condition = self.condition if layers.norm.condition else None
            hidden = self.add("norm", OpKind.NORM, layers.norm, (hidden, condition),
                              spec_key=layers.key, ref_path=f"{ref}final_norm", role="norm")
        self.condition = self.prefix_length = None
        return hidden

    def skip_combine(self, layers: ResolvedLayers, block: int, hidden: str, ref: str) -> str:
        """unet_skips: a block of the second half reads its input concatenated after the input
        of its mirror in the first half, projected back to dim (the blocks of the middle and
        the first half read theirs as it is)."""
        if not layers.unet_skips or block < layers.depth - layers.depth // 2:
            return hidden
        mirror = layers.depth - 1 - block
        skip = self.block_inputs[mirror]
        # x-transformers keeps one module per sublayer, the combine under the block's first
        index = block * len(layers.types) // layers.depth
        return self.add(f"skip_combine{block}", OpKind.SKIP_COMBINE,
                        SkipCombineAttrs(layers.dim, mirror), (hidden, skip),
                        spec_key=f"{layers.key}.unet_skips",
                        ref_path=f"{ref}skip_combines.{index}", role=f"skip_combines.{mirror}")

    def relative_positions(self, layers: ResolvedLayers, hidden: str, ref: str) -> tuple:
        """Rotary or polar angles and a relative position bias, computed once for all the
        layers. Polar angles take rotary's place among self-attention's inputs (the two
        exclude each other)."""
        rotary = bias = None
        if layers.rotary is not None:
            rotary = self.add("rotary", OpKind.ROTARY, layers.rotary, (hidden,),
                              spec_key=f"{layers.key}.rotary_pos_emb",
                              ref_path=f"{ref}rotary_pos_emb", role="rotary")
        if layers.polar is not None:
            rotary = self.add("polar", OpKind.POLAR, layers.polar, (hidden,),
                              spec_key=f"{layers.key}.polar_pos_emb",
                              ref_path=f"{ref}polar_pos_emb", role="polar")
        if layers.position_bias is not None:
            scheme = layers.position_bias.scheme
            key = {"alibi": "alibi_pos_bias", "t5": "rel_pos_bias", "dynamic": "dynamic_pos_bias"}
            bias = self.add("rel_pos", OpKind.POSITION_BIAS, layers.position_bias, (hidden,),
                            spec_key=f"{layers.key}.{key[scheme]}", ref_path=f"{ref}rel_pos",
                            role="rel_pos")
        return rotary, bias

    def block(self, layers: ResolvedLayers, block: int, hidden: str, mask: str | None,
              context: str | None, context_mask: str | None, ref: str, positions: tuple) -> str:
        sublayers = stack_sublayers(layers, mask, context, context_mask, positions,
                                    self.prefix_length)
        if layers.execute_order:  # run the layout's sublayers in this order; repeats share weights
            for step, index in enumerate(layers.execute_order):
                hidden = self.sublayer(layers, block, f"{ref}layers.{index}", hidden,
                                       *sublayers[index], name=f"block{block}_step{step}_{sublayers[index][0]}",
                                       init_depth=init_depth(layers, index, 1))
            return hidden
        width = len(sublayers) // layers.depth
        for offset in range(width):
            # with tied weights every block runs the reference's first one
            # (AttentionLayers.__init__)
            index = (0 if layers.weight_tie else block) * width + offset
            hidden = self.sublayer(layers, block, f"{ref}layers.{index}", hidden,
                                   *sublayers[block * width + offset],
                                   init_depth=init_depth(layers, index, 1 if layers.layout else width))
        return hidden

    def sublayer(self, layers: ResolvedLayers, block: int, ref: str, hidden: str, role: str,
                 kind: OpKind, attrs: object, extra_inputs: tuple, residual: ResidualAttrs,
                 name: str = "", init_depth: int = 0) -> str:
        """One residual sublayer, pre-norm `x + f(norm(x))` or post-norm `norm(x + f(x))`;
        `init_depth`: its output projection's, for a depth-scaled initialisation (0: none)."""
        attrs = depth_scaled(attrs, init_depth)
        name = name or f"block{block}_{role}"
        norm, condition = layers.norm, self.condition if layers.norm.condition else None
        provenance = {"spec_key": layers.key, "block": block}
        branch_input = hidden
        # qkv_receive_diff_residuals: self-attention reads three mixes, for q, k and v
        views = 3 if kind is OpKind.ATTENTION and attrs.qkv_views else 1
        if layers.integrate:  # AttentionLayers.layer_integrators: DynamicLIMe, one per layer
            integrators = ref.rpartition("layers.")
            mix = LayerMixAttrs(layers.dim, layer_index(ref) + 1, views, layers.integrate_softmax)
            branch_input = self.add(f"{name}_mix", OpKind.LAYER_MIX, mix, (hidden,),
                                    ref_path=f"{integrators[0]}layer_integrators.{integrators[2]}",
                                    role=f"{role}_mix", **provenance)
        if layers.aggregate_rank:  # AttentionLayers.layer_integrators, one per layer
            integrators = ref.rpartition("layers.")
            # (with residual streams they mix the views: the aggregate reads one input)
            aggregate = AggregateAttrs(layers.dim, layers.aggregate_rank,
                                       views=1 if layers.streams else views)
            branch_input = self.add(f"{name}_aggregate", OpKind.AGGREGATE, aggregate, (hidden,),
                                    ref_path=f"{integrators[0]}layer_integrators.{integrators[2]}",
                                    role=f"{role}_aggregate", **provenance)
        if layers.streams:  # HyperConnection.prepare: the sublayer reads a mix of the streams
            mix = StreamMixAttrs(layers.dim, layers.streams, views=views, layer=layer_index(ref),
                                 rank=layers.read_gate_rank)
            branch_input = self.add(f"{name}_streams", OpKind.STREAM_MIX, mix,
                                    (hidden,), ref_path=f"{ref}.2", role=f"{role}_streams",
                                    **provenance)
        if self.inject is not None:  # after the aggregate, before the norm (the residual: as it was)
            branch_input = self.add(f"{name}_reinject", OpKind.ADD, AddAttrs(),
                                    (branch_input, self.inject), role=f"{role}_reinject",
                                    **provenance)
        if layers.pre_norm:
            branch_input = self.add(f"{name}_norm", OpKind.NORM, norm, (branch_input, condition),
                                    ref_path=f"{ref}.0.0", role=f"{role}_norm", **provenance)
        # a Scale of depth_scale_residual wraps the sublayer in the reference, LayerScale in
        # it: each moves the parameters under one `.fn` more
        branch_ref = f"{ref}.1" + ".fn" * (residual.depth_scale != 1.0)
        branch_ref += ".fn" if residual.layerscale is not None or residual.layerscale_condition else ""
        branch_ref += ".fn" if residual.token_shifts else ""  # ShiftTokens wraps it too
        macaron = layers.macaron and kind is OpKind.FEEDFORWARD
        branch_ref += ".fn" if macaron else ""  # and Scale(0.5, ...) wraps macaron feedforwards
        if kind is OpKind.FEEDFORWARD and self.deep_embed is not None:  # ff_deep_embed
            attrs, extra_inputs = replace(attrs, deep_embed=True), (self.deep_embed,)
        branch = self.add(name, kind, attrs, (branch_input, *extra_inputs),
                          spec_key=f"{layers.key}.{role}", ref_path=branch_ref, block=block,
                          role=role)
        if layers.sandwich_norm:
            branch = self.add(f"{name}_post_norm", OpKind.NORM, norm, (branch, condition),
                              ref_path=f"{ref}.0.1", role=f"{role}_post_norm", **provenance)
        residual = replace(residual, branch=role, branch_scale=0.5 if macaron else 1.0)
        gate = self.condition if residual.layerscale_condition else None  # adaLN-Zero's
        out = self.add(f"{name}_residual", OpKind.RESIDUAL, residual, (hidden, branch, gate),
                       ref_path=ref, **provenance)
        if residual.sum_norm:  # post-norm, or pre_and_post_norm's norm after the sum
            after = "post_main_norm" if layers.pre_norm else "norm"
            out = self.add(f"{name}_{after}", OpKind.NORM, norm, (out, condition), ref_path=f"{ref}.0.2",
                           role=f"{role}_{after}", **provenance)
        return out


def layer_index(ref: str) -> int:
    """The index of the reference's layer at `ref` (`...layers.3`) in its stack."""
    return int(ref.rpartition("layers.")[2])


def init_depth(layers: ResolvedLayers, index: int, block_width: int) -> int:
    """The depth a depth-scaled initialisation gives the sublayer the reference builds
    `index`-th: that of its block of `block_width` sublayers (a layout counts each sublayer a
    block); 0 without depth_scale_residual: true."""
    return index // block_width + 1 if layers.depth_scaled_init else 0


def depth_scaled(attrs: object, depth: int) -> object:
    """A sublayer's payload with its output projection's init depth, where it has a projection
    that does not start at zero (zero_init_output wins, as in the reference)."""
    if not depth or not hasattr(attrs, "output_init_depth") or attrs.zero_init_output:
        return attrs
    if getattr(attrs, "project_out", True) is False:
        return attrs
    return replace(attrs, output_init_depth=depth)


def stack_sublayers(layers: ResolvedLayers, mask, context, context_mask,
                    positions: tuple, prefix_length: str | None = None) -> list[tuple]:
    """(role, kind, attrs, extra inputs, residual) of every sublayer of the stack, in the
    reference's order ('a', 'c', 'f' per block; AttentionLayers.__init__), each with its own
    layer's payloads. A block's roles are attn, cross_attn, ff (macaron_ff before them); a
    custom layout's one block numbers its sublayers (attn0, ff1). Rotary and position biases
    reach self-attention only, as a PrefixDecoder's prefix length does."""
    rotary, bias = positions
    kinds = {"a": ("attn", OpKind.ATTENTION, iter(layers.attentions),
                   (mask, rotary, bias, prefix_length)),
             "c": ("cross_attn", OpKind.CROSS_ATTENTION, iter(layers.cross_attentions),
                   (context, mask, context_mask)),
             "f": ("ff", OpKind.FEEDFORWARD, iter(layers.feedforwards), ())}
    width = len(layers.types) // layers.depth  # sublayers per block
    sublayers = []
    for index, (layer_type, residual) in enumerate(zip(layers.types, layers.residuals, strict=True)):
        role, kind, payloads, extra = kinds[layer_type]
        if layers.layout:
            role = f"{role}{index}"
        elif layers.macaron and index % width == 0:
            role = "macaron_ff"  # ('f', 'a', 'f'): Lu et al. 2019, https://arxiv.org/abs/1906.02762
        sublayers.append((role, kind, next(payloads), extra, residual))
    return sublayers
