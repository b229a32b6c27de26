"""Hyper-connections (num_residual_streams): the runtime HyperConnection against
x-transformers' own, views included (the feature rows cover whole models), and what 2.31.10's
Sinkhorn step leaves of the stream mixing: nothing (every stream adds the sum of the streams),
so hyper_conn_sinkhorn_iters and the mixing columns xtc does not convert change no output."""

from __future__ import annotations

import pytest
import torch
from x_transformers import Decoder, TransformerWrapper
from x_transformers.x_transformers import AttentionResidual
from x_transformers.x_transformers import GatedMultiResidual as Reference
from x_transformers.x_transformers import HyperConnection as ReferenceHyperConnection
from xtc.runtime.layers import GatedMultiResidual, HyperConnection, LayerAttention

B, T, S, C = 2, 5, 3, 8


def paired(views: int, layer: int = 4):
    torch.manual_seed(0)
    reference = ReferenceHyperConnection(C, layer_index=layer, num_residual_streams=S,
                                         num_input_views=views)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_()
    ours = HyperConnection(C, streams=S, views=views, layer=layer)
    ours.load_state_dict({
        "norm.weight": reference.norm.weight, "read": reference.static_alpha[:, :views],
        "read_proj": reference.dynamic_alpha_fn[:, :views],
        "read_scale": reference.dynamic_alpha_scale, "write": reference.static_beta,
        "write_proj": reference.dynamic_beta_fn, "write_scale": reference.dynamic_beta_scale})
    return reference, ours


@pytest.mark.parametrize("views", [1, 3])
def test_streams_hyper_connection_matches_the_reference(views):
    reference, ours = paired(views)
    x, out = torch.randn(B, T, S, C), torch.randn(B, T, C)
    rows = x.transpose(1, 2).reshape(B * S, T, C)  # the reference's (b s) n d
    mixed, residuals, kwargs = reference.prepare(rows)
    expected = reference(out, residuals, **kwargs).view(B, S, T, C).transpose(1, 2)
    ours_mixed, summed, gates = ours.prepare(x)
    torch.testing.assert_close(ours_mixed, mixed)
    torch.testing.assert_close(ours(out, summed, gates), expected)


def test_streams_each_view_reads_the_layers_own_stream_at_first():
    connection = HyperConnection(C, streams=S, views=3, layer=4)
    assert connection.read.tolist() == [[0.0] * 3, [1.0] * 3, [0.0] * 3]  # stream 4 % 3


def test_streams_sinkhorn_iterations_and_mixing_columns_change_nothing():
    torch.manual_seed(0)
    tokens = torch.randint(0, 20, (2, 6))

    def model(iters):
        torch.manual_seed(1)
        layers = Decoder(dim=16, depth=2, heads=2, num_residual_streams=3,
                         hyper_conn_sinkhorn_iters=iters)
        return TransformerWrapper(num_tokens=20, max_seq_len=16, attn_layers=layers).eval()

    one, five = model(1), model(5)
    with torch.no_grad():
        for name, parameter in five.named_parameters():
            if "alpha" in name or "stream_emb" in name:  # zeros and one-hots at first
                parameter.normal_()
        one.load_state_dict(five.state_dict())
        expected = five(tokens)
        torch.testing.assert_close(one(tokens), expected)
        for name, parameter in five.named_parameters():
            if name.endswith(("static_alpha", "dynamic_alpha_fn")):
                parameter[..., 1:].normal_()  # the mixing columns: never read
        torch.testing.assert_close(five(tokens), expected)


@pytest.mark.parametrize("streams", [1, 3])
def test_streams_gated_multi_residual_matches_the_reference(streams):

    torch.manual_seed(0)
    reference = Reference(C, layer_index=4, num_residual_streams=streams, num_input_views=3,
                          read_gate_rank=4)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_()
    ours = GatedMultiResidual(C, streams=streams, rank=4, views=3, layer=4)
    ours.load_state_dict({
        "read_gain": reference.read_gain, "read": reference.static_read_logit,
        "write": reference.static_write_logit, "down.weight": reference.to_bottleneck.weight,
        "to_read.weight": reference.to_read_gate.weight,
        "to_write.weight": reference.to_write_gate.weight, "scale": reference.dynamic_gate_scale})
    x, out = torch.randn(B, T, streams, C), torch.randn(B, T, C)
    mixed, residuals, kwargs = reference.prepare(x.transpose(1, 2).reshape(B * streams, T, C))
    expected = reference(out, residuals, **kwargs).view(B, streams, T, C).transpose(1, 2)
    ours_mixed, kept, gates = ours.prepare(x)
    torch.testing.assert_close(ours_mixed, mixed)
    torch.testing.assert_close(ours(out, kept, gates), expected)


@pytest.mark.parametrize("views", [1, 3])
def test_streams_layer_attention_matches_the_reference(views):
    """attn_aggregated_residuals' sums over the inputs so far, one per view
    (qkv_receive_diff_residuals gives attention's queries, keys and values their own)."""
    torch.manual_seed(0)
    reference = AttentionResidual(C, num_views=views, lora_rank=4)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_()
    ours = LayerAttention(C, rank=4, views=views)
    ours.load_state_dict({
        "key_norm.weight": reference.to_keys.weight, "query_norm.weight": reference.to_query[0].weight,
        "down.weight": reference.to_query[1].down.weight, "up.weight": reference.to_query[1].up.weight,
        "norm.weight": reference.norm.weight})
    hiddens = [torch.randn(B, T, C) for _ in range(4)]
    expected = reference(hiddens[-1], hiddens)
    assert expected.shape == ((views, B, T, C) if views > 1 else (B, T, C))
    torch.testing.assert_close(ours(hiddens), expected)
