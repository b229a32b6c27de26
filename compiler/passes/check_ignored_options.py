"""check-ignored-options: warnings for options that the reference accepts and then ignores,
or that make generation slow.

The spec still compiles, and to the same model as the reference; the warning says that an
option written in it has no effect, so that the author is not misled.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from ..resolve import (
    CrossOptions,
    generates_vectors,
    identity_in,
    identity_out,
    needs_condition,
    pre_norm,
    sum_replaced_by,
)
from .check_attention_options import cross_attends
from .modules import all_modules, diagnostic, each_value, layer_modules, token_models

ID = "check-ignored-options"


def prefix_reads_later(spec: Spec, model, layers) -> list[Diagnostic]:
    """A PrefixDecoder is built bidirectional: two-way token shifts and data-dependent ALiBi read
    later positions, so a new token changes earlier outputs and generate() cannot cache them."""
    if model.type != "TransformerWrapper" or layers.type != "PrefixDecoder":
        return []
    readers = {"shift_tokens": any(each_value(layers["shift_tokens"])),
               "attn.data_dependent_alibi": any(each_value(layers.section("attn")["data_dependent_alibi"]))}
    return [diagnostic(spec, f"{layers.key}.{name}", "prefix-decoder-disables-kv-cache",
                       f"{name} in a PrefixDecoder, which is built bidirectional, reads later "
                       "positions too: each new token changes the outputs before it, so generate() "
                       "cannot use a kv cache and recomputes the whole sequence for each new token",
                       "warning")
            for name, used in readers.items() if used]


def check_ignored_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        attn = layers.section("attn")
        for name in ("qk_norm_groups", "qk_norm_scale", "qk_norm_dim_scale"):
            if not attn["qk_norm"] and name in layers.sections_given.get("attn", ()):
                found.append(diagnostic(
                    spec, f"{layers.key}.attn.{name}", "qk-norm-option-without-qk-norm",
                    f"attn.{name} has no effect without attn.qk_norm: true", "warning"))
        if not attn["sparse_topk"] and attn["sparse_topk_straight_through"]:
            found.append(diagnostic(
                spec, f"{layers.key}.attn.sparse_topk_straight_through",
                "straight-through-without-sparse-topk",
                "attn.sparse_topk_straight_through has no effect without attn.sparse_topk",
                "warning"))
        if not attn["softclamp_logits"] and "logit_softclamp_value" in layers.sections_given.get("attn", ()):
            found.append(diagnostic(
                spec, f"{layers.key}.attn.logit_softclamp_value", "softclamp-value-without-softclamp",
                "attn.logit_softclamp_value has no effect without attn.softclamp_logits: true",
                "warning"))
        found += ignored_gumbel_options(spec, layers)
        for name in ("cope_max_pos", "cope_talking_heads"):
            if not attn["use_cope"] and name in layers.sections_given.get("attn", ()):
                found.append(diagnostic(
                    spec, f"{layers.key}.attn.{name}", "cope-option-without-cope",
                    f"attn.{name} has no effect without attn.use_cope: true", "warning"))
        if not attn["laser"] and "laser_softclamp_value" in layers.sections_given.get("attn", ()):
            found.append(diagnostic(
                spec, f"{layers.key}.attn.laser_softclamp_value", "laser-value-without-laser",
                "attn.laser_softclamp_value has no effect without attn.laser: true", "warning"))
        found += ignored_value_gate_options(spec, layers)
        found += ignored_norm_options(spec, layers)
        if (layers.type in ("Decoder", "PrefixDecoder") and layers["add_value_residual"]
                and any(each_value(attn["use_latent_kv"]))):
            found.append(diagnostic(
                spec, f"{layers.key}.add_value_residual", "value-residual-disables-kv-cache",
                "add_value_residual with attn.use_latent_kv: the latent cache re-projects every "
                "past value at each step, without the mix it had, so generate() recomputes the "
                "whole sequence for each new token (no kv cache)", "warning"))
        joined_by = sum_replaced_by(layers)
        if joined_by and "scale_residual_constant" in layers.given:
            found.append(diagnostic(
                spec, f"{layers.key}.scale_residual_constant", "residual-constant-ignored",
                f"scale_residual_constant has no effect with {joined_by}: it joins the "
                "residual as it is", "warning"))
        if layers["attn_aggregated_residuals"] and "depth_scale_residual" in layers.given:
            found.append(diagnostic(
                spec, f"{layers.key}.depth_scale_residual", "depth-scale-with-aggregated-residuals",
                "depth_scale_residual has no effect with attn_aggregated_residuals: "
                "x-transformers leaves the outputs and their initialisation unscaled there",
                "warning"))
        if not layers["add_value_residual"] and "learned_value_residual_mix" in layers.given:
            found.append(diagnostic(
                spec, f"{layers.key}.learned_value_residual_mix", "value-mix-without-value-residual",
                "learned_value_residual_mix has no effect without add_value_residual: true",
                "warning"))
        for name in ("data_dependent_alibi_per_row", "data_dependent_alibi_per_row_dim_head",
                     "data_dependent_alibi_kwargs"):
            if not attn["data_dependent_alibi"] and name in layers.sections_given.get("attn", ()):
                found.append(diagnostic(
                    spec, f"{layers.key}.attn.{name}", "forget-gate-option-without-dda",
                    f"attn.{name} has no effect without attn.data_dependent_alibi: true",
                    "warning"))
        if (attn["data_dependent_alibi"] and not attn["data_dependent_alibi_per_row"]
                and "data_dependent_alibi_per_row_dim_head" in layers.sections_given.get("attn", ())):
            found.append(diagnostic(
                spec, f"{layers.key}.attn.data_dependent_alibi_per_row_dim_head",
                "forget-gate-option-without-dda",
                "attn.data_dependent_alibi_per_row_dim_head has no effect without "
                "attn.data_dependent_alibi_per_row: true", "warning"))
        for name in ("rel_proj_num_distance_basis", "rel_proj_max_dist"):
            if not attn["use_rel_proj_pos_bias"] and name in layers.sections_given.get("attn", ()):
                found.append(diagnostic(
                    spec, f"{layers.key}.attn.{name}", "rel-proj-option-without-rel-proj-bias",
                    f"attn.{name} has no effect without attn.use_rel_proj_pos_bias: true",
                    "warning"))
        ff = layers.section("ff")
        if any(each_value(ff["glu"])) and ff["no_bias"]:  # glu may be per layer
            found.append(diagnostic(
                spec, f"{layers.key}.ff.no_bias", "no-bias-keeps-glu-bias",
                "with ff.glu, x-transformers keeps the bias of the gated projection; no_bias "
                "removes only the output projection's bias", "warning"))
        if ff["relu_squared"] and ff["swish"]:
            found.append(diagnostic(
                spec, f"{layers.key}.ff.swish", "swish-ignored-with-relu-squared",
                "ff.swish has no effect: ff.relu_squared takes precedence", "warning"))
        elif ff["solu"] and ff["swish"]:
            found.append(diagnostic(
                spec, f"{layers.key}.ff.swish", "swish-ignored-with-solu",
                "ff.swish has no effect: ff.solu takes precedence", "warning"))
        found += feedforward_companions(spec, layers)
    for layers in layer_modules(spec):
        found += ignored_only_cross(spec, layers)
        deciding = next((k for k in ("custom_layers", "par_ratio") if layers[k] is not None), None)
        for later in ("par_ratio", "sandwich_coef"):
            if deciding and later != deciding and layers[later] is not None:
                found.append(diagnostic(
                    spec, f"{layers.key}.{later}", "layout-option-ignored",
                    f"{later} has no effect: {deciding} decides the layout", "warning"))
    for model in all_modules(spec):
        if model.trainer == "XValAutoregressiveWrapper" and "pad_value" in model.training_given:
            found.append(diagnostic(
                spec, f"{model.key}.autoregressive.pad_value", "pad-value-unused-by-xval",
                "autoregressive.pad_value has no effect: XValAutoregressiveWrapper takes it but "
                "feeds the tokens as they are", "warning"))
    for model in continuous_models(spec):
        if model["use_identity_if_same_dim"] and not (identity_in(model) or identity_out(model)):
            found.append(diagnostic(
                spec, f"{model.key}.use_identity_if_same_dim", "identity-needs-same-dim",
                "use_identity_if_same_dim has no effect: neither dim_in nor dim_out (times 2 "
                "when probabilistic) is the layers' dim", "warning"))
    for model in continuous_decoders(spec):
        if model["probabilistic"] and model.training["use_l1_loss"]:
            found.append(diagnostic(
                spec, f"{model.key}.autoregressive.use_l1_loss", "l1-loss-ignored-when-probabilistic",
                "autoregressive.use_l1_loss has no effect: a probabilistic model's loss is the "
                "Gaussian negative log-likelihood of its mean and variance", "warning"))
    for model in (*token_models(spec), *continuous_decoders(spec)):
        layers = model.children["attn_layers"]
        if model["num_memory_tokens"] and layers.type in ("Decoder", "PrefixDecoder"):
            found.append(diagnostic(
                spec, f"{model.key}.num_memory_tokens", "memory-tokens-disable-kv-cache",
                "memory tokens are prepended at every step, so generate() cannot use a kv "
                "cache and recomputes the whole sequence for each new token", "warning"))
        found += prefix_reads_later(spec, model, layers)
        if "num_cls_tokens" in model.given and not model.options.get("use_cls_token"):
            found.append(diagnostic(
                spec, f"{model.key}.num_cls_tokens", "cls-tokens-without-use-cls-token",
                "num_cls_tokens has no effect: use_cls_token is false", "warning"))
        found += pool_sizes_without_pool(spec, model)
        if model["scaled_sinu_pos_emb"] and not model["use_abs_pos_emb"]:
            found.append(diagnostic(
                spec, f"{model.key}.scaled_sinu_pos_emb", "positions-switched-off",
                "scaled_sinu_pos_emb has no effect: use_abs_pos_emb is false", "warning"))
        if model.type == "TransformerWrapper":
            found += ignored_head_options(spec, model)
            found += ignored_wrapper_flags(spec, model)
            if model["emb_frac_gradient"] > 1:
                found.append(diagnostic(
                    spec, f"{model.key}.emb_frac_gradient", "gradient-share-above-one",
                    "emb_frac_gradient has no effect above 1: the reference scales the "
                    "embeddings' gradient only by a share below 1", "warning"))
        elif model.type == "XValTransformerWrapper" and model["tie_embedding"] \
                and model["logits_dim"] is not None:
            found.append(tied_logits_dim(spec, model))
    return found + kernel_options(spec)


def pool_sizes_without_pool(spec: Spec, model) -> list[Diagnostic]:
    """The attention pool's sizes, given without attn_pool: TransformerWrapper builds no pool."""
    if model.options.get("attn_pool"):
        return []
    return [diagnostic(spec, f"{model.key}.{name}", "pool-sizes-without-attn-pool",
                       f"{name} has no effect: attn_pool is false", "warning")
            for name in ("num_pooled_tokens", "attn_pool_depth", "dim_pooled_tokens")
            if name in model.given]


def tied_logits_dim(spec: Spec, model) -> Diagnostic:
    return diagnostic(
        spec, f"{model.key}.logits_dim", "logits-dim-ignored-when-tied",
        "logits_dim has no effect with tie_embedding: the tied output layer gives one logit per "
        "token (num_tokens)", "warning")


def ignored_head_options(spec: Spec, model) -> list[Diagnostic]:
    """A TransformerWrapper's head options that change nothing (TransformerWrapper.__init__ and
    forward): any of them without a head (return_only_embed), logits_dim under a tied
    embedding, the squeeze of a head wider than 1, and the training options of a model whose
    output is not one logit per token (it has no loss nor generate). (An attention-pooled
    model has no head at all: check-model-structure refuses its options.)"""
    if model.options.get("attn_pool"):
        return []
    if model["return_only_embed"]:
        return [diagnostic(
            spec, f"{model.key}.{name}", "no-logits-head",
            f"{name} has no effect: return_only_embed leaves the model without a logits head",
            "warning") for name in ("logits_dim", "tie_embedding", "squeeze_out_last_dim")
            if model[name] not in (None, False)]
    found = []
    if model["tie_embedding"] and model["logits_dim"] is not None:
        found.append(tied_logits_dim(spec, model))
    # the width logits_dim gives; num_tokens is read only where it matters
    given = None if model["tie_embedding"] else model["logits_dim"]
    if model["squeeze_out_last_dim"] and given != 1:
        found.append(diagnostic(
            spec, f"{model.key}.squeeze_out_last_dim", "squeeze-needs-width-one",
            f"squeeze_out_last_dim has no effect: it drops the last axis of a logits head of "
            f"width 1, and this one is {given or model['num_tokens']} wide", "warning"))
    if model.training_given and given is not None and given != model["num_tokens"]:
        found.append(diagnostic(
            spec, f"{model.key}.autoregressive", "no-next-token-head",
            f"autoregressive has no effect: the logits head is {given} wide, not one logit per "
            f"token ({model['num_tokens']}), so the model has forward only, no loss nor generate",
            "warning"))
    return found


def ignored_wrapper_flags(spec: Spec, model) -> list[Diagnostic]:
    """TransformerWrapper flags that change nothing in xtc's model: attn_z_loss_weight is stored
    nowhere by the reference; input_not_include_cache only changes how the reference's forward
    reads the tokens passed with a cache, and xtc's decoding step always takes the new ones."""
    found = []
    if model["attn_z_loss_weight"] != 1e-4:
        found.append(diagnostic(
            spec, f"{model.key}.attn_z_loss_weight", "attn-z-loss-weight-unused",
            "attn_z_loss_weight has no effect: x-transformers stores it nowhere; the attention "
            "z-loss is `autoregressive: {add_attn_z_loss: true}`, weighted 1e-4", "warning"))
    if model["input_not_include_cache"]:
        found.append(diagnostic(
            spec, f"{model.key}.input_not_include_cache", "input-not-include-cache-unused",
            "input_not_include_cache has no effect: it tells x-transformers' forward that the "
            "tokens passed with a cache are only the new ones, which xtc's decoding step always "
            "takes", "warning"))
    found += [diagnostic(spec, f"{model.key}.{name}", code,
                         f"{name} has no effect without {switch}: true ({instead})", "warning")
              for name, switch, code, instead in SIZES_OF_SWITCHES
              if name in model.given and not model[switch]]
    if "next_embed_loss_weight" in model.training_given and not model["add_continuous_pred_head"]:
        found.append(diagnostic(
            spec, f"{model.key}.autoregressive.next_embed_loss_weight",
            "next-embed-weight-without-head", "next_embed_loss_weight weighs the loss of "
            "add_continuous_pred_head's prediction: no effect without it", "warning"))
    if model["num_output_heads"] > 1 and model["return_only_embed"]:
        found.append(diagnostic(
            spec, f"{model.key}.num_output_heads", "output-heads-without-logits",
            "num_output_heads has no effect with return_only_embed: true (no logits head: forward "
            "returns the embeddings)", "warning"))
    looped_keys = [name for name in LOOPED_LOSS_KEYS if name in model.training_given]
    if looped_keys and not model["looped"]:
        found.append(diagnostic(
            spec, f"{model.key}.autoregressive.{looped_keys[0]}", "looped-loss-without-looped",
            f"{', '.join(looped_keys)} weigh a looped LM's loss: no effect without looped: true",
            "warning"))
    return found


# A TransformerWrapper's sizes of what a switch turns on: (size, switch, code, what the model
# does with the switch off)
SIZES_OF_SWITCHES = (
    ("train_max_recycle_steps", "recycling", "recycle-steps-without-recycling",
     "the layers run once"),
    ("max_looped_steps", "looped", "looped-steps-without-looped", "the layers run once"),
    ("mixture_of_softmax_k", "mixture_of_softmax", "mixture-k-without-mixture", "one softmax"),
)
LOOPED_LOSS_KEYS = ("looped_loss_threshold_exit", "looped_loss_slope", "looped_exit_loss_weight")


def ignored_only_cross(spec: Spec, layers) -> list[Diagnostic]:
    """only_cross drops self-attention from the default block of layers that cross-attend:
    without cross_attend, or where custom_layers names the sublayers, it does nothing."""
    if layers.type == "CrossAttender" or not layers["only_cross"]:
        return []
    key = f"{layers.key}.only_cross"
    if not layers["cross_attend"]:
        return [diagnostic(spec, key, "only-cross-without-cross-attend",
                           "only_cross has no effect without cross_attend: true (x-transformers "
                           "then builds self-attention blocks as usual)", "warning")]
    if layers["custom_layers"] is not None:
        return [diagnostic(spec, key, "layout-option-ignored",
                           "only_cross has no effect: custom_layers decides the layout",
                           "warning")]
    return []


# Attention keywords about how x-transformers calls its kernels, which change nothing in the
# emitted code: why, for the warning.
KERNEL_OPTIONS = {
    "onnxable": "the emitted code builds its causal masks from position comparisons, which "
                "export to ONNX, whatever it says",
    "flash_pack_seq": "it packs variable-length sequences for the flash-attn package's varlen "
                      "kernel (CUDA, batch size 1); the emitted model runs SDPA over padded "
                      "batches with a padding mask",
    "attend_sdp_kwargs": "the emitted code lets SDPA choose among all its kernels (flash, "
                         "memory-efficient, cuDNN, math) at each call, and `xtc inspect` says "
                         "which each layer may take; to restrict them, call the model under "
                         "torch.nn.attention.sdpa_kernel",
}


def kernel_options(spec: Spec) -> list[Diagnostic]:
    """A warning for each kernel option written in an attn: or cross_attn: section."""
    found = []
    for layers in layer_modules(spec):
        for section in ("attn", "cross_attn"):
            given, values = layers.sections_given.get(section, ()), layers.section(section)
            for name, why in KERNEL_OPTIONS.items():
                if name in given and values[name]:
                    found.append(diagnostic(spec, f"{layers.key}.{section}.{name}",
                                            "kernel-option-ignored",
                                            f"{section}.{name} has no effect: {why}", "warning"))
    return found


def ignored_value_gate_options(spec: Spec, layers) -> list[Diagnostic]:
    """The value gates' settings that do nothing: at `attn:` where neither self-attention nor a
    cross-attention that inherits them uses them, at `cross_attn:` where cross-attention does
    not."""
    found, given = [], layers.sections_given
    crossing = cross_attends(layers)
    cross = value_gate_uses(CrossOptions(layers)) if crossing else {}
    for name, why in value_gate_uses(layers.section("attn")).items():
        inherited = crossing and name not in given.get("cross_attn", ())
        if why and name in given.get("attn", ()) and not (inherited and not cross[name]):
            found.append(diagnostic(spec, f"{layers.key}.attn.{name}", "gate-option-without-gate",
                                    f"attn.{name} has no effect: {why}", "warning"))
    for name, why in cross.items():
        if why and name in given.get("cross_attn", ()):
            found.append(diagnostic(spec, f"{layers.key}.cross_attn.{name}",
                                    "gate-option-without-gate",
                                    f"cross_attn.{name} has no effect: {why}", "warning"))
    return found


def value_gate_uses(options) -> dict[str, str]:
    """Each value-gate setting that does nothing in one attention -> why (the others -> "")."""
    gates = any(each_value(options["gate_values"]))
    output = any(each_value(options["output_gate"]))
    low_rank = (gates and options["gate_values_rank"] is not None
                or output and options["output_gate_rank"] is not None)
    return {
        "swiglu_values": "" if gates or output or not options["swiglu_values"] else
        "it makes the value gate a SiLU instead of a sigmoid, and there is no gate without "
        "gate_values or output_gate",
        "gate_values_rank": "" if gates or options["gate_values_rank"] is None else
        "it sizes the input gate, which gate_values adds",
        "gate_values_headwise": "" if gates or not options["gate_values_headwise"] else
        "it shapes the input gate, which gate_values adds",
        "output_gate_rank": "" if output or options["output_gate_rank"] is None else
        "it sizes the output gate, which output_gate adds",
        "output_gate_headwise": "" if output or not options["output_gate_headwise"] else
        "it shapes the output gate, which output_gate adds",
        "low_rank_silu_gates": "" if low_rank or options["low_rank_silu_gates"] else
        "it removes the SiLU inside a low-rank gate, and no gate is low-rank (gate_values_rank "
        "or output_gate_rank)",
    }


def continuous_models(spec: Spec) -> list:
    return [model for model in all_modules(spec) if model.type == "ContinuousTransformerWrapper"]


def continuous_decoders(spec: Spec) -> list:
    """The ContinuousTransformerWrappers that generate (resolve.generates_vectors)."""
    return [model for model in continuous_models(spec) if generates_vectors(model)]


def ignored_gumbel_options(spec: Spec, layers) -> list[Diagnostic]:
    """Gumbel-softmax's temperature and hardness written where the attention they reach
    (cross-attention: its own or attn:'s) has no gumbel_softmax."""
    found = []
    places = [("attn", layers.section("attn"))]
    if cross_attends(layers):
        places.append(("cross_attn", CrossOptions(layers)))
    for section, options in places:
        for name in ("gumbel_softmax_temp", "gumbel_softmax_hard"):
            if name in layers.sections_given.get(section, ()) and not options["gumbel_softmax"]:
                found.append(diagnostic(
                    spec, f"{layers.key}.{section}.{name}", "gumbel-option-without-gumbel-softmax",
                    f"{section}.{name} has no effect without {section}.gumbel_softmax: true",
                    "warning"))
    return found


def ignored_norm_options(spec: Spec, layers) -> list[Diagnostic]:
    """The norm keywords that change nothing where they are: the output's softclamp value
    without softclamp_output; DyT's alpha without DyT; the condition's width and MLP where no
    adaptive norm or layer scale reads it; a final
    norm's switch where no plain pre-norm stack decides it (post-norm has none, gated_multi_residual
    always one, pre_and_post_norm none); pre_and_post_norm where every sum is normed already
    (post-norm, and gated_multi_residual, which drops the pre-norms); unit offsets where nothing
    has a gain (use_simple_rmsnorm or an adaptive norm, without LayerScale)."""
    found = []

    def ignored(name: str, code: str, why: str) -> None:
        if name in layers.given:
            found.append(diagnostic(spec, f"{layers.key}.{name}", code,
                                    f"{name} has no effect {why}", "warning"))

    if not layers["softclamp_output"]:
        ignored("softclamp_output_value", "softclamp-value-without-softclamp",
                "without softclamp_output: true")
    if not layers["use_dynamic_tanh"]:
        ignored("dynamic_tanh_init_alpha", "dynamic-tanh-alpha-without-dynamic-tanh",
                "without use_dynamic_tanh: true")
    if not pre_norm(layers):
        without = "pre_norm: false" if not layers["pre_norm"] else "gated_multi_residual"
        ignored("pre_and_post_norm", "pre-and-post-norm-without-pre-norm",
                f"with {without}: every residual sum is normed already")
    if not pre_norm(layers) or layers["pre_and_post_norm"]:
        decides = ("gated_multi_residual" if layers["gated_multi_residual"]
                   else "pre_norm: false" if not layers["pre_norm"] else "pre_and_post_norm")
        ignored("pre_norm_has_final_norm", "final-norm-option-ignored",
                f"with {decides}, which decides the final norm")
    if not needs_condition(layers):
        for name in ("dim_condition", "adaptive_condition_mlp", "adaptive_condition_mlp_expansion"):
            ignored(name, "condition-option-without-adaptive",
                    "without use_adaptive_layernorm, use_adaptive_rmsnorm or "
                    "use_adaptive_layerscale: nothing reads the condition")
    gainless = next((name for name in ("use_simple_rmsnorm", "use_adaptive_layernorm",
                                       "use_adaptive_rmsnorm") if layers[name]), None)
    if gainless and not layers["use_layerscale"]:
        ignored("norm_add_unit_offset", "unit-offset-without-gains",
                f"with {gainless} and no LayerScale: no gain is stored")
    return found


# ff: values that act only beside a flag (FeedForward.__init__ and GLU): the value, the flag
# it needs (one that is set when the value acts), and the warning's code.
FF_COMPANIONS = (
    ("glu_mult_bias", ("glu",), "glu-option-without-glu"),
    ("glu_softclamp", ("glu",), "glu-option-without-glu"),
    ("glu_gate_softclamp_value", ("glu", "glu_softclamp"), "glu-softclamp-value-without-glu-softclamp"),
    ("glu_up_softclamp_value", ("glu", "glu_softclamp"), "glu-softclamp-value-without-glu-softclamp"),
)


def feedforward_companions(spec: Spec, layers) -> list[Diagnostic]:
    """Warnings for ff: values the reference never reads: the GLU's options without glu (in no
    layer), its soft caps' values without glu_softclamp, softclamp_value beside glu (the GLU
    path has no pre-activation cap)."""
    ff, given, found = layers.section("ff"), layers.sections_given.get("ff", ()), []
    for name, needs, code in FF_COMPANIONS:
        if name in given and not all(any(each_value(ff[flag])) for flag in needs):
            flags = " and ".join(f"ff.{flag}: true" for flag in needs)
            found.append(diagnostic(spec, f"{layers.key}.ff.{name}", code,
                                    f"ff.{name} has no effect without {flags}", "warning"))
    if ff["softclamp_value"] is not None and all(each_value(ff["glu"])):
        found.append(diagnostic(
            spec, f"{layers.key}.ff.softclamp_value", "softclamp-value-ignored-with-glu",
            "ff.softclamp_value has no effect with ff.glu: x-transformers caps only the "
            "ungated feedforward's pre-activations (glu_softclamp caps the GLU)", "warning"))
    return found
