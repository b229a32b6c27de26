"""The bad-input contract (docs/security.md, E1-E7) over the corpus in tests/bad_inputs/.

The harness runs every case three times in separate processes (plain, XTC_PURE_YAML=1, and
`python -O`), each under a 1 GiB address-space limit and a timeout; the tests below hold each
record to its case's expectations and to the contract every case shares.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import ROOT
from xtc.compiler.verify import verify_source

import xtc

CORPUS = ROOT / "tests" / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text())
MODES = {"plain": ([], {}), "pure-yaml": ([], {"XTC_PURE_YAML": "1"}), "optimized": (["-O"], {})}
ADDRESS_SPACE = 2**30  # E7: bounded memory (the reference suggests prlimit --as=1G)
PEAK_RSS = 512 * 2**20
DIAGNOSTIC = re.compile(r"^.+?:(\d+):(\d+): (error|warning)\[([a-z0-9-]+)\] (.*)$")


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """mode -> case id -> what the harness saw."""
    found = {}
    for mode, (flags, env) in MODES.items():
        root = tmp_path_factory.mktemp(mode)
        (root / "tmp").mkdir()
        environment = {**os.environ, **env, "TMPDIR": str(root / "tmp")}
        result = subprocess.run(
            [sys.executable, *flags, str(CORPUS / "harness.py"), str(root)], capture_output=True,
            text=True, env=environment, timeout=300, preexec_fn=limit_memory, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads(result.stdout)
        assert report["peak_rss_bytes"] < PEAK_RSS, mode  # E7, for the whole run
        found[mode] = {record["id"]: record for record in report["cases"]}
    return found


def diagnostics(stderr: str) -> list[tuple[int, int, str, str]]:
    """(line, col, code, key) of every diagnostic line; the key is '' when the line has none."""
    found = []
    for line in stderr.splitlines():
        match = DIAGNOSTIC.match(line)
        if match:
            rest = match[5]
            key = rest.split(": ", 1)[0] if ": " in rest and " " not in rest.split(": ", 1)[0] else ""
            found.append((int(match[1]), int(match[2]), match[4], key))
    return found


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case_meets_its_expectations(records, case):
    record = records["plain"][case["id"]]
    assert record["exit"] == case["exit"], record["stderr"]
    found = [(int(m[1]), m[4], m[5]) for m in map(DIAGNOSTIC.match, record["stderr"].splitlines())
             if m]
    for line, key, code in case.get("at", []):  # the key as the text output shows it
        assert any(line == n and code == c and rest.startswith(f"{key}: " if key else "")
                   for n, c, rest in found), record["stderr"]
    assert case.get("message", "") in record["stderr"]
    if "lines" in case:  # a spec's text never starts a line of its own
        assert len(record["stderr"].splitlines()) == case["lines"], record["stderr"]
    assert record["changed"] == sorted(case.get("writes", []))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_case_keeps_the_shared_contract(records, mode):
    for case in CASES:
        record, where = records[mode][case["id"]], f"{case['id']} ({mode})"
        assert record["exit"] in (0, 1, 2), where  # E1: 3 would be a bug in xtc
        assert "Traceback" not in record["stderr"], where  # E3
        assert record["canaries"] == [], where  # E4: nothing the spec says was executed
        assert record["changed_tmp"] == [], where  # E5: nothing written outside -o
        assert record["seconds"] < 5, where  # E7
        assert all(len(line) < 600 for line in record["stderr"].splitlines()), where  # E2 echoes
        if case.get("argv", ["validate"])[0] == "validate" and "--format" not in case.get("argv", []):
            assert record["stdout"] == "", where  # E2: validate prints only diagnostics
        if "--format" in case.get("argv", []):  # one workflow command per line, nothing forged
            assert all(line.startswith("::") for line in record["stdout"].splitlines()), where


def verdict(record: dict) -> tuple:
    return record["exit"], sorted(diagnostics(record["stderr"]))


def test_same_verdict_with_either_yaml_loader_and_under_optimize(records):
    """E6: libyaml or PyYAML's pure-Python parser, asserts on or off: the same exit codes and
    diagnostics (line, column, code, key) for every case."""
    for case in CASES:
        plain = verdict(records["plain"][case["id"]])
        assert verdict(records["optimized"][case["id"]]) == plain, case["id"]
        assert verdict(records["pure-yaml"][case["id"]]) == plain, case["id"]


def calls_in(source: str) -> set[str]:
    return {node.func.id for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


@pytest.mark.parametrize("case_id", ["P38", "A17"])
def test_spec_text_never_reaches_the_emitted_module(records, tmp_path, case_id):
    """P38: a description written to break out of a docstring; A17: a spec file name that holds
    a newline and code. Neither appears in the module, and importing it runs nothing of it."""
    source = records["plain"][case_id]["written"]["out.py"]
    assert "XTC_CANARY" not in source and "open" not in calls_in(source)
    (tmp_path / "emitted.py").write_text(source)
    subprocess.run([sys.executable, "-c", "import emitted"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    assert not list(tmp_path.glob("XTC_CANARY_*"))


def test_the_corpus_covers_the_reference_cases():
    """Every public case P01-P48 but P24 (withdrawn) and P44-P48 (run-time input:
    tests/test_runtime_checks.py) has at least one case here."""
    ids = {case["id"].split("-")[0] for case in CASES}
    wanted = {f"P{n:02d}" for n in range(1, 44)} - {"P24"}
    assert wanted <= ids, sorted(wanted - ids)


# -- identifiers that reach the templates ---------------------------------------------------------

COMPOSITE = """xtc: 1
name: {name}
components:
  {producer}:
    type: ViTransformerWrapper
    image_size: 8
    patch_size: 4
    attn_layers: {{type: Encoder, dim: 16, depth: 1, heads: 2, attn: {{dim_head: 8}}}}
  {consumer}:
    type: TransformerWrapper
    num_tokens: 32
    max_seq_len: 8
    attn_layers: {{type: Decoder, dim: 16, depth: 1, heads: 2, cross_attend: true, attn: {{dim_head: 8}}}}
connections:
  - {{from: {producer}, to: {consumer}.context}}
"""
# Names the emitted module itself uses: modules, locals, arguments, methods, runtime helpers.
HOSTILE_IDENTIFIERS = ["self", "x", "img", "torch", "nn", "f", "super", "rearrange", "attend",
                       "config", "mask", "forward", "training", "cache", "tensor", "out",
                       "dataclass", "field", "math", "einops", "generate", "loss", "model_cache",
                       "register_buffer", "parameters", "type", "none", "true", "class_"]


@pytest.mark.parametrize("word", HOSTILE_IDENTIFIERS)
def test_spec_identifiers_that_name_things_in_the_emitted_code(word):
    """Used as the spec's name and as each component's name, an identifier is either refused
    with a located error or compiles to a module that passes the allowlist, builds and runs."""
    for fields in ({"name": word, "producer": "vit", "consumer": "dec"},
                   {"name": "graph", "producer": word, "consumer": "dec"},
                   {"name": "graph", "producer": "vit", "consumer": word}):
        try:
            spec = xtc.loads_spec(COMPOSITE.format(**fields))
        except xtc.SpecError as error:
            errors = [d for d in error.diagnostics if d.severity == "error"]
            assert errors and all(d.line > 0 and d.key for d in errors), error
            continue
        verify_source(xtc.compile(spec))
        model = xtc.build(spec).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 8, 8), torch.zeros(1, 5, dtype=torch.long))
        assert out.shape == (1, 5, 32), fields
