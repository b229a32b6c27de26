"""`xtc compile --standalone`: the module runs where xtc cannot be imported, and computes what
the ordinary module computes."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import ROOT
from xtc.compiler.standalone import inline_runtime
from xtc.compiler.verify import verify_source

import xtc
from xtc import cli

# A process that cannot import xtc: the finder refuses it before any path is searched.
RUN_WITHOUT_XTC = textwrap.dedent("""\
    import importlib.abc, importlib.util, sys

    class NoXtc(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "xtc" or name.startswith("xtc."):
                raise ImportError("xtc is not importable here")

    sys.meta_path.insert(0, NoXtc())
    import torch
    spec = importlib.util.spec_from_file_location("standalone_model", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules["standalone_model"] = module
    spec.loader.exec_module(module)
    model = getattr(module, sys.argv[2])().eval()
    model.load_state_dict(torch.load(sys.argv[3]))
    inputs = torch.load(sys.argv[4])
    with torch.no_grad():
        out = {"forward": model(inputs)}
        if hasattr(model, "generate"):
            torch.manual_seed(0)
            out["generate"] = model.generate(inputs[:, :4], 5)
    torch.save(out, sys.argv[5])
    print(any(name == "xtc" or name.startswith("xtc.") for name in sys.modules))
""")
TINY_GPT = """\
xtc: 1
name: tiny_gpt
model:
  type: TransformerWrapper
  num_tokens: 50
  max_seq_len: 32
  attn_layers: {type: Decoder, dim: 32, depth: 2, heads: 2, rotary_pos_emb: true, ff: {glu: true}}
"""
TINY_VIT = """\
xtc: 1
name: tiny_vit
model:
  type: ViTransformerWrapper
  image_size: 16
  patch_size: 8
  num_classes: 5
  attn_layers: {type: Encoder, dim: 32, depth: 1, heads: 2, use_rmsnorm: true}
"""
# a looped LM: its loss and cached generation come from runtime/looped.py
TINY_LOOPED = """\
xtc: 1
name: tiny_looped
model:
  type: TransformerWrapper
  num_tokens: 50
  max_seq_len: 32
  looped: true
  max_looped_steps: 3
  attn_layers: {type: Decoder, dim: 32, depth: 1, heads: 2, pre_and_post_norm: true}
"""
# norm_eps, an xtc extension: the copied RMSNorm is Hugging Face's, with its epsilon
TINY_LLAMA = """\
xtc: 1
name: tiny_llama
model:
  type: TransformerWrapper
  num_tokens: 50
  max_seq_len: 32
  use_abs_pos_emb: false
  attn_layers: {type: Decoder, dim: 32, depth: 2, heads: 4, use_rmsnorm: true, norm_eps: 1.0e-5,
                rotary_pos_emb: true, attn: {kv_heads: 2}, ff: {glu: true, swish: true}}
"""
CASES = {"gpt": (TINY_GPT, lambda: torch.randint(0, 50, (2, 12))),
         "llama": (TINY_LLAMA, lambda: torch.randint(0, 50, (2, 12))),
         "looped": (TINY_LOOPED, lambda: torch.randint(0, 50, (2, 12))),
         "vit": (TINY_VIT, lambda: torch.randn(2, 3, 16, 16))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_standalone_module_runs_without_xtc_and_agrees(case, tmp_path):
    text, make_input = CASES[case]
    spec = xtc.loads_spec(text)
    source = xtc.compile(spec, standalone=True)
    assert "xtc.runtime" not in source.replace("copied from xtc.runtime", "")
    model_path = tmp_path / "model.py"
    model_path.write_text(source)
    torch.manual_seed(0)
    model = xtc.build(spec).eval()
    inputs = make_input()
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.save(inputs, tmp_path / "inputs.pt")
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_XTC, str(model_path), spec.class_name,
         str(tmp_path / "state.pt"), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
    out = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        torch.testing.assert_close(out["forward"], model(inputs), rtol=0, atol=0)
        if "generate" in out:
            torch.manual_seed(0)
            assert torch.equal(out["generate"], model.generate(inputs[:, :4], 5))


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_compiles_standalone_to_valid_python(path, tmp_path):
    out = tmp_path / "model.py"
    assert cli.main(["compile", "--standalone", str(path), "-o", str(out)]) == 0
    source = out.read_text()
    compile(source, str(out), "exec")
    imported = {line.split()[1] for line in source.splitlines()
                if line.startswith(("import ", "from "))}
    assert imported <= {"__future__", "dataclasses", "math", "torch", "torch.nn.functional",
                        "einops", "typing", "collections.abc", "warnings", "logging",
                        "time"}, imported


@pytest.mark.parametrize("module", sorted(p.stem for p in (ROOT / "runtime").glob("*.py")
                                          if p.stem != "__init__"))
def test_every_runtime_definition_can_be_copied_into_a_module(module):
    """--standalone copies runtime definitions into the emitted module, whose allowlist
    (compiler/verify.py: no `with`, `while`, `getattr`, ...) they must keep too, whichever
    option first reaches them."""
    tree = ast.parse((ROOT / "runtime" / f"{module}.py").read_text())
    names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
             and not node.name.startswith("_")]
    header = ("from __future__ import annotations\n\nimport torch\n"
              "import torch.nn.functional as F\nfrom torch import Tensor, nn\n")
    verify_source(inline_runtime(f"{header}from xtc.runtime.{module} import {', '.join(names)}\n"))
