"""`xtc import` (issue #46): x-transformers Python, read without running it, becomes specs whose
built models equal the models the Python builds (parity through convert_state_dict), with the
arguments' comments carried, composites from data flow, and located errors for everything else.

The snippets are written as x-transformers' README writes them (keyword arguments with spaces
around `=`, comments after arguments, several models, an encoder's output passed to a decoder),
with tiny sizes: the tests run each snippet themselves (trusted test code) to get the reference.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from conftest import ROOT
from features import FEATURES, feature_spec
from reference import assert_parity, reference_module
from test_export_python import CASES as EXPORT_CASES
from test_model_types import floats, tokens
from xtc.compiler import CHECKS
from xtc.compiler.explain import explain
from xtc.interop.python_export import export_python
from xtc.interop.python_import import import_python
from xtc.spec.diagnostics import ERROR

import xtc
from xtc.cli import main

GPT = """\
import torch
from x_transformers import TransformerWrapper, Decoder

device = 'cpu'

model = TransformerWrapper(
    num_tokens = 64,      # vocabulary
    max_seq_len = 16,
    attn_layers = Decoder(
        dim = 32,
        depth = 2,
        # two heads of 16
        heads = 2,
        attn_dim_head = 16,
        attn_flash = True,   # scaled_dot_product_attention
        ff_glu = True,
        rotary_pos_emb = True
    )
).to(device)
"""

CAPTIONER = """\
import torch
from x_transformers import ViTransformerWrapper, TransformerWrapper, Encoder, Decoder

encoder = ViTransformerWrapper(
    image_size = 16,
    patch_size = 4,
    attn_layers = Encoder(
        dim = 32,
        depth = 1,
        heads = 2
    )
)

decoder = TransformerWrapper(
    num_tokens = 64,
    max_seq_len = 16,
    attn_layers = Decoder(
        dim = 32,
        depth = 1,
        heads = 2,
        cross_attend = True
    )
)

img = torch.randn(1, 3, 16, 16)
caption = torch.randint(0, 64, (1, 16))

encoded = encoder(img, return_embeddings = True)
decoder(caption, context = encoded) # (1, 16, 64)
"""

PALI = """\
import torch
import x_transformers as xt

dim = 32

vit = xt.ViTransformerWrapper(
    image_size = 16,
    patch_size = 8,
    attn_layers = xt.Encoder(dim = dim, depth = 1, heads = 2)
)

pali = xt.XTransformer(
    dim = dim,
    enc_num_tokens = 64,
    enc_depth = 1,
    enc_heads = 2,
    enc_max_seq_len = 16,
    enc_attn_dim_head = dim // 2,
    dec_num_tokens = 64,
    dec_depth = 1,
    dec_heads = 2,
    dec_max_seq_len = 16,
    dec_ff_mult = 2
)

img = torch.randn(1, 3, 16, 16)
prompt = torch.randint(0, 64, (1, 12))
output_text = torch.randint(0, 64, (1, 16))

img_embeds = vit(
    img,
    return_embeddings = True
)

loss = pali(
    prompt,
    output_text,
    src_prepend_embeds = img_embeds    # image embeddings before the prompt
)
"""

TRAINED = """\
from x_transformers import TransformerWrapper, Decoder, AutoregressiveWrapper

layers = Decoder(dim = 32, depth = 1, heads = 2)
model = TransformerWrapper(num_tokens = 64, max_seq_len = 16, attn_layers = layers)
model = AutoregressiveWrapper(model, ignore_index = 0, mask_prob = 0.25)
"""


def imported(source: str, path: str = "snippet.py"):
    specs, problems = import_python(source.encode(), path, CHECKS)
    assert [d.render() for d in problems if d.severity == ERROR] == []
    return specs


def problems_of(source: str, path: str = "bad.py") -> list[str]:
    specs, problems = import_python(textwrap.dedent(source).encode(), path, CHECKS)
    assert specs == []
    return [d.render() for d in problems if d.severity == ERROR]


def run_snippet(source: str) -> dict:
    """The test runs the snippet itself to get the reference models (xtc never does)."""
    namespace: dict = {}
    exec(compile(source, "snippet.py", "exec"), namespace)  # noqa: S102 - trusted test code
    return namespace


def test_a_readme_decoder_imports_to_a_spec_whose_model_is_the_reference():
    (imported_spec,) = imported(GPT)
    spec = imported_spec.spec
    assert spec.name == "model"
    layers = spec.model.children["attn_layers"]
    assert dict(layers.section("attn"))["flash"] is True and layers["rotary_pos_emb"] is True
    assert_parity(spec, tokens(), reference=run_snippet(GPT)["model"])


def test_comments_after_and_above_arguments_are_carried_into_the_yaml():
    (spec,) = imported(GPT)
    lines = spec.text.splitlines()
    assert "  num_tokens: 64  # vocabulary" in lines
    assert lines[lines.index("    heads: 2") - 1] == "    # two heads of 16"
    assert "      flash: true  # scaled_dot_product_attention" in lines


def test_an_encoder_output_passed_to_a_decoder_makes_one_composite():
    (imported_spec,) = imported(CAPTIONER, "captioner.py")
    spec = imported_spec.spec
    assert spec.name == "captioner" and list(spec.components) == ["encoder", "decoder"]
    assert [(c.source, c.target, c.argument) for c in spec.connections] == [
        ("encoder", "decoder", "context")]
    namespace = run_snippet(CAPTIONER)
    reference = torch.nn.ModuleDict({"encoder": namespace["encoder"], "decoder": namespace["decoder"]})
    reference.forward = lambda img, x: reference["decoder"](
        x, context=reference["encoder"](img, return_embeddings=True))
    assert_parity(spec, floats(2, 3, 16, 16), tokens(), reference=reference)


def test_pali_through_a_module_alias_with_bound_values():
    (imported_spec,) = imported(PALI, "pali.py")
    spec = imported_spec.spec
    assert [(c.source, c.target, c.argument) for c in spec.connections] == [
        ("vit", "pali", "src_prepend_embeds")]
    pali = spec.components["pali"]
    assert pali.children["encoder"].section("attn")["dim_head"] == 16
    assert pali.children["decoder"].section("ff")["mult"] == 2
    namespace = run_snippet(PALI)
    for name in ("vit", "pali"):
        component = spec.components[name]
        inputs = (floats(2, 3, 16, 16),) if name == "vit" else (tokens(), tokens())
        assert_parity(xtc.Spec(name=name, version=1, path="", sha256="", model=component), *inputs,
                      reference=namespace[name])
    assert type(reference_module(pali)) is type(namespace["pali"])


def test_a_training_wrapper_writes_autoregressive_and_bound_layers_join_their_wrapper():
    (imported_spec,) = imported(TRAINED)
    model = imported_spec.spec.model
    assert model.trainer == "AutoregressiveWrapper"
    assert {k: model.training[k] for k in model.training_given} == {"ignore_index": 0,
                                                                     "mask_prob": 0.25}
    wrapper = run_snippet(TRAINED)["model"]
    assert (wrapper.ignore_index, wrapper.mask_prob) == (0, 0.25)
    assert_parity(imported_spec.spec, tokens(), reference=wrapper.net)
    assert "autoregressive:\n    ignore_index: 0\n    mask_prob: 0.25\n" in imported_spec.text


MORE_README_MODELS = {  # variable -> (source, inputs of its forward)
    "seq2seq": ("""\
        from x_transformers import XTransformer

        seq2seq = XTransformer(
            dim = 32,
            enc_num_tokens = 64,
            enc_depth = 1,
            enc_heads = 2,
            enc_max_seq_len = 16,
            dec_num_tokens = 64,
            dec_depth = 1,
            dec_heads = 2,
            dec_max_seq_len = 16,
            tie_token_emb = True      # tie embeddings of encoder and decoder
        )
        """, lambda: (tokens(), tokens())),
    "continuous": ("""\
        from x_transformers import ContinuousTransformerWrapper, Decoder

        continuous = ContinuousTransformerWrapper(
            dim_in = 8,
            dim_out = 4,
            max_seq_len = 16,
            attn_layers = Decoder(dim = 32, depth = 1, heads = 2, attn_kv_heads = 1)
        )
        """, lambda: (floats(2, 10, 8),)),
    "prefix_lm": ("""\
        import x_transformers

        prefix_lm = x_transformers.TransformerWrapper(
            num_tokens = 64,
            max_seq_len = 16,
            attn_layers = x_transformers.PrefixDecoder(dim = 32, depth = 1, heads = 2,
                                                       ff_mult = 3 / 2 * 2, attn_dim_head = 2 * 8)
        ).eval()
        """, lambda: (tokens(),)),
    "xl": ("""\
        from x_transformers import TransformerWrapper, Decoder, XLAutoregressiveWrapper

        xl = TransformerWrapper(num_tokens = 64, max_seq_len = 8, max_mem_len = 8,
                                attn_layers = Decoder(dim = 32, depth = 1, heads = 2,
                                                      rel_pos_bias = True))
        xl = XLAutoregressiveWrapper(xl, ignore_index = -1)
        """, lambda: (tokens(length=8),)),
}


@pytest.mark.parametrize("variable", sorted(MORE_README_MODELS))
def test_more_readme_models_import_to_their_reference(variable):
    source, inputs = MORE_README_MODELS[variable]
    source = textwrap.dedent(source)
    (imported_spec,) = imported(source)
    reference = run_snippet(source)[variable]
    assert imported_spec.name == variable
    assert_parity(imported_spec.spec, *inputs(), reference=getattr(reference, "net", reference))


def test_models_without_data_flow_are_specs_of_their_own():
    source = GPT + "\nencoder = TransformerWrapper(num_tokens = 8, max_seq_len = 4,\n" \
                   "    attn_layers = Encoder(dim = 16, depth = 1, heads = 2))\n"
    source = source.replace("import TransformerWrapper, Decoder", "import TransformerWrapper, Decoder, Encoder")
    assert [s.name for s in imported(source)] == ["model", "encoder"]


def test_names_come_from_variables_and_files_and_are_always_valid():
    source = "from x_transformers import Encoder\nMyEncoder = Encoder(dim = 16, depth = 1)\n" \
             "tensor = Encoder(dim = 16, depth = 1)\n"
    assert [s.name for s in imported(source)] == ["my_encoder", "tensor_model"]
    (spec,) = imported("from x_transformers import Encoder\nEncoder(dim = 16, depth = 1)\n",
                       "2-layer model.py")
    assert spec.name == "model_2_layer_model"


def test_a_model_moved_to_a_device_keeps_its_connections():
    source = CAPTIONER.replace("img = torch.randn", "encoder = encoder.to('cpu').eval()\nimg = torch.randn")
    source = source.replace("from x_transformers import", "from x_transformers import xval\nfrom x_transformers import")
    (imported_spec,) = imported(source, "captioner.py")
    assert [c.source for c in imported_spec.spec.connections] == ["encoder"]


def test_comments_lose_the_control_characters_a_spec_may_not_hold():
    (spec,) = imported("from x_transformers import Encoder\nm = Encoder(dim = 16,  # wide\x1b[31m\n"
                       "    depth = 1)\n")
    assert "  dim: 16  # wide[31m" in spec.text.splitlines()


# -- located errors ---------------------------------------------------------------------------


def test_what_is_not_a_literal_is_a_located_error_naming_the_argument():
    found = problems_of("""\
        from x_transformers import TransformerWrapper, Decoder
        model = TransformerWrapper(
            num_tokens = len(vocab),
            max_seq_len = 16,
            attn_layers = Decoder(dim = 32, depth = 1, attn_dropout = (lambda: 0.1))
        )
        """)
    assert found[0].startswith("bad.py:3:18: error[import-not-a-literal] model.num_tokens: ")
    assert "function call" in found[0]
    assert found[1].startswith("bad.py:5:64: error[import-not-a-literal] "
                               "model.attn_layers.attn.dropout: `attn_dropout`: ")
    assert len(found) == 2  # the refused num_tokens is not also "missing"


def test_keywords_are_checked_as_validate_checks_them_at_their_python_lines():
    found = problems_of("""\
        from x_transformers import TransformerWrapper, Decoder, AutoregressiveWrapper
        model = TransformerWrapper(
            num_tokens = 64,
            max_seq_len = 16,
            attn_layers = Decoder(dim = 32, depth = 1, attn_flsh = True)
        )
        model = AutoregressiveWrapper(model, mask_prob = 1.5)
        """)
    assert found[0].startswith("bad.py:5:48: error[unknown-key] model.attn_layers.attn.flsh: "
                               "`attn_flsh`: unknown key 'flsh'")
    assert "did you mean 'flash'" in found[0]
    assert found[1].startswith("bad.py:7:38: error[out-of-range] model.autoregressive.mask_prob")


REFUSALS = [  # (source, where, code)
    ("""\
     from x_transformers import Decoder
     m = Decoder(32, depth = 1)
     """, "2:13", "import-positional"),
    ("""\
     from x_transformers import Decoder
     m = Decoder(**options)
     """, "2:13", "import-not-a-literal"),
    ("""\
     from x_transformers import NonAutoregressiveWrapper
     m = NonAutoregressiveWrapper(net)
     """, "2:5", "import-unsupported-class"),
    ("""\
     from x_transformers import Encoder
     def make():
         return Encoder(dim = 8, depth = 1)
     """, "3:12", "import-model-not-at-top-level"),
    ("""\
     from x_transformers import TransformerWrapper, Encoder, AutoregressiveWrapper
     m = TransformerWrapper(num_tokens = 8, max_seq_len = 4,
         attn_layers = Encoder(dim = 8, depth = 1))
     m = AutoregressiveWrapper(m)
     """, "4:5", "import-wrong-trainer"),
    ("""\
     from x_transformers import TransformerWrapper, Encoder, Decoder
     e = TransformerWrapper(num_tokens = 8, max_seq_len = 4, attn_layers = Encoder(dim = 8, depth = 1))
     d = TransformerWrapper(num_tokens = 8, max_seq_len = 4,
         attn_layers = Decoder(dim = 8, depth = 1, cross_attend = True))
     d(x, context = e(y))
     """, "5:16", "import-connection-without-embeddings"),
    ("""\
     from x_transformers import TransformerWrapper, Encoder
     layers = Encoder(dim = 8, depth = 1)
     a = TransformerWrapper(num_tokens = 8, max_seq_len = 4, attn_layers = layers)
     b = TransformerWrapper(num_tokens = 8, max_seq_len = 4, attn_layers = layers)
     """, "4:57", "import-shared-layers"),
    ("""\
     import torch
     x = torch.zeros(3)
     """, "1:1", "import-no-model"),
    ("""\
     from x_transformers import Decoder
     m = Decoder(dim = 8, depth = 1
     """, "2:12", "python-syntax"),
]


@pytest.mark.parametrize(("source", "where", "code"), REFUSALS)
def test_each_refusal_is_located(source, where, code):
    found = problems_of(source)
    assert any(f"bad.py:{where}: error[{code}]" in line for line in found), found


# -- the command ------------------------------------------------------------------------------


def test_the_command_writes_one_spec_that_validates(tmp_path, capsys):
    (tmp_path / "gpt.py").write_text(GPT)
    assert main(["import", str(tmp_path / "gpt.py"), "-o", str(tmp_path / "gpt.yaml")]) == 0
    assert main(["validate", str(tmp_path / "gpt.yaml")]) == 0
    assert xtc.load_spec(tmp_path / "gpt.yaml").name == "model"


def test_several_specs_go_to_stdout_as_a_stream_or_into_a_folder(tmp_path, capsys):
    source = GPT + "\nother = TransformerWrapper(num_tokens = 8, max_seq_len = 4,\n" \
                   "    attn_layers = Decoder(dim = 16, depth = 1, heads = 2))\n"
    (tmp_path / "two.py").write_text(source)
    assert main(["import", str(tmp_path / "two.py")]) == 0
    assert capsys.readouterr().out.count("\n---\n") == 1
    assert main(["import", str(tmp_path / "two.py"), "-o", str(tmp_path / "specs")]) == 0
    assert sorted(p.name for p in (tmp_path / "specs").iterdir()) == ["model.yaml", "other.yaml"]
    assert main(["import", str(tmp_path / "two.py"), "--model", "other"]) == 0
    assert "name: other" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "two.py"), "--model", "nope"]) == 2


def test_a_rejected_file_writes_nothing_and_exits_1(tmp_path, capsys):
    (tmp_path / "bad.py").write_text("from x_transformers import Decoder\nm = Decoder(dim = f(1))\n")
    (tmp_path / "out.yaml").write_text("kept")
    assert main(["import", str(tmp_path / "bad.py"), "-o", str(tmp_path / "out.yaml")]) == 1
    assert (tmp_path / "out.yaml").read_text() == "kept"
    assert "bad.py:2:19: error[import-not-a-literal]" in capsys.readouterr().err


def test_a_missing_or_oversized_file_is_a_usage_error(tmp_path):
    assert main(["import", str(tmp_path / "missing.py")]) == 2
    (tmp_path / "big.py").write_text("x = 1\n" * 50_000)
    assert main(["import", str(tmp_path / "big.py")]) == 2


# -- export, then import: the same spec --------------------------------------------------------

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def assert_round_trip(spec: xtc.Spec) -> None:
    """export-python, then import (from a file named after the spec, which names a composite):
    equal `xtc explain` output, every keyword of every module with its value."""
    (back,) = imported(export_python(spec), f"{spec.name}.py")
    assert explain(back.spec) == explain(spec)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_exported_imports_back_to_itself(path):
    assert_round_trip(xtc.load_spec(path))


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_each_exported_mapping_imports_back(case):
    assert_round_trip(EXPORT_CASES[case]())


@pytest.mark.slow
def test_every_feature_row_exported_imports_back():
    for row in FEATURES:
        for kind in row.kinds:
            assert_round_trip(feature_spec(row, kind, False))
