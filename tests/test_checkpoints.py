"""`xtc convert` and `xtc.load_reference_checkpoint` (issue #47): checkpoints saved from
x-transformers (`.pt` and `.safetensors`, tied or not, fp32 and bf16, inside an
AutoregressiveWrapper, a composite's, under a key) convert to xtc's model with the reference's
outputs, and back to a state dict that loads strictly into the reference; a pickle of anything
but tensors is refused without running it; every failure writes nothing."""

from __future__ import annotations

import os

import pytest
import safetensors.torch
import torch
import yaml
from reference import paired_models, randomise_norm_gains, reference_model
from test_composites import CAPTION_DECODER, VIT, composite
from test_model_types import floats, tokens
from x_transformers import AutoregressiveWrapper

import xtc
from xtc.checkpoints import load_checkpoint_into, read_checkpoint
from xtc.cli import main

LAYERS = {"type": "Decoder", "dim": 32, "depth": 2, "heads": 2, "attn": {"dim_head": 16}}


def gpt(**wrapper) -> xtc.Spec:
    model = {"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": 16,
             "attn_layers": LAYERS, **wrapper}
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": "tiny", "model": model}))


def spec_file(tmp_path, spec: xtc.Spec) -> str:
    path = tmp_path / f"{spec.name}.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    return str(path)


def a_reference(spec: xtc.Spec, dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(0)
    reference = reference_model(spec)
    randomise_norm_gains(reference)
    return reference.to(dtype).eval()


def save(reference: torch.nn.Module, path) -> None:
    """As people save them: torch.save of the state dict, or safetensors' save_model (which
    writes a tie once)."""
    if str(path).endswith(".safetensors"):
        safetensors.torch.save_model(reference, str(path))
    else:
        torch.save(reference.state_dict(), path)


def convert(*argv) -> int:
    return main(["convert", *map(str, argv)])


def logits(model, dtype, x):
    with torch.no_grad():
        return model.float()(x) if dtype is torch.bfloat16 else model(x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_reference_checkpoint_converts_and_converts_back(tmp_path, suffix, tied, dtype):
    spec = gpt(tie_embedding=True) if tied else gpt()
    reference = a_reference(spec, dtype)
    save(reference, tmp_path / f"ref{suffix}")
    assert convert(spec_file(tmp_path, spec), tmp_path / f"ref{suffix}", "-o", tmp_path / f"xtc{suffix}") == 0
    state = read_checkpoint(tmp_path / f"xtc{suffix}")
    assert {t.dtype for t in state.values()} == {dtype}
    ours = xtc.build(spec).to(dtype).eval()
    load_checkpoint_into(ours, state)
    x = tokens()
    # bf16: xtc stores a norm's gain as round(g + 1), the reference g, adding 1 in float32 once
    # both models run in float32: one bf16 rounding step (2^-8) apart, no more
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if dtype is torch.float32 else {"rtol": 0, "atol": 2e-2}
    torch.testing.assert_close(logits(ours, dtype, x), logits(reference, dtype, x), **tolerance)

    back = tmp_path / f"back{suffix}"
    assert convert(spec_file(tmp_path, spec), tmp_path / f"xtc{suffix}", "--to", "reference", "-o", back) == 0
    again = a_reference(spec, dtype)
    with torch.no_grad():
        for parameter in again.parameters():
            parameter.zero_()
    if suffix == ".pt":
        again.load_state_dict(torch.load(back, weights_only=True), strict=True)
    else:
        safetensors.torch.load_model(again, str(back), strict=True)
    with torch.no_grad():  # in the checkpoint's dtype, where the gains' + 1 rounds alike
        torch.testing.assert_close(again(x), a_reference(spec, dtype)(x), rtol=0, atol=0)


def test_a_tie_is_written_once_to_safetensors_and_restored_on_reading(tmp_path):
    """An XTransformer with tie_token_emb: one tensor under the encoder's and the decoder's
    names, on both sides."""
    document = {"xtc": 1, "name": "seq2seq", "model": {
        "type": "XTransformer", "dim": 32, "tie_token_emb": True,
        "encoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 2},
        "decoder": {"num_tokens": 64, "max_seq_len": 16, "depth": 1, "heads": 2}}}
    spec = xtc.loads_spec(yaml.safe_dump(document))
    reference = a_reference(spec)
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    assert convert(spec_file(tmp_path, spec), tmp_path / "ref.pt", "-o", tmp_path / "xtc.safetensors") == 0
    written = safetensors.torch.load_file(tmp_path / "xtc.safetensors")
    ours = xtc.build(spec)
    assert len(written) == len(ours.state_dict()) - 1  # the shared embedding once
    load_checkpoint_into(ours.eval(), written)
    src, tgt = tokens(), tokens()
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt), reference(src, tgt), rtol=1e-4, atol=1e-5)
    assert convert(spec_file(tmp_path, spec), tmp_path / "xtc.safetensors", "--to", "reference",
                   "-o", tmp_path / "back.safetensors") == 0
    again = a_reference(spec)
    safetensors.torch.load_model(again, str(tmp_path / "back.safetensors"), strict=True)
    assert again.decoder.net.token_emb is again.encoder.token_emb


def test_an_autoregressive_wrappers_checkpoint_loses_and_regains_its_prefix(tmp_path):
    spec = gpt()
    wrapper = AutoregressiveWrapper(a_reference(spec))
    torch.save(wrapper.state_dict(), tmp_path / "trained.pt")
    assert all(key.startswith("net.") for key in torch.load(tmp_path / "trained.pt"))
    model = xtc.load_reference_checkpoint(spec_file(tmp_path, spec), tmp_path / "trained.pt").eval()
    x = tokens()
    with torch.no_grad():
        torch.testing.assert_close(model(x), wrapper.net(x), rtol=1e-4, atol=1e-5)
    torch.save(model.state_dict(), tmp_path / "xtc.pt")
    assert convert(spec_file(tmp_path, spec), tmp_path / "xtc.pt", "--to", "reference",
                   "--prefix", "net.", "-o", tmp_path / "back.pt") == 0
    AutoregressiveWrapper(a_reference(spec)).load_state_dict(torch.load(tmp_path / "back.pt"), strict=True)


def test_a_composites_checkpoint_and_a_state_dict_under_a_key(tmp_path):
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    reference, _ = paired_models(spec, reference=torch.nn.ModuleDict(
        {name: a_reference(xtc.Spec(name=name, version=1, path="", sha256="", model=module))
         for name, module in spec.components.items()}))
    parts = {name: reference[name].state_dict() for name in spec.components}
    torch.save({"model": parts, "step": 1000}, tmp_path / "run.pt")
    path = spec_file(tmp_path, spec)
    assert convert(path, tmp_path / "run.pt", "--key", "model", "-o", tmp_path / "xtc.safetensors") == 0
    ours = xtc.build(spec).eval()
    load_checkpoint_into(ours, read_checkpoint(tmp_path / "xtc.safetensors"))
    img, x = floats(2, 3, 16, 16), tokens()
    with torch.no_grad():
        expected = reference["decoder"](x, context=reference["encoder"](img, return_embeddings=True))
        torch.testing.assert_close(ours(img, x), expected, rtol=1e-4, atol=1e-5)
    assert convert(path, tmp_path / "xtc.safetensors", "--to", "reference", "-o", tmp_path / "back.pt") == 0
    back = torch.load(tmp_path / "back.pt")
    for name in spec.components:
        reference[name].load_state_dict(back[name], strict=True)


class Canary:
    """A pickle that writes a file when it is loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_pickle_is_refused_without_running(tmp_path, capsys):
    canary = tmp_path / "canary"
    torch.save({"model": a_reference(gpt()).state_dict(), "trap": Canary(str(canary))}, tmp_path / "evil.pt")
    assert convert(spec_file(tmp_path, gpt()), tmp_path / "evil.pt", "--key", "model",
                   "-o", tmp_path / "out.pt") == 1
    assert "refused to load" in capsys.readouterr().err
    assert not canary.exists() and not (tmp_path / "out.pt").exists()
    with pytest.raises(ValueError, match="refused to load"):
        xtc.load_reference_checkpoint(gpt(), tmp_path / "evil.pt", key="model")
    assert not canary.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # what the check prevents: it runs
    assert canary.exists()


def test_a_checkpoint_that_does_not_fit_names_every_key_and_writes_nothing(tmp_path, capsys):
    torch.save(a_reference(gpt()).state_dict(), tmp_path / "ref.pt")
    other = gpt(num_tokens=80, attn_layers={**LAYERS, "depth": 1})
    (tmp_path / "out.pt").write_bytes(b"kept")
    assert convert(spec_file(tmp_path, other), tmp_path / "ref.pt", "-o", tmp_path / "out.pt") == 1
    err = capsys.readouterr().err
    assert "token_emb.emb.weight" in err and "attn_layers.layers.3" in err  # a shape, a stray key
    assert (tmp_path / "out.pt").read_bytes() == b"kept"
    assert sorted(os.listdir(tmp_path)) == ["out.pt", "ref.pt", "tiny.yaml"]


def test_usage_errors_exit_2(tmp_path):
    torch.save(a_reference(gpt()).state_dict(), tmp_path / "ref.pt")
    path = spec_file(tmp_path, gpt())
    assert convert(path, tmp_path / "ref.pt", "-o", tmp_path / "out.npz") == 2
    assert convert(path, tmp_path / "missing.pt", "-o", tmp_path / "out.pt") == 2
    assert convert(path, tmp_path / "ref.pt", "-o", tmp_path / "nowhere" / "out.pt") == 2
    assert convert(path, tmp_path / "ref.pt", "-o", tmp_path / "ref.pt") == 2
    assert convert(path, tmp_path / "ref.pt", "--key", "model", "-o", tmp_path / "out.pt") == 1



def test_a_composites_safetensors_name_that_is_no_component_is_refused(tmp_path):
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    safetensors.torch.save_file({"encoder.w": torch.zeros(1), "stray": torch.zeros(1)},
                                tmp_path / "parts.safetensors")
    with pytest.raises(xtc.StateDictMismatch) as caught:
        read_checkpoint(tmp_path / "parts.safetensors", components=spec.components)
    assert caught.value.unexpected == ["stray"]
