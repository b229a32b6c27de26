"""One class per concept in emitted modules (compiler/share.py): no two classes of a module read
the same, stacks that agree share their classes and configs, and the weights saved from modules
emitted before the sharing still load."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from conftest import FIXTURES, ROOT
from reference import assert_parity
from test_composites import HandWired, composite

import xtc

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def class_bodies(source: str) -> list[tuple[str, str]]:
    """(name, code) of each class of the module, with what does not make it another class
    blanked in the code: its name, and the annotation and default of the config its __init__
    takes."""
    bodies = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        name, node.name = node.name, "_"
        for method in node.body:
            if isinstance(method, ast.FunctionDef) and method.name == "__init__":
                for argument in method.args.args:
                    if argument.arg == "config":
                        argument.annotation = None
                method.args.defaults = []
        bodies.append((name, ast.unparse(node)))
    return bodies


def repeated_classes(source: str) -> list[tuple[str, str]]:
    """(first, repeat) for each class of the module that reads the same as an earlier one."""
    seen, repeats = {}, []
    for name, body in class_bodies(source):
        if body in seen:
            repeats.append((seen[body], name))
        seen.setdefault(body, name)
    return repeats


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_no_two_classes_of_an_example_read_the_same(example: Path):
    source = (example.parent / "generated" / f"{example.stem}.py").read_text()
    assert repeated_classes(source) == []


def test_the_check_finds_classes_that_differ_in_name_and_config_only():
    source = """
class EncoderFeedForward(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        self.proj = nn.Linear(config.dim, config.dim)


class DecoderFeedForward(nn.Module):
    def __init__(self, config: DecoderConfig) -> None:
        self.proj = nn.Linear(config.dim, config.dim)


class Decoder(nn.Module):
    def __init__(self, config: DecoderConfig = DecoderConfig()) -> None:
        self.ff = DecoderFeedForward(config)
"""
    assert repeated_classes(source) == [("EncoderFeedForward", "DecoderFeedForward")]


def test_stacks_share_their_feedforward_under_its_plain_name():
    source = (ROOT / "examples" / "generated" / "pali.py").read_text()
    assert "class FeedForward(nn.Module):" in source
    assert "def __init__(self, config: VitConfig | PaliEncoderConfig | PaliDecoderConfig)" in source
    assert "FeedForward(nn.Module)" not in source.replace("class FeedForward(nn.Module)", "")


# -- weights saved before -------------------------------------------------------------------------

# Key and shape of every tensor of each example's model as the modules emitted before classes
# were shared saved them (the goldens of commit 7457b23), attention with separate to_q, to_k and
# to_v weights, which the load hook of fuse-qkv stacks.
SAVED = json.loads((FIXTURES / "state_dict_keys.json").read_text())
# Keys that moved on purpose: a custom layout's one block is `block`, not a ModuleList of one.
MOVED = {"custom_layers": ("blocks.0.", "block.")}


# (examples added since, such as xval, had no earlier modules)
@pytest.mark.parametrize("example", [path for path in EXAMPLES if path.stem in SAVED],
                         ids=lambda path: path.stem)
def test_weights_saved_from_earlier_modules_still_load(example: Path):
    old, new = MOVED.get(example.stem, ("", ""))
    with torch.device("meta"):  # shapes only: the defaults of pali are 60M parameters
        model = xtc.build(xtc.load_spec(example))
        state = {key.replace(old, new, 1) if old else key: torch.empty(shape)
                 for key, shape in SAVED[example.stem].items()}
    model.load_state_dict(state, strict=True, assign=True)  # names and shapes, both ways


@pytest.mark.parametrize("attn", [{}, {"kv_heads": 1, "value_dim_head": 8}], ids=["mha", "gqa"])
def test_a_state_dict_with_separate_q_k_v_weights_loads_into_the_fused_projection(attn):
    """Before fuse-qkv, attention saved to_q, to_k and to_v: such a state dict loads (the load
    hook stacks them) and the model computes what the saved one did."""
    spec = xtc.loads_spec(json.dumps({"xtc": 1, "name": "tiny", "model": {
        "type": "TransformerWrapper", "num_tokens": 32, "max_seq_len": 16,
        "attn_layers": {"type": "Decoder", "dim": 16, "depth": 2, "heads": 2,
                        "attn": {"dim_head": 4, **attn}}}}))
    saved = xtc.build(spec).eval()
    state = {}
    for key, value in saved.state_dict().items():
        if key.endswith("to_qkv.weight"):  # as the unfused module named and shaped them
            widths = saved.get_submodule(key.removesuffix(".to_qkv.weight")).qkv_widths \
                if attn else (value.shape[0] // 3,) * 3
            for part, rows in zip("qkv", value.split(widths)):
                state[key.replace("to_qkv", f"to_{part}")] = rows.clone()
        else:
            state[key] = value
    loaded = xtc.build(spec).eval()
    loaded.load_state_dict(state, strict=True)
    tokens = torch.randint(0, 32, (2, 8))
    assert torch.equal(loaded(tokens), saved(tokens))


# -- components that agree ------------------------------------------------------------------------

ENCODER = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
           "attn_layers": {"type": "Encoder", "dim": 32, "depth": 1, "heads": 2}}


def twin(**second_layers) -> xtc.Spec:
    """Two text encoders, the first's embeddings prepended to the second's tokens."""
    second = {**ENCODER, "attn_layers": {**ENCODER["attn_layers"], **second_layers}}
    return composite({"first": ENCODER, "second": second},
                     [{"from": "first", "to": "second.prepend_embeds"}])


def by_hand(ref, first_x, second_x, second_mask=None):
    prefix = ref["first"](first_x, return_embeddings=True)
    return ref["second"](second_x, prepend_embeds=prefix, mask=second_mask)


def tokens(seed: int) -> torch.Tensor:
    return torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(seed))


def test_alike_components_are_one_class_built_from_two_configs():
    spec = twin(depth=2, heads=4)
    source = xtc.compile(spec)
    assert "class Second" not in source and "class SecondConfig" not in source
    assert "second: FirstConfig = FirstConfig(depth=2, heads=4)" in source
    assert "self.second = First(config.second)" in source
    assert repeated_classes(source) == []
    mask = torch.arange(8)[None, :] < torch.tensor([[8], [5]])  # prepended positions stay real
    assert_parity(spec, tokens(1), tokens(2), reference=HandWired(spec, by_hand),
                  second_mask=mask)


def test_a_model_on_a_shared_config_class_defaults_to_its_own_values():
    spec = twin(depth=2, heads=4, use_rmsnorm=True)  # other norms: its own block and model
    source = xtc.compile(spec)
    assert "class Second(nn.Module)" in source and "class SecondConfig" not in source
    assert "def __init__(self, config: FirstConfig = FirstConfig(depth=2, heads=4))" in source
    assert repeated_classes(source) == []
    second = xtc.api.module_for(spec).Second()  # on its own, as the module defines it
    assert len(second.blocks) == 2 and second.blocks[0].attn.heads == 4
    assert_parity(spec, tokens(1), tokens(2), reference=HandWired(spec, by_hand))
