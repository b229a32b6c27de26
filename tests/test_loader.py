"""The YAML layer: reading, decoding, structure bounds, strict typing and positions."""

from __future__ import annotations

import os

import pytest
from xtc.spec import SpecInputError
from xtc.spec.load import read_spec
from xtc.spec.scalars import type_plain_scalar
from xtc.spec.source import MAX_SPEC_BYTES, read_spec_bytes
from xtc.spec.yaml_errors import explain_syntax_error, scan_text
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


# -- YAML syntax errors: the likely cause, where to fix it, whichever parser runs ------------

GPT = """xtc: 1
name: gpt
model:
  type: TransformerWrapper
  num_tokens: 256
  max_seq_len: 128
  attn_layers:
    type: Decoder
    dim: 64
    depth: 2
    heads: 4
"""


def broken(old: str, new: str) -> str:
    assert old in GPT
    return GPT.replace(old, new, 1)


def syntax_error(text: str):
    tree, problems = load_yaml(text, "s.yaml")
    assert tree is None and len(problems) == 1, [p.render() for p in problems]
    return problems[0]


@pytest.mark.parametrize("text, where, code, words", [
    (broken("    depth: 2", "   depth: 2"), (10, 4), "yaml-syntax",
     ("'depth' starts at column 4, but 'dim' on line 9 starts at column 5 and 'attn_layers' on "
      "line 7 at column 3")),
    (broken("    depth: 2", "      depth: 2"), (10, 7), "yaml-syntax",
     "deeper than 'dim' on line 9 (column 5), which already has a value"),
    (broken("    depth: 2", "    depth 2"), (10, 5), "yaml-syntax",
     "expected `key: value`; is a ':' missing after 'depth'?"),
    (broken("    type: Decoder", "    type Decoder"), (8, 5), "yaml-syntax",
     "is a ':' missing after 'type'?"),
    (broken("    heads: 4", "    heads 4"), (11, 5), "yaml-syntax", "is a ':' missing after 'heads'?"),
    (broken("    heads: 4", "    attn\n      flash: true"), (11, 5), "yaml-syntax",
     "is a ':' missing after 'attn'?"),
    (broken("    depth: 2", "    - depth: 2"), (10, 5), "yaml-syntax",
     "a list item ('- ') among the keys of a mapping ('dim' on line 9"),
    (broken("    depth: 2", "    custom_layers:\n      - a\n      - f\n      depth: 2"), (13, 7),
     "yaml-syntax", "a mapping key among list items (the list item on line 12"),
    (broken("    dim: 64", "    attn: {flash: true"), (9, 11), "yaml-syntax",
     "this '{' is never closed: add the '}' that ends it (YAML read on to line 10"),
    (broken("    dim: 64", "    custom_layers: [a, f"), (9, 20), "yaml-syntax",
     "this '[' is never closed: add the ']'"),
    (broken("name: gpt", 'name: "gpt'), (2, 7), "yaml-syntax",
     "this '\"' opens a string that is never closed"),
    (broken("name: gpt", "name: 'gpt"), (2, 7), "yaml-syntax", "this \"'\" opens a string"),
    (broken("name: gpt", "name: gpt: small"), (2, 10), "yaml-syntax",
     "a second ': ' after the key 'name'"),
    (broken("name: gpt", "name: @gpt"), (2, 7), "yaml-syntax", "a value cannot start with '@'"),
    (broken("name: gpt", 'name: "g\\qpt"'), (2, 9), "yaml-syntax", "unknown escape"),
    (broken("    dim: 64", "    attn: {flash: true dim_head: 8}"), (9, 32), "yaml-syntax",
     "inside the mapping '{' opened at line 9, column 11, entries are separated by ','"),
    (broken("    heads: 4", "\theads: 4"), (11, 1), "tab-indentation", "a tab indents this line"),
    (broken("    heads: 4", "    heads:\t4"), (11, 11), "tab-indentation",
     "a tab outside a quoted string or comment"),
])
def test_syntax_errors_name_the_cause_where_it_is(yaml_backend, text, where, code, words):
    d = syntax_error(text)
    assert ((d.line, d.col), d.code) == (where, code), d.render()
    assert words in d.message, d.message
    assert "not allowed" not in d.message and "expected <" not in d.message  # no parser words


@pytest.mark.parametrize("text", [
    broken("    dim: 64", "    attn: {flash: true"), broken("    depth: 2", "   depth: 2"),
    broken("model:", "model: {type: Decoder, dim:] 4}"),  # libyaml and PyYAML mark it a token apart
    broken("name: gpt", "name: `gpt`"), broken("    depth: 2", "    depth: ]"),
])
def test_a_syntax_error_reads_the_same_with_either_parser(text, monkeypatch):
    monkeypatch.setenv("XTC_PURE_YAML", "0")
    with_libyaml = syntax_error(text)
    monkeypatch.setenv("XTC_PURE_YAML", "1")
    assert syntax_error(text) == with_libyaml


@pytest.mark.parametrize("text", [
    'name: "a\tb"\n', "name: 'a\tb'\n", "name: x  # a\tcomment\n", "notes: |\n  a\tb\n  \tc\n",
    'name: "a\n\tb"\n',
])
def test_tabs_inside_strings_comments_and_block_scalars_are_fine(yaml_backend, text):
    tree, problems = load_yaml(text, "s.yaml")
    assert tree is not None and problems == []


def test_brackets_in_strings_and_comments_are_not_counted():
    text = "a: '{'\nb: \"[\"  # and { here\nc: x[0\nd: {e: [1, 2]}\nf: [1\n"
    scan = scan_text(text)
    assert [(m.char, m.line, m.col) for m in scan.open_brackets] == [("[", 5, 4)]
    assert scan.unclosed_quote is None and scan.mismatch is None


def test_an_apostrophe_inside_a_plain_value_opens_no_string():
    scan = scan_text("description: it's a model\nname: {a: 1\n")
    assert scan.unclosed_quote is None
    found = explain_syntax_error("description: it's a model\nname: {a: 1\n", 3, 1)
    assert (found.line, found.col) == (2, 7)


def test_the_innermost_unclosed_bracket_is_blamed_where_it_opens():
    text = "a: 1\nattn: {x: [1, 2\n  , y: {z: 3}\nb: 2\n"
    found = explain_syntax_error(text, 4, 2)
    assert (found.line, found.col) == (2, 11) and "this '[' is never closed" in found.message


def test_a_wrong_closing_bracket_blames_the_bracket_it_leaves_open():
    text = "layers: {custom_layers: [a, f}\n"
    found = explain_syntax_error(text, 1, 30)
    assert (found.line, found.col) == (1, 25)
    assert found.message == ("this '[' is never closed: add the ']' that ends it (the '}' at "
                             "line 1, column 30 cannot)")


def test_a_bracket_after_the_error_is_not_blamed():
    text = "a: 1\n  b: 2\nc: [1\n"
    found = explain_syntax_error(text, 2, 4)
    assert (found.line, found.col) == (2, 3) and "'b' starts at column 3" in found.message
