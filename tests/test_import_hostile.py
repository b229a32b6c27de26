"""Hostile Python for `xtc import`: nothing in a file runs, and any file is refused or read within
the issue's bounds (under 5 s, under 512 MB), with located diagnostics and never a traceback.

HOSTILE_PYTHON is the corpus: (name, make) where make(folder) returns the file's bytes; a file
that would run code writes the canary folder / CANARY if it ran, and a make may put a helper
module beside the file. run_contained runs a command under the memory limit; here it runs DRIVER,
a stand-in for the importer (parse_python, then literal_value on every keyword argument of every
call), so that the same corpus can run through `xtc import` once it exists. The unit tests of
parse_python's stages follow.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from xtc.interop.literals import NotALiteral, literal_value
from xtc.interop.python_source import (
    MAX_CHAIN,
    MAX_NESTING,
    MAX_PYTHON_BYTES,
    MAX_TOKENS,
    MAX_TREE_DEPTH,
    Comment,
    parse_python,
    read_python_bytes,
)
from xtc.spec.source import SpecInputError

from xtc.cli import main

ADDRESS_SPACE = 512 * 2**20  # the bound; nothing here imports torch
TIMEOUT = 120  # generous: the bound is 5 s, and no assertion is timed
CANARY = "CANARY"
KIB = 1024


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_contained(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command under a 512 MiB address-space limit and a timeout, output captured."""
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=TIMEOUT,
                          preexec_fn=limit_memory, check=False)


# The importer's stand-in: prints one JSON object. Only SpecInputError and NotALiteral are caught:
# any other exception escapes, and the test sees a traceback and a non-zero exit.
DRIVER = """
import ast, json, sys
from xtc.interop.literals import NotALiteral, literal_value
from xtc.interop.python_source import parse_python, read_python_bytes
from xtc.cli import main
from xtc.spec.source import SpecInputError

CONSTRUCTORS = {"TransformerWrapper", "Decoder", "Encoder"}
report = {"input_error": None, "diagnostics": [], "values": [], "refused": []}
try:
    data = read_python_bytes(sys.argv[1])
except SpecInputError as exc:
    report["input_error"] = str(exc)
else:
    source, problems = parse_python(data, sys.argv[1])
    report["diagnostics"] = [[d.line, d.col, d.code, d.message] for d in problems]
    if source is not None:
        names = {}
        for statement in source.tree.body:  # NAME = value at the top, in order
            if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)):
                try:
                    names[statement.targets[0].id] = literal_value(statement.value, names)
                except NotALiteral:
                    pass
        for node in ast.walk(source.tree):
            for keyword in node.keywords if isinstance(node, ast.Call) else ():
                value = keyword.value
                if keyword.arg is None or (isinstance(value, ast.Call)
                        and getattr(value.func, "id", None) in CONSTRUCTORS):
                    continue  # the importer reads a constructor call as a module, not a value
                try:
                    report["values"].append([keyword.arg, repr(literal_value(keyword.value, names))])
                except NotALiteral as exc:
                    report["refused"].append([exc.node.lineno, exc.node.col_offset + 1,
                                              keyword.arg, exc.message])
report["torch"] = "torch" in sys.modules
# VmHWM, the peak of this process's own memory: ru_maxrss would carry over the peak of the
# process that started it (getrusage(2): it is kept across execve), here pytest's with torch.
try:
    with open("/proc/self/status") as status:
        peak = [line.split()[1] for line in status if line.startswith("VmHWM:")]
except OSError:  # not Linux: the address-space limit still holds
    peak = []
report["peak_rss"] = int(peak[0]) * 1024 if peak else 0
print(json.dumps(report))
"""


def canary(folder: Path) -> str:
    return repr(str(folder / CANARY))


def model(**values: str) -> str:
    """`model = TransformerWrapper(...)` with the given keyword arguments, as text."""
    arguments = ", ".join(f"{key} = {text}" for key, text in values.items())
    return f"model = TransformerWrapper(num_tokens = 256, attn_layers = Decoder({arguments}))\n"


def beside(folder: Path, module: str, text: str) -> None:
    (folder / f"{module}.py").write_text(text)


def importing_evil_module(folder: Path) -> bytes:
    beside(folder, "evil_module", f"open({canary(folder)}, 'w').write('ran')\nDIM = 64\n")
    return ("import evil_module\nfrom evil_module import DIM\n"
            + model(dim="evil_module.DIM", depth="DIM")).encode()


def text(make: Callable[[Path], str]) -> Callable[[Path], bytes]:
    return lambda folder: make(folder).encode()


HOSTILE_PYTHON: list[tuple[str, Callable[[Path], bytes]]] = [
    # code that would run if the file were executed or imported
    ("top-level-open", text(lambda f: f"open({canary(f)}, 'w').write('ran')\n"
                                      + model(dim="4 * 64", depth="2"))),
    ("os-system-in-value", text(lambda f: model(
        dim=f"__import__('os').system('touch ' + {canary(f)})"))),
    ("exec-in-value", text(lambda f: model(dim=f"exec(\"open({canary(f)}, 'w')\")"))),
    ("eval-in-value", text(lambda f: model(dim="eval('64')"))),
    ("exec-at-top", text(lambda f: f"exec(\"open({canary(f)}, 'w')\")\n" + model(dim="64"))),
    ("metaclass", text(lambda f: (
        "class Touch(type):\n"
        f"    def __new__(meta, *args):\n        open({canary(f)}, 'w')\n"
        "        return super().__new__(meta, *args)\n"
        "class Model(metaclass = Touch):\n    dim = 64\n" + model(dim="Model.dim")))),
    ("decorator", text(lambda f: (
        f"def touch(thing):\n    open({canary(f)}, 'w')\n    return thing\n"
        "@touch\nclass Model:\n    pass\n" + model(dim="64")))),
    ("default-argument", text(lambda f: (
        f"def build(dim = open({canary(f)}, 'w')):\n    pass\n" + model(dim="build()")))),
    ("import-beside", importing_evil_module),
    ("lambda-value", text(lambda f: model(dim=f"lambda: open({canary(f)}, 'w')"))),
    ("walrus-value", text(lambda f: model(dim="(d := 64)"))),
    ("fstring-value", text(lambda f: model(dim=f"f\"{{open({canary(f)}, 'w')}}\""))),
    # values too large to compute
    ("power-tower", text(lambda f: model(dim="10 ** 10 ** 9"))),
    ("power-tower-4", text(lambda f: model(dim="9 ** 9 ** 9 ** 9"))),
    ("shifted-product", text(lambda f: model(dim="(1 << 62) * (1 << 62)"))),
    ("string-repetition", text(lambda f: model(dim="'a' * 10**9"))),
    ("float-overflow", text(lambda f: model(dim="1e308 * 10"))),
    ("division-by-zero", text(lambda f: model(dim="1 / 0"))),
    ("hex-literal-240k", text(lambda f: model(dim="0x" + "f" * (240 * KIB)))),
    ("decimal-literal-5000-digits", text(lambda f: model(dim="9" * 5000))),
    ("list-of-20000", text(lambda f: model(dim="[" + "0, " * 20_000 + "]"))),
    ("literal-nested-40", text(lambda f: model(dim="[" * 40 + "]" * 40))),
    ("name-expansion", text(lambda f: (
        "a = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n"
        + "".join(f"{n} = [{', '.join([p] * 10)}]\n" for p, n in zip("abc", "bcd"))
        + model(dim="d")))),
    # files too large or too complex to read
    ("over-256k", lambda f: b"x = 1\n" * (MAX_PYTHON_BYTES // 6 + 1)),
    ("x-equals-1-250k", lambda f: b"x = 1\n" * (250 * KIB // 6)),
    ("list-literal-250k", lambda f: b"x = [" + b"1," * (125 * KIB - 4) + b"]\n"),
    ("list-literal-99k-tokens", text(lambda f: model(dim="[" + "1," * 49_000 + "]"))),
    ("chain-100k", lambda f: b"x = " + b"1+" * 100_000 + b"1\n"),
    ("brackets-1000", lambda f: b"x = " + b"(" * 1000 + b"1" + b")" * 1000 + b"\n"),
    ("elif-5000", lambda f: b"if x:\n    pass\n" + b"elif x:\n    pass\n" * 5000),
    ("fstring-50k-fields", lambda f: b"x = f'" + b"{a}" * 50_000 + b"'\n"),
    ("fstring-chain", lambda f: b"x = f'{" + b"1+" * 5000 + b"1}'\n"),
    # bytes that are not Python
    ("not-utf8", lambda f: model(dim="64").encode() + b"# caf\xe9\n"),
    ("latin1-cookie", lambda f: b"# -*- coding: latin-1 -*-\n" + model(dim="64").encode()),
    ("nul-byte", lambda f: b"x = 1\n" + b"y = \x00\n"),
    ("binary", lambda f: bytes(range(256)) * 4),
    ("unterminated-string", lambda f: b"x = 'abc\n" + model(dim="64").encode()),
    ("unterminated-triple-string", lambda f: b'x = """abc\n' * 3),
    ("bad-dedent", lambda f: b"if x:\n        y = 1\n    z = 2\n"),
]

# What each file gives: ("input-error", text of the message), ("diagnostic", code of the first),
# ("refused", text of a keyword value's NotALiteral message) or ("read", None): read and no
# keyword value refused.
OUTCOMES = {
    "top-level-open": ("read", None),
    "os-system-in-value": ("refused", "a function call"),
    "exec-in-value": ("refused", "a function call (exec(...))"),
    "eval-in-value": ("refused", "a function call (eval(...))"),
    "exec-at-top": ("read", None),
    "metaclass": ("refused", "an attribute"),
    "decorator": ("read", None),
    "default-argument": ("refused", "a function call (build(...))"),
    "import-beside": ("refused", "an attribute"),
    "lambda-value": ("refused", "a lambda"),
    "walrus-value": ("refused", "an assignment expression"),
    "fstring-value": ("refused", "an f-string"),
    "power-tower": ("refused", "2**63 or more"),
    "power-tower-4": ("refused", "2**63 or more"),
    "shifted-product": ("refused", "the operator <<"),
    "string-repetition": ("refused", "not to a string and an integer"),
    "float-overflow": ("refused", "not a finite number"),
    "division-by-zero": ("refused", "division by zero"),
    "hex-literal-240k": ("refused", "2**63 or more"),
    "decimal-literal-5000-digits": ("diagnostic", "python-syntax"),
    "list-of-20000": ("refused", "more than 10000 elements"),
    "literal-nested-40": ("refused", "nested more than 16 deep"),
    "name-expansion": ("refused", "name 'd' is not bound"),  # d itself was refused: too large
    "over-256k": ("input-error", "Python file larger than 256 KiB"),
    "x-equals-1-250k": ("diagnostic", "python-too-many-tokens"),
    "list-literal-250k": ("diagnostic", "python-too-many-tokens"),
    "list-literal-99k-tokens": ("refused", "more than 10000 elements"),
    "chain-100k": ("diagnostic", "python-too-deep"),
    "brackets-1000": ("diagnostic", "python-too-deep"),
    "elif-5000": ("diagnostic", "python-too-complex"),
    "fstring-50k-fields": ("diagnostic", "python-too-complex"),
    "fstring-chain": ("diagnostic", "python-too-complex"),
    "not-utf8": ("diagnostic", "python-not-utf8"),
    "latin1-cookie": ("diagnostic", "python-not-utf8"),
    "nul-byte": ("diagnostic", "python-nul-byte"),
    "binary": ("diagnostic", "python-not-utf8"),  # decoding comes first
    "unterminated-string": ("diagnostic", "python-syntax"),
    "unterminated-triple-string": ("diagnostic", "python-syntax"),
    "bad-dedent": ("diagnostic", "python-syntax"),
}


def test_every_hostile_file_has_an_outcome():
    assert [name for name, _ in HOSTILE_PYTHON] == list(OUTCOMES)


@pytest.mark.parametrize(("name", "make"), HOSTILE_PYTHON, ids=[name for name, _ in HOSTILE_PYTHON])
def test_hostile_file_is_read_or_refused_within_bounds(tmp_path, name, make):
    path = tmp_path / "model.py"
    path.write_bytes(make(tmp_path))
    result = run_contained([sys.executable, "-c", DRIVER, str(path)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert not (tmp_path / CANARY).exists()
    assert not report["torch"]
    assert report["peak_rss"] < ADDRESS_SPACE
    for line, col, code, _ in report["diagnostics"]:
        assert line >= 1 and col >= 1 and code.startswith("python-")
    for line, col, _, _ in report["refused"]:
        assert line >= 1 and col >= 1
    kind, expected = OUTCOMES[name]
    if kind == "input-error":
        assert expected in report["input_error"]
    elif kind == "diagnostic":
        assert report["input_error"] is None
        assert report["diagnostics"] and report["diagnostics"][0][2] == expected, report
    else:
        assert report["input_error"] is None and report["diagnostics"] == [], report
        refused = [message for *_, message in report["refused"]]
        assert (not refused) if kind == "read" else any(expected in m for m in refused), refused


# What `xtc import` itself does with each file: exit 0 with a spec that validates, or 1 with
# located diagnostics, or 2 for a file it will not read; never 3, never the canary.
EXIT_OF = {"read": {0, 1}, "refused": {1}, "diagnostic": {1}, "input-error": {2}}
LOCATED = re.compile(r"^.*model\.py:\d+:\d+: (error|warning|note)\[[a-z0-9-]+\] ")


@pytest.mark.parametrize(("name", "make"), HOSTILE_PYTHON, ids=[name for name, _ in HOSTILE_PYTHON])
def test_xtc_import_contains_every_hostile_file(tmp_path, name, make):
    path = tmp_path / "model.py"
    path.write_bytes(make(tmp_path))
    out = tmp_path / "model.yaml"
    result = run_contained([sys.executable, "-m", "xtc", "import", str(path), "-o", str(out)],
                           cwd=tmp_path)
    assert not (tmp_path / CANARY).exists()
    assert result.returncode in EXIT_OF[OUTCOMES[name][0]], result.stderr[-3000:]
    lines = result.stderr.splitlines()
    if result.returncode == 0:
        assert out.exists() and main(["validate", str(out)]) == 0
    elif result.returncode == 1:
        assert lines and all(LOCATED.match(line) for line in lines), lines
        assert not out.exists()
    else:
        assert len(lines) == 1 and lines[0].startswith("xtc: error: ") and not out.exists()


# The files whose code writes the canary when run: running them shows the canary check can fail.
WRITES_THE_CANARY_WHEN_RUN = ["top-level-open", "os-system-in-value", "exec-in-value",
                              "exec-at-top", "metaclass", "decorator", "default-argument",
                              "import-beside", "fstring-value"]


@pytest.mark.parametrize("name", WRITES_THE_CANARY_WHEN_RUN)
def test_the_corpus_would_write_the_canary_if_run(tmp_path, name):
    path = tmp_path / "model.py"
    path.write_bytes(dict(HOSTILE_PYTHON)[name](tmp_path))
    stubs = "TransformerWrapper = Decoder = lambda **arguments: None"
    run_contained([sys.executable, "-c", f"{stubs}; exec(open('model.py').read())"], cwd=tmp_path)
    assert (tmp_path / CANARY).exists()


def test_the_driver_reads_the_values_of_a_plain_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("DEPTH = 2\n" + model(dim="4 * 64", depth="DEPTH", heads="-(-8)"))
    report = json.loads(run_contained([sys.executable, "-c", DRIVER, str(path)]).stdout)
    assert report["values"] == [["num_tokens", "256"], ["dim", "256"], ["depth", "2"],
                                ["heads", "8"]]
    assert report["refused"] == [] and report["diagnostics"] == []


# -- parse_python, stage by stage ----------------------------------------------------------------


def only_problem(data: bytes) -> tuple[int, int, str, str]:
    source, problems = parse_python(data, "m.py")
    assert source is None and len(problems) == 1, problems
    problem = problems[0]
    return problem.line, problem.col, problem.code, problem.message


def test_a_plain_file_is_read_with_its_comments():
    data = b"# a model\nmodel = Decoder(dim = 64,  # width\n    depth = 2)\n"
    source, problems = parse_python(data, "m.py")
    assert problems == []
    assert dict(source.comments) == {1: Comment("a model", own_line=True),
                                     2: Comment("width", own_line=False)}
    assert isinstance(source.tree.body[0], ast.Assign) and source.text == data.decode()


def test_a_bom_and_a_utf8_cookie_are_fine():
    source, problems = parse_python(b"\xef\xbb\xbf# -*- coding: utf-8 -*-\nx = 'caf\xc3\xa9'\n", "m.py")
    assert problems == [] and source.text.startswith("# -*-")
    assert parse_python(b"#!/usr/bin/env python\n# coding=ascii\nx = 1\n", "m.py")[1] == []


def test_encoding_problems_are_located():
    assert only_problem(b"x = 1\ny = 'caf\xe9'\n")[:3] == (2, 9, "python-not-utf8")
    assert only_problem(b"\xef\xbb\xbfx = '\xff'\n")[:3] == (1, 6, "python-not-utf8")
    assert only_problem(b"#!/bin/python\n# vim: set fileencoding=cp1252 :\n")[:3] == \
        (2, 25, "python-not-utf8")
    assert only_problem(b"# coding: ascii\nx = '\xc3\xa9'\n")[2] == "python-not-utf8"
    assert only_problem(b"x = 1\ny = 2 \x00\n")[:3] == (2, 7, "python-nul-byte")


def test_a_cookie_below_code_is_not_a_cookie():
    assert parse_python(b"x = 1\n# coding: latin-1\n", "m.py")[1] == []


def test_tokens_are_counted_to_the_first_over_the_limit():
    line, col, code, _ = only_problem(b"x = 1\n" * (MAX_TOKENS // 4 + 1))
    assert code == "python-too-many-tokens" and line == MAX_TOKENS // 4 + 1 and col == 1


def test_brackets_too_deep_are_located_at_the_first_too_deep():
    assert only_problem(b"x = " + b"[" * 60 + b"]" * 60)[:3] == \
        (1, 5 + MAX_NESTING, "python-too-deep")
    assert parse_python(b"x = " + b"[" * MAX_NESTING + b"]" * MAX_NESTING, "m.py")[1] == []


def test_operator_chains_are_bounded_between_commas():
    line, col, code, message = only_problem(b"x = (\n" + b"1 +\n" * (MAX_CHAIN + 1) + b"1)\n")
    assert (line, col, code) == (MAX_CHAIN + 2, 3, "python-too-deep") and "operators" in message
    many = b"x = [" + b"-1 + 2, " * 1000 + b"]\n"  # 2,000 operators, two per element
    assert parse_python(many, "m.py")[1] == []
    calls = b"x = f" + b"()" * (MAX_CHAIN + 1) + b"\n"  # a call nests what comes before it
    assert only_problem(calls)[2] == "python-too-deep"


def test_tokenizer_errors_are_located():
    """A file ending inside brackets or a string reaches the parser, which names what is open;
    a dedent to no outer level stops the tokenizer mid-file and is reported from there."""
    assert only_problem(b"x = (1,\n  2\n") == (1, 5, "python-syntax", "'(' was never closed")
    assert only_problem(b'x = 1\ny = """abc\n\n')[:3] == (2, 5, "python-syntax")
    assert only_problem(b"if x:\n        y = 1\n    z = 2\n")[:3] == (3, 5, "python-syntax")
    assert only_problem(b"x = 1 \\\n")[2] == "python-syntax"


def test_stray_closing_brackets_are_the_parsers_to_report():
    assert only_problem(b"x = )(\ny = 1\n)\n") == (1, 5, "python-syntax", "unmatched ')'")
    assert only_problem(b")))\n(((\n")[:3] == (1, 1, "python-syntax")


def test_syntax_errors_are_located_with_the_parsers_message():
    assert only_problem(b"x = 'abc\n") == \
        (1, 5, "python-syntax", "unterminated string literal (detected at line 1)")
    assert only_problem(b"x = 1\ndef (:\n")[:3] == (2, 5, "python-syntax")
    line, _, code, message = only_problem("x = \u202e1\n".encode())  # a bidi override
    assert (line, code) == (1, "python-syntax") and message.isascii()


def test_the_parsers_warnings_are_silent_even_as_errors():
    code = ("import warnings; warnings.simplefilter('error'); "
            "from xtc.interop.python_source import parse_python; "
            "print(parse_python(b'x = 1if 1 else 2\\ny = \"\\\\d\"\\n', 'm.py')[1])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert (result.stdout, result.stderr) == ("[]\n", "")


def test_parser_recursion_is_a_diagnostic_not_an_exception():
    assert only_problem(b"x = f'{" + b"1+" * 5000 + b"1}'\n") == \
        (1, 1, "python-too-complex", "the file is nested too deeply for Python's parser")


def test_trees_deeper_than_the_limit_are_refused_where_they_go_too_deep():
    deep = b"if x:\n    pass\n" + b"elif x:\n    pass\n" * (MAX_TREE_DEPTH + 10)
    line, col, code, _ = only_problem(deep)
    # the module is depth 0, the `if` 1 and each `elif` one deeper, two lines further down
    assert code == "python-too-deep" and line == 2 * (MAX_TREE_DEPTH + 1) - 1 and col == 1


def test_the_largest_real_file_we_know_is_read():
    """x-transformers' own module: 170 KB and 31,000 tokens, well inside every bound."""
    folder = Path(importlib.util.find_spec("x_transformers").origin).parent
    data = read_python_bytes(folder / "x_transformers.py")
    source, problems = parse_python(data, "x_transformers.py")
    assert problems == [] and len(source.tree.body) > 100


def test_read_python_bytes_refuses_what_is_not_a_small_regular_file(tmp_path):
    big = tmp_path / "big.py"
    with open(big, "wb") as handle:
        handle.truncate(MAX_PYTHON_BYTES + 1)
    with pytest.raises(SpecInputError, match="Python file larger than 256 KiB"):
        read_python_bytes(big)
    with pytest.raises(SpecInputError, match="is a directory, not a Python file|not a regular"):
        read_python_bytes(tmp_path)
    with pytest.raises(SpecInputError, match="no such file"):
        read_python_bytes(tmp_path / "missing.py")
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    with pytest.raises(SpecInputError, match="not a regular file"):
        read_python_bytes(fifo)
    exact = tmp_path / "exact.py"
    exact.write_bytes(b"#" * MAX_PYTHON_BYTES)
    assert len(read_python_bytes(exact)) == MAX_PYTHON_BYTES
    assert only_problem(b"#" * (MAX_PYTHON_BYTES + 1))[2] == "python-too-large"


def test_interop_never_imports_torch():
    code = ("import sys, xtc.interop.python_source, xtc.interop.literals; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stderr


# Pieces of Python and of broken text: random sequences of them reach every stage's error paths.
PIECES = ["(", ")", "[", "]", "{", "}", ",", ":", ";", "+", "-", "*", "**", "/", "%", "<<", "=",
          ".", "\n", " ", "    ", "\t", "\\\n", "'", '"', "'''", '"""', "f'", "f'{", "#",
          "# c\n", "x", "1", "0x", "1e999", "1.5", "lambda", "if", "else", "elif", "not", "and",
          "Decoder(", "dim=", "\x00", "\u00e9", "\u202e", "\r", "\r\n", "\f", "@", "$", "?",
          "await", "yield", "class", "def", "return", "import"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=60), raw=st.binary(max_size=8))
def test_any_text_gives_a_tree_or_located_diagnostics(pieces, raw):
    data = "".join(pieces).encode() + raw
    source, problems = parse_python(data, "m.py")
    if source is None:
        assert problems and all(p.line >= 1 and p.col >= 1 for p in problems)
        return
    for node in ast.walk(source.tree):
        if isinstance(node, ast.expr):
            try:
                literal_value(node, {"x": 1})
            except NotALiteral as exc:
                assert exc.message
