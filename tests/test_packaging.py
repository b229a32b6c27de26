"""A normal install ships everything: the wheel and the sdist built from a copy of the source tree
hold every module and every data file of the code folders (templates, the keyword table).

An editable install reads the checkout, so only a built distribution shows a missing file; the
wheel installed into a fresh virtual environment is run by .ci/check-install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from light_install import NOT_SOURCE

# The code folders and the package each installs as (pyproject.toml's package-dir).
INSTALLS_AS = {"xtc": "xtc", "spec": "xtc/spec", "compiler": "xtc/compiler", "runtime": "xtc/runtime",
               "interop": "xtc/interop"}


def package_files() -> dict[str, str]:
    """Every file of the code folders, by the path it installs at (`compiler/passes/x.py` ->
    `xtc/compiler/passes/x.py`), with its path in the source tree: what a distribution holds."""
    files = {}
    for folder, package in INSTALLS_AS.items():
        for path in (ROOT / folder).rglob("*"):
            relative = path.relative_to(ROOT / folder)
            if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
                files[f"{package}/{relative.as_posix()}"] = f"{folder}/{relative.as_posix()}"
    return files


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> dict[str, Path]:
    """A wheel and an sdist built by setuptools' own build backend (no download) from a copy of
    the checkout, so that the build leaves nothing in the checkout."""
    work = tmp_path_factory.mktemp("dist")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    built = {}
    for kind in ("wheel", "sdist"):
        result = subprocess.run(
            [sys.executable, "-c",
             f"from setuptools import build_meta; print(build_meta.build_{kind}({str(work)!r}))"],
            cwd=source, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        built[kind] = work / result.stdout.strip().splitlines()[-1]
    return built


def test_the_code_folders_hold_the_templates_and_the_keyword_table():
    files = package_files()
    assert "xtc/spec/keywords.json" in files
    assert "xtc/compiler/templates/ops/token_embedding.py.jinja" in files
    assert len([f for f in files if f.endswith(".jinja")]) >= 20


def test_the_wheel_holds_every_file_of_the_code_folders(distributions):
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        shipped = {name for name in wheel.namelist() if ".dist-info/" not in name}
    expected = set(package_files())
    assert sorted(expected - shipped) == [], "missing from the wheel"
    assert sorted(shipped - expected) == [], "in the wheel but not in the source tree"


def test_the_sdist_holds_every_file_of_the_code_folders(distributions):
    with tarfile.open(distributions["sdist"]) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        shipped = {name.removeprefix(f"{top}/") for name in sdist.getnames()}
    assert sorted(set(package_files().values()) - shipped) == [], "missing from the sdist"


def test_the_distributions_carry_the_version_written_in_xtc(distributions):
    from xtc import __version__

    assert distributions["wheel"].name.startswith(f"xtc-{__version__}-")
    assert distributions["sdist"].name == f"xtc-{__version__}.tar.gz"


def test_the_light_install_takes_no_torch_and_the_torch_extra_takes_what_runs_models(distributions):
    """`pip install xtc` is enough to validate, compile and inspect; `xtc[torch]` runs models."""
    with zipfile.ZipFile(distributions["wheel"]) as wheel:
        metadata = next(wheel.read(name).decode() for name in wheel.namelist()
                        if name.endswith(".dist-info/METADATA"))
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]

    def names(marker: str | None) -> list[str]:
        return sorted(re.match(r"[\w.-]+", line)[0] for line in requires
                      if (marker in line if marker else ";" not in line))

    assert names(None) == ["jinja2", "networkx", "pyyaml"]
    assert names('extra == "torch"') == ["einops", "numpy", "safetensors", "torch"]
