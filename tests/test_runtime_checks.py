"""Emitted models reject bad run-time input with ValueError / TypeError (docs/security.md;
cases P44-P48), also under `python -O`, and skip the checks under torch.compile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xtc

SPEC = """xtc: 1
name: tiny_lm
model:
  type: TransformerWrapper
  num_tokens: 256
  max_seq_len: 128
  attn_layers: {type: Decoder, dim: 32, depth: 1, heads: 2, attn: {dim_head: 16}}
"""


@pytest.fixture(scope="module")
def model():
    return xtc.build(xtc.loads_spec(SPEC)).eval()


TOKENS = torch.zeros(2, 8, dtype=torch.long)
CASES = [
    ("P44 id out of range", lambda: (torch.full((1, 4), 256),), {},
     ValueError, r"token ids must be in \[0, 256\); got min 256, max 256"),
    ("negative id", lambda: (torch.tensor([[3, -1]]),), {}, ValueError, r"got min -1"),
    ("P45 float tokens", lambda: (torch.rand(2, 8) * 255,), {},
     TypeError, r"tokens must be an integer tensor \(got float32\)"),
    ("bool tokens", lambda: (torch.ones(2, 8, dtype=torch.bool),), {}, TypeError, "got bool"),
    ("not a tensor", lambda: ([[1, 2]],), {}, TypeError, "must be a torch.Tensor"),
    ("1-D tokens", lambda: (torch.zeros(8, dtype=torch.long),), {},
     ValueError, r"tokens must be \(batch, length\), got shape \(8,\)"),
    ("P46 past max_seq_len", lambda: (torch.zeros(1, 129, dtype=torch.long),), {},
     ValueError, "sequence length 129 exceeds max_seq_len 128"),
    ("P47 mask shape", lambda: (TOKENS,), {"mask": torch.ones(2, 7, dtype=torch.bool)},
     ValueError, r"mask shape \(2, 7\) != tokens shape \(2, 8\)"),
    ("mask dtype", lambda: (TOKENS,), {"mask": torch.ones(2, 8)}, TypeError,
     r"mask must be a bool tensor \(got float32\)"),
    ("P48 empty batch", lambda: (torch.zeros(0, 8, dtype=torch.long),), {}, ValueError, "empty batch"),
    ("empty sequence", lambda: (torch.zeros(2, 0, dtype=torch.long),), {}, ValueError, "empty sequence"),
]


@pytest.mark.parametrize("name, args, kwargs, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises(model, name, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        model(*args(), **kwargs)


def test_good_input_passes(model):
    mask = torch.ones(2, 8, dtype=torch.bool)
    assert model(torch.full((2, 8), 255), mask=mask).shape == (2, 8, 256)
    assert model(torch.zeros(1, 128, dtype=torch.long)).shape == (1, 128, 256)


def test_no_length_limit_without_absolute_positions():
    spec = xtc.loads_spec(SPEC.replace("max_seq_len: 128", "max_seq_len: 8\n  use_abs_pos_emb: false"))
    model = xtc.build(spec).eval()
    assert model(torch.zeros(1, 40, dtype=torch.long)).shape == (1, 40, 256)


def test_checks_hold_under_python_O():
    """Every bad-input case again, in a `python -O` process, where asserts would vanish."""
    if not __debug__:
        pytest.skip("already running under -O")
    result = subprocess.run(
        [sys.executable, "-O", "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "bad_input_raises"],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stdout[-2000:]
    assert f"{len(CASES)} passed" in result.stdout


def test_compiled_model_runs_in_one_graph(model):
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = torch.randint(0, 256, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.bool)
    torch.testing.assert_close(compiled(x, mask=mask), model(x, mask=mask))
