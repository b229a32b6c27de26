"""benchmarks/gpu_check.py's logic, on the CPU with tiny models (its figures come from a GPU run;
tests never time anything): the SDPA backend per call, inputs every example takes, the parity
verdict, the report, and the exit status without CUDA."""

from __future__ import annotations

import doctest
import inspect
import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ROOT, load_script
from torch.nn.attention import SDPBackend

import xtc
from xtc.api import module_for

EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.yaml"))
LAYERS = {"dim": 32, "depth": 2, "heads": 2, "attn": {"dim_head": 16}}
GPT = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
       "attn_layers": {"type": "Decoder", **LAYERS}}
BERT = {**GPT, "attn_layers": {"type": "Encoder", **LAYERS}}
VIT_ENCODER = {"type": "ViTransformerWrapper", "image_size": 16, "patch_size": 4,
               "attn_layers": {"type": "Encoder", **LAYERS}}
VIT = {**VIT_ENCODER, "num_classes": 10}
SEQ2SEQ = {"type": "XTransformer", "dim": 32, "tie_token_emb": True,
           "encoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 2},
           "decoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 2}}
CROSS = {"type": "CrossAttender", "dim": 32, "depth": 1, "heads": 2}
CONTINUOUS = {"type": "ContinuousTransformerWrapper", "dim_in": 7, "dim_out": 5, "max_seq_len": 16,
              "attn_layers": {"type": "Decoder", **LAYERS}}
CAPTION_DECODER = {**GPT, "attn_layers": {**GPT["attn_layers"], "cross_attend": True}}
CAPTION = {"components": {"encoder": VIT_ENCODER, "decoder": CAPTION_DECODER},
           "connections": [{"from": "encoder", "to": "decoder.context"}]}
PALI = {"components": {"vit": VIT_ENCODER, "pali": SEQ2SEQ},
        "connections": [{"from": "vit", "to": "pali.src_prepend_embeds"}]}
XVAL = {"type": "XValTransformerWrapper", "num_tokens": 8, "numerical_token_id": 3,
        "max_seq_len": 16, "attn_layers": {"type": "Decoder", **LAYERS}}
TINY = {"gpt": {"model": GPT}, "xval": {"model": XVAL}, "bert": {"model": BERT}, "vit": {"model": VIT},
        "seq2seq": {"model": SEQ2SEQ}, "cross": {"model": CROSS},
        "continuous": {"model": CONTINUOUS}, "caption": CAPTION, "pali": PALI}
DECODER_EXAMPLES = {"gpt", "char_gpt", "custom_layers", "dropouts", "flash", "scalenorm"}


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("benchmarks/gpu_check.py")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: two threads handing work over cost far more than they share (and 100x on a
    loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def settings(gpu_check):
    return gpu_check.Settings(device="cpu", dtype=torch.bfloat16, batch=2, seq_len=8, repeats=1,
                              new_tokens=2, generation_repeats=1)


def tiny_document(name: str) -> dict:
    return {"xtc": 1, "name": f"tiny_{name}", **TINY[name]}


def tiny(name: str) -> xtc.Spec:
    return xtc.loads_spec(yaml.safe_dump(tiny_document(name), sort_keys=False))


def test_docstring_examples(gpu_check):
    import inputs

    for module, examples in ((gpu_check, 2), (inputs, 3)):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted >= examples and result.failed == 0


@pytest.mark.parametrize(("device", "masked", "backend"), [
    ("cuda", False, SDPBackend.FLASH_ATTENTION),
    ("cuda:0", True, SDPBackend.EFFICIENT_ATTENTION),
    ("cpu", False, SDPBackend.FLASH_ATTENTION),
    ("cpu", True, SDPBackend.MATH),
])
def test_backend_is_flash_without_a_mask_and_memory_efficient_with_one(gpu_check, device, masked,
                                                                       backend):
    assert gpu_check.sdpa_backend(device, masked) == backend


def test_a_refused_backend_falls_back_to_the_default_and_says_so(gpu_check):
    q = torch.randn(1, 2, 4, 8)

    def attention():
        return F.scaled_dot_product_attention(q, q, q)

    # the CPU has no memory-efficient kernel
    output, context, label = gpu_check.backend_context(attention, SDPBackend.EFFICIENT_ATTENTION)
    assert label == "default (memory-efficient refused)"
    torch.testing.assert_close(output, attention())
    with context():
        attention()


def test_other_errors_are_not_taken_for_a_refused_backend(gpu_check):
    def broken():
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        gpu_check.backend_context(broken, SDPBackend.FLASH_ATTENTION)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_gets_inputs_its_forward_names(gpu_check, name):
    spec = xtc.load_spec(ROOT / "examples" / f"{name}.yaml")
    parameters = inspect.signature(getattr(module_for(spec), spec.class_name).forward).parameters
    for masked in (False, True) if gpu_check.takes_padding_mask(spec) else (False,):
        inputs = gpu_check.make_inputs(spec, 2, 24, masked=masked)
        positional = [p for p in parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
        assert len(inputs.args) == len(positional) - 1  # self
        assert set(inputs.kwargs) <= set(parameters)
        assert any(k.endswith("mask") for k in inputs.kwargs) == masked
    assert gpu_check.takes_padding_mask(spec) == (name != "vit")
    assert gpu_check.is_decoder_lm(spec) == (name in DECODER_EXAMPLES)


def test_lengths_are_capped_at_max_seq_len(gpu_check):
    spec = xtc.load_spec(ROOT / "examples" / "char_gpt.yaml")  # max_seq_len 128
    inputs = gpu_check.make_inputs(spec, 2, 256, masked=True)
    assert inputs.args[0].shape == (2, 128) and inputs.kwargs["mask"].shape == (2, 128)
    assert inputs.lengths == {"T": 128}
    assert not inputs.kwargs["mask"][0, 64:].any() and inputs.kwargs["mask"][1].all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_inputs_run_through_each_kind_of_model(gpu_check, name):
    spec = tiny(name)
    model = xtc.build(spec).eval()
    for masked in (False, True) if gpu_check.takes_padding_mask(spec) else (False,):
        inputs = gpu_check.make_inputs(spec, 2, 8, masked=masked)
        with torch.inference_mode():
            outputs = gpu_check.output_tensors(model(*inputs.args, **inputs.kwargs))
        assert all(torch.isfinite(t).all() for t in outputs)


def test_the_verdict_allows_twice_the_references_error_and_two_rounding_steps(gpu_check):
    eps = torch.finfo(torch.bfloat16).eps
    assert gpu_check.parity_verdict(0.2, 0.1, 0.5, torch.bfloat16) == (True, 0.2 + 2 * eps)
    assert not gpu_check.parity_verdict(0.22, 0.1, 0.5, torch.bfloat16)[0]
    # a scalar loss near 5.6 two steps (2**-5) off, where the reference rounded exactly
    assert gpu_check.parity_verdict(0.0625, 0.0, 5.6, torch.bfloat16)[0]
    assert not gpu_check.parity_verdict(0.125, 0.0, 5.6, torch.bfloat16)[0]
    assert not gpu_check.parity_verdict(float("nan"), 0.1, 1.0, torch.bfloat16)[0]
    ok, tolerance = gpu_check.parity_verdict(0.3, None, 10.0, torch.bfloat16)  # a composite
    assert ok and tolerance == gpu_check.SELF_RELATIVE_TOLERANCE * 10.0


@pytest.mark.parametrize("masked", [False, True])
def test_xtc_passes_parity_in_bfloat16_under_the_backend_chosen(gpu_check, settings, masked):
    # masked: the reference runs in bfloat16 only with keep_attention_dtype's hooks
    spec = tiny("gpt")
    reference, ours = gpu_check.build_pair(spec)
    row = gpu_check.parity_case(spec, reference, ours, masked, settings)[0]
    assert row["ok"], row
    assert row["yardstick"] == "reference" and row["reference_error"] > 0
    assert row["backend"] == ("math" if masked else "flash")


def test_a_perturbed_weight_fails_parity(gpu_check, settings):
    spec = tiny("gpt")
    reference, ours = gpu_check.build_pair(spec)
    with torch.no_grad():
        weight = dict(ours.named_parameters())["blocks.0.ff.proj_in.weight"]
        weight.add_(0.02 * torch.randn_like(weight))  # a fifth of its own spread (std 0.1)
    row = gpu_check.parity_case(spec, reference, ours, False, settings)[0]
    assert not row["ok"]
    assert row["ours_error"] > row["tolerance"] > row["reference_error"]


def test_every_output_of_a_tuple_is_checked(gpu_check, settings):
    # xVal returns (logits, numbers): a wrong number head fails though the logits agree
    spec = tiny("xval")
    reference, ours = gpu_check.build_pair(spec)
    copies = (gpu_check.on_device(model, "cpu") for model in (reference, ours))  # cast in place
    assert gpu_check.parity_case(spec, *copies, False, settings)[0]["ok"]
    with torch.no_grad():
        weight = dict(ours.named_parameters())["to_numerical_output.weight"]
        weight.add_(0.2 * weight.std() * torch.randn_like(weight))
    row = gpu_check.parity_case(spec, reference, ours, False, settings)[0]
    assert not row["ok"] and row["ours_error"] > row["tolerance"]


def test_a_composite_is_checked_against_its_own_float32_output(gpu_check, settings):
    spec = tiny("caption")
    rows = gpu_check.check_example("caption", spec, settings)
    assert [r["masked"] for r in rows] == [False, True]
    for row in rows:
        assert row["ok"] and row["yardstick"] == "self (fp32)" and row["reference_error"] is None
        assert "reference_tokens_per_s" not in row and row["ours_tflops"] > 0
    assert "self (fp32)" in gpu_check.table(rows)


def write_examples(tmp_path, names):
    for name in names:
        document = yaml.safe_dump(tiny_document(name), sort_keys=False)
        (tmp_path / f"tiny_{name}.yaml").write_text(document)


def run_main(gpu_check, monkeypatch, tmp_path, names, compile_example=""):
    write_examples(tmp_path, names)
    monkeypatch.setattr(gpu_check, "EXAMPLES", tmp_path)
    out = tmp_path / "out.json"
    status = gpu_check.main(["--device", "cpu", "--batch", "2", "--seq-len", "8", "--repeats", "1",
                             "--new-tokens", "2", "--json", str(out), "--compile", compile_example,
                             "--examples", ",".join(f"tiny_{n}" for n in names)])
    return status, json.loads(out.read_text())


def test_the_report_has_a_row_per_example_and_case_and_the_json_every_figure(
        gpu_check, monkeypatch, tmp_path, capsys):
    status, report = run_main(gpu_check, monkeypatch, tmp_path, ["gpt", "vit"])
    assert status == 0
    table = capsys.readouterr().out
    assert table.count("| tiny_gpt |") == 2 and table.count("| tiny_vit |") == 1
    assert [(r["example"], r["masked"]) for r in report["rows"]] == [
        ("tiny_gpt", False), ("tiny_gpt", True), ("tiny_vit", False)]
    assert report["dtype"] == "bfloat16" and report["batch"] == 2
    for row in report["rows"]:
        assert row["ok"] and row["ours_error"] <= row["tolerance"]
        assert row["ours_tokens_per_s"] > 0 and row["reference_tokens_per_s"] > 0
        assert row["ours_tflops"] == pytest.approx(row["flops_per_forward"] / row["ours_s"] / 1e12)
    gpt = xtc.inspect(tiny("gpt"), seq_len=8)["flops"]["forward"]["per_sequence"]
    assert report["rows"][0]["flops_per_forward"] == 2 * gpt
    generation = report["rows"][0]["generation"]
    assert generation["new_tokens"] == 2 and generation["ours_tokens_per_s"] > 0
    assert "generation" not in report["rows"][1]  # timed once, on the mask-free row


def test_an_example_that_raises_is_an_error_row_and_exit_1(gpu_check, monkeypatch, tmp_path,
                                                           capsys):
    def broken(spec):
        raise RuntimeError("no reference for this")

    monkeypatch.setattr(gpu_check, "paired_models", broken)
    status, report = run_main(gpu_check, monkeypatch, tmp_path, ["vit"])
    assert status == 1
    assert report["rows"] == [{"example": "tiny_vit", "masked": False, "ok": False,
                               "error": "RuntimeError: no reference for this"}]
    assert "RuntimeError: no reference for this" in capsys.readouterr().out


@pytest.mark.parametrize("same_in_float32", [True, False])
def test_compiled_generation_fails_the_check_only_where_float32_differs(
        gpu_check, monkeypatch, tmp_path, capsys, same_in_float32):
    row = {"example": "tiny_gpt", "new_tokens": 2, "prompt": [2, 4], "compile_s": 1.0,
           "same_tokens": False, "first_difference": 1, "same_tokens_float32": same_in_float32,
           "compiled_tokens_per_s": 2.0, "eager_tokens_per_s": 1.0}
    monkeypatch.setattr(gpu_check, "compiled_generation", lambda *args: row)
    status, report = run_main(gpu_check, monkeypatch, tmp_path, ["gpt"], compile_example="tiny_gpt")
    assert status == (0 if same_in_float32 else 1) and report["compiled"] == row
    assert "the same tokens up to new token 1" in capsys.readouterr().out


def test_cuda_asked_for_without_cuda_exits_2_with_one_line(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "gpu_check: CUDA is not available here (pass --device cpu to check the logic)"]
    assert captured.out == ""


def test_compiled_generation_is_timed_and_checked_against_eager(gpu_check, settings,
                                                               eager_compile):
    row = gpu_check.compiled_generation("tiny_gpt", tiny("gpt"), settings)
    assert row["same_tokens"] and row["same_tokens_float32"] and row["first_difference"] is None
    assert row["new_tokens"] == settings.new_tokens
    assert min(row["compile_s"], row["compiled_tokens_per_s"], row["eager_tokens_per_s"]) > 0
    assert gpu_check.compiled_line(row).startswith("generate(compile=True), tiny_gpt, prompt (2, ")
