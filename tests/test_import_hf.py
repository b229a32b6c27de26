"""`xtc import-hf`: a Hugging Face Llama-family config.json becomes a spec, field by field, and
what a spec cannot say is an error at its line in config.json.

The configs under tests/fixtures/hf/ are those of released models (Llama 2 7B, Mistral 7B,
TinyLlama, SmolLM 135M, Llama 3.1 8B, Qwen2 0.5B), as their repositories publish them. The
weights and the parity with HF's own forward are tests/test_hf_parity.py's.
"""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES
from xtc.interop.hf_config import exact_multiplier, import_hf

import xtc
from xtc import cli

HF = FIXTURES / "hf"

# Parameter counts of the released models, as HF counts them (model.num_parameters()).
RELEASED = {"llama_2_7b": 6_738_415_616, "mistral_7b": 7_241_732_096,
            "tinyllama": 1_100_048_384, "smollm_135m": 134_515_008}


def imported(config: dict | str, tmp_path, name: str = "model"):
    """import_hf on a config given as a dict (written as JSON) or as the text of config.json."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    (folder / "config.json").write_text(text)
    return import_hf(str(folder), text.encode(), xtc.api.CHECKS)


def llama(**fields) -> dict:
    """A small Llama config as transformers 4 writes it; fields replace or (None) remove."""
    config = json.loads((HF / "tinyllama" / "config.json").read_text())
    config.update(hidden_size=64, intermediate_size=176, num_attention_heads=4,
                  num_key_value_heads=2, num_hidden_layers=2, vocab_size=128,
                  max_position_embeddings=64)
    config.update(fields)
    return {k: v for k, v in config.items() if v is not None}


def hf_parameter_count(config: dict) -> int:
    """What HF's LlamaForCausalLM holds, from the config: embeddings, per layer q, k, v, o,
    gate, up, down and two norms, the final norm, and the head unless it is tied."""
    dim, inner, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head_dim = dim // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim
    layer = dim * dim * 2 + dim * kv * 2 + 3 * dim * inner + 2 * dim
    head = 0 if config.get("tie_word_embeddings") else vocab * dim
    return vocab * dim + config["num_hidden_layers"] * layer + dim + head


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_models_import_with_their_parameter_counts(name):
    """The spec's model holds what HF's does, plus the zero bias x-transformers' GLU
    projection always has (2 * intermediate_size per layer)."""
    config = json.loads((HF / name / "config.json").read_text())
    spec = xtc.import_hf(HF / name)
    glu_biases = config["num_hidden_layers"] * 2 * config["intermediate_size"]
    assert hf_parameter_count(config) == RELEASED[name]
    assert xtc.inspect(spec)["parameters"]["total"] == RELEASED[name] + glu_biases


def test_the_spec_says_each_field_beside_its_key(tmp_path):
    spec, problems = imported(llama(rope_theta=500000.0), tmp_path, "tiny-llama")
    assert problems == []
    assert spec.name == "tiny_llama"
    layers = spec.spec.model.children["attn_layers"]
    assert (layers["dim"], layers["depth"], layers["heads"], layers["norm_eps"]) == (64, 2, 4, 1e-5)
    assert layers.section("attn")["kv_heads"] == 2
    assert layers.section("ff")["mult"] == 2.75
    assert "    dim: 64  # hidden_size\n" in spec.text
    assert "      kv_heads: 2  # num_key_value_heads\n" in spec.text
    assert "# rope_theta: base 500000\n" in spec.text
    assert "description: 'LlamaForCausalLM; weights in bfloat16; token ids: bos 1, eos 2'" in spec.text


@pytest.mark.parametrize("where", ["top level", "rope_parameters"])
def test_rope_theta_is_the_reference_base_rescaled(where, tmp_path):
    """transformers 4 writes rope_theta at the top level, transformers 5 in rope_parameters."""
    fields = ({"rope_theta": 500000.0} if where == "top level" else
              {"rope_theta": None, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}})
    spec, problems = imported(llama(**fields), tmp_path)
    assert problems == []
    factor = spec.spec.model.children["attn_layers"]["rotary_base_rescale_factor"]
    head_dim = 16
    assert factor == (500000.0 / 10000) ** ((head_dim - 2) / head_dim)
    assert 10000 * factor ** (head_dim / (head_dim - 2)) == pytest.approx(500000.0, rel=1e-12)


def test_theta_10000_is_the_reference_default(tmp_path):
    spec, _ = imported(llama(rope_theta=10000.0), tmp_path)
    assert "rotary_base_rescale_factor" not in spec.text


def test_mistral_sliding_window_is_max_attend_past_one_less(tmp_path):
    config = llama(model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=8)
    spec, problems = imported(config, tmp_path)
    assert problems == []
    assert spec.spec.model.children["attn_layers"].section("attn")["max_attend_past"] == 7


def test_tied_embeddings_are_not_scaled(tmp_path):
    spec, _ = imported(llama(tie_word_embeddings=True), tmp_path)
    assert (spec.spec.model["tie_embedding"], spec.spec.model["tie_embedding_scale"]) == (True, 1.0)


@pytest.mark.parametrize(("inner", "dim"), [(176, 64), (1536, 576), (5632, 2048), (11008, 4096),
                                           (14336, 4096), (8192, 3072), (2816, 1024),
                                           (960, 704), (3392, 1216)])
def test_the_feedforward_multiplier_gives_intermediate_size_exactly(inner, dim):
    assert int(dim * exact_multiplier(inner, dim)) == inner


def located(problems) -> list[str]:
    return [d.render().split(": ", 1)[0] + " " + d.code for d in problems]


@pytest.mark.parametrize(("fields", "line", "code"), [
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope_scaling", "hf-not-expressible"),
    ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_scaling", "hf-not-expressible"),
    ({"rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4}}, "rope_parameters",
     "hf-not-expressible"),
    ({"attention_bias": True}, "attention_bias", "hf-not-expressible"),
    ({"mlp_bias": True}, "mlp_bias", "hf-not-expressible"),
    ({"hidden_act": "gelu"}, "hidden_act", "hf-not-expressible"),
    ({"auto_map": {"AutoModelForCausalLM": "modeling.MyModel"}}, "auto_map", "hf-remote-code"),
    ({"model_type": "qwen2"}, "model_type", "hf-unsupported-architecture"),
    ({"architectures": ["LlamaForSequenceClassification"]}, "architectures",
     "hf-unsupported-architecture"),
    ({"hidden_size": -64}, "hidden_size", "hf-bad-value"),
    ({"rms_norm_eps": "1e-5"}, "rms_norm_eps", "hf-bad-value"),
    ({"num_key_value_heads": 3}, "num_key_value_heads", "hf-bad-value"),
    ({"sliding_window": 0, "model_type": "mistral", "architectures": ["MistralForCausalLM"]},
     "sliding_window", "hf-bad-value"),
    ({"vocab_size": None}, None, "hf-missing-field"),
])
def test_what_a_spec_cannot_say_is_an_error_at_its_field(fields, line, code, tmp_path):
    config = llama(**fields)
    text = json.dumps(config, indent=2)
    spec, problems = imported(text, tmp_path)
    assert spec is None
    errors = [d for d in problems if d.severity == "error"]
    assert [d.code for d in errors] == [code]
    expected_line = (next(i for i, row in enumerate(text.splitlines(), 1) if f'"{line}"' in row)
                     if line else 1)
    assert (errors[0].line, errors[0].col) == (expected_line, 3 if line else 1)
    assert errors[0].path.endswith("config.json")


def test_every_problem_is_reported_together(tmp_path):
    _, problems = imported(llama(attention_bias=True, hidden_act="gelu", mlp_bias=True), tmp_path)
    assert sorted(d.key for d in problems) == ["attention_bias", "hidden_act", "mlp_bias"]


def test_an_unknown_field_is_a_warning_at_its_line(tmp_path):
    spec, problems = imported(llama(quantization_config={"bits": 4}), tmp_path)
    assert spec is not None
    assert [(d.code, d.severity, d.key) for d in problems] == [
        ("hf-unknown-field", "warning", "quantization_config")]


@pytest.mark.parametrize(("text", "where"), [
    ('{"hidden_size": 64,\n "vocab_size" 128}', "1:0"),
    ('{"hidden_size": 64, "hidden_size": 65}', "dup"),
    ("[1, 2]", "top"),
    ('{"a": ' * 40 + "1" + "}" * 40, "deep"),
])
def test_config_that_is_not_json_is_located(text, where, tmp_path):
    spec, problems = imported(text, tmp_path)
    assert spec is None and problems
    assert problems[0].code in ("hf-invalid-json", "hf-duplicate-field")
    if where == "1:0":
        assert (problems[0].line, problems[0].col) == (2, 15)


def test_the_cli_writes_the_spec_and_refuses_to_download(tmp_path, capsys):
    out = tmp_path / "tinyllama.yaml"
    assert cli.main(["import-hf", str(HF / "tinyllama"), "-o", str(out)]) == 0
    assert xtc.load_spec(out).model.children["attn_layers"]["depth"] == 22
    assert cli.main(["import-hf", "TinyLlama/TinyLlama-1.1B"]) == 2
    assert "xtc never downloads" in capsys.readouterr().err
    assert cli.main(["import-hf", str(HF / "llama_3_1_8b"), "-o", str(tmp_path / "no.yaml")]) == 1
    assert not (tmp_path / "no.yaml").exists()
    assert "config.json:21:3: error[hf-not-expressible] rope_scaling" in capsys.readouterr().err


def test_only_plain_ids_and_dtypes_reach_the_spec(tmp_path):
    """The description carries token ids and a dtype name; other values there (text, a bidi
    control) are left out rather than written into the spec."""
    spec, problems = imported(llama(eos_token_id=[2, 32000], bos_token_id="\u202e1",
                                    torch_dtype="float16\n# injected"), tmp_path)
    assert problems == []
    assert spec.spec.description == "LlamaForCausalLM; token ids: eos [2, 32000]"
