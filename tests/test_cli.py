"""`xtc validate`: exit codes, output formats, and that it reads without writing; `xtc --version`,
the help text of every argument, and the line `xtc compile -o` reports."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, ROOT
from xtc.spec.keywords import keyword_table

import xtc
from xtc import cli

GOOD = str(ROOT / "examples" / "gpt.yaml")
BAD = str(FIXTURES / "invalid" / "typo.yaml")
FIELDS = ["path", "line", "col", "key", "code", "message", "severity"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_specs_exit_0_and_print_nothing_on_stdout(capsys):
    code, out, err = run(capsys, "validate", GOOD, str(ROOT / "examples" / "bert.yaml"))
    assert (code, out) == (0, "") and "2 spec(s) valid" in err


def test_rejected_spec_exits_1_with_text_on_stderr(capsys):
    code, out, err = run(capsys, "validate", BAD)
    assert code == 1 and out == ""
    error, note = err.splitlines()
    assert error.endswith("error[unknown-key] model.attn_layers.haeds: unknown key 'haeds' for "
                          "Decoder (did you mean 'heads'?)")
    assert "note[checks-skipped]" in note and "model.attn_layers.heads" in note


def test_highest_exit_code_wins(capsys, tmp_path):
    assert run(capsys, "validate", GOOD, BAD)[0] == 1
    code, _, err = run(capsys, "validate", BAD, str(tmp_path / "missing.yaml"), GOOD)
    assert code == 2 and "missing.yaml: no such file" in err


@pytest.mark.parametrize("argv", [[], ["validate"], ["validate", GOOD, "--format", "xml"],
                                  ["frobnicate", GOOD]])
def test_usage_errors_exit_2_in_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("xtc: error:")


def test_json_format_has_exactly_the_diagnostic_fields(capsys):
    code, out, err = run(capsys, "validate", BAD, GOOD, "--format", "json")
    found = json.loads(out)
    assert code == 1 and err == ""
    assert [list(d) for d in found] == [FIELDS, FIELDS]
    assert found[0]["code"] == "unknown-key" and found[0]["line"] == 12
    assert found[1]["code"] == "checks-skipped" and found[1]["severity"] == "note"


def test_json_format_prints_an_empty_list_when_valid(capsys):
    assert run(capsys, "validate", GOOD, "--format", "json")[:2] == (0, "[]\n")


def test_github_format_annotates_the_line(capsys):
    code, out, _ = run(capsys, "validate", BAD, "--format", "github")
    assert code == 1
    assert out.startswith(f"::error file={BAD.replace(':', '%3A')},line=12,col=5,title=unknown-key::")


def test_hostile_file_names_are_escaped(capsys, tmp_path):
    path = tmp_path / "evil\nname\u202e.yaml"
    path.write_bytes(Path(BAD).read_bytes())
    code, _, err = run(capsys, "validate", str(path))
    assert code == 1 and err.count("\n") == 2 and "\u202e" not in err  # the error and a note


def test_internal_errors_are_one_line_with_exit_3(capsys, monkeypatch):
    def explode(*_):
        raise KeyError("boom")

    monkeypatch.setattr(cli, "read_spec", explode)
    code, out, err = run(capsys, "validate", GOOD)
    assert code == 3 and out == ""
    assert err.startswith("xtc: internal error: KeyError") and err.count("\n") == 1


def test_validate_writes_nothing(tmp_path):
    """E5 and P43: no __pycache__, cache or generated file next to the spec or in the cwd."""
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(Path(GOOD).read_bytes())
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(Path(BAD).read_bytes())
    before = sorted(os.listdir(tmp_path))
    result = subprocess.run([sys.executable, "-m", "xtc", "validate", "spec.yaml", "bad.yaml"],
                            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_console_script_and_python_O_agree(tmp_path):
    """E6: the same verdict under `python -O` (asserts are never the check)."""
    verdicts = {
        flags: subprocess.run([sys.executable, *flags, "-m", "xtc", "validate", BAD],
                              capture_output=True, text=True, check=False)
        for flags in ((), ("-O",))
    }
    assert {(r.returncode, r.stderr) for r in verdicts.values()} == {(1, verdicts[()].stderr)}


def hook_selects(hook: dict, path: str) -> bool:
    """pre-commit's file filter: `files` is searched in the repository-relative path, and
    `types: [yaml]` keeps .yaml and .yml files."""
    return bool(re.search(hook["files"], path)) and path.endswith((".yaml", ".yml"))


def test_pre_commit_hook_checks_the_specs_it_selects(tmp_path):
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    program, *args = hook["entry"].split()
    (script,) = entry_points(group="console_scripts", name=program)
    assert hook["language"] == "python" and script.value == "xtc.cli:main" and args == ["validate"]

    files = {"specs/gpt.yaml": GOOD, "models/specs/bad.yml": BAD, ".github/workflows/ci.yml": None}
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(Path(source).read_text() if source else "on: push\n")
    selected = [name for name in files if hook_selects(hook, name)]
    assert selected == ["specs/gpt.yaml", "models/specs/bad.yml"]

    # The console script installed beside this interpreter, as pre-commit's own environment has it.
    command = [str(Path(sys.executable).parent / program), *args]
    checked = subprocess.run([*command, *selected], cwd=tmp_path, capture_output=True, text=True,
                             check=False)
    errors = [line for line in checked.stderr.splitlines() if ": error[" in line]
    assert checked.returncode == 1 and errors
    assert all(line.startswith("models/specs/bad.yml:") for line in errors), errors
    clean = subprocess.run([*command, selected[0]], cwd=tmp_path, capture_output=True, text=True,
                           check=False)
    assert clean.returncode == 0, clean.stderr


def parsers(parser: argparse.ArgumentParser):
    """The parser and every subcommand's parser, however deep."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from parsers(sub)


def test_every_argument_and_command_has_help():
    """A new argument without help text fails here, before it reaches `xtc COMMAND -h`."""
    for parser in parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"
            for command in getattr(action, "_choices_actions", []):  # the subcommands' own help
                assert command.help, f"{parser.prog} {command.dest} has no help"


def reference_version() -> str:
    """2.31.10: the x-transformers version the keyword table was generated from."""
    return keyword_table().reference.partition("==")[2]


def test_version_names_xtc_and_the_keyword_table_reference(capsys):
    code, out, err = run(capsys, "--version")
    assert (code, err) == (0, "") and out.count("\n") == 1
    assert f"xtc {xtc.__version__} " in out
    assert f"(keyword table from x-transformers {reference_version()})" in out


def test_python_m_xtc_version_agrees():
    result = subprocess.run([sys.executable, "-m", "xtc", "--version"], capture_output=True,
                            text=True, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    expected = f"xtc {xtc.__version__} (keyword table from x-transformers {reference_version()})"
    assert result.stdout == expected + "\n"


def test_compile_to_a_file_reports_one_line_on_stderr(capsys, tmp_path):
    target = tmp_path / "model.py"
    code, out, err = run(capsys, "compile", GOOD, "-o", str(target))
    lines = len(target.read_text().splitlines())
    assert (code, out) == (0, "")
    assert err == f"wrote {target}: {lines} lines, class Gpt\n"


def test_compile_to_stdout_adds_nothing_to_stderr(capsys):
    code, out, err = run(capsys, "compile", GOOD)
    assert (code, err) == (0, "") and out.startswith("# Generated by xtc")


def test_rejected_compile_reports_no_output_and_writes_nothing(capsys, tmp_path):
    target = tmp_path / "model.py"
    code, out, err = run(capsys, "compile", BAD, "-o", str(target))
    assert (code, out) == (1, "") and "unknown-key" in err
    assert "wrote" not in err and not target.exists()
