"""examples/train_char_lm.py: the loss falls, checkpoints hold the whole run and resume it
exactly, weight decay spares gains, biases and embeddings, and the loss plot is drawn (or its
absence explained)."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from conftest import load_script
from torch import nn

import xtc

example = load_script("examples/train_char_lm.py")

# Small enough to train in a blink, with dropout so that resuming must restore torch's RNG too.
TINY_SPEC = """\
xtc: 1
name: tiny_char_gpt
model:
  type: TransformerWrapper
  num_tokens: 128
  max_seq_len: 32
  emb_dropout: 0.1
  attn_layers: {type: Decoder, dim: 32, depth: 1, heads: 2, attn: {dropout: 0.1}, ff: {dropout: 0.1}}
"""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_run(decay_steps: int = 8):
    return example.new_run(TINY_SPEC, example.Settings(decay_steps=decay_steps, batch=4))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The example's model trained for 30 steps: evaluated and checkpointed every 10."""
    out = tmp_path_factory.mktemp("char_lm")
    run = example.new_run(example.SPEC_PATH.read_text(encoding="utf-8"),
                          example.Settings(decay_steps=30, batch=8))
    return example.train(run, 30, out, eval_every=10, checkpoint_every=10, quiet=True), out


def test_loss_falls_in_a_few_steps(trained):
    run, _ = trained
    assert len(run.losses) == 30
    assert abs(run.losses[0] - math.log(128)) < 0.5  # starts near a uniform guess
    assert sum(run.losses[-5:]) / 5 < sum(run.losses[:5]) / 5 - 0.5
    assert [step for step, _ in run.val_losses] == [10, 20, 30]


def test_checkpoint_holds_the_whole_run(trained):
    run, out = trained
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 30
    assert state["spec_text"] == example.SPEC_PATH.read_text(encoding="utf-8")
    assert xtc.loads_spec(state["spec_text"]).name == "char_gpt"
    assert state["model"].keys() == run.model.state_dict().keys()
    assert len(state["optimizer"]["state"]) == len(list(run.model.parameters()))
    assert state["schedule"]["last_epoch"] == 30
    assert state["losses"] == run.losses and state["val_losses"] == run.val_losses
    assert {"batch_generator", "torch_rng", "settings"} <= state.keys()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "loss.png"]  # no temporary


def test_resuming_continues_exactly(tmp_path):
    straight = example.train(tiny_run(), 8, tmp_path / "straight", quiet=True)
    example.train(tiny_run(), 4, tmp_path / "first_half", checkpoint_every=2, quiet=True)
    resumed = example.load_checkpoint(tmp_path / "first_half" / "checkpoint.pt")
    assert resumed.step == 4
    example.train(resumed, 8, tmp_path / "resumed", quiet=True)
    assert resumed.losses == straight.losses  # exactly, float for float
    for (name, expected), actual in zip(straight.model.state_dict().items(),
                                        resumed.model.state_dict().values()):
        assert torch.equal(actual, expected), name


def test_weight_decay_spares_gains_biases_and_embeddings():
    model = example.new_run(example.SPEC_PATH.read_text(encoding="utf-8"),
                            example.Settings(decay_steps=1)).model
    decay, no_decay = example.weight_decay_split(model)
    # Judged from the module holding each parameter: only the weights of linear layers decay.
    linear_weights = {f"{prefix}.weight" for prefix, module in model.named_modules()
                      if isinstance(module, nn.Linear)}
    assert set(decay) == linear_weights
    assert set(no_decay) == {name for name, _ in model.named_parameters()} - linear_weights
    assert {"blocks.0.attn.to_qkv.weight", "blocks.0.ff.proj_in.weight", "to_logits.weight"} \
        <= set(decay)
    assert {"token_emb.weight", "pos_emb.weight", "blocks.0.attn_norm.weight", "norm.weight",
            "blocks.0.ff.proj_in.bias"} <= set(no_decay)

    decay_group, no_decay_group = example.make_optimizer(model, 1e-3).param_groups
    parameters = dict(model.named_parameters())
    assert decay_group["weight_decay"] > 0 and no_decay_group["weight_decay"] == 0
    assert decay_group["params"] == [parameters[name] for name in decay]
    assert no_decay_group["params"] == [parameters[name] for name in no_decay]


def test_loss_plot_is_a_png(trained):
    import matplotlib  # noqa: F401  (in the `examples` extra that CI installs: fail, never skip)

    _, out = trained
    assert (out / "loss.png").read_bytes().startswith(PNG_SIGNATURE)


def test_without_matplotlib_training_finishes_and_says_how_to_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    run = example.train(tiny_run(), 2, tmp_path, quiet=True)
    assert run.step == 2 and (tmp_path / "checkpoint.pt").exists()
    assert not (tmp_path / "loss.png").exists()
    message = capsys.readouterr().err
    assert 'pip install "xtc[examples]"' in message and "pip install matplotlib" in message


@pytest.mark.parametrize("steps", ["20", "30"])
def test_resume_refuses_steps_not_beyond_the_checkpoint(trained, steps, capsys):
    _, out = trained
    with pytest.raises(SystemExit) as refused:
        example.main(["--resume", str(out / "checkpoint.pt"), "--steps", steps, "--no-sample"])
    assert refused.value.code == 2
    assert "not beyond step 30" in capsys.readouterr().err
