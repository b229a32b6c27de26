"""The pre-commit hook for real: the installed `pre-commit` builds the hook's environment from
this checkout (.pre-commit-hooks.yaml, `xtc-validate`) and runs it on a throwaway repository's
staged specs, as git does on a commit.

The hook repository is a committed copy of the working tree (tests/light_install.py), not the
checkout itself: `pre-commit try-repo` on a checkout with uncommitted changes takes the tracked
files' changes but not new, untracked files, and a checkout that is no git repository (an
unpacked sdist) cannot be tried at all; the copy tests what is on disk in every case.

Building an environment installs pyyaml, jinja2 and networkx (and setuptools, to build xtc)
from the package index. `try-repo` builds its own in a temporary store that it deletes, so the
environment that is inspected for torch is the one a user's `.pre-commit-config.yaml` gets,
built once for the module under PRE_COMMIT_HOME: two builds in all."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT
from light_install import (
    LIGHT,
    TORCH_EXTRA,
    checkout_files,
    clean_environment,
    committed_checkout,
    copy_checkout,
    git,
    installed,
    run,
)

GOOD = ROOT / "examples" / "gpt.yaml"
BAD = FIXTURES / "invalid" / "typo.yaml"  # one misspelled key, `haeds`, at line 12, column 5
BAD_AT = "specs/bad.yaml:12:5: error[unknown-key] model.attn_layers.haeds: unknown key 'haeds'"
NOT_A_SPEC = "on: push\njobs: {}\n"  # a workflow: YAML, but outside specs/ and no spec


@pytest.fixture(scope="module")
def pre_commit() -> list[str]:
    """The command that runs the installed pre-commit."""
    if importlib.util.find_spec("pre_commit") is None:
        pytest.fail("pre-commit is not installed: pip install -e '.[test]' (or pip install "
                    "pre-commit)")
    return [sys.executable, "-m", "pre_commit"]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    return committed_checkout(tmp_path_factory.mktemp("hook") / "xtc")


@pytest.fixture(scope="module")
def home(tmp_path_factory, pre_commit, hook_repo) -> Path:
    """PRE_COMMIT_HOME with the hook's environment built by `pre-commit install-hooks` for a
    configuration that names the hook repository at its commit, as a user's does."""
    home = tmp_path_factory.mktemp("pre-commit-home")
    consumer = consumer_repo(tmp_path_factory.mktemp("install"), hook_repo)
    started = time.monotonic()
    built = run([*pre_commit, "install-hooks"], cwd=consumer, env=hook_environment(home))
    print(f"hook environment built in {time.monotonic() - started:.1f} s")  # pytest -s shows it
    assert built.returncode == 0, built.stdout
    return home


def hook_environment(home: Path) -> dict[str, str]:
    return clean_environment(PRE_COMMIT_HOME=str(home))


def consumer_repo(folder: Path, hook_repo: tuple[Path, str]) -> Path:
    """A repository that keeps specs and uses the hook, its configuration committed (pre-commit
    refuses to run with an unstaged configuration)."""
    path, rev = hook_repo
    (folder / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {path}\n    rev: {rev}\n    hooks:\n      - id: xtc-validate\n")
    git("init", "-q", cwd=folder)
    git("add", ".pre-commit-config.yaml", cwd=folder)
    git("commit", "-q", "-m", "use the xtc hook", cwd=folder)
    return folder


def stage(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git("add", *files, cwd=repo)


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if ": error[" in line]


def test_try_repo_fails_on_a_bad_staged_spec_at_its_location(pre_commit, hook_repo, tmp_path):
    """`pre-commit try-repo` (its own environment, built from the hook repository) on staged
    files: the bad spec is reported at file:line:col with its code and key; the good spec under
    another specs/ folder and the workflow outside one add nothing."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    stage(repo, {"specs/bad.yaml": BAD.read_text(), "models/specs/gpt.yml": GOOD.read_text(),
                 ".github/workflows/ci.yml": NOT_A_SPEC})
    path, rev = hook_repo
    tried = run([*pre_commit, "try-repo", str(path), "xtc-validate", "--ref", rev], cwd=repo,
                env=hook_environment(tmp_path / "unused-home"))
    assert tried.returncode == 1, tried.stdout
    assert "- hook id: xtc-validate" in tried.stdout
    assert any(line.startswith(BAD_AT) for line in errors(tried.stdout)), tried.stdout
    assert all(line.startswith("specs/bad.yaml:") for line in errors(tried.stdout)), tried.stdout


def test_the_workflow_would_be_rejected_were_it_checked(tmp_path):
    """What makes the previous test's last check mean something: the workflow is no spec, so had
    the hook's `files:` let it through, it would have had errors of its own."""
    (tmp_path / "ci.yml").write_text(NOT_A_SPEC)
    checked = run([sys.executable, "-m", "xtc", "validate", "ci.yml"], cwd=tmp_path)
    assert checked.returncode == 1 and errors(checked.stdout), checked.stdout


def test_a_bad_spec_fails_the_commit_and_the_fixed_spec_commits(pre_commit, hook_repo, home,
                                                                 tmp_path):
    """The hook installed into git (`pre-commit install`) and a real `git commit`."""
    repo = consumer_repo(tmp_path, hook_repo)
    env = hook_environment(home)
    hooked = run([*pre_commit, "install"], cwd=repo, env=env)
    assert hooked.returncode == 0, hooked.stdout

    stage(repo, {"specs/model.yaml": BAD.read_text()})
    refused = run(["git", "commit", "-m", "a model"], cwd=repo, env=env)
    assert refused.returncode == 1, refused.stdout
    assert any(line.startswith(BAD_AT.replace("bad", "model")) for line in errors(refused.stdout))
    assert git("rev-list", "--count", "HEAD", cwd=repo).strip() == "1", "the commit went in"

    stage(repo, {"specs/model.yaml": GOOD.read_text(), ".github/workflows/ci.yml": NOT_A_SPEC})
    committed = run(["git", "commit", "-m", "a model"], cwd=repo, env=env)
    assert committed.returncode == 0, committed.stdout
    assert "xtc validate" in committed.stdout and "Passed" in committed.stdout
    assert git("rev-list", "--count", "HEAD", cwd=repo).strip() == "2"


def test_the_hook_environment_is_the_light_install(home):
    """The environment pre-commit built holds xtc and its three dependencies, and none of what
    runs models: a hook that checks specs never downloads torch."""
    (environment,) = home.glob("repo*/py_env-*")
    python = environment / "bin" / "python"
    found = installed(python, LIGHT + TORCH_EXTRA)
    assert {module: found[module] for module in TORCH_EXTRA} == dict.fromkeys(TORCH_EXTRA)
    for module in LIGHT:
        assert found[module] and Path(found[module]).is_relative_to(environment), (module, found)


def test_a_checkout_that_is_no_git_repository_is_copied_the_same(tmp_path):
    """The hook repository of a checkout without git (an unpacked sdist or tarball): its files
    are those of a git checkout, build outputs and caches left out."""
    from_git = copy_checkout(tmp_path / "from-git")
    left_behind = {"build/lib/xtc/cli.py", "xtc/__pycache__/cli.cpython-311.pyc"}  # pip, Python
    for name in left_behind:
        (from_git / name).parent.mkdir(parents=True, exist_ok=True)
        (from_git / name).write_text("")
    without_git = copy_checkout(tmp_path / "without-git", source=from_git)

    def files(root: Path) -> set[str]:
        return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}

    assert checkout_files(from_git) is None  # the fallback is what ran
    assert files(without_git) == files(from_git) - left_behind
    assert "pyproject.toml" in files(without_git) and ".pre-commit-hooks.yaml" in files(without_git)
