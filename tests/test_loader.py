"""The YAML layer: reading, decoding, structure bounds, strict typing and positions."""

from __future__ import annotations

import os

import pytest
from xtc.spec import SpecInputError
from xtc.spec.load import read_spec
from xtc.spec.scalars import type_plain_scalar
from xtc.spec.source import MAX_SPEC_BYTES, read_spec_bytes
from xtc.spec.yaml_loader import load_yaml

BASE = b"""xtc: 1
name: tiny_lm
model:
  type: TransformerWrapper
  num_tokens: 256
  max_seq_len: 128
  attn_layers: {type: Decoder, dim: 64, depth: 2, heads: 4}
"""


def errors(data: bytes | str) -> list:
    _, problems = read_spec(data, "spec.yaml")
    return [d for d in problems if d.severity == "error"]


def only_error(data: bytes | str):
    found = errors(data)
    assert len(found) == 1, [d.render() for d in found]
    return found[0]


@pytest.mark.parametrize("text, value", [
    ("64", 64), ("-3", -3), ("+7", 7), ("0", 0), ("0.1", 0.1), (".5", 0.5), ("1e3", 1000.0),
    ("1.5e-3", 0.0015), ("true", True), ("False", False), ("null", None), ("~", None), ("", None),
    ("gelu", "gelu"), ("y", "y"), ("1.2.3", "1.2.3"),
])
def test_plain_scalars_type_by_yaml_1_2_core(text, value):
    assert type_plain_scalar(text) == (value, None)


@pytest.mark.parametrize("text, reason", [
    ("yes", "not a boolean"), ("Off", "not a boolean"), ("ON", "not a boolean"),
    ("010", "leading zeros"), ("-007", "leading zeros"), ("0x1F", "only decimal"),
    ("0o17", "only decimal"), ("0b101", "only decimal"), ("1:30", "base-60"),
    ("1_000", "digit separators"), (".inf", "not a finite"), ("-.Inf", "not a finite"),
    (".nan", "not a finite"), ("1e999", "out of the float range"), ("9" * 31, "out of range"),
])
def test_ambiguous_scalars_are_refused(text, reason):
    value, refusal = type_plain_scalar(text)
    assert value is None and reason in refusal


def test_valid_spec_loads_with_both_backends(yaml_backend):
    spec, problems = read_spec(BASE, "spec.yaml")
    assert problems == [] and spec.name == "tiny_lm"


def test_invalid_utf8_is_located():
    data = BASE.replace(b"name: tiny_lm", b"name: tiny\xe9lm")
    d = only_error(data)
    assert (d.line, d.col, d.code) == (2, 11, "invalid-utf8")
    assert "invalid UTF-8 at line 2, column 11" in d.message


def test_nul_byte_is_located():
    d = only_error(BASE.replace(b"name: tiny_lm", b"name: tiny\x00lm"))
    assert (d.line, d.col) == (2, 11) and d.message.startswith("NUL character at line 2, column 11")


def test_c1_control_is_refused():
    d = only_error(BASE.replace(b"name: tiny_lm", "name: tiny\u0085lm".encode()))
    assert d.code == "invalid-character" and "U+0085" in d.message


def test_bidi_control_refused_in_values_but_allowed_in_comments():
    hidden = "\u202e"
    d = only_error(BASE.replace(b"name: tiny_lm", f"name: tiny{hidden}lm".encode()))
    assert "bidirectional" in d.message and d.line == 2
    commented = BASE.replace(b"name: tiny_lm", f"name: tiny_lm  # note {hidden}".encode())
    assert errors(commented) == []


def test_byte_order_mark_is_accepted():
    assert errors(b"\xef\xbb\xbf" + BASE) == []


def test_deep_nesting_is_refused_before_composing(yaml_backend):
    text = "custom_layers: " + "[" * 10000 + "]" * 10000 + "\n"
    d = only_error(text)
    assert (d.line, d.code, d.key) == (1, "nesting-too-deep", "custom_layers")


def test_billion_laughs_is_refused_by_the_alias_budget(yaml_backend):
    lines = ["notes:", "  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  - &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    d = only_error("\n".join(lines) + "\n")
    assert d.code == "alias-budget" and d.key == "notes"


def test_alias_count_is_bounded():
    items = ", ".join(["*a"] * 101)
    d = only_error(f"a: &a 1\nb: [{items}]\n")
    assert d.code == "alias-budget"


def test_aliases_within_budget_are_expanded():
    tree, problems = load_yaml("a: &x {flash: true}\nb: *x\n", "s.yaml")
    assert problems == [] and tree.entries["b"].value.entries["flash"].value.value is True


def test_positions_are_one_based_and_exact():
    tree, _ = load_yaml("a:\n  bb: 1\n  cc: [x, 'y']\n", "s.yaml")
    bb = tree.entries["a"].value.entries["bb"]
    assert (bb.key_line, bb.key_col, bb.value.line, bb.value.col) == (2, 3, 2, 7)
    items = tree.entries["a"].value.entries["cc"].value.items
    assert [(i.line, i.col, i.value, i.quoted) for i in items] == [(3, 8, "x", False), (3, 11, "y", True)]


@pytest.mark.parametrize("text, value", [
    ("a: !!str 4\n", "4"), ("a: !!int 4\n", 4), ('a: !!int "4"\n', 4), ("a: !!float 1\n", 1.0),
    ("a: !!bool true\n", True), ("a: !!null ~\n", None),
])
def test_explicit_core_tags_are_honoured(text, value):
    tree, problems = load_yaml(text, "s.yaml")
    assert problems == [] and tree.entries["a"].value.value == value


@pytest.mark.parametrize("text", ["a: !!int x\n", "a: !!bool 1\n", "a: !!int 010\n"])
def test_explicit_core_tags_type_strictly(text):
    _, problems = load_yaml(text, "s.yaml")
    assert [p.code for p in problems] == ["invalid-scalar"]


def test_non_mapping_top_levels():
    assert only_error("just text\n").message == "top level must be a mapping, got a scalar"
    assert only_error("").code == "empty-spec"
    assert only_error("# only a comment\n").code == "empty-spec"


def test_merge_keys_are_reported_at_each_merge(yaml_backend):
    text = "a: &a {flash: true}\nb: &b {x: 1}\nattn:\n  <<: *a\n  <<: *b\n"
    _, problems = load_yaml(text, "s.yaml")
    assert [(p.line, p.code) for p in problems] == [(4, "merge-key"), (5, "merge-key")]


def test_spec_file_must_be_a_regular_file(tmp_path):
    with pytest.raises(SpecInputError, match="not a regular file"):
        read_spec_bytes("/dev/zero")
    with pytest.raises(SpecInputError, match="is a directory|not a regular file"):
        read_spec_bytes(tmp_path)
    with pytest.raises(SpecInputError, match="no such file"):
        read_spec_bytes(tmp_path / "missing.yaml")


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecInputError, match="not a regular file"):
        read_spec_bytes(fifo)


def test_oversized_spec_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(MAX_SPEC_BYTES + 1)
    with pytest.raises(SpecInputError, match="larger than 1 MiB"):
        read_spec_bytes(big)
    assert only_error("a: 1\n" + "#" * MAX_SPEC_BYTES).code == "spec-too-large"
