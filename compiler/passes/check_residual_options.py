"""Rules of the residual updates of a layer stack (how a sublayer's output joins its input).

- `residual_fn_kwargs` are the keywords of the residual update the stack uses: the mean /
  variance split (`mv_split_residual`) takes `init_alpha`, `init_beta` (numbers) and `learned`
  (a flag); the others take none. x-transformers drops unknown keys silently; xtc refuses them
  (`residual-fn-kwargs`), where a typo would otherwise change nothing.
- The mean / variance split has no residual scale: `scale_residual` beside it does nothing (a
  warning; x-transformers' MVSplitResidualUpdate drops it).
- `attn_aggregated_residual_kwargs` take `lora_rank`, a positive int below `dim`
  (`aggregated-residual-lora-rank`: x-transformers asserts it is below, its default of 64
  included; a rank of 0, a query map of no width, is xtc's own refusal); its `lora_activation`
  is a module, which a spec cannot give; without `attn_aggregated_residuals` they do nothing
  (`attn-aggregated-residual-kwargs`, errors). In training a dropped sublayer's
  input would still join the inputs attended over (x-transformers leaves it out): layer_dropout
  beside them is refused (`aggregated-residuals-exclude-layer-dropout`).
- The orthogonal update (`orthog_residual`) projects each batch row flattened whole, and the
  mean / variance split averages over the sequence: in a Decoder each output reads the later
  tokens (`breaks-causality`, a warning; generate() recomputes the whole sequence at each
  step). The orthogonal projection reads padded tokens too, whatever the mask (a warning); the
  split's means skip them.
- Hyper-connections (`num_residual_streams` above 1) replace the residual sum: beside a GRU gate
  or a whole-row update x-transformers asserts (`streams-exclude-residual-kinds`); beside
  `reinject_input` its forward adds the reinjected input of every stream to the mix of them,
  and fails (`streams-exclude-reinject`); with `attn_aggregated_residuals` it would aggregate
  the mixes, which xtc does not compile yet (`streams-exclude-aggregated-residuals`). They have
  no residual scale: `scale_residual` does nothing (`hyper-connections-drop-scale`, a warning).
  `gated_multi_residual` (one stream or several) needs `residual_fn_kwargs: {read_gate_rank: r}`,
  a positive int (`gated-multi-residual-rank`: x-transformers asserts it is given); it drops the
  pre-norm, and sandwich_norm with it fails in x-transformers (`gated-multi-residual-sandwich`).
  `hyper_conn_sinkhorn_iters` does nothing in 2.31.10, whose Sinkhorn step runs on a 1 x S
  matrix and always gives all ones (`sinkhorn-iters-no-effect`, a warning).
- `learned_reinject_input_gate` gates the reinjected input: without `reinject_input` there is
  none (x-transformers builds the gate and never runs it: `reinject-gate-without-reinject`).
- `integrate_layers` weighs the inputs of the sublayers built before each one (its rules:
  check_integrated_layers), and `unet_skips` joins the blocks of the second half with their
  mirrors (check_unet_skips): what else makes a sublayer's input or its block.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec
from xtc.spec.model import scalar

from ..resolve import AGGREGATE_LORA_RANK, CAUSAL_LAYERS, cross_only, default_block
from .modules import diagnostic, each_value, layer_modules, never_padded

ID = "check-residual-options"

# residual_fn_kwargs: the keywords of each residual update past those the layers set, and
# whether each takes a flag (else a number)
RESIDUAL_FN_KWARGS = {
    "mv_split_residual": {"init_alpha": False, "init_beta": False, "learned": True},
    "gated_multi_residual": {"read_gate_rank": False},
}


def check_residual_options(spec: Spec) -> list[Diagnostic]:
    found = []
    for layers in layer_modules(spec):
        found += check_residual_fn_kwargs(spec, layers) + check_whole_row_updates(spec, layers)
        found += check_aggregated_residuals(spec, layers)
        found += check_streams(spec, layers) + check_qkv_views(spec, layers)
        found += check_unet_skips(spec, layers) + check_integrated_layers(spec, layers)
        if layers["learned_reinject_input_gate"] and not layers["reinject_input"]:
            found.append(diagnostic(
                spec, f"{layers.key}.learned_reinject_input_gate", "reinject-gate-without-reinject",
                "learned_reinject_input_gate gates the reinjected input, and there is none: set "
                "reinject_input: true (x-transformers builds the gate and never runs it)"))
    return found


# what replaces the residual sum besides hyper-connections: (code, why)
NOT_WITH_STREAMS = {
    **dict.fromkeys(("gate_residual", "orthog_residual", "mv_split_residual"), (
        "streams-exclude-residual-kinds",
        "each replaces the residual sum (x-transformers 2.31.10 refuses this too)")),
    "reinject_input": ("streams-exclude-reinject", (
        "x-transformers adds the reinjected input of every stream to each sublayer's mix of "
        "them, and its forward fails")),
    "attn_aggregated_residuals": ("streams-exclude-aggregated-residuals",
                                  "aggregating the mixes of the streams is not compiled by xtc yet"),
}

# what makes the stack other than blocks of the default one, which unet_skips mirrors
NOT_DEFAULT_BLOCKS = ("custom_layers", "par_ratio", "sandwich_coef", "layers_execute_order")


def check_streams(spec: Spec, layers) -> list[Diagnostic]:
    key, found = f"{layers.key}.num_residual_streams", []
    if "hyper_conn_sinkhorn_iters" in layers.given:
        found.append(diagnostic(
            spec, f"{layers.key}.hyper_conn_sinkhorn_iters", "sinkhorn-iters-no-effect",
            "hyper_conn_sinkhorn_iters has no effect: x-transformers 2.31.10 runs its Sinkhorn "
            "step on a 1 x S matrix, which always gives all ones (every stream adds the sum of "
            "the streams)", "warning"))
    gated = layers["gated_multi_residual"]
    if gated:
        found += check_gated_multi_residual(spec, layers)
    if layers["num_residual_streams"] <= 1 and not gated:
        return found
    for name, (code, why) in NOT_WITH_STREAMS.items():
        # (beside gated_multi_residual the other residual kinds are at-most-one-residual-kind)
        if layers[name] and layers["num_residual_streams"] > 1 and not (gated and code == "streams-exclude-residual-kinds"):
            found.append(diagnostic(spec, key, code, f"num_residual_streams above 1 (hyper-"
                                    f"connections) cannot be combined with {name}: {why}"))
    if layers["scale_residual"]:
        found.append(diagnostic(spec, f"{layers.key}.scale_residual", "hyper-connections-drop-scale",
                                "scale_residual does nothing beside num_residual_streams above "
                                "1 or gated_multi_residual: their streams have no residual scale "
                                "(x-transformers drops it)", "warning"))
    return found


# what gives self-attention's queries, keys and values their own inputs
def check_qkv_views(spec: Spec, layers) -> list[Diagnostic]:
    """qkv_receive_diff_residuals needs views to receive: several residual streams, the gated
    multi-residual, the aggregated residuals or integrate_layers mix them; without, the
    reference fails with a bare assert."""
    key = f"{layers.key}.qkv_receive_diff_residuals"
    if not layers["qkv_receive_diff_residuals"]:
        return []
    if not (layers["num_residual_streams"] > 1 or layers["gated_multi_residual"]
            or layers["attn_aggregated_residuals"] or layers["integrate_layers"]):
        return [diagnostic(
            spec, key, "qkv-views-need-several-residuals",
            "qkv_receive_diff_residuals gives queries, keys and values their own mix of several "
            "residuals, and there is one: set num_residual_streams above 1 (or "
            "gated_multi_residual, attn_aggregated_residuals or integrate_layers). x-transformers "
            "2.31.10 fails at forward with a bare assertion")]
    if cross_only(layers) and "a" not in (layers["custom_layers"] or ()):
        return [diagnostic(spec, key, "qkv-views-without-self-attention",
                           "qkv_receive_diff_residuals does nothing in layers that only "
                           "cross-attend: only self-attention takes three views", "warning")]
    return []


def check_gated_multi_residual(spec: Spec, layers) -> list[Diagnostic]:
    """Its read_gate_rank is required (x-transformers asserts), a positive int; it drops the
    pre-norm, so sandwich_norm fails in the reference."""
    found, rank = [], (layers["residual_fn_kwargs"] or {}).get("read_gate_rank")
    if rank is None:
        found.append(diagnostic(spec, f"{layers.key}.gated_multi_residual", "gated-multi-residual-rank",
                                "gated_multi_residual needs residual_fn_kwargs: {read_gate_rank: "
                                "r}, the rank of its gates' bottleneck (x-transformers asserts it)"))
    elif isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        found.append(diagnostic(spec, f"{layers.key}.residual_fn_kwargs.read_gate_rank",
                                "gated-multi-residual-rank",
                                f"residual_fn_kwargs.read_gate_rank ({scalar(rank)}) must be a "
                                "positive int: the rank of gated_multi_residual's gates"))
    if layers["sandwich_norm"]:
        found.append(diagnostic(spec, f"{layers.key}.sandwich_norm", "gated-multi-residual-sandwich",
                                "sandwich_norm cannot be combined with gated_multi_residual, which "
                                "drops the pre-norm (x-transformers 2.31.10 refuses this too)"))
    return found


def check_residual_fn_kwargs(spec: Spec, layers) -> list[Diagnostic]:
    kind = next((name for name in RESIDUAL_FN_KWARGS if layers[name]), None)
    allowed = RESIDUAL_FN_KWARGS.get(kind, {})
    takes = (f"{', '.join(allowed)} for {kind} (flags: "
             f"{', '.join(name for name, flag in allowed.items() if flag)}, else numbers)"
             if kind else "nothing for the plain, gated or orthogonal residual")
    found = []
    for name, value in (layers["residual_fn_kwargs"] or {}).items():
        if name not in allowed or isinstance(value, bool) != allowed[name] or not isinstance(
                value, (bool, int, float)):
            found.append(diagnostic(spec, f"{layers.key}.residual_fn_kwargs.{name}",
                                    "residual-fn-kwargs",
                                    f"residual_fn_kwargs takes {takes}; got {name}: "
                                    f"{scalar(value)} (x-transformers ignores an unknown key)"))
    if kind == "mv_split_residual" and layers["scale_residual"]:
        found.append(diagnostic(spec, f"{layers.key}.scale_residual", "mv-split-drops-scale",
                                "scale_residual does nothing beside mv_split_residual: the mean / "
                                "variance split has no residual scale (x-transformers drops it)",
                                "warning"))
    return found


WHOLE_ROW = {"orthog_residual": "projects the output against the residual, each batch row "
                                "flattened whole (every position at once)",
             "mv_split_residual": "splits the output by its mean over the sequence"}


def check_whole_row_updates(spec: Spec, layers) -> list[Diagnostic]:
    name = next((name for name in WHOLE_ROW if layers[name]), None)
    if name is None:
        return []
    key, what = f"{layers.key}.{name}", f"{name} {WHOLE_ROW[name]}"
    if CAUSAL_LAYERS.get(layers.type, False):
        padding = ", and padded tokens change the outputs of real ones" if name == "orthog_residual" else ""
        return [diagnostic(spec, key, "breaks-causality",
                           f"{what}: each position's output reads later tokens, so this Decoder "
                           f"leaks the future{padding}; generate() recomputes the whole "
                           "sequence at each step (no kv cache)", "warning")]
    if name == "orthog_residual" and not never_padded(spec, layers):
        return [diagnostic(spec, key, "orthog-projection-reads-padding",
                           f"{what}: padded tokens change the outputs of real ones, whatever the "
                           "mask", "warning")]
    return []


def check_aggregated_residuals(spec: Spec, layers) -> list[Diagnostic]:
    key, kwargs = f"{layers.key}.attn_aggregated_residual_kwargs", layers[
        "attn_aggregated_residual_kwargs"] or {}
    on, found = bool(layers["attn_aggregated_residuals"]), []
    for name, value in kwargs.items():
        if not on or name != "lora_rank":
            why = ("they do nothing without attn_aggregated_residuals" if not on else
                   "x-transformers' AttentionResidual takes lora_rank and lora_activation, a "
                   "module, which a spec cannot give")
            found.append(diagnostic(spec, f"{key}.{name}", "attn-aggregated-residual-kwargs",
                                    f"attn_aggregated_residual_kwargs takes lora_rank; got "
                                    f"{name}: {scalar(value)} ({why})"))
    if not on:
        return found
    rank, where = kwargs.get("lora_rank"), f"{key}.lora_rank"
    if rank is None:
        rank, where = AGGREGATE_LORA_RANK, f"{layers.key}.attn_aggregated_residuals"
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 < rank < layers["dim"]:
        found.append(diagnostic(spec, where, "aggregated-residual-lora-rank",
                                f"attn_aggregated_residuals' lora_rank ({scalar(rank)}) must be a "
                                f"positive int below dim ({layers['dim']}); its default is "
                                f"{AGGREGATE_LORA_RANK} (x-transformers asserts it is below dim)"))
    if any(each_value(layers["layer_dropout"])):
        found.append(diagnostic(spec, f"{layers.key}.layer_dropout",
                                "aggregated-residuals-exclude-layer-dropout",
                                "layer_dropout with attn_aggregated_residuals is not supported by "
                                "xtc: x-transformers leaves a dropped sublayer's input out of "
                                "the inputs the next ones attend over"))
    return found


def check_unet_skips(spec: Spec, layers) -> list[Diagnostic]:
    """unet_skips joins block i of the second half with block depth - 1 - i of the first. The
    reference counts its skips as depth // (sublayers per block): under one block (tied
    weights) it asserts, and where the second half has more blocks than that it fails
    building (`unet-skips-depth`). A custom layout or an execution order makes each sublayer a
    block, whose skips the reference reads from the sublayers so far or past them
    (`unet-skips-need-default-blocks`)."""
    if not layers["unet_skips"]:
        return []
    key = f"{layers.key}.unet_skips"
    if layers["only_attn"]:
        return [diagnostic(spec, f"{layers.key}.only_attn", "only-attn-with-unet-skips",
                           "only_attn cannot be combined with unet_skips (x-transformers 2.31.10 "
                           "refuses this too)")]
    given = next((name for name in NOT_DEFAULT_BLOCKS if layers[name] is not None), None)
    if given:
        return [diagnostic(spec, f"{layers.key}.{given}", "unet-skips-need-default-blocks",
                           f"unet_skips mirrors blocks of the default layout, and {given} makes "
                           "every sublayer a block: x-transformers 2.31.10 then joins sublayers "
                           "with themselves or with inputs not computed yet (and fails), which "
                           "xtc does not compile")]
    width = len(default_block(layers))
    depth = 1 if layers["weight_tie_layers"] else layers["depth"]
    if depth // width == 0 or depth // width < depth // 2:
        return [diagnostic(spec, key, "unet-skips-depth",
                           f"unet_skips needs as many skips as blocks in the second half: "
                           f"x-transformers 2.31.10 makes depth // (sublayers per block) = "
                           f"{depth} // {width} of them, and "
                           + ("asserts there are some (weight_tie_layers counts one block)"
                              if depth // width == 0 else
                              f"fails building with {depth // 2} blocks in the second half"))]
    return []


def check_integrated_layers(spec: Spec, layers) -> list[Diagnostic]:
    """integrate_layers sizes each sublayer's weights for the sublayers built before it: an
    execution order or tied weights run others (the reference's forward asserts), and in
    training a dropped sublayer's input is left out (it asserts too). Weighing the mixes of
    several residual streams is not compiled (`integrate-layers-exclude-streams`). Beside
    attn_aggregated_residuals the reference drops the aggregate for it without a word. Alone,
    layer_integrate_use_softmax does nothing (a warning)."""
    if not layers["integrate_layers"]:
        if "layer_integrate_use_softmax" not in layers.given:
            return []
        return [diagnostic(spec, f"{layers.key}.layer_integrate_use_softmax",
                           "layer-integrate-softmax-without-integrate-layers",
                           "layer_integrate_use_softmax has no effect without integrate_layers: "
                           "it chooses how integrate_layers normalises its weights", "warning")]
    found = []
    for name in ("layers_execute_order", "weight_tie_layers"):
        if layers[name]:
            found.append(diagnostic(spec, f"{layers.key}.{name}", "integrate-layers-need-build-order",
                                    f"integrate_layers weighs the inputs of the sublayers built "
                                    f"before each, and {name} runs others: x-transformers 2.31.10 "
                                    "fails at forward (its hiddens count asserts)"))
    if any(each_value(layers["layer_dropout"])):
        found.append(diagnostic(spec, f"{layers.key}.layer_dropout", "integrate-layers-need-build-order",
                                "layer_dropout with integrate_layers: a dropped sublayer's input is "
                                "left out of the inputs the next ones weigh, and x-transformers "
                                "2.31.10 fails in training (its hiddens count asserts)"))
    streams = "gated_multi_residual" if layers["gated_multi_residual"] else \
        "num_residual_streams" if layers["num_residual_streams"] > 1 else None
    if streams:
        found.append(diagnostic(spec, f"{layers.key}.{streams}", "integrate-layers-exclude-streams",
                                f"integrate_layers beside {streams}: weighing each sublayer's "
                                "mix of the residual streams is not compiled by xtc yet"))
    if layers["attn_aggregated_residuals"]:
        found.append(diagnostic(spec, f"{layers.key}.attn_aggregated_residuals",
                                "integrate-layers-exclude-aggregated-residuals",
                                "integrate_layers and attn_aggregated_residuals each make a "
                                "sublayer's input from the inputs so far: x-transformers 2.31.10 "
                                "keeps integrate_layers and drops the aggregate without a word"))
    return found
