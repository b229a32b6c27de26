"""check-model-structure: model-level settings that x-transformers builds but cannot run.

- ViT cuts the image into patch_size squares, so image_size must be a multiple of it (asserted
  in ViTransformerWrapper.__init__; xtc says which key).
- XTransformer never passes a context to its encoder, so an encoder with `cross_attend: true`
  fails on its first forward ('context must be passed in', AttentionLayers.forward).
- `tie_token_emb` makes the decoder look its tokens up in the encoder's table, so both sides
  need the same vocabulary: otherwise the decoder's ids index past the table.
- `sandwich_norm` adds norms to pre-norm sublayers: not with `pre_norm: false`
  (AttentionLayers.__init__).
- DyT (`use_dynamic_tanh`) replaces pre-norms: not with `pre_norm: false`, nor with
  `gated_multi_residual`, which drops the pre-norms (AttentionLayers.__init__ asserts it).
- A continuous model's `autoregressive:` options set a loss that compares each output with the
  next input: its outputs must be as wide as its inputs, and one per position (not pooled by
  `average_pool_embed`).
- Adaptive norms and layer scales need a `condition` from the model's forward: ViT's and
  XTransformer's forward give their layers none.
- A `probabilistic` continuous model projects to a mean and a log-variance per output: it needs
  `dim_out`. Without it x-transformers has no projection and splits the hidden state in half,
  so its outputs are half as wide as its inputs and its generate fails at the first step.
  `use_identity_if_same_dim` with 2 * dim_out == dim drops that projection the same way.
- A pooled TransformerWrapper (`average_pool_embed`, `use_cls_token`) returns one vector of
  logits per sequence (or per CLS token): there is no next token for `autoregressive:` to
  train (x-transformers' AutoregressiveWrapper fails on its output); its `loss(x, labels)`
  takes class labels. It pools one way: the mean, the CLS tokens or an attention pool
  (TransformerWrapper.__init__ asserts that CLS tokens and an attention pool are not both set;
  a mean pool before an attention pool leaves it one vector to attend to, and its forward fails).
- `attn_pool` pools an encoder's outputs: on a Decoder or PrefixDecoder x-transformers builds the
  pool and ignores it (forward returns the logits, the pooled tokens only among its
  intermediates). An attention-pooled model returns the pooled tokens, never logits: the
  options of a logits head change nothing there, and `return_only_embed` makes the
  reference's forward fail on the head it removed.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec
from xtc.spec.keywords import LAYER_TYPES

from ..resolve import ADAPTIVE, generates_vectors, identity_out, needs_condition
from .modules import all_modules, diagnostic

ID = "check-model-structure"


def check_model_structure(spec: Spec) -> list[Diagnostic]:
    found = []
    for module in all_modules(spec):
        if module.type in LAYER_TYPES and module["sandwich_norm"] \
                and not module["pre_norm"]:
            found.append(diagnostic(
                spec, f"{module.key}.sandwich_norm", "sandwich-norm-needs-pre-norm",
                "sandwich_norm adds a norm after each pre-norm sublayer; it cannot be combined "
                "with pre_norm: false (x-transformers 2.31.10 refuses this too: 'sandwich norm "
                "cannot be used when not using prenorm')"))
        if module.type in LAYER_TYPES and module["use_dynamic_tanh"]:
            found += check_dynamic_tanh(spec, module)
        if module.type == "ViTransformerWrapper":
            found += check_patches(spec, module)
        elif module.type == "XTransformer":
            found += check_sides(spec, module)
        elif module.type == "ContinuousTransformerWrapper" and module["probabilistic"] \
                and module["dim_out"] is None:
            found.append(diagnostic(
                spec, f"{module.key}.probabilistic", "probabilistic-needs-dim-out",
                "probabilistic outputs a mean and a variance per feature through a projection "
                "of width 2 * dim_out: set dim_out (x-transformers 2.31.10 without it splits "
                "the hidden state in half, and cannot generate)"))
        elif module.type == "ContinuousTransformerWrapper" and module["probabilistic"] \
                and identity_out(module):
            found.append(diagnostic(
                spec, f"{module.key}.use_identity_if_same_dim", "probabilistic-identity-output",
                "use_identity_if_same_dim drops the projection to the means and variances, as "
                "2 * dim_out is dim: x-transformers 2.31.10 then splits the hidden state in "
                "half; set it to false or choose another dim_out"))
        if module.type == "ContinuousTransformerWrapper" and module.training_given:
            found += check_continuous_training(spec, module)
        if module.type == "TransformerWrapper":
            found += check_pooling(spec, module)
            found += check_repeated_layers(spec, module)
        found += check_condition_reaches(spec, module)
    return found


def check_condition_reaches(spec: Spec, model) -> list[Diagnostic]:
    """Adaptive norms and layer scales read a `condition` that the model's forward must hand
    its layers: ViTransformerWrapper's and XTransformer's do not (x-transformers 2.31.10
    fails at forward, missing it); a Transformer-XL memory does not carry one in xtc yet. (In
    a composite, a component's condition is the composite's `<component>_condition`.)"""
    found = []
    for layers in model.children.values():
        if layers.type not in LAYER_TYPES or not needs_condition(layers):
            continue
        key = f"{layers.key}.{next(name for name in ADAPTIVE if layers[name])}"
        why = None
        if model.type in ("ViTransformerWrapper", "XTransformer"):
            why = (f"{model.type}'s forward hands its layers no condition (x-transformers "
                   "2.31.10 fails at forward: 'condition needs to be passed in')")
        elif model.options.get("max_mem_len"):
            why = ("with max_mem_len the memory passes the conditioned norms too: not compiled "
                   "yet")
        if why:
            found.append(diagnostic(spec, key, "condition-not-reaching-layers",
                                    f"{key.rpartition('.')[2]} reads a condition, and here "
                                    f"nothing gives one: {why}"))
    return found


# The options of a logits head: an attention-pooled model has none that it returns.
HEAD_OPTIONS = ("tie_embedding", "logits_dim", "return_only_embed", "squeeze_out_last_dim",
                "sigsoftmax_logits", "mixture_of_softmax", "num_output_heads")


def check_pooling(spec: Spec, model) -> list[Diagnostic]:
    """One way to pool, and no next-token training for a pooled model."""
    pools = [name for name in ("average_pool_embed", "use_cls_token", "attn_pool")
             if model.options.get(name)]
    found = []
    if len(pools) > 1:
        found.append(diagnostic(
            spec, f"{model.key}.{pools[-1]}", "one-pooling",
            f"{' and '.join(pools)} each make the sequence's output: set one (x-transformers "
            "2.31.10 asserts that use_cls_token and attn_pool are not both set, and fails on an "
            "attention pool of the mean)"))
    if "attn_pool" in pools:
        return found + check_attention_pool(spec, model)
    if pools and model.training_given:
        found.append(diagnostic(
            spec, f"{model.key}.autoregressive", "pooled-model-predicts-no-next-token",
            f"autoregressive: trains next-token prediction, but {pools[0]} makes the model "
            "return class logits per sequence (x-transformers' AutoregressiveWrapper fails on "
            "them); its loss(x, labels) takes class ids instead"))
    return found


def check_attention_pool(spec: Spec, model) -> list[Diagnostic]:
    """An encoder's attention pool, and no logits head beside it."""
    layers = model.children["attn_layers"]
    found = []
    if layers.type in ("Decoder", "PrefixDecoder"):
        found.append(diagnostic(
            spec, f"{model.key}.attn_pool", "attn-pool-needs-encoder",
            f"attn_pool pools an encoder's outputs: on a {layers.type} x-transformers 2.31.10 "
            "builds the pool and ignores it (forward returns the logits); use an Encoder, or "
            "remove attn_pool"))
    for name in HEAD_OPTIONS:
        value = model.options.get(name)
        if value and not (name == "num_output_heads" and value == 1):
            found.append(diagnostic(
                spec, f"{model.key}.{name}", "attn-pool-returns-no-logits",
                f"{name} configures the logits head, and with attn_pool the model returns the "
                "pooled tokens, never logits: remove it (x-transformers 2.31.10 computes the "
                "logits and drops them" + (", and its forward fails without the head)"
                                           if name == "return_only_embed" else ")")))
    return found


def check_repeated_layers(spec: Spec, model) -> list[Diagnostic]:
    """Recycling and a looped LM each run the layers several times: at most one of them, and a
    looped LM's layers normalise each block's input and output (x-transformers 2.31.10 asserts
    both: the looped LM of Zhu et al. is trained with pre_and_post_norm)."""
    if not model.options.get("looped"):
        return []
    if model.options.get("recycling"):
        return [diagnostic(spec, f"{model.key}.looped", "recycling-and-looped",
                           "recycling and looped each run the layers several times: set one "
                           "(x-transformers 2.31.10 asserts at most one)")]
    layers, found = model.children["attn_layers"], []
    if not layers["pre_and_post_norm"]:
        found.append(diagnostic(spec, f"{model.key}.looped", "looped-needs-pre-and-post-norm",
                                "looped needs attn_layers.pre_and_post_norm: true (x-transformers "
                                "2.31.10 asserts it: the looped LM normalises each block's input "
                                "and output so that the loops stay stable)"))
    if model.options.get("num_memory_tokens"):
        found.append(diagnostic(spec, f"{model.key}.num_memory_tokens", "looped-with-memory-tokens",
                                "a looped LM with memory tokens is not compiled: x-transformers "
                                "2.31.10's looped loss reads every loop's logits at the memory "
                                "positions too, and fails on the shapes"))
    if model.training.get("add_attn_z_loss"):
        found.append(diagnostic(spec, f"{model.key}.autoregressive.add_attn_z_loss",
                                "looped-with-z-loss", "the attention z-loss of a looped LM is not "
                                "compiled yet (x-transformers 2.31.10 takes the last loop's scores)"))
    return found


def check_dynamic_tanh(spec: Spec, layers) -> list[Diagnostic]:
    """DyT is tried in pre-norm stacks only: the reference asserts it, after gated_multi_residual
    has dropped the pre-norms too."""
    without = ("pre_norm: false" if not layers["pre_norm"]
               else "gated_multi_residual" if layers["gated_multi_residual"] else None)
    if without is None:
        return []
    return [diagnostic(
        spec, f"{layers.key}.use_dynamic_tanh", "dynamic-tanh-needs-pre-norm",
        f"use_dynamic_tanh replaces the norms of a pre-norm stack; it cannot be combined with "
        f"{without} (x-transformers 2.31.10 refuses this too: 'dynamic tanh norm only tested "
        "for pre-norm')")]


def check_continuous_training(spec: Spec, model) -> list[Diagnostic]:
    """ContinuousAutoregressiveWrapper predicts each next input from the output before it, so
    its options need outputs as wide as the inputs."""
    if generates_vectors(model):
        return []
    if model["average_pool_embed"]:
        return [diagnostic(
            spec, f"{model.key}.autoregressive", "pooled-model-predicts-no-next-token",
            "autoregressive: trains a model to predict its next input, but average_pool_embed "
            "makes it return one vector per sequence (x-transformers' "
            "ContinuousAutoregressiveWrapper fails on it)")]
    dim = model.children["attn_layers"]["dim"]
    widths = f"dim_in {model['dim_in'] or dim} and dim_out {model['dim_out'] or dim}"
    return [diagnostic(
        spec, f"{model.key}.autoregressive", "training-needs-next-input",
        f"autoregressive: trains a model to predict its next input, but {widths} differ, so "
        "there is no loss for its options to set (x-transformers' "
        "ContinuousAutoregressiveWrapper fails on such a model)")]


def check_patches(spec: Spec, vit) -> list[Diagnostic]:
    image_size, patch_size = vit["image_size"], vit["patch_size"]
    if image_size % patch_size == 0:
        return []
    return [diagnostic(spec, f"{vit.key}.patch_size", "image-size-not-divisible-by-patch-size",
                       f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")]


def check_sides(spec: Spec, model) -> list[Diagnostic]:
    encoder, decoder = model.children["encoder"], model.children["decoder"]
    found = []
    if encoder["cross_attend"]:
        found.append(diagnostic(
            spec, f"{encoder.key}.cross_attend", "encoder-cannot-cross-attend",
            "XTransformer passes no context to its encoder, so it cannot cross-attend"))
    if model["tie_token_emb"] and encoder["num_tokens"] != decoder["num_tokens"]:
        found.append(diagnostic(
            spec, f"{model.key}.tie_token_emb", "tie-token-emb-needs-equal-vocabularies",
            f"tie_token_emb shares one embedding table, so encoder.num_tokens "
            f"({encoder['num_tokens']}) must equal decoder.num_tokens ({decoder['num_tokens']})"))
    return found
