"""`xtc diff A B` (issue #48): what a spec change does to the model, for review.

Keywords are compared once defaults are filled in (explain's entries), figures are inspect's,
state-dict keys are compared with their shapes. Snapshots of two pairs of examples in every
format live in tests/fixtures/diff/ (`pytest --regen` rewrites them).
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import FIXTURES, ROOT, check_snapshot
from xtc.compiler import compile_graph
from xtc.compiler.diff_format import FORMATS, render
from xtc.compiler.inspection import inspect
from xtc.compiler.spec_diff import spec_diff

import xtc
from xtc import cli

SNAPSHOTS = FIXTURES / "diff"
PAIRS = {"gpt-flash": ("examples/gpt.yaml", "examples/flash.yaml"),
         "gpt-char_gpt": ("examples/gpt.yaml", "examples/char_gpt.yaml")}
SUFFIX = {"text": "txt", "json": "json", "markdown": "md", "github": "github.txt"}


def lm_text(name: str = "tiny", wrapper: dict | None = None, **layers) -> str:
    """A tiny language model's spec; `layers` go to its Decoder (`attn`, `ff` merged in)."""
    stack = {"type": "Decoder", "dim": 32, "depth": 2, "heads": 4}
    attn = {"dim_head": 8, **layers.pop("attn", {})}
    stack |= layers | {"attn": attn}
    model = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
             **(wrapper or {}), "attn_layers": stack}
    return yaml.safe_dump({"xtc": 1, "name": name, "model": model}, sort_keys=False)


def diff_of(before: str, after: str):
    a, b = xtc.loads_spec(before, path="a.yaml"), xtc.loads_spec(after, path="b.yaml")
    return spec_diff(a, compile_graph(a), b, compile_graph(b))


def text_of(before: str, after: str) -> str:
    return render(diff_of(before, after), "text")


def figures(diff) -> dict[str, tuple[float, float]]:
    return {f.name: (f.before, f.after) for f in diff.figures}


# -- snapshots ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_snapshots_of_two_examples_in_every_format(pair, fmt, capsys, monkeypatch, regen):
    monkeypatch.chdir(ROOT)  # the paths, as the output names them
    assert cli.main(["diff", *PAIRS[pair], "--format", fmt]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    check_snapshot(SNAPSHOTS / f"{pair}.{SUFFIX[fmt]}", out, regen)


# -- what each change does ------------------------------------------------------------------------


BASE = lm_text()


def test_heads_change_parameters_flops_cache_and_the_fused_projection():
    diff = diff_of(BASE, lm_text(heads=8))
    text = render(diff, "text")
    assert "  model.attn_layers.heads: 4 -> 8" in text
    assert ("model.attn_layers.attn.kv_heads: null (default; computed: 4 (heads)) -> "
            "null (default; computed: 8 (heads))") in text
    assert "  parameters" in text and "+8,192 (+27.6%)" in text  # to_qkv and to_out, 2 layers
    assert "  kv-cache bytes per token (float32)" in text and "+512 (+100.0%)" in text
    assert "reshaped  blocks.0-1.attn.to_qkv.weight                (96, 32) -> (192, 32)" in text
    assert "reshaped  blocks.0-1.attn.to_out.weight                (32, 32) -> (32, 64)" in text
    assert "attention paths: unchanged" in text and diff.breaking


def test_kv_heads_shrink_the_cache_and_the_key_value_rows():
    text = text_of(BASE, lm_text(attn={"kv_heads": 2}))
    assert "model.attn_layers.attn.kv_heads: null (default; computed: 4 (heads)) -> 2" in text
    assert "-256 (-50.0%)" in text  # the cache: half the key / value heads
    assert "-2,048 (-6.9%)" in text  # parameters: 2 layers x 32 rows of 32 fewer
    assert "reshaped  blocks.0-1.attn.to_qkv.weight                (96, 32) -> (64, 32)" in text
    assert "to_out" not in text


def test_pre_talking_heads_take_attention_off_sdpa_with_the_reason():
    diff = diff_of(BASE, lm_text(attn={"pre_talking_heads": True}))
    text = render(diff, "text")
    assert ("  blocks.0-1.attn: sdpa, flash: without a padding mask -> explicit, flash: no; "
            "pre-softmax talking heads mix scores across heads: the score matrix is "
            "materialised") in text
    assert "added     blocks.0-1.attn.pre_talking_heads.weight     (4, 4, 1, 1)" in text
    assert "+32 (+0.1%)" in text  # two 4 x 4 mixes
    assert figures(diff)["kv-cache bytes per token (float32)"] == (512, 512)
    back = render(diff_of(lm_text(attn={"pre_talking_heads": True}), BASE), "text")
    assert "explicit, flash: no -> sdpa, flash: without a padding mask; " in back
    assert "(was: pre-softmax talking heads" in back


def test_ff_mult_reshapes_the_feedforwards():
    diff = diff_of(BASE, lm_text(ff={"mult": 2}))
    text = render(diff, "text")
    assert "  model.attn_layers.ff.mult: 4 (default) -> 2" in text
    assert "reshaped  blocks.0-1.ff.proj_in.weight                 (128, 32) -> (64, 32)" in text
    assert "reshaped  blocks.0-1.ff.proj_in.bias                   (128) -> (64)" in text
    assert "reshaped  blocks.0-1.ff.proj_out.weight                (32, 128) -> (32, 64)" in text
    assert "-8,320 (-28.0%)" in text and "attention paths: unchanged" in text
    assert figures(diff)["kv-cache bytes per token (float32)"] == (512, 512)


def test_renaming_a_layer_option_shows_the_switches_it_turns():
    """rotary -> ALiBi: absolute positions come back (rotary had switched them off), the
    rotary buffer goes, and the bias is an additive float mask: no flash kernel."""
    diff = diff_of(lm_text(rotary_pos_emb=True), lm_text(alibi_pos_bias=True))
    text = render(diff, "text")
    assert "  model.attn_layers.rotary_pos_emb: true -> false (default)" in text
    assert "  model.attn_layers.alibi_pos_bias: false (default) -> true" in text
    assert ("  model.use_abs_pos_emb: true (default; computed: off (attn_layers.rotary_pos_emb))"
            " -> true (default)") in text
    assert "removed   rotary.inv_freq                              (2)" in text
    assert "added     pos_emb.weight                               (16, 32)" in text
    assert ("blocks.0-1.attn: sdpa, flash: without a padding mask -> sdpa, flash: no; "
            "the alibi position bias is an additive float mask") in text


@pytest.mark.parametrize("change", [{"heads": 8}, {"attn": {"kv_heads": 2}}, {"ff": {"mult": 2}},
                                    {"attn": {"pre_talking_heads": True}}, {"alibi_pos_bias": True}])
def test_figures_equal_inspects(change):
    after = lm_text(**change)
    diff = diff_of(BASE, after)
    expected = []
    for text in (BASE, after):
        spec = xtc.loads_spec(text)
        found = inspect(spec, compile_graph(spec))
        expected.append((found.total_parameters, found.forward_flops / found.tokens,
                         found.training_flops / found.tokens, found.cache_bytes_per_token))
    assert [tuple(f.before for f in diff.figures), tuple(f.after for f in diff.figures)] == expected


# -- breaking, identical, invalid -----------------------------------------------------------------


def test_breaking_in_json(tmp_path, capsys):
    a, b, c = (tmp_path / name for name in ("a.yaml", "b.yaml", "c.yaml"))
    a.write_text(BASE)
    b.write_text(lm_text(heads=8))
    c.write_text(lm_text(attn={"flash": True}))  # the same weights
    assert cli.main(["diff", str(a), str(b), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["breaking"] is True
    assert cli.main(["diff", str(a), str(c), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["breaking"] is False and data["identical"] is False
    assert data["components"]["model"]["keywords"][0]["key"] == "model.attn_layers.attn.flash"


def test_identical_after_defaults_says_so_in_one_line(tmp_path, capsys):
    """Writing out a default changes nothing."""
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(BASE)
    b.write_text(lm_text(ff={"mult": 4}, cross_attend=False))
    for fmt in FORMATS:
        assert cli.main(["diff", str(a), str(b), "--format", fmt]) == 0
        out = capsys.readouterr().out
        if fmt == "json":
            assert json.loads(out)["identical"] is True
            continue
        assert "the same model once defaults are filled in" in out
        assert len(out.strip().splitlines()) == (3 if fmt == "markdown" else 1)


@pytest.mark.parametrize("side", [0, 1])
def test_an_invalid_spec_on_either_side_exits_1_with_its_diagnostics(side, capsys):
    bad = str(ROOT / "tests" / "fixtures" / "invalid" / "typo.yaml")
    paths = [str(ROOT / "examples" / "gpt.yaml")] * 2
    paths[side] = bad
    assert cli.main(["diff", *paths]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "typo.yaml:12:5: error[unknown-key] model.attn_layers.haeds" in err
    assert cli.main(["diff", *paths, "--format", "github"]) == 1
    assert capsys.readouterr().out.startswith("::error file=")


def test_the_parameter_budget_rejects_as_validate_does(capsys):
    gpt = str(ROOT / "examples" / "gpt.yaml")
    assert cli.main(["diff", gpt, gpt, "--max-params", "1000"]) == 1
    assert "error[parameter-budget]" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    assert cli.main(["diff", str(ROOT / "examples" / "gpt.yaml"), "missing.yaml"]) == 2
    assert cli.main(["diff", str(ROOT / "examples" / "gpt.yaml")]) == 2
    assert cli.main(["diff", "a.yaml", "b.yaml", "--format", "dot"]) == 2


# -- composites and annotations -------------------------------------------------------------------


COMPOSITE = """\
xtc: 1
name: pair
components:
  encoder:
    type: TransformerWrapper
    num_tokens: 64
    max_seq_len: 16
    attn_layers: {{type: Encoder, dim: 32, depth: 1, heads: {heads}}}
  decoder:
    type: TransformerWrapper
    num_tokens: 64
    max_seq_len: 16
    attn_layers: {{type: Decoder, dim: 32, depth: 1, heads: 4, cross_attend: true}}
connections:
  - {{from: encoder, to: decoder.context}}
"""


def test_a_composite_compares_component_by_component():
    diff = diff_of(COMPOSITE.format(heads=4), COMPOSITE.format(heads=2))
    encoder, decoder = diff.components
    assert (encoder.name, decoder.name) == ("encoder", "decoder")
    assert [k.key for k in encoder.keywords] == ["components.encoder.attn_layers.heads",
                                                 "components.encoder.attn_layers.attn.kv_heads"]
    assert encoder.parameters.delta < 0 and not decoder.keywords and decoder.parameters.delta == 0
    assert {c.key for c in encoder.state_dict} == {"encoder.blocks.0.attn.to_qkv.weight",
                                                   "encoder.blocks.0.attn.to_out.weight"}
    assert not decoder.state_dict
    text = render(diff, "text")
    assert "  encoder  " in text and "  decoder  " in text  # parameters per component


def test_github_annotations_sit_at_the_keys_of_b():
    before = lm_text(rotary_pos_emb=True, attn={"flash": True})
    after = lm_text(heads=8)
    lines = render(diff_of(before, after), "github").splitlines()
    b = yaml.safe_load(after)  # line numbers: heads is written on line 11 of B
    assert b["model"]["attn_layers"]["heads"] == 8
    after_lines = after.splitlines()
    heads_line = next(i for i, line in enumerate(after_lines, 1) if line.strip().startswith("heads:"))
    layers_line = next(i for i, line in enumerate(after_lines, 1) if line.strip() == "attn_layers:")
    attn_line = next(i for i, line in enumerate(after_lines, 1) if line.strip() == "attn:")
    assert f"::notice file=b.yaml,line={heads_line},title=xtc diff::model.attn_layers.heads: 4 -> 8" in lines
    # removed in B: at the line of the parent mapping
    assert any(line.startswith(f"::notice file=b.yaml,line={layers_line},") and "rotary_pos_emb: true"
               in line for line in lines)
    assert any(line.startswith(f"::notice file=b.yaml,line={attn_line},") and "attn.flash: true"
               in line for line in lines)
    warning = next(line for line in lines if line.startswith("::warning"))
    assert "title=xtc diff%3A breaking::" in warning and "%0Areshaped blocks.0-1.attn.to_qkv" in warning
