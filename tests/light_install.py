"""What the tests of the light install's two front doors share (tests/test_pre_commit.py, the
pre-commit hook; tests/test_action.py, the GitHub Action): a copy of this checkout as a user's
machine fetches it, and an environment that does not leak the development virtualenv into the
environments those tools build.

Both tools install xtc from a folder of source with pip, and pip builds it there (build/,
*.egg-info): they get a copy, so the checkout stays as it is. The copy is the working tree as it
stands, uncommitted and untracked files included, so that what is tested is what is on disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

# What a copy of a checkout that is no git repository (an unpacked sdist or tarball) leaves out:
# the environments, build outputs and caches that git would ignore (tests/test_packaging.py
# builds its distributions from such a copy too).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                    "node_modules", "__pycache__", "*.pyc", ".pytest_cache",
                                    ".hypothesis", ".ruff_cache", ".mypy_cache")

# pip settings that say where packages come from (a mirror, a proxy, a certificate): the tools'
# own installs need them as much as ours did. Every other PIP_* variable (PIP_TARGET, PIP_PREFIX,
# PIP_USER, PIP_NO_DEPS, PIP_REQUIRE_VIRTUALENV, ...) changes how or where pip installs and is
# dropped, as are the variables that point Python at the development virtualenv.
PIP_SOURCES = {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX",
               "PIP_CERT", "PIP_CLIENT_CERT", "PIP_TRUSTED_HOST", "PIP_PROXY",
               "PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT", "PIP_RETRIES", "PIP_CONSTRAINT",
               "PIP_DISABLE_PIP_VERSION_CHECK"}
PYTHON_LEAKS = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONSTARTUP",
                "CONDA_PREFIX"}

# The packages of the light install, and those only the `torch` extra brings.
LIGHT = ("yaml", "jinja2", "networkx", "xtc")
TORCH_EXTRA = ("torch", "einops", "safetensors", "numpy")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """A command's exit code and its output, stdout and stderr together as a terminal shows it."""
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)


def git(*args: str, cwd: Path) -> str:
    """git with a fixed author and none of the user's or the system's configuration (a signing
    key, hooks paths, templates), so that the test's commits do not depend on the machine."""
    if shutil.which("git") is None:
        raise AssertionError("git is not installed: install it (apt-get install git)")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    result = run(["git", "-c", "user.name=xtc tests", "-c", "user.email=tests@xtc.invalid",
                  "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stdout}"
    return result.stdout


def checkout_files(source: Path) -> list[str] | None:
    """The files of the working tree at `source` that git does not ignore (tracked or not,
    deleted ones left out), or None where `source` is no git repository of its own."""
    if shutil.which("git") is None:
        return None
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=source,
                         capture_output=True, text=True, check=False)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != source.resolve():
        return None
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=source, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (source / name).is_file()]


def copy_checkout(destination: Path, source: Path = ROOT) -> Path:
    """The working tree at `source` copied to `destination` (which must not exist yet)."""
    files = checkout_files(source)
    if files is None:
        shutil.copytree(source, destination, ignore=NOT_SOURCE)
        return destination
    for name in files:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, destination / name)
    return destination


def committed_checkout(destination: Path) -> tuple[Path, str]:
    """The working tree copied into a git repository of its own and committed, as a user's
    clone of a published xtc is: its path and the commit."""
    copy_checkout(destination)
    git("init", "-q", cwd=destination)
    git("add", "-A", cwd=destination)
    git("commit", "-q", "--no-verify", "-m", "xtc as it is in the working tree", cwd=destination)
    return destination, git("rev-parse", "HEAD", cwd=destination).strip()


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without the development virtualenv: no VIRTUAL_ENV,
    PYTHONPATH and the like, its bin folder off PATH, only the PIP_* settings of where packages
    come from, and no git variables that would point git at another repository."""
    env = {name: value for name, value in os.environ.items()
           if name not in PYTHON_LEAKS and not name.startswith("GIT_")
           and (not name.startswith("PIP_") or name in PIP_SOURCES)}
    dev_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(entry for entry in env.get("PATH", "").split(os.pathsep)
                                  if entry and entry != dev_bin)
    return {**env, **extra}


def installed(python: Path, modules: tuple[str, ...]) -> dict[str, str | None]:
    """Where each module would be imported from by `python`, None for one it cannot find."""
    script = ("import importlib.util, json, sys\n"
              "found = {m: importlib.util.find_spec(m) for m in sys.argv[1:]}\n"
              "print(json.dumps({m: s and s.origin for m, s in found.items()}))")
    result = run([str(python), "-c", script, *modules], cwd=python.parent, env=clean_environment())
    assert result.returncode == 0, result.stdout
    return json.loads(result.stdout)
