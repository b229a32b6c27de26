"""`xtc export-python` (interop/python_export.py): the exported x-transformers code, executed
here (tests may run generated test code; xtc never does), builds the reference model of the
spec: the same state-dict keys and shapes as tests/reference.py's, and, with its weights, xtc's
model gives its outputs. Training wrappers carry the spec's `autoregressive:` options, and a
composite's connecting calls run and compute what xtc's composite computes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import x_transformers
import yaml
from conftest import ROOT
from features import FEATURES, feature, feature_spec, layers
from hypothesis import given
from hypothesis import strategies as st
from inputs import make_inputs
from reference import assert_parity, reference_model, reference_module
from test_composites import CAPTION_DECODER, PALI, VIT, composite
from xtc.interop.python_export import export_python, literal

import xtc
from xtc import cli

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# Small sizes for an example's copy that runs in a moment (num_tokens only ever shrinks).
SMALL = {"dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "max_seq_len": 16, "image_size": 16,
         "patch_size": 4, "dim_in": 8, "dim_out": 8, "dim_condition": 8, "num_classes": 10,
         "num_memory_tokens": 2, "num_mem_kv": 2}


def executed(source: str, device: str | None = None) -> dict:
    """The namespace the exported code leaves, run fresh (on `device` where given)."""
    namespace: dict = {}
    code = compile(source, "<exported>", "exec")
    with torch.device(device) if device else torch.device("cpu"):
        exec(code, namespace)  # noqa: S102 - our own exported code, in a test
    return namespace


def shapes(model: torch.nn.Module) -> dict:
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def unwrapped(value):
    """A model, from its variable: the training wrapper's `net` where it is rebound to one."""
    return value.net if type(value).__name__.endswith("AutoregressiveWrapper") else value


def small(path: Path) -> xtc.Spec:
    """An example with its sizes shrunk (SMALL), so that its exported code runs fast."""
    def shrink(node):
        if isinstance(node, dict):
            return {key: (min(value, 64) if key == "num_tokens" else SMALL[key])
                    if key in SMALL or key == "num_tokens" else shrink(value)
                    for key, value in node.items()}
        return node

    return xtc.loads_spec(yaml.safe_dump(shrink(yaml.safe_load(path.read_text())), sort_keys=False))


# -- every example, at its real size on the meta device ------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_builds_its_reference(path):
    """Built on the meta device (no memory, no time): each model is the reference's, and a
    composite's calls run on the inputs the code makes (shapes are checked on meta too)."""
    spec = xtc.load_spec(path)
    namespace = executed(export_python(spec), device="meta")
    with torch.device("meta"):
        if spec.model is not None:
            assert shapes(namespace[spec.name]) == shapes(reference_model(spec))
        for name, module in spec.components.items():
            assert shapes(namespace[name]) == shapes(reference_module(module))


# -- small copies of every example, run for real ---------------------------------------------------

@pytest.mark.parametrize("path", [p for p in EXAMPLES if "components" not in p.read_text()],
                         ids=lambda p: p.stem)
def test_a_small_example_is_the_reference(path):
    assert_exported_model_is_the_reference(small(path))


def assert_exported_model_is_the_reference(spec: xtc.Spec) -> None:
    """Same state-dict keys and shapes as the reference; with its weights, xtc's model gives
    its outputs and gradients; its training wrapper, if any, carries the spec's options."""
    variable = executed(export_python(spec))[spec.name]
    model = unwrapped(variable)
    assert shapes(model) == shapes(reference_model(spec))
    inputs = make_inputs(spec, 2, 8)
    assert_parity(spec, *inputs.args, reference=model, **inputs.kwargs)
    if spec.model.training_given:
        assert_trainer(spec.model, variable)
    else:
        assert variable is model


def assert_trainer(module: xtc.ModuleSpec, wrapper) -> None:
    """The wrapper is the spec's trainer, with each `autoregressive:` value, and holds what the
    same wrapper made by hand from the spec holds (use_l1_loss is a loss function there)."""
    assert type(wrapper).__name__ == module.trainer
    options = {name: module.training[name] for name in module.training_given}
    for name, value in options.items():
        if hasattr(wrapper, name):
            assert getattr(wrapper, name) == value, name
    by_hand = getattr(x_transformers, module.trainer)(wrapper.net, **options)
    assert public_attributes(wrapper) == public_attributes(by_hand)


def public_attributes(module: torch.nn.Module) -> dict:
    return {name: value for name, value in vars(module).items() if not name.startswith("_")}


@pytest.mark.parametrize("path", [p for p in EXAMPLES if "components" in p.read_text()],
                         ids=lambda p: p.stem)
def test_a_small_composite_example_runs_its_wiring(path):
    assert_exported_composite_is_the_reference(small(path))


def assert_exported_composite_is_the_reference(spec: xtc.Spec) -> dict:
    """Each component is the reference of its component spec; every component's call runs; and
    xtc's composite, given the components' weights and the code's inputs, returns what the
    code's last call returned. Returns the namespace."""
    source = export_python(spec)
    outputs: dict[int, object] = {}

    def record(module, args, output):
        outputs[id(module)] = output

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        namespace = executed(source)
    finally:
        hook.remove()
    models = {name: unwrapped(namespace[name]) for name in spec.components}
    for name, module in spec.components.items():
        assert shapes(models[name]) == shapes(reference_module(module))
        assert id(models[name]) in outputs, f"{name} was not called"
    ours = xtc.build(spec).eval()
    ours.load_state_dict(xtc.convert_state_dict(
        spec, {name: model.state_dict() for name, model in models.items()}), strict=True)
    inputs = [namespace[name] for name in input_variables(source)]
    sink = next(name for name in spec.components
                if name not in {c.source for c in spec.connections})
    torch.testing.assert_close(ours(*inputs), outputs[id(models[sink])], rtol=1e-4, atol=1e-5)
    return namespace


def input_variables(source: str) -> list[str]:
    """The variables the code assigns a tensor made by torch (`x = torch.randint(...)`), in
    order: the composite's positional inputs."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            function = node.value.func
            if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) \
                    and function.value.id.startswith("torch"):
                found.append(node.targets[0].id)
    return found


# -- what the mapping must get right -------------------------------------------------------------

def xtc_spec(model: dict, name: str = "tiny") -> xtc.Spec:
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": name, "model": model}, sort_keys=False))


CONTINUOUS = {"type": "ContinuousTransformerWrapper", "dim_in": 8, "dim_out": 8, "max_seq_len": 16,
              "attn_layers": layers("Decoder"), "autoregressive": {"use_l1_loss": True}}
XVAL = {"type": "XValTransformerWrapper", "num_tokens": 64, "numerical_token_id": 3,
        "max_seq_len": 16, "attn_layers": layers("Decoder"),
        "autoregressive": {"numerical_loss_weight": 0.5, "ignore_index": 0}}

CASES = {
    "sections_and_per_layer_tuples": lambda: feature_spec(feature("per_layer-numbers"), "Decoder", False),
    "dict_value": lambda: feature_spec(feature("embeddings-embed_num_tokens_cls"), "Encoder", False),
    "dict_of_a_tuple": lambda: feature_spec(feature("positions-alibi_slopes"), "Decoder", False),
    "xtransformer_sections": lambda: feature_spec(feature("xtransformer-per_layer"), "XTransformer", False),
    "xtransformer_flash_dict": lambda: feature_spec(feature("xtransformer-aggregated_residuals"),
                                                    "XTransformer", True),
    "autoregressive": lambda: feature_spec(feature("training-mask_prob"), "Decoder", False),
    "autoregressive_ignore_pad": lambda: feature_spec(feature("training-ignore_index_pad_value"),
                                                      "Decoder", False),
    "xl_autoregressive": lambda: feature_spec(feature("recurrence-tbptt_steps"), "Decoder", False),
    "continuous_autoregressive": lambda: xtc_spec(CONTINUOUS),
    "xval_autoregressive": lambda: xtc_spec(XVAL),
    "bare_cross_attender": lambda: xtc_spec({"type": "CrossAttender", "dim": 32, "depth": 1,
                                             "heads": 2}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_spec_exports_as_its_reference(case):
    assert_exported_model_is_the_reference(CASES[case]())


def test_every_trainer_is_exported():
    assert {CASES[case]().model.trainer for case in CASES if "autoregressive" in case} == {
        "AutoregressiveWrapper", "XLAutoregressiveWrapper", "ContinuousAutoregressiveWrapper",
        "XValAutoregressiveWrapper"}


def test_the_readme_form():
    spec = xtc_spec({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                     "attn_layers": {"type": "Decoder", "dim": 32, "depth": 2, "heads": 2,
                                     "attn": {"flash": True}, "ff": {"mult": [2, 3]}},
                     "autoregressive": {"mask_prob": 0.15}}, name="gpt")
    assert export_python(spec) == (
        "from x_transformers import TransformerWrapper, Decoder, AutoregressiveWrapper\n"
        "\n"
        "gpt = TransformerWrapper(\n"
        "    num_tokens = 64,\n"
        "    max_seq_len = 16,\n"
        "    attn_layers = Decoder(\n"
        "        dim = 32,\n"
        "        depth = 2,\n"
        "        heads = 2,\n"
        "        attn_flash = True,\n"
        "        ff_mult = (2, 3)\n"
        "    )\n"
        ")\n"
        "gpt = AutoregressiveWrapper(gpt, mask_prob = 0.15)\n")


def test_only_given_keys_are_exported():
    """Defaults stay out, and a model whose `autoregressive:` is empty has no wrapper line."""
    spec = xtc_spec({"type": "Decoder", "dim": 32, "depth": 1})
    assert export_python(spec) == "from x_transformers import Decoder\n\ntiny = Decoder(\n" \
                                  "    dim = 32,\n    depth = 1\n)\n"
    gpt = xtc_spec({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
                    "attn_layers": layers("Decoder"), "autoregressive": {}})
    assert "AutoregressiveWrapper" not in export_python(gpt)


def test_the_description_is_a_leading_comment_that_nothing_ends_early():
    text = "Two lines,\nthe second\twith a tab and \u202e a bidi control; 'quotes' stay."
    document = {"xtc": 1, "name": "tiny", "description": text,
                "model": {"type": "Encoder", "dim": 32, "depth": 1}}
    source = export_python(xtc.loads_spec(yaml.safe_dump(document)))
    assert source.startswith("# Two lines,\n# the second\\twith a tab and \\u202e a bidi control; "
                             "'quotes' stay.\n\nfrom x_transformers import Encoder\n")
    assert source.isascii()
    assert executed(source)["tiny"].__class__ is x_transformers.Encoder


def test_a_spec_named_like_a_keyword_gets_a_trailing_underscore():
    source = export_python(xtc_spec({"type": "Encoder", "dim": 32, "depth": 1}, name="class"))
    assert "class_ = Encoder(" in source and isinstance(executed(source)["class_"],
                                                         x_transformers.Encoder)


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@given(VALUES)
def test_a_literal_reads_back_as_its_value(value):
    assert ast.literal_eval(literal(value)) == value


@pytest.mark.slow
def test_every_feature_row_exports_as_its_reference():
    """Every row of the feature matrix with each of its layer stacks, built on the meta device:
    the exported model has the reference's state-dict keys and shapes. Built under no_grad, as
    reference_model builds: x-transformers' own polar_bias_uniform_init raises without it."""
    for row in FEATURES:
        for kind in row.kinds:
            spec = feature_spec(row, kind, False)
            with torch.device("meta"), torch.no_grad():
                model = unwrapped(executed(export_python(spec), device="meta")["tiny"])
                assert shapes(model) == shapes(reference_model(spec)), f"{row.id} {kind}"


# -- composites ------------------------------------------------------------------------------------

def test_a_composite_as_the_readme_writes_it():
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    source = export_python(spec)
    assert source.startswith("import torch\nfrom x_transformers import ViTransformerWrapper, "
                             "Encoder, TransformerWrapper, Decoder\n\nencoder = ")
    assert source.endswith("\n\nimg = torch.randn(1, 3, 16, 16)\nx = torch.randint(0, 64, (1, 16))"
                           "\n\nencoded = encoder(img, return_embeddings = True)\n"
                           "decoder(x, context = encoded)\n")
    assert_exported_composite_is_the_reference(spec)


def test_pali_prepends_the_image_to_a_full_length_source():
    """The reference puts prepended embeddings after the positions: the source may be
    max_seq_len long beside them."""
    spec = composite({"vit": VIT, "pali": PALI}, [{"from": "vit", "to": "pali.src_prepend_embeds"}])
    source = export_python(spec)
    assert "src = torch.randint(0, 64, (1, 16))\ntgt = torch.randint(0, 64, (1, 16))\n" in source
    assert "encoded = vit(img, return_embeddings = True)\npali(src, tgt, src_prepend_embeds = encoded)\n" in source
    assert_exported_composite_is_the_reference(spec)


def test_names_do_not_collide_with_components():
    """Components named like the inputs, the output and torch itself: each input takes its
    component's name in front, and torch is imported under a free name."""
    text = {**CAPTION_DECODER, "attn_layers": {**CAPTION_DECODER["attn_layers"],
                                               "type": "Encoder", "cross_attend": False}}
    spec = composite({"torch": VIT, "x": text, "encoded": CAPTION_DECODER, "img": CAPTION_DECODER},
                     [{"from": "torch", "to": "encoded.context"},
                      {"from": "x", "to": "encoded.prepend_embeds"},
                      {"from": "encoded", "to": "img.context"}])
    source = export_python(spec)
    assert source.startswith("import torch as torch_2\n")
    for line in ("torch_img = torch_2.randn(1, 3, 16, 16)", "x_x = torch_2.randint(0, 64, (1, 16))",
                 "encoded_x = torch_2.randint(0, 64, (1, 16))", "img_x = torch_2.randint(0, 64, (1, 16))",
                 "torch_encoded = torch(torch_img, return_embeddings = True)",
                 "x_encoded = x(x_x, return_embeddings = True)",
                 ("encoded_encoded = encoded(encoded_x, context = torch_encoded, "
                  "prepend_embeds = x_encoded, return_embeddings = True)"),
                 "img(img_x, context = encoded_encoded)"):
        assert f"\n{line}\n" in source, line
    assert_exported_composite_is_the_reference(spec)


def test_calls_run_producers_first_and_wrappers_come_after_them():
    """Components written consumer first are still called producer first; a component with
    `autoregressive:` keys is rebound to its wrapper after the calls, which ran the model."""
    decoder = {**CAPTION_DECODER, "autoregressive": {"mask_prob": 0.25}}
    spec = composite({"decoder": decoder, "encoder": VIT}, [{"from": "encoder", "to": "decoder.context"}])
    source = export_python(spec)
    assert source.endswith("\n\nencoded = encoder(img, return_embeddings = True)\n"
                           "decoder(x, context = encoded)\n\n"
                           "decoder = AutoregressiveWrapper(decoder, mask_prob = 0.25)\n")
    namespace = assert_exported_composite_is_the_reference(spec)
    assert_trainer(spec.components["decoder"], namespace["decoder"])


def test_a_bare_layer_producer_is_called_without_return_embeddings():
    spec = composite({"reader": layers("Encoder"), "decoder": CAPTION_DECODER},
                     [{"from": "reader", "to": "decoder.context"}])
    source = export_python(spec)
    assert "\nx = " not in source  # two `x`: each with its component's name
    assert "\nencoded = reader(reader_x)\ndecoder(decoder_x, context = encoded)\n" in source
    assert_exported_composite_is_the_reference(spec)


def test_a_conditioned_component_gets_a_condition():
    conditioned = {**CAPTION_DECODER, "attn_layers": {
        **CAPTION_DECODER["attn_layers"], "use_adaptive_layernorm": True, "dim_condition": 8}}
    spec = composite({"encoder": VIT, "decoder": conditioned},
                     [{"from": "encoder", "to": "decoder.context"}])
    source = export_python(spec)
    assert "\ncondition = torch.randn(1, 8)\n" in source
    assert "\ndecoder(x, context = encoded, condition = condition)\n" in source
    executed(source)


# -- the command -----------------------------------------------------------------------------------

def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_or_writes_the_code(capsys, tmp_path):
    gpt = str(ROOT / "examples" / "gpt.yaml")
    code, out, err = run(capsys, "export-python", gpt)
    assert (code, err) == (0, "") and out == export_python(xtc.load_spec(gpt))
    target = tmp_path / "gpt.py"
    code, printed, err = run(capsys, "export-python", gpt, "-o", str(target))
    assert (code, printed) == (0, "") and err == f"wrote {target}: {len(out.splitlines())} lines\n"
    assert target.read_text() == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt.py"]


def test_cli_refuses_a_rejected_spec_and_bad_output_paths(capsys, tmp_path):
    bad = str(ROOT / "tests" / "fixtures" / "invalid" / "typo.yaml")
    code, out, err = run(capsys, "export-python", bad, "-o", str(tmp_path / "out.py"))
    assert code == 1 and out == "" and "error[unknown-key]" in err
    assert list(tmp_path.iterdir()) == []
    gpt = str(ROOT / "examples" / "gpt.yaml")
    for output in (str(tmp_path), gpt, str(tmp_path / "missing" / "out.py")):
        code, out, err = run(capsys, "export-python", gpt, "-o", output)
        assert code == 2 and out == "" and err.startswith("xtc: error: output ")
    assert run(capsys, "export-python", str(tmp_path / "nothing.yaml"))[0] == 2
