"""Run every case of cases.yaml through `xtc.cli.main` and report what happened, as JSON.

    python tests/bad_inputs/harness.py ROOT > results.json

One process runs every case (tests/test_bad_inputs.py starts it three times: plain, with
XTC_PURE_YAML=1 and under `python -O`, each under a 1 GiB address-space limit). Each case gets a
fresh working directory under ROOT holding a copy of its spec; the harness records the exit
code, stdout, stderr, wall time, every file created, changed or removed in that directory and in
TMPDIR (the test points TMPDIR under ROOT), and any `XTC_CANARY_*` file anywhere it could land;
and the process's peak resident memory over all cases.
It judges nothing: the test compares the records with the expectations.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baseline.yaml"


def generated(kind: str, work: Path) -> Path:
    """Inputs too large or too odd to keep in the repository, made where the case runs."""
    if kind == "deep-flow-nesting":  # P05, a flow sequence nested past the parsers' limits
        path = work / "deep.yaml"
        path.write_text("custom_layers: " + "[" * 10000 + "]" * 10000 + "\n")
    elif kind == "huge-file":  # P36: 200 MB, sparse (no disk is used)
        path = work / "huge.yaml"
        with path.open("wb") as handle:
            handle.truncate(200 * 2**20)
    elif kind == "many-keys":  # 60,000 unknown keys in under 1 MiB
        path = work / "many.yaml"
        path.write_text("xtc: 1\nname: m\n" + "".join(f"k{i}: 1\n" for i in range(60000)))
    elif kind == "newline-in-file-name":  # a file name that could break out of a comment
        path = work / "evil\nopen('XTC_CANARY_NAME', 'w')\n.yaml"
        shutil.copy(BASELINE, path)
    else:
        raise ValueError(f"unknown generated input {kind!r}")
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash (or 'dir') of everything under folder."""
    found = {}
    for path in folder.rglob("*"):
        key = str(path.relative_to(folder))
        if path.is_dir() and not path.is_symlink():
            found[key] = "dir"
        elif path.is_file():
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[key] = "other"
    return found


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def canaries(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders if folder.is_dir()
                  for p in folder.glob("XTC_CANARY_*"))


def prepare(case: dict, work: Path) -> dict[str, str]:
    """Make the case's files; return the placeholders its argv may use."""
    for name in case.get("dirs", []):
        (work / name).mkdir(parents=True)
    for name, text in case.get("files", {}).items():
        (work / name).write_text(text)
    if "make" in case:
        spec = generated(case["make"], work)
    else:
        spec = work / case.get("file", "baseline.yaml")
        shutil.copy(HERE / case.get("file", "baseline.yaml"), spec)
    return {"spec": str(spec), "work": str(work), "here": str(HERE)}


def run_case(case: dict, root: Path) -> dict:
    from xtc.cli import main

    work = root / case["id"]
    work.mkdir()
    places = prepare(case, work)
    argv = [arg.format(**places) for arg in case.get("argv", ["validate", "{spec}"])]
    tmp = Path(tempfile.gettempdir())
    before, before_tmp = snapshot(work), snapshot(tmp)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exc:  # main never exits itself; record it if it ever does
        code = f"SystemExit({exc.code})"
    finally:
        seconds = time.perf_counter() - start
        os.chdir(cwd)
    changed = changes(before, snapshot(work))
    return {
        "id": case["id"], "exit": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
        "seconds": seconds,
        "changed": changed,
        "written": {name: (work / name).read_text() for name in changed
                    if name.endswith(".py") and (work / name).is_file()},
        "changed_tmp": changes(before_tmp, snapshot(tmp)),
        "canaries": canaries(work, tmp, Path("/tmp"), Path(cwd)),
    }


def main() -> None:
    root = Path(sys.argv[1])
    cases = yaml.safe_load((HERE / "cases.yaml").read_text())
    results = [run_case(case, root) for case in cases]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    json.dump({"cases": results, "peak_rss_bytes": peak}, sys.stdout)


if __name__ == "__main__":
    main()
