"""`xtc explain`: every keyword written out, and the explanation is itself the same model."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT
from xtc.compiler import compile_spec
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
