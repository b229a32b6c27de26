"""Every problem of a spec in one run: after the loader or the schema rejects keys, the checks
still run on what was written, and a check whose findings would rest on a rejected value is
skipped and named in a closing note (spec/partial.py, spec/load.py)."""

from __future__ import annotations

from conftest import FIXTURES, check_snapshot
from xtc.compiler.passes import CHECKS
from xtc.spec.diagnostics import render_text
from xtc.spec.load import read_spec

SEVERAL = FIXTURES / "several"
GPT = """\
xtc: 1
name: gpt
model:
  type: TransformerWrapper
  num_tokens: 256
  max_seq_len: 64
  attn_layers:
    type: Decoder
    dim: 64
    depth: 2
    heads: 4
    attn: {dim_head: 16}
"""


def problems(text: str) -> list:
    return read_spec(text, "spec.yaml", CHECKS)[1]


def codes(text: str) -> list[str]:
    return [d.code for d in problems(text)]


def note(text: str) -> str:
    notes = [d.message for d in problems(text) if d.severity == "note"]
    assert len(notes) <= 1
    return notes[0] if notes else ""


def test_four_independent_mistakes_get_four_diagnostics(regen):
    path = SEVERAL / "four-mistakes.yaml"
    _, found = read_spec(path.read_bytes(), path.name, CHECKS)
    errors = [d for d in found if d.severity == "error"]
    assert sorted(d.code for d in errors) == [
        "at-most-one-norm", "flash-excludes-talking-heads", "missing-key", "out-of-range"]
    check_snapshot(path.with_suffix(".expected"), render_text(found), regen)


def test_a_check_that_reads_a_rejected_value_waits():
    """`haeds` was meant as `heads`: kv_heads 3 against the default 8 heads is no finding."""
    text = GPT.replace("heads: 4", "haeds: 4").replace("{dim_head: 16}", "{dim_head: 16, kv_heads: 3}")
    assert codes(text) == ["unknown-key", "checks-skipped"]
    assert "model.attn_layers.heads" in note(text)


def test_a_check_that_reads_nothing_rejected_still_reports():
    text = GPT.replace("heads: 4", "haeds: 4").replace("depth: 2", "use_rmsnorm: true\n    "
                                                       "use_scalenorm: true\n    depth: 2")
    assert "at-most-one-norm" in codes(text)


def test_an_unsupported_option_keeps_its_value_for_the_checks():
    """An option xtc does not compile yet leaves the other checks to run: flash beside top-k
    is a conflict worth reporting now. (Every attention option compiles since max_attend_past
    and latent attention: the XL wrapper's ttt_lr stands in, the conflict beside it.)"""
    text = GPT.replace("{dim_head: 16}", "{dim_head: 16, flash: true, sparse_topk: 2}").replace(
        "max_seq_len: 64", "max_seq_len: 64\n  max_mem_len: 4\n  use_abs_pos_emb: false\n"
        "  autoregressive: {ttt_lr: 0.1}")
    assert "unsupported-option" in codes(text)
    assert any(code.startswith("flash-excludes") for code in codes(text))
    assert "checks-skipped" not in codes(text)


def test_a_rejected_component_is_not_reported_missing_by_the_connections():
    text = """\
xtc: 1
name: captioner
components:
  encoder: {type: ViTransformerWrapperr, image_size: 32, patch_size: 8,
            attn_layers: {type: Encoder, dim: 32, depth: 1, heads: 2}}
  decoder: {type: TransformerWrapper, num_tokens: 64, max_seq_len: 16,
            attn_layers: {type: Decoder, dim: 32, depth: 1, heads: 2, cross_attend: true}}
connections:
  - {from: encoder, to: decoder.context}
"""
    found = codes(text)
    assert found[0] == "unknown-type" and found[-1] == "checks-skipped"
    assert "the entries of components" in note(text)
    assert not any("component" in code or "connection" in code for code in found)


def test_checks_after_a_size_error_wait_for_it():
    found = problems(GPT.replace("depth: 2", "depth: 100000"))
    assert [d.code for d in found][-1] == "checks-skipped"
    assert "wait for check-sizes" in found[-1].message


def test_unreadable_yaml_says_no_check_ran():
    found = problems("xtc: 1\nname: [unclosed\n")
    assert found[-1].code == "checks-skipped"
    assert f"{len(CHECKS)} checks" in found[-1].message
    assert "can be read" in found[-1].message


def test_a_valid_spec_has_no_note():
    assert problems(GPT) == []


def test_the_note_closes_the_output():
    text = GPT.replace("heads: 4", "haeds: 4").replace("{dim_head: 16}", "{dim_head: 16, kv_heads: 3}")
    lines = render_text(problems(text)).splitlines()
    assert "note[checks-skipped]" in lines[-1] and "error[unknown-key]" in lines[0]
