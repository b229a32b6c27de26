"""Constructor arguments as values: literals and arithmetic on them, evaluated without `eval`.

`literal_value` walks an expression's tree and computes only what a model file writes as a
number, string or container: `4 * 64`, `-1`, `(1, 2)`, `"a" + "b"`, `2 ** 10`, and names bound
earlier in the file. Everything else (calls, attributes, lambdas, comprehensions, f-strings) is
refused with NotALiteral, which names what the expression is. Every result is bounded, and each
bound is checked before the operation that could exceed it, so no input makes it compute a huge
number or string: `10 ** 10 ** 9` is refused from the operands' bit lengths, at once.

>>> import ast
>>> def value(text, **names):
...     return literal_value(ast.parse(text, mode="eval").body, names)
>>> value("4 * 64"), value("(dim // heads, -1)", dim=512, heads=8), value("2 ** -1")
(256, (64, -1), 0.5)
>>> value("10 ** 10 ** 9")
Traceback (most recent call last):
    ...
xtc.interop.literals.NotALiteral: the result would be 2**63 or more in magnitude
>>> value("nn.GELU()")
Traceback (most recent call last):
    ...
xtc.interop.literals.NotALiteral: a function call is not a literal: xtc import evaluates only literals, names bound to them earlier in the file, and arithmetic on them
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

MAX_INT_BITS = 63  # |int| < 2**63: what a 64-bit integer holds
MAX_STRING = 10_000  # characters in one string
MAX_ELEMENTS = 10_000  # elements of all the containers of one value together
MAX_CONTAINER_NESTING = 16
# Operators and containers in one expression, nested: recursion stays far below Python's limit
# whatever tree is given (parse_python already refuses trees deeper than 100).
MAX_EXPRESSION_DEPTH = 100

TOO_LARGE = f"the result would be 2**{MAX_INT_BITS} or more in magnitude"
EVALUATES = ("xtc import evaluates only literals, names bound to them earlier in the file, "
             "and arithmetic on them")

ARITHMETIC: dict[type, tuple[str, Callable[[object, object], object]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
OTHER_OPERATORS = {ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitAnd: "&",
                   ast.BitXor: "^", ast.MatMult: "@", ast.Invert: "~", ast.Not: "not"}

# What each refused kind of expression is, in plain words.
KINDS = {
    ast.Call: "a function call",
    ast.Attribute: "an attribute (a.b)",
    ast.Subscript: "a subscript (a[b])",
    ast.Slice: "a slice (a:b)",
    ast.ListComp: "a list comprehension",
    ast.SetComp: "a set comprehension",
    ast.DictComp: "a dict comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Lambda: "a lambda",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Starred: "a starred expression (*a)",
    ast.NamedExpr: "an assignment expression (:=)",
    ast.Compare: "a comparison",
    ast.BoolOp: "a boolean operation (and, or)",
    ast.IfExp: "a conditional expression (a if c else b)",
    ast.Set: "a set",
    ast.Await: "an await expression",
    ast.Yield: "a yield expression",
    ast.YieldFrom: "a yield expression",
}


class NotALiteral(Exception):
    """An expression xtc import does not evaluate; `.node` is where, `.message` says why."""

    def __init__(self, node: ast.AST, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


def literal_value(node: ast.expr, names: Mapping[str, object]) -> object:
    """The value of a literal expression; NotALiteral for anything else or anything too large.

    `names` maps the names bound earlier in the file to values literal_value returned (the
    importer's table); a container from it is returned as is, not copied, and counts with all
    its elements toward the bounds of the value that names it.
    """
    return Evaluator(names).value(node, depth=0, nesting=0)


class Evaluator:
    """One evaluation: `elements` counts the container elements of the whole value so far."""

    def __init__(self, names: Mapping[str, object]):
        self.names = names
        self.elements = 0

    def value(self, node: ast.expr, depth: int, nesting: int) -> object:
        if depth > MAX_EXPRESSION_DEPTH:
            raise NotALiteral(node, f"an expression nested more than {MAX_EXPRESSION_DEPTH} deep")
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node, nesting)
        if isinstance(node, (ast.Tuple, ast.List, ast.Dict)):
            return self.container(node, depth, nesting)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        raise NotALiteral(node, f"{kind_of(node)} is not a literal: {EVALUATES}")

    # -- leaves --

    def constant(self, node: ast.Constant) -> object:
        value = node.value
        if isinstance(value, (bytes, complex)) or value is Ellipsis:
            raise NotALiteral(node, f"{type_words(value)} is not a value xtc import reads: "
                                    f"{EVALUATES}")
        return checked(node, value)

    def name(self, node: ast.Name, nesting: int) -> object:
        if node.id not in self.names:
            raise NotALiteral(node, f"name {shortened(node.id)!r} is not bound to a value earlier "
                                    "in the file")
        value = self.names[node.id]
        elements, deepest = measure(value, budget=MAX_ELEMENTS - self.elements + 1)
        self.count(node, elements)
        if nesting + deepest > MAX_CONTAINER_NESTING:
            raise NotALiteral(node, f"containers nested more than {MAX_CONTAINER_NESTING} deep")
        return checked(node, value) if not isinstance(value, (tuple, list, dict)) else value

    # -- containers --

    def container(self, node: ast.Tuple | ast.List | ast.Dict, depth: int, nesting: int) -> object:
        if nesting >= MAX_CONTAINER_NESTING:
            raise NotALiteral(node, f"containers nested more than {MAX_CONTAINER_NESTING} deep")
        inner = nesting + 1
        if isinstance(node, ast.Dict):
            self.count(node, len(node.keys))
            return self.mapping(node, depth, inner)
        self.count(node, len(node.elts))
        items = [self.value(item, depth + 1, inner) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items

    def mapping(self, node: ast.Dict, depth: int, nesting: int) -> dict:
        result = {}
        for key, item in zip(node.keys, node.values):
            if key is None:
                raise NotALiteral(item, f"** unpacking in a dict is not a literal: {EVALUATES}")
            key_value = self.value(key, depth + 1, nesting)
            if isinstance(key_value, (list, dict)) or (
                    isinstance(key_value, tuple) and not is_hashable(key_value)):
                raise NotALiteral(key, "a dict key must be a number, string, None or tuple")
            result[key_value] = self.value(item, depth + 1, nesting)
        return result

    def count(self, node: ast.AST, elements: int) -> None:
        self.elements += elements
        if self.elements > MAX_ELEMENTS:
            raise NotALiteral(node, f"more than {MAX_ELEMENTS} elements in one value")

    # -- arithmetic --

    def unary(self, node: ast.UnaryOp, depth: int) -> object:
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise NotALiteral(node, f"the operator {OTHER_OPERATORS[type(node.op)]} is not "
                                    f"evaluated: {EVALUATES}")
        operand = self.value(node.operand, depth + 1, nesting=0)
        if not is_number(operand):
            raise NotALiteral(node, f"unary {symbol(node.op)} applies to numbers, not to "
                                    f"{type_words(operand)}")
        return checked(node, -operand if isinstance(node.op, ast.USub) else operand)

    def binary(self, node: ast.BinOp, depth: int) -> object:
        if type(node.op) not in ARITHMETIC:
            raise NotALiteral(node, f"the operator {OTHER_OPERATORS[type(node.op)]} is not "
                                    f"evaluated: {EVALUATES}")
        left = self.value(node.left, depth + 1, nesting=0)
        right = self.value(node.right, depth + 1, nesting=0)
        name, compute = ARITHMETIC[type(node.op)]
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            if len(left) + len(right) > MAX_STRING:
                raise NotALiteral(node, f"a string longer than {MAX_STRING} characters")
            return left + right
        if not (is_number(left) and is_number(right)):
            raise NotALiteral(node, f"{name} applies to numbers (and + to two strings), not to "
                                    f"{type_words(left)} and {type_words(right)}")
        refuse_huge(node, left, right)
        try:
            result = compute(left, right)
        except ZeroDivisionError:
            raise NotALiteral(node, "division by zero") from None
        except OverflowError:
            raise NotALiteral(node, "the result is too large for a float") from None
        return checked(node, result)


def refuse_huge(node: ast.BinOp, left: float, right: float) -> None:
    """Refuse an integer `*` or `**` whose result would exceed MAX_INT_BITS before computing it
    (`+`, `-`, `/`, `//`, `%` of bounded ints stay small; float results cannot grow in memory)."""
    if isinstance(left, int) and isinstance(right, int) and \
            fewest_bits(node.op, left, right) > MAX_INT_BITS:
        raise NotALiteral(node, TOO_LARGE)


def fewest_bits(op: ast.operator, left: int, right: int) -> int:
    """A lower bound of the bit length of `left OP right` from the operands' bit lengths alone,
    since |a| >= 2 ** (bits(a) - 1); 0 for the operators that need none.

    >>> fewest_bits(ast.Pow(), 10, 10 ** 9), fewest_bits(ast.Mult(), 2 ** 40, 2 ** 40)
    (3000000001, 81)
    """
    if isinstance(op, ast.Mult) and left and right:
        return left.bit_length() + right.bit_length() - 1
    if isinstance(op, ast.Pow) and right > 0 and abs(left) > 1:
        return (abs(left).bit_length() - 1) * right + 1
    return 0


def checked(node: ast.AST, value: object) -> object:
    """A number or string within the bounds, or NotALiteral."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise NotALiteral(node, TOO_LARGE)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotALiteral(node, "the result is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise NotALiteral(node, f"a string longer than {MAX_STRING} characters")
        return value
    raise NotALiteral(node, f"{type_words(value)} is not a value xtc import reads")


def measure(value: object, budget: int) -> tuple[int, int]:
    """(container elements, container nesting) of a value bound to a name, counting no further
    than `budget` elements, so that a name used many times costs at most the whole budget."""
    elements, deepest = 0, 0
    stack = [(value, 0)]
    while stack and elements <= budget:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
            elements += len(item)
        elif isinstance(item, (tuple, list)):
            children = list(item)
            elements += len(item)
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_CONTAINER_NESTING:
            break
        stack.extend((child, depth + 1) for child in children[: budget + 1])
    return elements, deepest


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_hashable(value: tuple) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def kind_of(node: ast.AST) -> str:
    """What an expression is, in plain words: "a function call", "a lambda", ..."""
    kind = KINDS.get(type(node), f"an expression of kind {type(node).__name__}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        kind = f"a function call ({shortened(node.func.id)}(...))"
    return kind


def shortened(name: str) -> str:
    """An identifier as messages show it: ASCII, at most 40 characters (an identifier can be as
    long as the file)."""
    name = name if name.isascii() else ascii(name)[1:-1]
    return name if len(name) <= 40 else name[:37] + "..."


def symbol(op: ast.unaryop) -> str:
    return "-" if isinstance(op, ast.USub) else "+"


def type_words(value: object) -> str:
    """`a bool`, `a string`, ... for messages (never the value itself, which may be large)."""
    words = {bool: "a bool", str: "a string", tuple: "a tuple", list: "a list", dict: "a dict",
             type(None): "None", int: "an integer", float: "a float", bytes: "a bytes literal",
             complex: "a complex number", type(Ellipsis): "an ellipsis (...)"}
    return words.get(type(value), f"a {type(value).__name__}")
