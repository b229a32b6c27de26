"""`xtc explain`: every keyword written out, and the explanation is itself the same model."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT
from xtc.compiler import compile_spec, explain
from xtc.compiler.resolve import resolve
from xtc.spec.keywords import keyword_table

import xtc
from xtc import cli

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
ROTARY_CROSS = """\
xtc: 1
name: rotary_cross
model:
  type: TransformerWrapper
  num_tokens: 100
  max_seq_len: 64
  attn_layers:
    type: Decoder
    dim: 64
    depth: 1
    heads: 4
    rotary_pos_emb: true
    cross_attend: true
    attn: {flash: true, dim_head: 40}
    cross_attn: {dim_head: 8}
"""


def without_header(source: str) -> list[str]:
    """The emitted module less its first line, which names the spec's sha256."""
    return source.splitlines()[1:]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_explanation_is_a_spec_of_the_same_model(path):
    spec = xtc.load_spec(path)
    explained = xtc.loads_spec(xtc.explain(spec), path=str(path))
    assert without_header(compile_spec(explained)) == without_header(compile_spec(spec))


def test_a_stack_without_feedforwards_is_explained_without_their_computed_values():
    """A layout of attention alone has no feedforward: explain leaves out what it would compute
    (it failed on such specs before `xtc import`'s round trip found it)."""
    from features import feature, feature_spec

    spec = feature_spec(feature("layout-attention_only"), "Decoder", False)
    text = xtc.explain(spec)
    assert "    ff:\n      dim_out: null  # default\n" in text and "      swish: false  # default\n" in text
    assert without_header(compile_spec(xtc.loads_spec(text))) == without_header(compile_spec(spec))


def test_every_keyword_appears_with_its_value_and_defaults_are_marked():
    spec = xtc.load_spec(ROOT / "examples" / "gpt.yaml")
    text = xtc.explain(spec)
    layers = spec.model.children["attn_layers"]
    written = yaml.safe_load(text)["model"]["attn_layers"]
    for key, value in layers.options.items():
        assert written[key] == (list(value) if isinstance(value, tuple) else value), key
    ff_keywords = keyword_table().routed("ff")
    for key, value in layers.section("ff").items():
        if "object" in ff_keywords[key].types:
            assert key not in written["ff"], key  # a Python object: no spec form
        else:
            assert written["ff"][key] == value, key
    lines = {line.strip().split(":")[0]: line for line in text.splitlines()[:60]}
    assert lines["num_tokens"].endswith("20000") and lines["tie_embedding"].endswith("# default")
    assert "token_emb" not in text  # a Python object: no spec form


def test_computed_defaults_carry_the_value_the_compiler_uses():
    spec = xtc.loads_spec(ROTARY_CROSS)
    text = xtc.explain(spec)
    model = resolve(spec)
    assert f"emb_dim: null  # default; computed: {model.emb_dim} (attn_layers.dim)" in text
    rotary = f"rotary_emb_dim: null  # default; computed: {model.layers.rotary.dim} "
    assert model.layers.rotary.dim == 20 and rotary in text
    assert "kv_heads: null  # default; computed: 4 (heads" in text
    assert "flash: true  # from attn" in text  # cross-attention takes attn's written options


def test_the_cross_attention_explanation_keeps_the_inherited_options():
    spec = xtc.loads_spec(ROTARY_CROSS)
    explained = xtc.loads_spec(xtc.explain(spec))
    assert resolve(explained) == resolve(spec)


def test_cli_explain_prints_to_stdout_and_rejects_bad_specs(capsys):
    assert cli.main(["explain", str(ROOT / "examples" / "vit.yaml")]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# vit:") and "channels: 3  # default" in out and err == ""
    bad = ROOT / "tests" / "fixtures" / "invalid" / "typo.yaml"
    assert cli.main(["explain", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "error[unknown-key]" in err


# -- what the compiler turns on or off, and the values it fills in ---------------------------------


def lm(wrapper: dict | None = None, **layer_options) -> dict:
    """A tiny language model; `layer_options` go to its Decoder, `wrapper` to the wrapper."""
    stack = {"type": "Decoder", "dim": 32, "depth": 1, "heads": 4, "attn": {"dim_head": 8},
             **layer_options}
    return {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16, **(wrapper or {}),
            "attn_layers": stack}


SINGLE_HEAD = {"heads": 1, "attn": {"dim_head": 32}}
ENCODER = {"type": "Encoder", "dim": 32, "depth": 1, "heads": 4}
CONTINUOUS = {"type": "ContinuousTransformerWrapper",
              "attn_layers": {"type": "Encoder", "dim": 32, "depth": 1, "heads": 4}}
XT_ROTARY = {"type": "XTransformer", "dim": 32,
             "encoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 4,
                         "rotary_pos_emb": True},
             "decoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 4}}
XVAL = {"type": "XValTransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
        "numerical_token_id": 3,
        "attn_layers": {"type": "Decoder", "dim": 32, "depth": 1, "heads": 4}}
DEFAULT, LAYERS = "  # default; computed:", "model.attn_layers"
SWITCHES = [  # (keyword, model, dotted key in the explanation, the line explain writes there)
    # absolute positions: resolve.positions and ResolvedLayers.drops_absolute_positions
    ("use_abs_pos_emb", lm(rotary_pos_emb=True), "model.use_abs_pos_emb",
     f"use_abs_pos_emb: true{DEFAULT} off (attn_layers.rotary_pos_emb)"),
    ("use_abs_pos_emb", lm(disable_abs_pos_emb=True), "model.use_abs_pos_emb",
     f"use_abs_pos_emb: true{DEFAULT} off (attn_layers.disable_abs_pos_emb)"),
    ("use_abs_pos_emb", lm(rotary_xpos=True), "model.use_abs_pos_emb",
     f"use_abs_pos_emb: true{DEFAULT} off (attn_layers.rotary_xpos)"),
    ("use_abs_pos_emb", lm(rel_pos_bias=True), "model.use_abs_pos_emb",
     f"use_abs_pos_emb: true{DEFAULT} off (attn_layers.rel_pos_bias)"),
    ("use_abs_pos_emb", CONTINUOUS, "model.use_abs_pos_emb",
     f"use_abs_pos_emb: true{DEFAULT} off (max_seq_len: null)"),
    # use_identity_if_same_dim: resolve.identity_in and identity_out
    ("use_identity_if_same_dim", {**CONTINUOUS, "dim_in": 8, "use_identity_if_same_dim": True},
     "model.use_identity_if_same_dim",
     ("use_identity_if_same_dim: true  # computed: off (neither dim_in nor dim_out (times 2 when "
      "probabilistic) is the layers' dim)")),
    ("use_abs_pos_emb", XT_ROTARY, "model.encoder.use_abs_pos_emb",
     f"use_abs_pos_emb: true{DEFAULT} off (rotary_pos_emb)"),
    ("scaled_sinu_pos_emb", lm({"scaled_sinu_pos_emb": True}, rotary_pos_emb=True),
     "model.scaled_sinu_pos_emb",
     "scaled_sinu_pos_emb: true  # computed: off (attn_layers.rotary_pos_emb)"),
    ("scaled_sinu_pos_emb", lm({"scaled_sinu_pos_emb": True, "use_abs_pos_emb": False}),
     "model.scaled_sinu_pos_emb", "scaled_sinu_pos_emb: true  # computed: off (use_abs_pos_emb: false)"),
    ("disable_abs_pos_emb", lm(rotary_pos_emb=True), f"{LAYERS}.disable_abs_pos_emb",
     f"disable_abs_pos_emb: null{DEFAULT} true (rotary_pos_emb)"),
    ("disable_abs_pos_emb", lm(rotary_xpos=True), f"{LAYERS}.disable_abs_pos_emb",
     f"disable_abs_pos_emb: null{DEFAULT} true (rotary_xpos)"),
    ("disable_abs_pos_emb", lm(rel_pos_bias=True), f"{LAYERS}.disable_abs_pos_emb",
     f"disable_abs_pos_emb: null{DEFAULT} true (rel_pos_bias)"),
    ("disable_abs_pos_emb", lm(polar_pos_emb=True), f"{LAYERS}.disable_abs_pos_emb",
     f"disable_abs_pos_emb: null{DEFAULT} true (polar_pos_emb)"),
    ("disable_abs_pos_emb", lm(), f"{LAYERS}.disable_abs_pos_emb",
     (f"disable_abs_pos_emb: null{DEFAULT} false "
      "(no rotary_pos_emb, rotary_xpos, polar_pos_emb or rel_pos_bias)")),
    # resolve_rotary, resolve_bias
    ("rotary_pos_emb", lm(rotary_xpos=True), f"{LAYERS}.rotary_pos_emb",
     f"rotary_pos_emb: false{DEFAULT} on (rotary_xpos)"),
    # the final norm: resolve.final_norm
    ("pre_norm_has_final_norm", lm(pre_and_post_norm=True), f"{LAYERS}.pre_norm_has_final_norm",
     f"pre_norm_has_final_norm: true{DEFAULT} off (pre_and_post_norm)"),
    ("pre_norm_has_final_norm", lm(pre_norm=False), f"{LAYERS}.pre_norm_has_final_norm",
     f"pre_norm_has_final_norm: true{DEFAULT} off (pre_norm: false)"),
    ("pre_norm_has_final_norm", lm(pre_norm_has_final_norm=False, gated_multi_residual=True,
                                   residual_fn_kwargs={"read_gate_rank": 8}),
     f"{LAYERS}.pre_norm_has_final_norm",
     "pre_norm_has_final_norm: false  # computed: on (gated_multi_residual keeps it)"),
    # integrate_layers turns qkv_receive_diff_residuals on (resolve.qkv_views)
    ("qkv_receive_diff_residuals", lm(integrate_layers=True), f"{LAYERS}.qkv_receive_diff_residuals",
     f"qkv_receive_diff_residuals: false{DEFAULT} on (integrate_layers)"),
    ("rotary_emb_dim", lm(rotary_pos_emb=True), f"{LAYERS}.rotary_emb_dim",
     f"rotary_emb_dim: null{DEFAULT} 4 (attn.dim_head // 2)"),
    ("rotate_num_heads", lm(rotary_pos_emb=True), f"{LAYERS}.rotate_num_heads",
     f"rotate_num_heads: null{DEFAULT} 4 (heads: every head is rotated)"),
    ("alibi_num_heads", lm(alibi_pos_bias=True), f"{LAYERS}.alibi_num_heads",
     f"alibi_num_heads: null{DEFAULT} 4 (heads)"),
    # resolve_condition
    ("dim_condition", lm(use_adaptive_rmsnorm=True), f"{LAYERS}.dim_condition",
     f"dim_condition: null{DEFAULT} 32 (dim)"),
    # resolve_attention, key_value_heads
    ("attn.kv_heads", lm(attn={"dim_head": 8, "one_kv_head": True}), f"{LAYERS}.attn.kv_heads",
     f"kv_heads: null{DEFAULT} 1 (attn.one_kv_head)"),
    ("attn.kv_heads", lm(), f"{LAYERS}.attn.kv_heads", f"kv_heads: null{DEFAULT} 4 (heads)"),
    ("attn.value_dim_head", lm(), f"{LAYERS}.attn.value_dim_head",
     f"value_dim_head: null{DEFAULT} 8 (attn.dim_head)"),
    ("attn.project_out", lm(), f"{LAYERS}.attn.project_out",
     f"project_out: null{DEFAULT} true (heads > 1)"),
    ("attn.project_out", lm(**SINGLE_HEAD), f"{LAYERS}.attn.project_out",
     f"project_out: null{DEFAULT} false (heads: 1)"),
    ("attn.project_out", lm(heads=1, attn={"dim_head": 32, "on_attn": True}),
     f"{LAYERS}.attn.project_out", f"project_out: null{DEFAULT} true (attn.on_attn)"),
    ("attn.dim_out", lm(), f"{LAYERS}.attn.dim_out", f"dim_out: null{DEFAULT} 32 (dim)"),
    ("attn.qk_norm_groups", lm(attn={"dim_head": 8, "qk_norm_groups": 2}),
     f"{LAYERS}.attn.qk_norm_groups", "qk_norm_groups: 2  # computed: 1 (attn.qk_norm is off)"),
    ("attn.qk_norm_dim_scale", lm(attn={"dim_head": 8, "qk_norm_dim_scale": True}),
     f"{LAYERS}.attn.qk_norm_dim_scale",
     "qk_norm_dim_scale: true  # computed: off (attn.qk_norm is off)"),
    # resolve_cross_attention: attn: options inherited, then its own values
    ("cross_attn.flash", lm(cross_attend=True, attn={"dim_head": 8, "flash": True}),
     f"{LAYERS}.cross_attn.flash", "flash: true  # from attn"),
    ("cross_attn.dim_context", lm(cross_attend=True), f"{LAYERS}.cross_attn.dim_context",
     f"dim_context: null{DEFAULT} 32 (dim)"),
    ("cross_attn.project_out", lm(cross_attend=True), f"{LAYERS}.cross_attn.project_out",
     f"project_out: null{DEFAULT} true (heads > 1)"),
    ("cross_attn.project_out", lm(cross_attend=True, **SINGLE_HEAD),
     f"{LAYERS}.cross_attn.project_out", f"project_out: null{DEFAULT} false (heads: 1)"),
    # resolve_feedforward
    ("ff.dim_out", lm(), f"{LAYERS}.ff.dim_out", f"dim_out: null{DEFAULT} 32 (dim)"),
    ("ff.swish", lm(ff={"swish": True, "relu_squared": True}), f"{LAYERS}.ff.swish",
     "swish: true  # computed: off (ff.relu_squared)"),
    # layer_layout
    ("par_ratio", lm(custom_layers=["a", "f"], par_ratio=2), f"{LAYERS}.par_ratio",
     "par_ratio: 2  # computed: off (custom_layers)"),
    ("sandwich_coef", lm(custom_layers=["a", "f"], sandwich_coef=1), f"{LAYERS}.sandwich_coef",
     "sandwich_coef: 1  # computed: off (custom_layers)"),
    ("sandwich_coef", lm(depth=4, par_ratio=2, sandwich_coef=1), f"{LAYERS}.sandwich_coef",
     "sandwich_coef: 1  # computed: off (par_ratio)"),
    ("only_cross", lm(only_cross=True), f"{LAYERS}.only_cross",
     "only_cross: true  # computed: off (no cross_attend)"),
    ("only_cross", lm(cross_attend=True, only_cross=True, custom_layers=["c", "f"]),
     f"{LAYERS}.only_cross", "only_cross: true  # computed: off (custom_layers)"),
    # resolve_wrapper
    ("emb_dim", lm(), "model.emb_dim", f"emb_dim: null{DEFAULT} 32 (attn_layers.dim)"),
    ("num_memory_tokens", lm(), "model.num_memory_tokens",
     f"num_memory_tokens: null{DEFAULT} 0 (no memory tokens)"),
    ("tie_embedding_scale", lm({"tie_embedding": True}), "model.tie_embedding_scale",
     f"tie_embedding_scale: null{DEFAULT} {32 ** -0.5} (attn_layers.dim ** -0.5)"),
    ("logits_dim", lm(), "model.logits_dim", f"logits_dim: null{DEFAULT} 64 (num_tokens)"),
    ("logits_dim", lm({"tie_embedding": True, "logits_dim": 10}), "model.logits_dim",
     "logits_dim: 10  # computed: 64 (tie_embedding)"),
    ("logits_dim", lm({"return_only_embed": True, "logits_dim": 10}), "model.logits_dim",
     "logits_dim: 10  # computed: 0 (return_only_embed: no logits head)"),
    ("emb_frac_gradient", lm({"emb_frac_gradient": 2.0}), "model.emb_frac_gradient",
     "emb_frac_gradient: 2.0  # computed: 1.0 (a share above 1 scales nothing)"),
    ("squeeze_out_last_dim", lm({"squeeze_out_last_dim": True}), "model.squeeze_out_last_dim",
     "squeeze_out_last_dim: true  # computed: off (the logits head is not 1 wide)"),
    ("train_max_recycle_steps", lm({"train_max_recycle_steps": 2}), "model.train_max_recycle_steps",
     "train_max_recycle_steps: 2  # computed: 0 (recycling is off: one pass)"),
    ("max_looped_steps", lm({"max_looped_steps": 2}), "model.max_looped_steps",
     "max_looped_steps: 2  # computed: 0 (looped is off: one pass)"),
    ("mixture_of_softmax_k", lm({"mixture_of_softmax_k": 2}), "model.mixture_of_softmax_k",
     "mixture_of_softmax_k: 2  # computed: 0 (mixture_of_softmax is off: one softmax)"),
    ("num_output_heads", lm({"return_only_embed": True, "num_output_heads": 2}),
     "model.num_output_heads", "num_output_heads: 2  # computed: 1 (return_only_embed: no logits head)"),
    ("shift_mem_down", lm({"shift_mem_down": 1}), "model.shift_mem_down",
     "shift_mem_down: 1  # computed: 0 (max_mem_len is 0: no memories to shift)"),
    ("num_cls_tokens", lm(), "model.num_cls_tokens",
     f"num_cls_tokens: 1{DEFAULT} 0 (use_cls_token is false: no CLS tokens)"),
    # resolve.attention_pool: no pool without attn_pool, its width the layers' by default
    ("num_pooled_tokens", lm(), "model.num_pooled_tokens",
     f"num_pooled_tokens: 1{DEFAULT} 0 (attn_pool is false: no attention pool)"),
    ("attn_pool_depth", lm(), "model.attn_pool_depth",
     f"attn_pool_depth: 1{DEFAULT} 0 (attn_pool is false: no attention pool)"),
    ("dim_pooled_tokens", lm({"dim_pooled_tokens": 16}), "model.dim_pooled_tokens",
     "dim_pooled_tokens: 16  # computed: 0 (attn_pool is false: no attention pool)"),
    ("dim_pooled_tokens", {**lm({"attn_pool": True}), "attn_layers": ENCODER},
     "model.dim_pooled_tokens", f"dim_pooled_tokens: null{DEFAULT} 32 (attn_layers.dim)"),
    ("logits_dim", {**lm({"attn_pool": True}), "attn_layers": ENCODER}, "model.logits_dim",
     f"logits_dim: null{DEFAULT} 0 (attn_pool: the pooled tokens are the output)"),
    # resolve_xval: no projection, and a tied head gives num_tokens logits
    ("emb_dim", XVAL, "model.emb_dim", f"emb_dim: null{DEFAULT} 32 (attn_layers.dim)"),
    ("logits_dim", XVAL, "model.logits_dim", f"logits_dim: null{DEFAULT} 64 (num_tokens)"),
    ("logits_dim", {**XVAL, "tie_embedding": True, "logits_dim": 10}, "model.logits_dim",
     "logits_dim: 10  # computed: 64 (tie_embedding)"),
    ("use_abs_pos_emb", {**XVAL, "attn_layers": {**XVAL["attn_layers"], "rotary_pos_emb": True}},
     "model.use_abs_pos_emb", f"use_abs_pos_emb: true{DEFAULT} off (attn_layers.rotary_pos_emb)"),
]


def line_at(text: str, dotted: str) -> str:
    """The explanation's line for a dotted key, found by its indentation."""
    path: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        depth = (len(line) - len(line.lstrip())) // len("  ")
        path[depth:] = [line.strip().split(":")[0]]
        if ".".join(path) == dotted:
            return line.strip()
    raise AssertionError(f"{dotted} is not in the explanation")


@pytest.mark.parametrize("keyword, model, key, expected", SWITCHES,
                         ids=[f"{row[0]}-{i}" for i, row in enumerate(SWITCHES)])
def test_explain_shows_what_the_compiler_makes_of_each_option(keyword, model, key, expected):
    """Every value the compiler decides from another option, with that option, one row per
    cause. The rows are complete because each comes from a place in compiler/resolve.py where a
    resolved field depends on an option other than its own keyword: resolve_wrapper /
    resolve_continuous / positions (emb_dim, num_memory_tokens, tie_embedding_scale, logits_dim,
    shift_mem_down without max_mem_len, num_cls_tokens without use_cls_token,
    use_abs_pos_emb and scaled_sinu_pos_emb under max_seq_len and drops_absolute_positions),
    resolve_rotary (rotary_xpos turns rotary on; its width and heads), resolve_bias
    (alibi_num_heads), resolve_condition (dim_condition), drops_absolute_positions
    (disable_abs_pos_emb), resolve_attention and
    key_value_heads (kv_heads, value_dim_head, project_out, qk_norm_groups and
    qk_norm_dim_scale without qk_norm), qkv_views (integrate_layers turns
    qkv_receive_diff_residuals on), resolve_cross_attention (attn: inherited, dim_context,
    project_out), resolve_feedforward (relu_squared over swish) and layer_layout (custom_layers
    over par_ratio over sandwich_coef). The other precedences there cannot be reached: two norms,
    two position biases, kv_heads with one_kv_head, 'c' in custom_layers without cross_attend
    and a cross-attending XTransformer encoder are errors, and with_dim sets `dim` and
    `cross_attend`, which an XTransformer side does not accept. The next test checks that every
    rule of explain.py has a row here."""
    spec = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": model},
                                         sort_keys=False))
    text = xtc.explain(spec)
    assert line_at(text, key) == expected
    explained = xtc.loads_spec(text)
    assert without_header(compile_spec(explained)) == without_header(compile_spec(spec))


def test_every_rule_of_explain_has_a_row():
    spec = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": lm(cross_attend=True)}))
    wrapper, layers = spec.model, spec.model.children["attn_layers"]
    continuous = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": CONTINUOUS}))
    rules = {*explain.wrapper_values(wrapper, layers, resolve(spec), ""),
             *explain.layer_values(layers, resolve(spec).layers),
             *explain.wrapper_values(continuous.model, continuous.model.children["attn_layers"],
                                     resolve(continuous), "")}
    inherited = {row[0] for row in SWITCHES if row[3].endswith("# from attn")}
    assert {row[0] for row in SWITCHES} - inherited == rules


def test_per_layer_lists_say_which_layers_take_their_values():
    """A list gives its values to the layers of its kind in order; cross-attention does not
    inherit an `attn:` list (it keeps its default), and the explanation compiles to the same
    module."""
    model = lm(depth=2, cross_attend=True, layer_dropout=[0.0, 0.1, 0.0, 0.1, 0.0, 0.1],
               attn={"dim_head": 8, "dropout": [0.1, 0.2]}, ff={"glu": [True, False]})
    spec = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": model},
                                         sort_keys=False))
    text = xtc.explain(spec)
    assert line_at(text, f"{LAYERS}.attn.dropout") == \
        "dropout: [0.1, 0.2]  # one per self-attention layer, in order"
    assert line_at(text, f"{LAYERS}.ff.glu") == \
        "glu: [true, false]  # one per feedforward layer, in order"
    assert line_at(text, f"{LAYERS}.layer_dropout").endswith("# one per layer, of every kind, in order")
    assert line_at(text, f"{LAYERS}.cross_attn.dropout") == "dropout: 0.0  # default"
    explained = xtc.loads_spec(text)
    assert without_header(compile_spec(explained)) == without_header(compile_spec(spec))


def test_a_sampling_option_says_that_the_model_samples():
    from features import feature, feature_spec

    text = xtc.explain(feature_spec(feature("explicit-gumbel_cross"), "Decoder", False))
    assert ("gumbel_softmax: true  # the attention weights are sampled, in eval mode too: "
            "outputs and generation are random") in text
    assert "gumbel_softmax: true  # from attn" in text  # cross-attention inherits it


def test_verbose_is_noted_as_changing_nothing():
    """verbose only silences the reference's own warning: explain says it changes nothing, and
    the emitted code is the same either way (check-ignored-options' fixtures: no warning)."""
    quiet = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": lm(verbose=False)}))
    loud = xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": lm()}))
    assert "verbose: false  # no effect on the emitted model" in xtc.explain(quiet)
    assert without_header(compile_spec(quiet)) == without_header(compile_spec(loud))
