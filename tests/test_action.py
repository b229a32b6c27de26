"""The GitHub Action (action.yml) run as a runner runs a composite action: each `run:` step's
script in bash with the runner's options, its `env:` evaluated, the runner's variables set
(RUNNER_TEMP, GITHUB_WORKSPACE, GITHUB_ACTION_PATH, ...). Expressions go through a small
evaluator that knows the inputs, `github.action_path` and the outputs of the steps it replaces,
and fails on anything else, so the action cannot use what this emulation does not model.

The one `uses:` step, actions/setup-python, is replaced by this test's own Python (its
`python-path` output). The action's checkout is a copy of the working tree
(tests/light_install.py), so pip's build leaves the checkout as it is. Installing takes pyyaml,
jinja2 and networkx (and setuptools, to build xtc) from the package index: the module installs
once, and the other runs start at the validation step with the venv it left in RUNNER_TEMP."""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES, ROOT
from light_install import LIGHT, TORCH_EXTRA, clean_environment, copy_checkout, installed, run

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
STEPS = {step.get("id"): step for step in ACTION["runs"]["steps"]}
BAD = FIXTURES / "invalid" / "typo.yaml"  # one misspelled key, `haeds`, at line 12, column 5
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
# What the runner runs for `shell: bash` ({0}: the file the step's script is written to).
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
STEP_KEYS = {"name", "id", "uses", "with", "shell", "env", "run"}  # what the emulation models


def evaluate(text: str, context: dict[str, str]) -> str:
    """`text` with each `${{ name }}` replaced by its value in `context`; any other expression
    (an operator, a function, a name it does not hold) fails."""
    def value(match: re.Match) -> str:
        name = match.group(1).strip()
        if name not in context:
            raise AssertionError(f"expression the emulated runner does not know: {match.group(0)}")
        return context[name]

    return EXPRESSION.sub(value, str(text))


def setup_python(with_: dict[str, str]) -> dict[str, str]:
    """actions/setup-python, replaced: this test's Python, whatever version was asked for."""
    assert set(with_) == {"python-version", "update-environment"}, with_
    return {"python-path": sys.executable}


REPLACED = {"actions/setup-python@v5": setup_python}


@dataclass
class ActionRun:
    returncode: int  # the last step's
    stdout: str  # the last step's, stderr included, as the job's log shows it
    outputs: dict[str, str]  # the action's outputs, where every step passed


@dataclass
class Runner:
    action_path: Path  # GITHUB_ACTION_PATH: the action's checkout
    temp: Path  # RUNNER_TEMP: kept for the whole job, so for the whole module here
    # `steps.ID.outputs.NAME` of the steps run so far: kept, as RUNNER_TEMP is, so that a run
    # that starts at a later step finds what the installation said
    step_outputs: dict[str, str] = field(default_factory=dict)

    def run(self, workspace: Path, inputs: dict[str, str] | None = None,
            start_at: str = "python") -> ActionRun:
        """The action's steps from the one whose id is `start_at` until one fails."""
        unknown = set(inputs or {}) - set(ACTION["inputs"])
        assert not unknown, f"inputs the action does not declare: {unknown}"
        context = {f"inputs.{name}": str((inputs or {}).get(name, spec.get("default", "")))
                   for name, spec in ACTION["inputs"].items()}
        context["github.action_path"] = str(self.action_path)
        steps = ACTION["runs"]["steps"]
        first = [step.get("id") for step in steps].index(start_at)
        for number, step in enumerate(steps[first:]):
            assert set(step) <= STEP_KEYS, f"step keys the emulated runner ignores: {set(step)}"
            if "uses" in step:
                with_ = {key: evaluate(value, {**context, **self.step_outputs})
                         for key, value in step["with"].items()}
                outputs = REPLACED[step["uses"]](with_)
            else:
                result, outputs = self.run_script(step, number, workspace, context)
                if result.returncode != 0:
                    return ActionRun(result.returncode, result.stdout, {})
            self.step_outputs.update({f"steps.{step.get('id')}.outputs.{key}": value
                                      for key, value in outputs.items()})
        return ActionRun(0, result.stdout, {  # the action ends with a `run:` step
            name: evaluate(output["value"], self.step_outputs)
            for name, output in ACTION["outputs"].items()})

    def run_script(self, step: dict, number: int, workspace: Path, context: dict[str, str]):
        """A `run:` step: its exit code and output, and the outputs it wrote."""
        assert step["shell"] == "bash", step
        assert "${{" not in step["run"], "an expression in `run:` (pass it through `env:`)"
        files = self.temp / "_runner_files" / f"step{number}"
        shutil.rmtree(files, ignore_errors=True)
        files.mkdir(parents=True)
        (files / "script.sh").write_text(step["run"])
        env = clean_environment(
            CI="true", GITHUB_ACTIONS="true", RUNNER_OS="Linux", RUNNER_TEMP=str(self.temp),
            GITHUB_WORKSPACE=str(workspace), GITHUB_ACTION_PATH=str(self.action_path),
            GITHUB_OUTPUT=str(files / "output"), GITHUB_ENV=str(files / "env"),
            GITHUB_PATH=str(files / "path"), GITHUB_STEP_SUMMARY=str(files / "summary"),
            **{name: evaluate(value, {**context, **self.step_outputs})
               for name, value in step.get("env", {}).items()})
        result = run([*BASH, str(files / "script.sh")], cwd=workspace, env=env)
        written = (files / "output").read_text() if (files / "output").exists() else ""
        return result, dict(step_output(line) for line in written.splitlines())

    def venv_python(self) -> Path:
        return self.temp / "xtc-action-venv" / "bin" / "python"


def step_output(line: str) -> tuple[str, str]:
    """One `NAME=VALUE` line of GITHUB_OUTPUT (the multi-line `NAME<<DELIMITER` form is not
    modelled, and fails here)."""
    name, equals, value = line.partition("=")
    assert equals and "<<" not in name, f"a GITHUB_OUTPUT line the emulation does not read: {line}"
    return name, value


def workspace_with(folder: Path, files: dict[str, str]) -> Path:
    """GITHUB_WORKSPACE: the user's repository as actions/checkout left it."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Runner:
    action_path = copy_checkout(tmp_path_factory.mktemp("actions") / "xtc")
    return Runner(action_path, tmp_path_factory.mktemp("runner-temp"))


@pytest.fixture(scope="module")
def examples_run(runner, tmp_path_factory):
    """The whole action, installation included, once, on every example of this repository."""
    if shutil.which("bash") is None:
        pytest.fail("bash is not installed: the action's steps run in bash (apt-get install bash)")
    workspace = workspace_with(tmp_path_factory.mktemp("workspace"),
                               {f"examples/{path.name}": path.read_text() for path in EXAMPLES})
    started = time.monotonic()
    result = runner.run(workspace, {"files": "examples/*.yaml"})
    print(f"action with its installation ran in {time.monotonic() - started:.1f} s")
    return result


def validate(runner: Runner, workspace: Path, **inputs: str):
    """The validation step alone, with the venv the module's installation left."""
    return runner.run(workspace, inputs, start_at="validate")


def annotations(output: str, kind: str = "error") -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"::{kind} ")]


def checked(output: str) -> list[str]:
    """The specs the validation step lists (in its log group) before it runs xtc on them."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("::group::xtc validate"))
    return lines[start + 1:lines.index("::endgroup::", start)]


def annotated_files(output: str) -> set[str]:
    return {re.search(r"file=([^,]+),", line).group(1) for line in annotations(output)}


def test_the_action_is_a_composite_with_its_inputs():
    assert ACTION["runs"]["using"] == "composite"
    assert {name: spec.get("default") for name, spec in ACTION["inputs"].items()} == {
        "files": "**/specs/**/*.@(yaml|yml)", "python-version": "3.11", "working-directory": "."}
    assert all(spec["description"] and spec["required"] is False
               for spec in ACTION["inputs"].values())
    # What the marketplace asks for: a name, a description of at most 125 characters, branding.
    assert ACTION["name"] and len(ACTION["description"]) <= 125
    assert set(ACTION["branding"]) == {"icon", "color"}
    assert set(ACTION["outputs"]) == {"xtc"}
    assert STEPS["python"]["uses"] == "actions/setup-python@v5"
    assert STEPS["python"]["with"]["python-version"] == "${{ inputs.python-version }}"


def test_inputs_reach_the_scripts_only_through_env():
    """An expression in `run:` is pasted into the script before bash reads it (script
    injection); in `env:` it is a value. The emulation refuses the first too; this says why."""
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]


def test_the_evaluator_refuses_what_it_does_not_know():
    assert evaluate("${{ inputs.files }} and ${{inputs.files}}", {"inputs.files": "a"}) == "a and a"
    for unknown in ("${{ github.token }}", "${{ inputs.files || 'x' }}", "${{ format('{0}', 1) }}"):
        with pytest.raises(AssertionError, match="does not know"):
            evaluate(unknown, {"inputs.files": "a"})


def test_every_example_passes(examples_run):
    assert examples_run.returncode == 0, examples_run.stdout
    assert checked(examples_run.stdout) == [f"examples/{path.name}" for path in EXAMPLES]
    assert annotations(examples_run.stdout) == []


def test_its_xtc_output_serves_later_steps(examples_run, tmp_path):
    """What the workflow in docs/cli.md does with it: `xtc diff` without a second install."""
    xtc = examples_run.outputs["xtc"]
    diff = run([xtc, "diff", str(ROOT / "examples/gpt.yaml"), str(ROOT / "examples/flash.yaml"),
                "--format", "markdown"], cwd=tmp_path)
    assert diff.returncode == 0 and "| key | before | after |" in diff.stdout, diff.stdout


def test_the_venv_it_made_is_the_light_install(runner, examples_run):
    found = installed(runner.venv_python(), LIGHT + TORCH_EXTRA)
    assert {module: found[module] for module in TORCH_EXTRA} == dict.fromkeys(TORCH_EXTRA)
    venv = runner.venv_python().parent.parent
    for module in LIGHT:
        assert found[module] and Path(found[module]).is_relative_to(venv), (module, found)


def test_a_bad_spec_is_annotated_at_its_file_line_and_column(runner, examples_run, tmp_path):
    workspace = workspace_with(tmp_path, {"specs/bad.yaml": BAD.read_text(),
                                          "specs/gpt.yaml": (ROOT / "examples/gpt.yaml").read_text()})
    checked = validate(runner, workspace)
    assert checked.returncode == 1, checked.stdout
    at_the_typo = ("::error file=specs/bad.yaml,line=12,col=5,title=unknown-key::"
                   "model.attn_layers.haeds: unknown key 'haeds' for Decoder (did you mean 'heads'?)")
    assert annotations(checked.stdout) == [at_the_typo]


def test_the_default_files_are_the_pre_commit_hooks(runner, examples_run, tmp_path):
    """Every YAML file gets a spec with a mistake; the annotated ones are those the hook's
    `files:` pattern (with `types: [yaml]`) selects."""
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    names = ["specs/a.yaml", "specs/deeper/b.yml", "models/specs/c.yaml", "specs.yaml",
             "other/d.yaml", "specs/e.json", "myspecs/f.yaml"]
    workspace = workspace_with(tmp_path, dict.fromkeys(names, BAD.read_text()))
    result = validate(runner, workspace)
    hook_selects = {name for name in names if re.search(hook["files"], name)
                    and name.endswith((".yaml", ".yml"))}
    assert result.returncode == 1, result.stdout
    assert set(checked(result.stdout)) == annotated_files(result.stdout) == hook_selects == {
        "specs/a.yaml", "specs/deeper/b.yml", "models/specs/c.yaml"}


def test_several_globs_check_each_spec_once(runner, examples_run, tmp_path):
    workspace = workspace_with(tmp_path, {f"examples/{path.name}": path.read_text()
                                          for path in EXAMPLES})
    result = validate(runner, workspace, files="examples/gpt.yaml examples/bert.yaml\n"
                                               "  examples/g*.yaml\n")
    assert result.returncode == 0, result.stdout
    assert checked(result.stdout) == ["examples/gpt.yaml", "examples/bert.yaml"]


def test_a_glob_that_matches_nothing_fails_with_its_name(runner, examples_run, tmp_path):
    workspace = workspace_with(tmp_path, {"specs/gpt.yaml": (ROOT / "examples/gpt.yaml").read_text()})
    checked = validate(runner, workspace, files="specs/*.yaml\nmodels/**/*.yml")
    assert checked.returncode == 1, checked.stdout
    assert annotations(checked.stdout) == [
        f"::error title=xtc validate::no file matches 'models/**/*.yml' in {workspace}"]
    assert "::group::" not in checked.stdout  # nothing was validated

    empty = validate(runner, workspace, files=" \n")
    assert empty.returncode == 1 and "the files input is empty" in empty.stdout, empty.stdout


def test_an_input_is_data_not_code(runner, examples_run, tmp_path):
    workspace = workspace_with(tmp_path, {})
    checked = validate(runner, workspace, files="$(touch injected)`touch injected`")
    assert checked.returncode == 1 and "no file matches" in checked.stdout, checked.stdout
    assert not (workspace / "injected").exists()


def test_the_working_directory_is_where_globs_and_annotation_paths_start(runner, examples_run,
                                                                          tmp_path):
    """For a repository that actions/checkout put in a subfolder (`path: repo`)."""
    workspace = workspace_with(tmp_path, {"repo/specs/bad.yaml": BAD.read_text()})
    checked = validate(runner, workspace, **{"working-directory": "repo"})
    assert checked.returncode == 1, checked.stdout
    assert annotated_files(checked.stdout) == {"specs/bad.yaml"}
