"""Names (spec/names.py, compiler/lower.py "class names"): a spec's name is its class, and the
compiler names every other class around it, so the names people write first (`model`,
`attention`, a composite `pali` with a component `pali`) compile, build and run. What stays
refused is what the spec's class or a component's attribute would break, and the message says
which names are free."""

from __future__ import annotations

import ast
import re

import pytest
import torch
import yaml
from conftest import ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from xtc.compiler.verify import top_level_names
from xtc.spec.names import (
    IMPORTED_NAMES,
    MODULE_MEMBERS,
    component_name_problem,
    name_problem,
)

import xtc

GOLDENS = sorted((ROOT / "examples" / "generated").glob("*.py"))
ATTN = {"dim_head": 4}
GPT = {"type": "TransformerWrapper", "num_tokens": 16, "max_seq_len": 8,
       "attn_layers": {"type": "Decoder", "dim": 8, "depth": 1, "heads": 2, "attn": ATTN}}
SEQ2SEQ = {"type": "XTransformer", "dim": 8,
           "encoder": {"num_tokens": 16, "max_seq_len": 8, "depth": 1, "heads": 2, "attn": ATTN},
           "decoder": {"num_tokens": 16, "max_seq_len": 8, "depth": 1, "heads": 2, "attn": ATTN}}
VIT = {"type": "ViTransformerWrapper", "image_size": 8, "patch_size": 4,
       "attn_layers": {"type": "Encoder", "dim": 8, "depth": 1, "heads": 2, "attn": ATTN}}


def single(name: str, model: dict) -> xtc.Spec:
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": name, "model": model}, sort_keys=False))


def pali(name: str, component: str = "pali") -> xtc.Spec:
    """examples/pali.yaml (a ViT in front of an XTransformer's source) named `name`, its
    XTransformer named `component`, with tiny widths."""
    document = yaml.safe_load((ROOT / "examples" / "pali.yaml").read_text())
    document["name"] = name
    vit, seq2seq = document["components"]["vit"], document["components"].pop("pali")
    vit.update(image_size=VIT["image_size"], patch_size=VIT["patch_size"])
    vit["attn_layers"].update(VIT["attn_layers"])
    seq2seq["dim"] = SEQ2SEQ["dim"]
    for side in ("encoder", "decoder"):
        seq2seq[side].update(SEQ2SEQ[side])
    document["components"][component] = seq2seq
    document["connections"] = [{"from": "vit", "to": f"{component}.src_prepend_embeds"}]
    return xtc.loads_spec(yaml.safe_dump(document, sort_keys=False))


def run(spec: xtc.Spec) -> torch.Tensor:
    """Build the spec's model and run one forward pass on inputs of its kind."""
    model = xtc.build(spec)
    src, tgt = torch.randint(0, 16, (2, 5)), torch.randint(0, 16, (2, 6))
    if spec.model is None:  # a pali() composite
        return model(torch.randn(2, 3, 8, 8), src, tgt)
    return model(src, tgt) if spec.model.type == "XTransformer" else model(src)


def classes_defined(source: str) -> list[str]:
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]


def snake_case(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


# -- natural names compile, build and run ---------------------------------------------------


@pytest.mark.parametrize("name, helpers", [
    ("gpt", ["Config", "Attention", "FeedForward", "Block"]),
    ("model", ["Config", "Attention", "FeedForward", "Block"]),
    ("attention", ["AttentionConfig", "AttentionAttention", "AttentionFeedForward",
                   "AttentionBlock"]),
    ("config", ["ConfigConfig", "ConfigAttention", "ConfigFeedForward", "ConfigBlock"]),
    ("block", ["BlockConfig", "BlockAttention", "BlockFeedForward", "BlockBlock"]),
])
def test_a_name_like_a_helper_renames_the_helpers(name, helpers):
    spec = single(name, GPT)
    assert classes_defined(xtc.compile(spec)) == [*helpers, spec.class_name]
    assert run(spec).shape == (2, 5, 16)


def test_an_xtransformer_named_encoder():
    spec = single("encoder", SEQ2SEQ)
    assert "EncoderEncoder" in classes_defined(xtc.compile(spec))
    assert run(spec).ndim == 0


def test_a_composite_and_its_component_share_a_name():
    spec = pali("pali")
    source = xtc.compile(spec)
    assert "self.vit = Vit(config.vit)\n        self.pali = PaliPali(config.pali)" in source
    names = classes_defined(source)
    assert names[-1] == "Pali"
    assert {"Config", "VitConfig", "PaliPaliConfig", "PaliPaliEncoderBlock"} <= set(names)
    assert run(spec).ndim == 0


@pytest.mark.parametrize("name, component, renamed", [
    ("pali_model", "pali", "Pali"),  # examples/pali.yaml: nothing clashes, nothing changes
    ("config", "pali", "Pali"),  # the composite's Config becomes ConfigConfig
    ("pali", "vit_block", "PaliVitBlock"),  # vit, written first, keeps its VitBlock
    ("pali", "none", "PaliNone"),  # a keyword,
    ("pali", "model_cache", "PaliModelCache"),  # an import,
    ("pali", "value_error", "PaliValueError"),  # or a builtin the emitted code raises
])
def test_component_classes_step_around_taken_names(name, component, renamed):
    spec = pali(name, component)
    source = xtc.compile(spec)
    assert f"self.{component} = {renamed}(config.{component})" in source
    assert run(spec).ndim == 0


def test_components_are_named_in_the_order_written():
    """vit_block comes first and keeps VitBlock; vit would define VitBlock too, so its classes
    move under the composite's name."""
    document = {"xtc": 1, "name": "pali",
                "components": {"vit_block": SEQ2SEQ, "vit": VIT},
                "connections": [{"from": "vit", "to": "vit_block.src_prepend_embeds"}]}
    spec = xtc.loads_spec(yaml.safe_dump(document, sort_keys=False))
    names = classes_defined(xtc.compile(spec))
    assert "VitBlock" in names and "PaliVit" in names and "PaliVitBlock" in names
    assert xtc.build(spec)(torch.randint(0, 16, (2, 5)), torch.randint(0, 16, (2, 6)),
                           torch.randn(2, 3, 8, 8)).ndim == 0


GOLDEN_CLASSES = sorted({name for path in GOLDENS for name in classes_defined(path.read_text())})


@pytest.mark.parametrize("class_name", GOLDEN_CLASSES)
def test_every_class_an_emitted_module_defines_can_be_a_name(class_name):
    """As a spec's name (a single model and a composite) and as a component's, next to the
    composite's own and a `vit` that may already use it."""
    name = snake_case(class_name)
    assert run(single(name, GPT)).shape == (2, 5, 16)
    assert run(single(name, SEQ2SEQ)).ndim == 0
    assert run(pali(name)).ndim == 0
    if component_name_problem(name) is None and name != "vit":  # `config` is the composite's
        assert run(pali("pali", name)).ndim == 0


WORDS = ["pali", "vit", "encoder", "decoder", "config", "attention", "cross", "block", "feed",
         "forward", "model", "cache", "none", "f", "tensor", "x", "2"]
NAMES = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map("_".join).filter(
    lambda name: name[0].isalpha())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(name=NAMES, producer=NAMES, consumer=NAMES)
def test_names_made_of_class_words_compile(name, producer, consumer):
    """Any allowed names, however they run into each other's classes: the compiler's verifier
    refuses a module that binds a name twice, so compiling is the check."""
    assume(producer != consumer and name_problem(name) is None)
    assume(component_name_problem(producer) is None and component_name_problem(consumer) is None)
    document = {"xtc": 1, "name": name, "components": {producer: VIT, consumer: SEQ2SEQ},
                "connections": [{"from": producer, "to": f"{consumer}.src_prepend_embeds"}]}
    xtc.compile(xtc.loads_spec(yaml.safe_dump(document, sort_keys=False)))


# -- what stays refused -------------------------------------------------------------------------


def free_names(message: str) -> list[str]:
    return re.findall(r"'(\w+)'", message.split("such as", 1)[1])


@pytest.mark.parametrize("name", ["none", "true", "exception", "value_error", "f", "tensor",
                                  "model_cache", "k_v_cache", "rotary_embedding", "residual",
                                  "t5_relative_bias"])
def test_names_that_would_shadow_are_refused_with_free_ones(name):
    problem = name_problem(name)
    assert problem is not None and "choose another name, such as" in problem
    alternatives = free_names(problem)
    assert alternatives and all(name_problem(other) is None for other in alternatives)


@pytest.mark.parametrize("name", ["class", "lambda", "to", "forward", "config", "field"])
def test_component_names_that_would_break_the_attribute_are_refused(name):
    problem = component_name_problem(name)
    assert problem is not None and "choose another name, such as" in problem
    alternatives = free_names(problem)
    assert alternatives and all(component_name_problem(other) is None for other in alternatives)


def test_component_names_cannot_replace_module_members():
    # torch's own members: transformers (the benchmark peer, imported by tests/test_benchmark.py)
    # adds nn.Module.smart_apply when it is imported
    members = {name for name in dir(torch.nn.Module) if not name.startswith("_")
               and getattr(getattr(torch.nn.Module, name), "__module__", "torch").startswith("torch")}
    members |= {name for name in vars(torch.nn.Module()) if not name.startswith("_")}
    assert members <= MODULE_MEMBERS, sorted(members - MODULE_MEMBERS)
    assert all(component_name_problem(name) for name in members)


def capitalised_names(source: str) -> set[str]:
    """The names a module binds at its top level that a PascalCased name could spell."""
    tree = ast.parse(source)
    return {name for node in tree.body for name in top_level_names(node) if name[:1].isupper()}


def test_every_capitalised_runtime_name_is_listed():
    """`--standalone` copies runtime definitions (and their imports) into the module."""
    for path in sorted((ROOT / "runtime").glob("*.py")):
        found = capitalised_names(path.read_text())
        assert found <= IMPORTED_NAMES, (path.name, sorted(found - IMPORTED_NAMES))


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_every_capitalised_import_of_a_golden_is_listed(path):
    source = path.read_text()
    assert capitalised_names(source) - set(classes_defined(source)) <= IMPORTED_NAMES


def test_a_component_name_with_a_double_underscore_is_refused_with_a_free_name():
    """Op names join a composite's component and its nested models with `__`, so that a
    component `encoder_encoder` and an XTransformer component `encoder` (whose encoder scope is
    `encoder.encoder`) get ops of different names."""
    from xtc.spec.names import component_name_problem

    assert "'a_b'" in component_name_problem("a__b")
