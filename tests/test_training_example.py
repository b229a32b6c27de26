"""examples/train_char_lm.py trains: a few steps and the loss falls."""

from __future__ import annotations

import importlib.util
import math

from conftest import ROOT


def load_example():
    spec = importlib.util.spec_from_file_location("train_char_lm", ROOT / "examples" / "train_char_lm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loss_falls_in_a_few_steps():
    losses = load_example().train(steps=30, batch=8, lr=3e-3, seed=0, quiet=True)
    assert len(losses) == 30
    assert abs(losses[0] - math.log(128)) < 0.5  # starts near a uniform guess
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
