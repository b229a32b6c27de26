"""The light install (`pip install xtc`, without the torch extra) reads and writes specs and
code; what runs a model says in one line what to install instead.

Proven here in processes that cannot import torch, einops, safetensors or numpy (each is None in
sys.modules, so any import of it fails); .ci/check-light proves it with a real install from the
wheel into a virtual environment that never had torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from light_install import TORCH_EXTRA

from xtc.extras import INSTALL

EXAMPLES = sorted(str(path) for path in (ROOT / "examples").glob("*.yaml"))

# Every command of the light install on every example, with one process for all of them; prints
# the commands that did not exit 0, and the torch-extra modules that got imported anyway.
EVERY_LIGHT_COMMAND = """
import contextlib, io, json, os, sys
from xtc.cli import main

examples, hf_configs, work = sys.argv[1:-2], sys.argv[-2], sys.argv[-1]
failed = []

def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    if code != 0:
        failed.append([*argv, code, err.getvalue()[-500:]])

run("validate", *examples)
run("schema", "-o", os.path.join(work, "xtc.schema.json"))
for index, spec in enumerate(examples):
    stem = os.path.join(work, os.path.basename(spec)[:-len(".yaml")])
    run("compile", spec, "-o", stem + ".py")
    run("compile", spec, "--standalone", "-o", stem + "_standalone.py")
    run("inspect", spec)
    run("inspect", spec, "--format", "json")
    run("explain", spec)
    run("diff", spec, examples[(index + 1) % len(examples)])
    run("export-python", spec, "-o", stem + "_reference.py")
    run("import", stem + "_reference.py")
for folder in ("tinyllama", "mistral_7b"):  # a Hugging Face checkpoint's config.json
    run("import-hf", os.path.join(hf_configs, folder), "-o", os.path.join(work, folder + ".yaml"))
loaded = sorted(name for name, module in sys.modules.items()
                if name.split(".")[0] in TORCH_EXTRA and module is not None)
print(json.dumps({"failed": failed, "loaded": loaded}))
"""


def without_torch_extra(code: str, *args: str) -> subprocess.CompletedProcess:
    """Python `code` run in a fresh process in which the torch extra's packages cannot be imported."""
    blocked = (f"import sys; TORCH_EXTRA = {TORCH_EXTRA!r}; "
               "sys.modules.update(dict.fromkeys(TORCH_EXTRA))\n")
    return subprocess.run([sys.executable, "-c", blocked + code, *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_every_light_command_works_on_every_example_without_the_torch_extra(tmp_path):
    result = without_torch_extra(EVERY_LIGHT_COMMAND, *EXAMPLES, str(ROOT / "tests" / "fixtures" / "hf"),
                                 str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"failed": [], "loaded": []}
    assert len(list(tmp_path.glob("*_standalone.py"))) == len(EXAMPLES)


def test_convert_says_in_one_line_what_to_install(tmp_path):
    checkpoint = tmp_path / "gpt.safetensors"
    checkpoint.write_bytes(b"")
    result = without_torch_extra("from xtc.cli import main; raise SystemExit(main(sys.argv[1:]))",
                                 "convert", str(ROOT / "examples" / "gpt.yaml"), str(checkpoint),
                                 "-o", str(tmp_path / "out.pt"))
    assert result.returncode == 2
    assert result.stderr == ("xtc: error: xtc convert needs torch, einops and safetensors, which "
                             f"the light install of xtc leaves out: {INSTALL}\n")
    assert not (tmp_path / "out.pt").exists()


def test_each_call_that_runs_a_model_names_what_to_install():
    code = """
import xtc
spec = xtc.load_spec(sys.argv[1])
calls = {"build": lambda: xtc.build(spec),
         "convert_state_dict": lambda: xtc.convert_state_dict(spec, {}),
         "reference_state_dict": lambda: xtc.reference_state_dict(spec, {}),
         "load_reference_checkpoint": lambda: xtc.load_reference_checkpoint(spec, "model.pt")}
for name, call in calls.items():
    try:
        call()
    except ImportError as exc:
        print(type(exc).__name__, exc)
"""
    result = without_torch_extra(code, str(ROOT / "examples" / "gpt.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        f"MissingExtra xtc.{call} needs torch and einops, which the light install of xtc leaves "
        f"out: {INSTALL}"
        for call in ("build", "convert_state_dict", "reference_state_dict",
                     "load_reference_checkpoint")]


def test_import_hf_writes_the_spec_but_its_weights_need_the_torch_extra(tmp_path):
    result = without_torch_extra("from xtc.cli import main; raise SystemExit(main(sys.argv[1:]))",
                                 "import-hf", str(ROOT / "tests" / "fixtures" / "hf" / "tinyllama"),
                                 "-o", str(tmp_path / "spec.yaml"),
                                 "--weights", str(tmp_path / "w.safetensors"))
    assert result.returncode == 2
    assert result.stderr == ("xtc: error: xtc import-hf --weights needs torch, einops and numpy, "
                             f"which the light install of xtc leaves out: {INSTALL}\n")
    assert not (tmp_path / "spec.yaml").exists()
