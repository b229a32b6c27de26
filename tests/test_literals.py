"""literal_value (interop/literals.py): what `xtc import` evaluates, and the bounds that hold for
any expression. The refusals of huge arithmetic come from the operands alone, so every case here
returns at once; none of them is timed (a regression would hang the test, not fail it)."""

from __future__ import annotations

import ast

import pytest
from xtc.interop.literals import (
    MAX_CONTAINER_NESTING,
    MAX_ELEMENTS,
    MAX_EXPRESSION_DEPTH,
    MAX_STRING,
    NotALiteral,
    literal_value,
)

NAMES = {"dim": 512, "heads": 8, "width": 64.0, "prefix": "gpt", "sizes": [1, 2]}


def value(text: str, names: dict | None = None) -> object:
    return literal_value(ast.parse(text, mode="eval").body, NAMES if names is None else names)


def refusal(text: str, names: dict | None = None) -> NotALiteral:
    with pytest.raises(NotALiteral) as caught:
        value(text, names)
    return caught.value


@pytest.mark.parametrize(("text", "expected"), [
    ("4 * 64", 256),
    ("-1", -1),
    ("+3", 3),
    ("(1, 2)", (1, 2)),
    ("[0.1, -2]", [0.1, -2]),
    ("2 ** 10", 1024),
    ("2 ** -1", 0.5),
    ("2 ** 0.5", 2 ** 0.5),
    ("'a' + 'b'", "ab"),
    ("dim", 512),
    ("dim // heads", 64),
    ("dim / heads", 64.0),
    ("dim % 7", 512 % 7),
    ("width * 2 - 1", 127.0),
    ("prefix + '-small'", "gpt-small"),
    ("(sizes, [sizes])", ([1, 2], [[1, 2]])),
    ("{'a': 1, 2: (3, None), (1, 2): True}", {"a": 1, 2: (3, None), (1, 2): True}),
    ("True", True),
    ("None", None),
    ("1e-5", 1e-5),
    ("3037000499 * 3037000499", 3037000499 ** 2),  # just under 2**63
    ("2 ** 62 + (2 ** 62 - 1)", 2 ** 63 - 1),
    ("-(2 ** 62) - (2 ** 62 - 1)", -(2 ** 63) + 1),
    ("0 ** 0", 1),
    ("(-1) ** (10 ** 18)", 1),
    ("1 ** (10 ** 18)", 1),
])
def test_accepted_values(text, expected):
    result = value(text)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("text", "what"), [
    ("nn.attention", "an attribute (a.b)"),
    ("f(1)", "a function call (f(...))"),
    ("__import__('os').system('touch canary')", "a function call"),
    ("lambda: 0", "a lambda"),
    ("a[0]", "a subscript"),
    ("[x for x in y]", "a list comprehension"),
    ("{x: 1 for x in y}", "a dict comprehension"),
    ("{x for x in y}", "a set comprehension"),
    ("(x for x in y)", "a generator expression"),
    ("f'{dim}'", "an f-string"),
    ("(*sizes,)", "a starred expression"),
    ("(x := 1)", "an assignment expression"),
    ("1 < 2", "a comparison"),
    ("dim and heads", "a boolean operation"),
    ("1 if dim else 2", "a conditional expression"),
    ("{1, 2}", "a set"),
    ("{**sizes}", "** unpacking in a dict"),
    ("1 << 62", "the operator <<"),
    ("3 | 4", "the operator |"),
    ("~1", "the operator ~"),
    ("not dim", "the operator not"),
    ("b'abc'", "a bytes literal"),
    ("1j", "a complex number"),
    ("...", "an ellipsis"),
])
def test_refused_kinds_say_what_they_are(text, what):
    message = refusal(text).message
    assert what in message
    assert "xtc import evaluates only literals" in message


def test_the_call_itself_is_refused_not_its_function():
    error = refusal("nn.GELU()")
    assert isinstance(error.node, ast.Call) and "a function call" in error.message


def test_refusal_points_at_the_expression_refused():
    tree = ast.parse("[1, (2, lambda: 0)]", mode="eval").body
    with pytest.raises(NotALiteral) as caught:
        literal_value(tree, {})
    assert isinstance(caught.value.node, ast.Lambda)
    assert (caught.value.node.lineno, caught.value.node.col_offset) == (1, 8)


def test_unbound_name():
    assert refusal("depth").message == "name 'depth' is not bound to a value earlier in the file"


def test_long_names_are_shortened_in_messages():
    message = refusal("x" * 5000).message
    assert len(message) < 120 and "..." in message


@pytest.mark.parametrize(("text", "message"), [
    ("10 ** 10 ** 9", "2**63 or more"),
    ("9 ** 9 ** 9 ** 9", "2**63 or more"),
    ("2 ** 63", "2**63 or more"),
    ("(-2) ** 64", "2**63 or more"),
    ("3037000500 * 3037000500", "2**63 or more"),
    ("(2 ** 62) * (2 ** 62)", "2**63 or more"),
    ("2 ** 62 + 2 ** 62", "2**63 or more"),
    ("99999999999999999999", "2**63 or more"),
    ("0x" + "f" * 10_000, "2**63 or more"),
    ("'a' * 10**9", "not to a string and an integer"),
    ("[0] * 10**9", "not to a list and an integer"),
    ("'%s' % dim", "not to a string and an integer"),
    ("[1] + [2]", "not to a list and a list"),
    ("1e308 * 10", "not a finite number"),
    ("1e999", "not a finite number"),
    ("-1e999", "not a finite number"),
    ("10.0 ** 400", "too large for a float"),
    ("1.5 ** 10 ** 18", "too large for a float"),
    ("(-8) ** 0.5", "a complex number"),
    ("1 / 0", "division by zero"),
    ("1 // 0", "division by zero"),
    ("1 % 0.0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("True + 1", "not to a bool and an integer"),
    ("-True", "unary - applies to numbers, not to a bool"),
    ("-'a'", "not to a string"),
    ("'a' + 1", "not to a string and an integer"),
])
def test_bounds_refuse_before_computing(text, message):
    assert message in refusal(text).message


def test_strings_are_bounded():
    assert value(repr("a" * MAX_STRING)) == "a" * MAX_STRING
    assert "longer than" in refusal(repr("a" * (MAX_STRING + 1))).message
    half = repr("a" * (MAX_STRING // 2 + 1))
    assert "longer than" in refusal(f"{half} + {half}").message


def test_elements_are_counted_over_the_whole_value():
    assert len(value(repr([0] * MAX_ELEMENTS))) == MAX_ELEMENTS
    assert "more than 10000 elements" in refusal(repr([0] * (MAX_ELEMENTS + 1))).message
    nested = repr([[0] * 100] * 99)  # 99 lists of 100 and the outer list's 99: 9,999
    assert len(value(nested)) == 99
    assert "more than 10000 elements" in refusal(repr([[0] * 100] * 100)).message
    assert "more than 10000 elements" in refusal(repr({i: i for i in range(MAX_ELEMENTS + 1)})).message


def test_names_bound_to_containers_count_their_elements():
    """A billion laughs: each name holds ten of the one before, so the value would grow by ten
    at each step while the text grows by a line."""
    names = {"a": [0] * 10}
    names["b"] = value("[a, a, a, a, a, a, a, a, a, a]", names)  # 110 elements
    names["c"] = value("[b, b, b, b, b, b, b, b, b, b]", names)  # 1,110
    assert "more than 10000 elements" in refusal("[c, c, c, c, c, c, c, c, c, c]", names).message


def test_containers_nest_at_most_16_deep():
    deepest = "[" * MAX_CONTAINER_NESTING + "]" * MAX_CONTAINER_NESTING
    assert value(deepest) is not None
    assert "nested more than 16 deep" in refusal(f"[{deepest}]").message
    assert "nested more than 16 deep" in refusal("[inner]", {"inner": value(deepest)}).message


def test_expression_depth_is_bounded_without_recursion_error():
    chain = "1 + " * (MAX_EXPRESSION_DEPTH + 10) + "1"
    assert f"nested more than {MAX_EXPRESSION_DEPTH} deep" in refusal(chain).message
    # a tree deeper than Python's recursion limit, built by hand (parse_python refuses such files)
    node: ast.expr = ast.Constant(1)
    for _ in range(5000):
        node = ast.UnaryOp(ast.USub(), node)
    with pytest.raises(NotALiteral, match="nested more than"):
        literal_value(node, {})


def test_name_values_are_checked():
    assert "2**63 or more" in refusal("big", {"big": 10 ** 30}).message
    assert "a set is not a value" in refusal("s", {"s": {1}}).message
