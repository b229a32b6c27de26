"""xtc's extensions, keywords beyond x-transformers (spec/extensions.py): `norm_eps`, Hugging
Face's epsilon inside the RMSNorm's root, end to end.

x-transformers cannot be the oracle for what it cannot express: the norm is compared with HF's
formula written here from the math, and a model with norm_eps with the reference without it,
by the size of the change the epsilon makes. Without norm_eps, parity with the reference is
the feature matrix's (its rmsnorm rows).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml
from reference import TOLERANCE, paired_models
from xtc.compiler import compile_graph
from xtc.compiler.diff_format import render
from xtc.compiler.inspection import inspect
from xtc.compiler.spec_diff import spec_diff
from xtc.interop.python_import import import_python
from xtc.spec import SpecError
from xtc.spec.json_schema import spec_schema
from xtc.spec.keywords import keyword_table

import xtc
from xtc import cli

NORM_EPS_LINE = 14  # where llama_text writes it


def llama_text(norm_eps: float | None = None) -> str:
    """A tiny Llama-shaped language model, as `xtc import-hf` writes one."""
    stack = {"type": "Decoder", "dim": 32, "depth": 2, "heads": 4, "use_rmsnorm": True,
             **({"norm_eps": norm_eps} if norm_eps is not None else {}),
             "norm_add_unit_offset": False, "rotary_pos_emb": True,
             "attn": {"dim_head": 8, "kv_heads": 2}, "ff": {"glu": True, "swish": True}}
    model = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 32,
             "use_abs_pos_emb": False, "attn_layers": stack}
    return yaml.safe_dump({"xtc": 1, "name": "tiny_llama", "model": model}, sort_keys=False)


def hf_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Hugging Face's LlamaRMSNorm, from its definition: the mean of squares and the inverse
    root in float32, the normalised input cast back to its dtype, then the gain."""
    x32 = x.to(torch.float32)
    variance = x32.pow(2).mean(-1, keepdim=True)
    return weight * (x32 * torch.rsqrt(variance + eps)).to(x.dtype)


# -- the norm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_emitted_norm_is_hugging_faces(dtype):
    model = xtc.build(xtc.loads_spec(llama_text(norm_eps=1e-5))).to(dtype)
    norms = [model.norm, *(module for name, module in model.named_modules()
                           if name.endswith(("attn_norm", "ff_norm")))]
    assert len(norms) == 5 and {type(norm).__name__ for norm in norms} == {"EpsRMSNorm"}
    torch.manual_seed(0)
    x = torch.randn(2, 7, 32).to(dtype) * 0.3
    with torch.no_grad():
        model.norm.weight.normal_(1.0, 0.2)
        out = model.norm(x)
    assert out.dtype == dtype
    assert torch.equal(out, hf_rms_norm(x, model.norm.weight, 1e-5))
    exact = x.double() / torch.sqrt(x.double().square().mean(-1, keepdim=True) + 1e-5)
    tolerance = 1e-6 if dtype == torch.float32 else 2e-2
    assert torch.allclose(out.double(), exact * model.norm.weight.double(), rtol=tolerance,
                          atol=tolerance)


def test_the_epsilon_changes_a_norm_by_eps_over_twice_the_mean_square():
    norm = xtc.build(xtc.loads_spec(llama_text(norm_eps=1e-4))).norm
    x = torch.randn(4, 32, dtype=torch.float64).float()
    x = x / x.square().mean(-1, keepdim=True).sqrt()  # mean(x^2) = 1
    with torch.no_grad():
        relative = 1 - norm(x) / (x * 32**0.5 / x.norm(dim=-1, keepdim=True))
    assert torch.allclose(relative, torch.full_like(relative, 1e-4 / 2), rtol=1e-2, atol=0)


# -- the model --------------------------------------------------------------------------------


def with_norm_eps(eps: float, reference: torch.nn.Module) -> tuple[torch.nn.Module, list]:
    """xtc's tiny Llama with norm_eps and the reference's weights, converted by the rules of the
    spec with it, and a list that each forward fills with the mean square of every norm's
    input."""
    spec = xtc.loads_spec(llama_text(norm_eps=eps))
    model = xtc.build(spec).eval()
    # norm_eps adds no parameter and renames none: the reference's weights load as they are
    model.load_state_dict(xtc.convert_state_dict(spec, reference.state_dict()), strict=True)
    squares: list[torch.Tensor] = []
    for module in model.modules():
        if type(module).__name__ == "EpsRMSNorm":
            module.register_forward_hook(
                lambda _, inputs, __: squares.append(inputs[0].square().mean(-1)))
    return model, squares


def test_norm_eps_moves_logits_by_the_epsilon_and_no_more():
    """Against the reference without norm_eps, the weights converted as ever: the relative
    change of the logits is of the order of eps / (2 mean(x^2)) at the norms (each norm's
    output moves by that much), grows tenfold from eps 1e-6 to 1e-5, and vanishes at 1e-12."""
    reference, ours = paired_models(xtc.loads_spec(llama_text()))
    tokens = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(0))
    changes = {}
    with torch.no_grad():
        expected = reference(tokens)
        assert torch.allclose(ours(tokens), expected, **TOLERANCE)
        for eps in (1e-12, 1e-6, 1e-5):
            model, squares = with_norm_eps(eps, reference)
            changes[eps] = ((model(tokens) - expected).abs().max() / expected.abs().max()).item()
            predicted = max((eps / (2 * square)).max().item() for square in squares)
            if eps > 1e-12:
                assert predicted / 10 < changes[eps] < predicted * 10, (eps, changes[eps], predicted)
    assert changes[1e-12] < 1e-5  # the same norm: x-transformers' RMSNorm to float rounding
    assert 8 < changes[1e-5] / changes[1e-6] < 12


def test_norm_eps_reaches_an_xtransformer_side_alone():
    text = yaml.safe_dump({"xtc": 1, "name": "seq2seq", "model": {
        "type": "XTransformer", "dim": 32,
        "encoder": {"num_tokens": 16, "max_seq_len": 8, "depth": 1, "heads": 2},
        "decoder": {"num_tokens": 16, "max_seq_len": 8, "depth": 1, "heads": 2,
                    "use_rmsnorm": True, "norm_eps": 1e-6}}}, sort_keys=False)
    model = xtc.build(xtc.loads_spec(text))
    norms = {name: type(module).__name__ for name, module in model.named_modules()
             if name.endswith("norm")}
    assert {kind for name, kind in norms.items() if name.startswith("decoder")} == {"EpsRMSNorm"}
    assert "EpsRMSNorm" not in {kind for name, kind in norms.items() if name.startswith("encoder")}


# -- the emitted code -------------------------------------------------------------------------


def test_the_emitted_code_names_the_epsilon_once_and_only_where_set():
    source = xtc.compile(xtc.loads_spec(llama_text(norm_eps=1e-6)))
    assert "    norm_eps: float = 1e-06  # inside the RMSNorms' root (an xtc extension)" in source
    assert "from xtc.runtime.norms import EpsRMSNorm\n" in source
    assert source.count("EpsRMSNorm(config.dim, config.norm_eps)") == 3  # attn, ff, final
    plain = xtc.compile(xtc.loads_spec(llama_text()))
    assert not re.search(r"norm_eps|EpsRMSNorm", plain)
    written_null = xtc.compile(xtc.loads_spec(llama_text().replace(
        "use_rmsnorm: true", "use_rmsnorm: true\n    norm_eps: null")))
    assert written_null.splitlines()[2:] == plain.splitlines()[2:]  # but the banner's hash


def test_standalone_copies_the_one_norm_it_uses():
    source = xtc.compile(xtc.loads_spec(llama_text(norm_eps=1e-6)), standalone=True)
    assert "class EpsRMSNorm(nn.Module):" in source and "class RMSNorm(" not in source


# -- the spec language ------------------------------------------------------------------------


def test_the_keyword_table_keeps_extensions_apart_from_the_reference():
    table = keyword_table()
    assert "norm_eps" not in table.classes["AttentionLayers"]  # the reference's, signature-checked
    for keywords in (table.layers("Decoder"), table.side("decoder"), table.side("encoder")):
        kw = keywords["norm_eps"]
        assert (kw.types, kw.default, kw.nullable) == (("float",), None, True)
        assert "rms_norm_eps" in kw.extension
    assert table.extension("Encoder", "norm_eps") is kw
    assert table.extension("Decoder", "use_rmsnorm") is None
    assert table.extension("Decoder", "norm_eps", "attn") is None


@pytest.mark.parametrize("value, problem", [
    (1e-6, None), (1, None), (0, "out-of-range"), (-1e-6, "out-of-range"),
    (".inf", "invalid-scalar"), ("'1e-6'", "expected-type"), ("[1.0e-6, 1.0e-6]", "expected-type")])
def test_norm_eps_is_a_positive_finite_number(value, problem):
    text = llama_text().replace("use_rmsnorm: true", f"use_rmsnorm: true\n    norm_eps: {value}")
    if problem is None:
        xtc.loads_spec(text)
        return
    with pytest.raises(SpecError) as raised:
        xtc.loads_spec(text)
    assert [(d.key, d.code) for d in raised.value.diagnostics if d.severity == "error"] == \
        [("model.attn_layers.norm_eps", problem)]


def test_norm_eps_on_another_norm_is_refused_where_it_is_written(capsys, tmp_path):
    path = tmp_path / "layernorm.yaml"
    path.write_text(llama_text(norm_eps=1e-6).replace("use_rmsnorm: true", "use_scalenorm: true"))
    assert cli.main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert (f"{path}:{NORM_EPS_LINE}:5: error[norm-eps-needs-rmsnorm] model.attn_layers.norm_eps: norm_eps "
            "(an xtc extension) is the epsilon of RMSNorm (use_rmsnorm: true) only; this stack's "
            "norm is ScaleNorm (use_scalenorm)") in err


def test_the_schema_says_x_transformers_lacks_it():
    definitions = spec_schema()["definitions"]
    for place in ("Decoder", "Encoder", "XTransformer.decoder"):
        entry = definitions[place]["properties"]["norm_eps"]
        assert entry["description"].startswith(
            "norm_eps: an xtc extension, which x-transformers lacks: every RMSNorm")
        assert entry["anyOf"] == [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]


def test_explain_marks_it_as_an_extension():
    marked = "an xtc extension: x-transformers has no such keyword"
    assert f"    norm_eps: 1.0e-06  # {marked}" in xtc.explain(xtc.loads_spec(llama_text(1e-6)))
    assert f"    norm_eps: null  # default; {marked}" in xtc.explain(xtc.loads_spec(llama_text()))


def test_inspect_and_diff_see_no_parameter_change():
    before = xtc.loads_spec(llama_text(), path="a.yaml")
    after = xtc.loads_spec(llama_text(norm_eps=1e-5), path="b.yaml")
    figures = [inspect(spec, compile_graph(spec)) for spec in (before, after)]
    assert figures[0].parameters == figures[1].parameters
    text = render(spec_diff(before, compile_graph(before), after, compile_graph(after)), "text")
    assert "  model.attn_layers.norm_eps: null (default) -> 1.0e-05" in text
    assert re.search(r"  parameters +([0-9,]+) -> +\1  unchanged", text)
    assert "state dict: a checkpoint of a.yaml loads into b.yaml: the same keys and shapes" in text


# -- x-transformers code, both ways ----------------------------------------------------------


def test_export_python_refuses_it_where_it_is_written(capsys, tmp_path):
    path = tmp_path / "llama.yaml"
    path.write_text(llama_text(norm_eps=1e-6))
    assert cli.main(["export-python", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert (f"{path}:{NORM_EPS_LINE}:5: error[export-extension] model.attn_layers.norm_eps: norm_eps is an "
            "xtc extension, a keyword x-transformers does not have") in err
    with pytest.raises(SpecError) as raised:
        xtc.export_python(xtc.loads_spec(llama_text(norm_eps=1e-6)))
    assert [d.code for d in raised.value.diagnostics] == ["export-extension"]


def test_export_python_leaves_out_norm_eps_written_as_null():
    """`xtc explain` writes `norm_eps: null`; its export builds in x-transformers."""
    explained = xtc.loads_spec(xtc.explain(xtc.loads_spec(llama_text())))
    source = xtc.export_python(explained)
    assert "norm_eps" not in source
    namespace: dict = {}
    exec(compile(source, "<exported>", "exec"), namespace)  # noqa: S102 - our own export
    assert type(namespace["tiny_llama"].net).__name__ == "TransformerWrapper"


@pytest.mark.parametrize("call, key", [
    ("Decoder(dim = 32, depth = 1, heads = 2, use_rmsnorm = True, norm_eps = 1e-6)",
     "model.norm_eps"),
    (("TransformerWrapper(num_tokens = 64, max_seq_len = 32, attn_layers = Decoder(\n"
     "    dim = 32, depth = 1, heads = 2, use_rmsnorm = True, norm_eps = 1e-6))"),
     "model.attn_layers.norm_eps"),
    (("XTransformer(dim = 32, enc_num_tokens = 16, enc_max_seq_len = 8, enc_depth = 1,\n"
     "    enc_heads = 2, dec_num_tokens = 16, dec_max_seq_len = 8, dec_depth = 1, dec_heads = 2,\n"
     "    dec_norm_eps = 1e-6)"), "model.decoder.norm_eps")])
def test_import_refuses_it_as_a_keyword_x_transformers_lacks(call, key):
    source = f"from x_transformers import *\n\nmodel = {call}\n"
    specs, problems = import_python(source.encode(), "model.py")
    assert specs == []
    assert [(d.key, d.code) for d in problems] == [(key, "import-extension")]
    assert "has no keyword" in problems[0].message and "an xtc extension" in problems[0].message
    assert problems[0].line == source[:source.index("norm_eps")].count("\n") + 1


def test_the_reference_refuses_it_too():
    from x_transformers import Decoder

    with pytest.raises(AssertionError, match="unrecognized kwargs"):
        Decoder(dim=32, depth=1, heads=2, use_rmsnorm=True, norm_eps=1e-6)


def test_json_schema_validates_a_spec_with_it():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(json.loads(json.dumps(spec_schema())))
    assert not list(validator.iter_errors(yaml.safe_load(llama_text(norm_eps=1e-6))))
    assert list(validator.iter_errors(yaml.safe_load(llama_text(norm_eps=-1.0))))
