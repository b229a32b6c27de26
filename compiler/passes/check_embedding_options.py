"""check-embedding-options: embedding settings that x-transformers builds but cannot run (or
ignores: interspersed memory without memory tokens).

- `tie_embedding` reuses the token embedding as the output layer, so the embedding must be as
  wide as the model: with another `emb_dim` the reference fails at the logits (a matmul of
  (B, T, dim) by (emb_dim, num_tokens)).
- `l2norm_embed` re-initialises `pos_emb.emb`, which scaled sinusoidal positions do not have:
  the reference raises AttributeError while constructing (TransformerWrapper.init_).
- Scaled sinusoidal positions split the width into sin and cos halves, so it must be even
  (asserted in ScaledSinusoidalEmbedding.__init__).
Both hold only where absolute positions are built: rotary and the T5 bias turn them off.
- An xVal model (XValTransformerWrapper) has no projection from `emb_dim` to `dim`: the reference
  builds one of another width and fails in forward, adding the (dim-wide) positions.
- Its `numerical_token_id` must be a token id (below `num_tokens`): else no token is ever a
  number, and the numbers given to forward are never read.
- `memory_tokens_interspersed_every` places the memory tokens of `num_memory_tokens`: alone it
  does nothing. It is for a Decoder only (asserted in TransformerWrapper.forward): the zeros
  that pad the last chunk come after every real position, where only causal attention
  ignores them.
- `ff_deep_embed` scales each feedforward output by gains looked up for the tokens: memory or
  CLS tokens lengthen the sequence past the tokens, and the reference fails in forward on the
  lengths. It hands its `depth` rows of gains to the feedforwards in the order they run (one
  row under weight tying) and leaves the others unscaled: xtc builds the one layout where
  each block's feedforward gets its own row, and refuses the others (macaron, weight tying,
  custom layouts).
- `embed_num_tokens` adds embeddings looked up by ids given beside the tokens (`embed_ids`):
  with Transformer-XL memories (`max_mem_len`) training and generation run by segments, and
  x-transformers' XLAutoregressiveWrapper hands the ids of the whole sequence to every
  segment, failing on the lengths; xtc refuses the pair.
- Forgetful causal masking (`autoregressive: {mask_prob}`) hides random keys of the tokens: the
  reference's mask does not cover memory tokens, and its loss fails on the lengths.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from ..resolve import drops_absolute_positions
from .modules import all_modules, diagnostic, wrapper_modules

ID = "check-embedding-options"


def check_embedding_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for model in wrapper_modules(spec):
        found += check_token_embedding(spec, model)
        found += check_memory_tokens(spec, model)
        if model.type == "TransformerWrapper" and model["ff_deep_embed"]:
            found += check_deep_embed(spec, model)
        if model.type == "TransformerWrapper" and model["embed_num_tokens"] and model["max_mem_len"]:
            found.append(diagnostic(
                spec, f"{model.key}.embed_num_tokens", "embed-num-tokens-with-memories",
                "embed_num_tokens cannot be combined with max_mem_len: training and generation "
                "run by segments, and x-transformers' XLAutoregressiveWrapper hands embed_ids of "
                "the whole sequence to every segment, failing on the lengths"))
    for model in all_modules(spec):
        if model.type in ("TransformerWrapper", "ContinuousTransformerWrapper",
                          "XValTransformerWrapper"):
            found += check_sinusoidal_width(spec, model)
        if model.type == "XValTransformerWrapper":
            found += check_xval_embedding(spec, model)
    return found


def check_xval_embedding(spec: Spec, model) -> list[Diagnostic]:
    dim, found = model.children["attn_layers"]["dim"], []
    if model["emb_dim"] not in (None, dim):
        found.append(diagnostic(
            spec, f"{model.key}.emb_dim", "xval-emb-dim-needs-dim",
            f"an xVal model has no projection from emb_dim to dim: emb_dim ({model['emb_dim']}) "
            f"must equal dim ({dim}) or be left out (x-transformers builds it and fails in "
            "forward)"))
    token, num_tokens = model["numerical_token_id"], model["num_tokens"]
    if token is not None and num_tokens is not None and token >= num_tokens:
        found.append(diagnostic(
            spec, f"{model.key}.numerical_token_id", "numerical-token-out-of-range",
            f"numerical_token_id ({token}) must be a token id below num_tokens ({num_tokens}): "
            "else no token is ever a number"))
    return found


def check_token_embedding(spec: Spec, model) -> list[Diagnostic]:
    dim = model.children["attn_layers"]["dim"]
    emb_dim = model["emb_dim"] or dim
    found = []
    if model["tie_embedding"] and emb_dim != dim:
        found.append(diagnostic(
            spec, f"{model.key}.tie_embedding", "tie-embedding-needs-equal-widths",
            f"tie_embedding reuses the token embedding as the output layer, so emb_dim "
            f"({emb_dim}) must equal dim ({dim})"))
    if absolute_positions(model) and model["scaled_sinu_pos_emb"] and model["l2norm_embed"]:
        found.append(diagnostic(
            spec, f"{model.key}.l2norm_embed", "l2norm-embed-excludes-scaled-sinusoidal",
            "l2norm_embed cannot be combined with scaled_sinu_pos_emb: x-transformers fails "
            "while building it (it re-initialises a learned position table that does not exist)"))
    return found


def absolute_positions(model) -> bool:
    """Whether the wrapper builds absolute positions: asked for, a max_seq_len, and not turned
    off by the layers (disable_abs_pos_emb, by default under rotary or the T5 bias)."""
    disabled = drops_absolute_positions(model.children["attn_layers"])
    return bool(model["use_abs_pos_emb"] and model["max_seq_len"] and not disabled)


def check_sinusoidal_width(spec: Spec, model) -> list[Diagnostic]:
    dim = model.children["attn_layers"]["dim"]
    width = (model["emb_dim"] or dim) if model.type == "TransformerWrapper" else dim
    if not (absolute_positions(model) and model["scaled_sinu_pos_emb"] and width % 2):
        return []
    return [diagnostic(spec, f"{model.key}.scaled_sinu_pos_emb", "scaled-sinusoidal-needs-even-width",
                       f"scaled sinusoidal positions need an even embedding width, got {width}")]


def check_memory_tokens(spec: Spec, model) -> list[Diagnostic]:
    found = []
    if model["num_memory_tokens"] and model.trainer and model.training.get("mask_prob"):
        found.append(diagnostic(
            spec, f"{model.key}.autoregressive.mask_prob", "mask-prob-excludes-memory-tokens",
            "autoregressive.mask_prob cannot be combined with num_memory_tokens: x-transformers' "
            "random key mask covers the tokens only, and its loss fails on the lengths"))
    if model["memory_tokens_interspersed_every"] is None:
        return found
    key = f"{model.key}.memory_tokens_interspersed_every"
    if not model["num_memory_tokens"]:
        return [*found, diagnostic(
            spec, key, "interspersed-memory-needs-memory-tokens",
            "memory_tokens_interspersed_every places memory tokens, so it needs "
            "num_memory_tokens (without it, it does nothing)")]
    layers = model.children["attn_layers"].type
    if layers != "Decoder":
        found.append(diagnostic(
            spec, key, "interspersed-memory-needs-decoder",
            f"memory_tokens_interspersed_every needs a Decoder ({layers} here): x-transformers "
            "raises for any other stack, whose attention would see the zeros that pad the last "
            "chunk"))
    return found


# attn_layers keys under which the feedforwards are not one per block, each its own
UNEVEN_FEEDFORWARDS = ("macaron", "weight_tie_layers", "custom_layers", "par_ratio",
                       "sandwich_coef", "layers_execute_order")


def check_deep_embed(spec: Spec, model) -> list[Diagnostic]:
    key, found = f"{model.key}.ff_deep_embed", []
    extra = [name for name in ("num_memory_tokens", "use_cls_token") if model[name]]
    if extra:
        found.append(diagnostic(
            spec, key, "ff-deep-embed-extra-positions",
            f"ff_deep_embed cannot be combined with {extra[0]}: its gains are looked up for the "
            "tokens only, and x-transformers fails in forward on the longer sequence"))
    layers = model.children["attn_layers"]
    layout = [name for name in UNEVEN_FEEDFORWARDS if layers[name]]
    if layout:
        found.append(diagnostic(
            spec, key, "ff-deep-embed-layout",
            f"ff_deep_embed needs one feedforward per block, each its own (not {layout[0]}): "
            "x-transformers hands its rows of gains to the feedforwards in the order they run "
            "and leaves the rest unscaled, which xtc does not build"))
    return found
