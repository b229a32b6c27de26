"""State dicts both ways (xtc/state_dicts.py): a reference state dict converts for xtc's model
and back to exactly the reference's keys, shapes, dtypes and values (the tensors the reference
holds and never reads come back as zeros, and its outputs do not change); a state dict that
does not fit is refused with every missing key, unexpected key and wrong shape named at once;
a training wrapper's `net.` prefix is recognised."""

from __future__ import annotations

import pickle

import pytest
import torch
import x_transformers
from features import FEATURES, feature, feature_spec
from inputs import make_inputs
from reference import randomise_norm_gains, reference_model, reference_module
from test_composites import CAPTION_DECODER, VIT, composite
from test_export_python import EXAMPLES, small
from xtc.compiler import compile_graph
from xtc.compiler.state_dict import parameter_rules, unread_parameters

import xtc
from xtc import StateDictMismatch
from xtc.api import without_wrapper_prefix
from xtc.state_dicts import flattened, strip_prefix

# rows whose conversion has something of its own: fused q/k/v rows and norm offsets (plain),
# DyT's alpha offset, hyper-connections' unread columns, an attention pool's unread head, tied
# embeddings (tie_embedding, XTransformer's tie_token_emb), weight-tied layers
ROWS = [("options-plain", "Decoder"), ("layers-dynamic_tanh", "Encoder"),
        ("streams-qkv_views", "Decoder"), ("pooling-attn_pool", "Encoder"),
        ("options-tie_embedding", "Decoder"), ("xtransformer-readme", "XTransformer"),
        ("layers-weight_tied_albert", "Decoder")]


def reference_state(spec: xtc.Spec, seed: int = 0):
    """The reference model of a spec (a ModuleDict of a composite's components), its norm gains
    moved off their identity, and its state dict as convert_state_dict takes it."""
    torch.manual_seed(seed)
    if spec.model is None:
        model = torch.nn.ModuleDict({name: reference_module(module)
                                     for name, module in spec.components.items()})
    else:
        model = reference_model(spec)
    randomise_norm_gains(model)
    state = ({name: part.state_dict() for name, part in model.items()} if spec.model is None
             else model.state_dict())
    return model.eval(), state


def assert_round_trip(spec: xtc.Spec) -> None:
    """reference -> xtc -> reference gives the reference's keys, shapes, dtypes and values,
    zeros where the reference holds what it never reads; the reference loads it strictly."""
    model, state = reference_state(spec)
    ours = xtc.convert_state_dict(spec, state)
    xtc.build(spec, device="meta").load_state_dict(ours, strict=True, assign=True)
    back = xtc.reference_state_dict(spec, ours)
    composite = spec.model is None
    if composite:
        assert back.keys() == state.keys()
        state, back = flattened(state), flattened(back)
    assert back.keys() == state.keys()
    graph = compile_graph(spec)
    unread = unread_parameters(graph, composite)
    columns = {rule.reference: rule.columns
               for rule in parameter_rules(graph, composite) if rule.columns is not None}
    for key, original in state.items():
        value = back[key]
        assert (value.shape, value.dtype) == (original.shape, original.dtype), key
        if key in unread:
            assert not value.any(), key
            continue
        read = columns.get(key)
        if read is not None:
            assert not value[..., read:].any(), key
            value, original = value[..., :read], original[..., :read]
        # a gain stored minus an offset comes back through gain + offset - offset: to rounding
        torch.testing.assert_close(value, original, rtol=0, atol=1e-6, msg=key)
    if composite:
        for name, part in model.items():
            part.load_state_dict({key.removeprefix(f"{name}."): value for key, value in back.items()
                                  if key.startswith(f"{name}.")}, strict=True)
    elif unread or columns:
        assert_same_outputs(spec, model, back)
    else:
        model.load_state_dict(back, strict=True)


def assert_same_outputs(spec: xtc.Spec, model: torch.nn.Module, state: dict) -> None:
    """The reference's outputs with `state` loaded equal its outputs before."""
    inputs = make_inputs(spec, 2, 8)
    with torch.no_grad():
        before = model(*inputs.args, **inputs.kwargs)
        model.load_state_dict(state, strict=True)
        after = model(*inputs.args, **inputs.kwargs)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_a_small_example_round_trips(path):
    assert_round_trip(small(path))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_at_its_real_size_converts_on_the_meta_device(path):
    """Shapes only (no memory, no time): both ways give the reference's keys and shapes."""
    spec = xtc.load_spec(path)
    with torch.device("meta"):
        state = (reference_model(spec).state_dict() if spec.model is not None else
                 {name: reference_module(module).state_dict()
                  for name, module in spec.components.items()})
    back = xtc.reference_state_dict(spec, xtc.convert_state_dict(spec, state))
    if spec.model is None:
        state, back = flattened(state), flattened(back)
    assert {key: value.shape for key, value in back.items()} == \
        {key: value.shape for key, value in state.items()}


@pytest.mark.parametrize("row_id, kind", ROWS, ids=[row_id for row_id, _ in ROWS])
def test_a_feature_row_round_trips(row_id, kind):
    assert_round_trip(feature_spec(feature(row_id), kind, False))


def test_a_composite_round_trips_component_by_component():
    assert_round_trip(composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                                [{"from": "encoder", "to": "decoder.context"}]))


@pytest.mark.slow
@pytest.mark.parametrize("row, kind", [(row, kind) for row in FEATURES for kind in row.kinds],
                         ids=lambda value: getattr(value, "id", value))
def test_every_feature_row_round_trips(row, kind):
    assert_round_trip(feature_spec(row, kind, False))


# -- what does not fit ---------------------------------------------------------------------------

HYPER = feature("streams-qkv_views")


def test_a_reference_state_dict_that_does_not_fit_is_refused_with_every_problem_named():
    spec = feature_spec(HYPER, "Decoder", False)
    _, state = reference_state(spec)
    state = dict(state)
    del state["attn_layers.final_norm.gamma"]
    state["stray"] = torch.zeros(3)
    state["token_emb.emb.weight"] = torch.zeros(65, 32)
    # a hyper-connection's weights cut to the columns xtc reads are still the wrong shape
    state["attn_layers.layers.0.2.static_alpha"] = state["attn_layers.layers.0.2.static_alpha"][:, :3]
    with pytest.raises(StateDictMismatch) as caught:
        xtc.convert_state_dict(spec, state)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.missing == ["attn_layers.final_norm.gamma"]
    assert error.unexpected == ["stray"]
    assert error.wrong_shape == [("attn_layers.layers.0.2.static_alpha", (2, 3), (2, 5)),
                                 ("token_emb.emb.weight", (65, 32), (64, 32))]
    assert pickle.loads(pickle.dumps(error)).wrong_shape == error.wrong_shape
    assert str(error) == (
        "state dict does not fit the spec: missing keys ['attn_layers.final_norm.gamma']; "
        "unexpected keys ['stray']; wrong shapes ['attn_layers.layers.0.2.static_alpha' [2, 3] "
        "(expected [2, 5]), 'token_emb.emb.weight' [65, 32] (expected [64, 32])]")


def test_an_unread_reference_tensor_is_optional_but_its_shape_is_checked():
    spec = feature_spec(feature("pooling-attn_pool"), "Encoder", False)
    _, state = reference_state(spec)
    head = state.pop("to_logits.weight")
    xtc.convert_state_dict(spec, state)
    with pytest.raises(StateDictMismatch) as caught:
        xtc.convert_state_dict(spec, {**state, "to_logits.weight": head.T})
    assert caught.value.wrong_shape == [("to_logits.weight", (32, 64), (64, 32))]


def test_an_xtc_state_dict_that_does_not_fit_is_refused_with_every_problem_named():
    spec = feature_spec(feature("options-plain"), "Decoder", False)
    state = dict(xtc.build(spec).state_dict())
    del state["norm.weight"]
    state["attn_layers.final_norm.gamma"] = torch.zeros(32)
    state["blocks.0.attn.to_qkv.weight"] = torch.zeros(96, 16)
    with pytest.raises(StateDictMismatch) as caught:
        xtc.reference_state_dict(spec, state)
    error = caught.value
    assert (error.missing, error.unexpected) == (["norm.weight"], ["attn_layers.final_norm.gamma"])
    assert error.wrong_shape == [("blocks.0.attn.to_qkv.weight", (96, 16), (192, 32))]


def test_a_composite_missing_a_component_is_refused_by_its_keys():
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    _, state = reference_state(spec)
    with pytest.raises(StateDictMismatch) as caught:
        xtc.convert_state_dict(spec, {"encoder": state["encoder"]})
    assert caught.value.missing and all(key.startswith("decoder.") for key in caught.value.missing)
    ours = xtc.convert_state_dict(spec, state)
    with pytest.raises(StateDictMismatch, match=r"unexpected keys \['extra'\]"):
        xtc.reference_state_dict(spec, {**ours, "extra": torch.zeros(1)})


# -- dtypes, prefixes ----------------------------------------------------------------------------

def test_a_bfloat16_state_dict_stays_bfloat16_both_ways():
    spec = feature_spec(HYPER, "Decoder", False)
    model, _ = reference_state(spec)
    state = model.to(torch.bfloat16).state_dict()
    ours = xtc.convert_state_dict(spec, state)
    assert {value.dtype for value in ours.values()} == {torch.bfloat16}
    xtc.build(spec, dtype=torch.bfloat16).load_state_dict(ours, strict=True)
    back = xtc.reference_state_dict(spec, ours)
    assert {key: value.dtype for key, value in back.items()} == {key: torch.bfloat16 for key in state}
    # gains near 0 stored as gain + 1 round at bfloat16's precision near 1 (2 ** -8), as the
    # reference's own forward rounds gamma + 1
    gain = "attn_layers.final_norm.gamma"
    torch.testing.assert_close(back[gain], state[gain], rtol=0, atol=2 ** -8)
    assert torch.equal(back["token_emb.emb.weight"], state["token_emb.emb.weight"])


def test_a_training_wrappers_net_prefix_is_found_and_taken_off():
    spec = feature_spec(feature("options-plain"), "Decoder", False)
    model, state = reference_state(spec)
    wrapped = x_transformers.AutoregressiveWrapper(model).state_dict()
    assert all(key.startswith("net.") for key in wrapped)
    unwrapped, prefix = without_wrapper_prefix(spec, wrapped)
    assert prefix == "net." and unwrapped.keys() == state.keys()
    xtc.convert_state_dict(spec, unwrapped)
    assert without_wrapper_prefix(spec, state) == (state, "")


def test_an_xtransformers_own_decoder_net_is_left_alone():
    spec = feature_spec(feature("xtransformer-readme"), "XTransformer", False)
    _, state = reference_state(spec)
    assert any(key.startswith("decoder.net.") for key in state)
    assert without_wrapper_prefix(spec, state) == (state, "")
    xtc.convert_state_dict(spec, state)


def test_a_composite_is_looked_at_component_by_component():
    spec = composite({"encoder": VIT, "decoder": CAPTION_DECODER},
                     [{"from": "encoder", "to": "decoder.context"}])
    model, state = reference_state(spec)
    wrapped = {**state, "decoder": x_transformers.AutoregressiveWrapper(model["decoder"]).state_dict()}
    unwrapped, prefix = without_wrapper_prefix(spec, wrapped)
    assert prefix == "net."
    assert {name: part.keys() for name, part in unwrapped.items()} == \
        {name: part.keys() for name, part in state.items()}


def test_a_net_prefix_that_does_not_name_the_models_keys_stays():
    spec = feature_spec(feature("options-plain"), "Decoder", False)
    stray = {"net.unknown.weight": torch.zeros(1)}
    assert without_wrapper_prefix(spec, stray) == (stray, "")


def test_strip_prefix_takes_a_module_path_and_keeps_other_keys():
    state = {"model.a.weight": 1, "model.b": 2, "optimizer.step": 3}
    expected = {"a.weight": 1, "b": 2, "optimizer.step": 3}
    assert strip_prefix(state, "model") == strip_prefix(state, "model.") == expected
