"""Transformer-XL recurrence (max_mem_len, shift_mem_down) against x-transformers 2.31.10:
forward and gradients with memories given and returned (TransformerWrapper,
ContinuousTransformerWrapper, XValTransformerWrapper), the segment-wise loss of XLAutoregressiveWrapper, its greedy
generation across segment boundaries, the memories' size in `inspect`, and the loss payload the
IR hands lowering."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from features import spec_of
from reference import TOLERANCE, XLAutoregressiveWrapper, assert_same_gradients, paired_models
from xtc.compiler import compile_graph
from xtc.compiler.inspection import inspect
from xtc.runtime.recurrence import segment_loss

SEGMENT, MEMORY = 8, 12

# (id, wrapper keywords, layer keywords): the positional schemes memories meet, ERNIE-Doc's shift
CASES = [
    ("rotary", {"use_abs_pos_emb": False}, {"rotary_pos_emb": True}),
    ("xpos_gqa_qk_norm", {}, {"rotary_xpos": True, "attn_kv_heads": 2, "attn_qk_norm": True}),
    ("t5_post_norm", {}, {"rel_pos_bias": True, "pre_norm": False}),
    ("alibi_shift", {"use_abs_pos_emb": False, "shift_mem_down": 1}, {"alibi_pos_bias": True}),
    ("absolute_positions", {}, {}),
]


def xl_spec(wrapper: dict, layers: dict, kind: str = "Decoder"):
    attn = {k.removeprefix("attn_"): layers.pop(k) for k in list(layers) if k.startswith("attn_")}
    return spec_of({"type": "TransformerWrapper", "num_tokens": 64, "max_seq_len": SEGMENT,
                    "max_mem_len": MEMORY, **wrapper,
                    "attn_layers": {"type": kind, "dim": 32, "depth": 2, "heads": 4,
                                    "attn": {"dim_head": 16, **attn}, **layers}})


def case_spec(case: str, kind: str = "Decoder"):
    _, wrapper, layers = next(c for c in CASES if c[0] == case)
    return xl_spec(dict(wrapper), dict(layers), kind)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("kind", ["Decoder", "Encoder"])
@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_forward_with_memories(case, kind, masked):
    """Two segments: the memories the first returns, given to the second, give the reference's
    logits, memories and gradients (through the second segment)."""
    if kind == "Encoder" and case == "xpos_gqa_qk_norm":
        pytest.skip("xPos is causal only")
    reference, ours = paired_models(case_spec(case, kind))
    torch.manual_seed(1)
    first, second = torch.randint(0, 64, (2, SEGMENT)), torch.randint(0, 64, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, :2] = False
    kwargs = {"mask": mask} if masked else {}
    _, expected_mems = reference(first, return_mems=True)
    _, mems = ours(first, return_mems=True)
    expected, expected_next = reference(second, mems=expected_mems, return_mems=True, **kwargs)
    actual, next_mems = ours(second, mems=mems, return_mems=True, **kwargs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    assert len(next_mems) == len(expected_next) == 2
    for ours_mem, reference_mem in zip(next_mems, expected_next):
        assert ours_mem.shape == (2, MEMORY, 32) and not ours_mem.requires_grad
        torch.testing.assert_close(ours_mem, reference_mem, **TOLERANCE)
    actual.mean().backward()
    expected.mean().backward()
    torch.testing.assert_close(ours.token_emb.weight.grad, reference.token_emb.emb.weight.grad,
                               **TOLERANCE)
    torch.testing.assert_close(ours.blocks[0].attn.to_k.weight.grad,
                               reference.attn_layers.layers[0][1].to_k.weight.grad, **TOLERANCE)


def test_shift_mem_down_acts_only_on_given_memories():
    """ERNIE-Doc's shift reorders the memories a forward reads: without them nothing changes."""
    _, ours = paired_models(case_spec("alibi_shift"))
    x = torch.randint(0, 64, (2, SEGMENT))
    _, mems = ours(x, return_mems=True)
    shifted = ours(x, mems=mems)
    unshifted = ours(x, mems=mems[::-1])  # two blocks: the shift by one is the reversed list
    ours.config = replace(ours.config, shift_mem_down=0)
    torch.testing.assert_close(shifted, ours(x, mems=mems[::-1]))
    assert not torch.allclose(shifted, unshifted)


@pytest.mark.parametrize("case", [c[0] for c in CASES])
def test_loss_matches_xl_wrapper(case):
    """Segment-wise loss over 21 tokens (segments 8, 8, 4), value and gradients, with an
    ignored label (the reference feeds inputs as they are: -100 may only be a label)."""
    reference, ours = paired_models(case_spec(case))
    x = torch.randint(0, 64, (2, 21), generator=torch.Generator().manual_seed(2))
    x[0, -1] = -100
    expected = XLAutoregressiveWrapper(reference)(x)
    actual = ours.loss(x)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    actual.backward()
    expected.backward()
    torch.testing.assert_close(ours.to_logits.weight.grad, reference.to_logits.weight.grad,
                               **TOLERANCE)


@pytest.mark.parametrize("steps", [2, 3])
def test_truncated_backpropagation_keeps_the_memories_gradient(steps):
    """autoregressive: {tbptt_steps}: the memories carry their gradient across that many of
    the 21 tokens' three segments, as XLAutoregressiveWrapper's; the first block's weights
    then learn from later segments' losses too, so their gradient differs from the one with
    the memories detached at every segment."""
    spec = xl_spec({"use_abs_pos_emb": False, "autoregressive": {"tbptt_steps": steps}},
                   {"rotary_pos_emb": True})
    reference, ours = paired_models(spec)
    x = torch.randint(0, 64, (2, 21), generator=torch.Generator().manual_seed(2))
    expected = XLAutoregressiveWrapper(reference, tbptt_steps=steps)(x)
    actual = ours.loss(x)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    actual.backward()
    expected.backward()
    assert_same_gradients(spec, ours, reference)
    weight = ours.blocks[0].attn.to_q.weight
    truncated = weight.grad.clone()
    ours.zero_grad()
    segment_loss(ours, x, SEGMENT, ignore_index=-100).backward()  # detached at every segment
    assert not torch.allclose(weight.grad, truncated, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("prompt_length", [3, 8, 12, 16])
@pytest.mark.parametrize("case", ["rotary", "alibi_shift", "absolute_positions"])
def test_greedy_generation_across_segments(case, prompt_length):
    """20 new tokens after prompts inside the first segment, at its end, inside the second and
    at its end: the boundaries' recomputed segments and memories as the reference's."""
    reference, ours = paired_models(case_spec(case))
    prompt = torch.randint(0, 64, (2, prompt_length), generator=torch.Generator().manual_seed(3))
    expected = XLAutoregressiveWrapper(reference).generate(prompt, 20, temperature=0.0)
    actual = ours.generate(prompt, 20, temperature=0)
    assert torch.equal(actual, expected)


def test_inspect_memory_bytes():
    """`inspect` gives each layer's memory at max_mem_len positions: what forward returns once
    the memory is full."""
    spec = case_spec("rotary")
    figures = inspect(spec, compile_graph(spec))
    _, ours = paired_models(spec)
    mems = None
    for _ in range(3):
        _, mems = ours(torch.randint(0, 64, (1, SEGMENT)), mems=mems, return_mems=True)
    assert figures.memory_layers == len(mems) == 2
    assert all(m.numel() * m.element_size() == figures.memory_bytes_per_layer for m in mems)


def test_the_training_options_reach_loss_and_generate():
    """`autoregressive:` sets XLAutoregressiveWrapper's ignore_index (the loss equals the
    wrapper's with it) and pad_value (what generate writes after an eos)."""
    spec = xl_spec({"use_abs_pos_emb": False, "autoregressive": {"ignore_index": 0,
                                                                  "pad_value": 5}},
                   {"rotary_pos_emb": True})
    reference, ours = paired_models(spec)
    x = torch.randint(1, 64, (2, 21), generator=torch.Generator().manual_seed(2))
    x[1, 15:] = 0
    expected = XLAutoregressiveWrapper(reference, ignore_index=0, pad_value=5)(x)
    torch.testing.assert_close(ours.loss(x), expected, **TOLERANCE)
    prompt = x[:, :3]
    first = ours.generate(prompt, 1, temperature=0)[:, 0]
    tokens = ours.generate(prompt, 4, temperature=0, eos_token=int(first[0]))
    assert tokens[0, 0] == first[0] and (tokens[0, 1:] == 5).all()


def test_bad_memories_are_refused():
    _, ours = paired_models(case_spec("rotary"))
    x = torch.randint(0, 64, (2, 4))
    with pytest.raises(ValueError, match="one per block"):
        ours(x, mems=[torch.zeros(2, 3, 32)])
    with pytest.raises(ValueError, match=r"mems\[1\]"):
        ours(x, mems=[torch.zeros(2, 3, 32), torch.zeros(2, 3, 16)])


# (id, wrapper keywords, layer keywords) of continuous models with memories
CONTINUOUS_CASES = [
    ("rotary", {"use_abs_pos_emb": False}, {"rotary_pos_emb": True}),
    ("alibi_probabilistic", {"use_abs_pos_emb": False, "probabilistic": True},
     {"alibi_pos_bias": True}),
    ("no_projections", {"use_abs_pos_emb": False, "dim_in": None, "dim_out": None},
     {"rel_pos_bias": True}),
]


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("kind", ["Decoder", "Encoder"])
@pytest.mark.parametrize("case", [c[0] for c in CONTINUOUS_CASES])
def test_continuous_forward_with_memories(case, kind, masked):
    """A ContinuousTransformerWrapper's memories: as the reference, the second segment's outputs
    and gradients read the first's, and the memories it returns are its own layer inputs alone
    (the last max_mem_len of them), not the memories it read followed by them."""
    _, wrapper, layers = next(c for c in CONTINUOUS_CASES if c[0] == case)
    wrapper = {"dim_in": 8, "dim_out": 8, **wrapper}
    widths = {k: v for k, v in wrapper.items() if v is not None}
    reference, ours = paired_models(spec_of({
        "type": "ContinuousTransformerWrapper", "max_seq_len": SEGMENT, "max_mem_len": 5,
        **widths, "attn_layers": {"type": kind, "dim": 32, "depth": 2, "heads": 4,
                                  "attn": {"dim_head": 16}, **layers}}))
    width = wrapper["dim_in"] or 32
    torch.manual_seed(1)
    # a second segment shorter than max_mem_len: its memories are its 4 inputs, not 5
    first, second = torch.randn(2, SEGMENT, width), torch.randn(2, 4, width)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[0, :2] = False
    kwargs = {"mask": mask} if masked else {}
    _, expected_mems = reference(first, return_mems=True)
    _, mems = ours(first, return_mems=True)
    # the reference returns a tuple that its own forward cannot read back (it calls .copy())
    expected, expected_next = reference(second, mems=list(expected_mems), return_mems=True,
                                        **kwargs)
    actual, next_mems = ours(second, mems=mems, return_mems=True, **kwargs)
    torch.testing.assert_close(actual, expected, **TOLERANCE)
    assert len(next_mems) == len(expected_next) == 2
    for ours_mem, reference_mem in zip(next_mems, expected_next):
        assert ours_mem.shape == (2, 4, 32) and not ours_mem.requires_grad
        torch.testing.assert_close(ours_mem, reference_mem, **TOLERANCE)
    actual.mean().backward()
    expected.mean().backward()
    torch.testing.assert_close(ours.blocks[0].attn.to_k.weight.grad,
                               reference.attn_layers.layers[0][1].to_k.weight.grad, **TOLERANCE)
    if wrapper["dim_in"] is not None:
        torch.testing.assert_close(ours.project_in.weight.grad,
                                   reference.project_in.weight.grad, **TOLERANCE)


def test_inspect_continuous_memory_bytes():
    """A continuous model's memory holds at most max_mem_len positions: `inspect`'s figure is
    what forward returns after a segment at least that long."""
    spec = spec_of({"type": "ContinuousTransformerWrapper", "dim_in": 8, "max_seq_len": SEGMENT,
                    "max_mem_len": 5, "use_abs_pos_emb": False,
                    "attn_layers": {"type": "Decoder", "dim": 32, "depth": 2, "heads": 4}})
    figures = inspect(spec, compile_graph(spec))
    _, ours = paired_models(spec)
    _, mems = ours(torch.randn(1, SEGMENT, 8), return_mems=True)
    assert figures.memory_layers == len(mems) == 2
    assert all(m.numel() * m.element_size() == figures.memory_bytes_per_layer for m in mems)


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("kind", ["Decoder", "Encoder"])
def test_xval_forward_with_memories(kind, masked):
    """An XValTransformerWrapper's memories, as the continuous wrapper's: logits, numbers and
    gradients of a second segment that reads the first's memories, and the memories it returns
    (its own layer inputs alone), as the reference's."""
    reference, ours = paired_models(spec_of({
        "type": "XValTransformerWrapper", "num_tokens": 16, "numerical_token_id": 3,
        "max_seq_len": SEGMENT, "max_mem_len": 5, "use_abs_pos_emb": False,
        "attn_layers": {"type": kind, "dim": 32, "depth": 2, "heads": 4,
                        "attn": {"dim_head": 16}, "rotary_pos_emb": True}}))
    torch.manual_seed(1)
    first, second = torch.randint(0, 16, (2, SEGMENT)), torch.randint(0, 16, (2, 4))
    first[:, ::2], second[:, ::2] = 3, 3  # number tokens in both segments
    numbers = torch.randn(2, SEGMENT), torch.randn(2, 4)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[0, :2] = False
    kwargs = {"mask": mask} if masked else {}
    _, expected_mems = reference(first, numbers[0], return_mems=True)
    _, mems = ours(first, numbers[0], return_mems=True)
    expected, expected_next = reference(second, numbers[1], mems=list(expected_mems),
                                        return_mems=True, **kwargs)
    actual, next_mems = ours(second, numbers[1], mems=mems, return_mems=True, **kwargs)
    for ours_out, reference_out in zip(actual, expected):  # logits, then numbers
        torch.testing.assert_close(ours_out, reference_out, **TOLERANCE)
    for ours_mem, reference_mem in zip(next_mems, expected_next, strict=True):
        assert ours_mem.shape == (2, 4, 32) and not ours_mem.requires_grad
        torch.testing.assert_close(ours_mem, reference_mem, **TOLERANCE)
    (actual[0].mean() + actual[1].mean()).backward()
    (expected[0].mean() + expected[1].mean()).backward()
    torch.testing.assert_close(ours.token_emb.weight.grad, reference.token_emb.emb.weight.grad,
                               **TOLERANCE)
    torch.testing.assert_close(ours.blocks[0].attn.to_k.weight.grad,
                               reference.attn_layers.layers[0][1].to_k.weight.grad, **TOLERANCE)
