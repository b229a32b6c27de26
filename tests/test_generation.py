"""Generation (issue #7): greedy tokens equal x-transformers' AutoregressiveWrapper.generate,
cache on and off; sampling with one filter at a time equals it under the same seed; cached
logits equal full-sequence logits; loss equals the wrapper's loss."""

from __future__ import annotations

import pytest
import torch
from reference import paired_models
from test_model_types import floats, lengths_mask, spec_of, xtransformer_spec
from x_transformers import AutoregressiveWrapper

import xtc

VOCAB = 64


def decoder_spec(model: dict | None = None, layers: dict | None = None) -> xtc.Spec:
    stack = {"type": "Decoder", "dim": 32, "depth": 2, "heads": 4, "attn": {"dim_head": 16},
             **(layers or {})}
    return spec_of({"type": "TransformerWrapper", "num_tokens": VOCAB, "max_seq_len": 32,
                    **(model or {}), "attn_layers": stack})


def prompts(batch=2, length=5, seed=7) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


DECODERS = {
    "plain": ({}, {}),
    "options": ({"emb_dropout": 0.1}, {"use_rmsnorm": True, "ff": {"glu": True},
                                       "attn": {"dim_head": 16, "num_mem_kv": 2, "flash": True}}),
    "post_norm_sinusoidal": ({"scaled_sinu_pos_emb": True}, {"pre_norm": False}),
    "no_positions_l2norm": ({"use_abs_pos_emb": False, "l2norm_embed": True}, {}),
    "memory_tokens": ({"num_memory_tokens": 2}, {}),
    # one decoding query against grouped keys takes its own path in attend (folded heads)
    "llama": ({"use_abs_pos_emb": False}, {"rotary_pos_emb": True, "use_rmsnorm": True,
                                           "attn": {"dim_head": 16, "kv_heads": 2},
                                           "ff": {"glu": True, "swish": True}}),
}


def greedy_pair(spec, prompt, new_tokens, cache, **kwargs):
    reference, ours = paired_models(spec)
    wrapper = AutoregressiveWrapper(reference)
    expected = wrapper.generate(prompt, new_tokens, temperature=0.0, cache_kv=cache, **kwargs)
    renamed = {"prompt_lens": kwargs.get("prompt_lens"), "eos_token": kwargs.get("eos_token")}
    extra = {k: v for k, v in kwargs.items() if k in ("context", "context_mask")}
    actual = ours.generate(prompt, new_tokens, temperature=0, cache=cache, **renamed, **extra)
    return expected, actual


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_greedy_tokens_equal_the_reference(name, cache):
    expected, actual = greedy_pair(decoder_spec(*DECODERS[name]), prompts(), 12, cache)
    assert actual.shape == (2, 12) and torch.equal(actual, expected)


@pytest.mark.parametrize("name", ["plain", "llama"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_prompts_of_different_lengths(cache, name):
    prompt = prompts(length=6)
    lengths = torch.tensor([6, 3])
    prompt[1, 3:] = 0  # padding at the end of the shorter prompt
    expected, actual = greedy_pair(decoder_spec(*DECODERS[name]), prompt, 8, cache,
                                   prompt_lens=lengths)
    assert torch.equal(actual, expected)


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_eos_stops_and_blanks(cache):
    spec = decoder_spec()
    _, free = greedy_pair(spec, prompts(), 12, cache)
    eos = int(free[0, 3])
    expected, actual = greedy_pair(spec, prompts(), 12, cache, eos_token=eos)
    assert torch.equal(actual, expected)
    first = (actual[0] == eos).nonzero()[0, 0]
    assert (actual[0, first + 1:] == 0).all()


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_cross_attending_decoder_generates_like_the_reference(cache):
    spec = decoder_spec(layers={"cross_attend": True})
    context, context_mask = floats(2, 6, 32), lengths_mask([6, 4], 6)
    expected, actual = greedy_pair(spec, prompts(), 10, cache, context=context,
                                   context_mask=context_mask)
    assert torch.equal(actual, expected)


FILTERS = {
    "top_k": ({"filter_logits_fn": "top_k", "filter_kwargs": {"k": 5}}, {"top_k": 5}),
    "top_p": ({"filter_logits_fn": "top_p", "filter_kwargs": {"thres": 0.8}}, {"top_p": 0.8}),
    "min_p": ({"filter_logits_fn": "min_p", "filter_kwargs": {"min_p": 0.2}}, {"min_p": 0.2}),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_sampling_with_one_filter_equals_the_reference(name):
    reference, ours = paired_models(decoder_spec())
    theirs, mine = FILTERS[name]
    torch.manual_seed(11)
    expected = AutoregressiveWrapper(reference).generate(prompts(), 10, temperature=0.7, **theirs)
    torch.manual_seed(11)
    actual = ours.generate(prompts(), 10, temperature=0.7, **mine)
    assert torch.equal(actual, expected)


def test_a_generator_makes_sampling_reproducible():
    _, ours = paired_models(decoder_spec())
    runs = [ours.generate(prompts(), 10, top_k=8, generator=torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert torch.equal(*runs)


def test_cached_logits_equal_full_sequence_logits():
    _, ours = paired_models(decoder_spec(layers={"attn": {"dim_head": 16, "num_mem_kv": 1}}))
    sequence = prompts(length=9)
    full = ours(sequence)
    cache = ours.new_cache(2, 9)
    steps = [ours(sequence[:, :4], cache=cache)]
    steps += [ours(sequence[:, i:i + 1], cache=cache) for i in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_loss_equals_the_wrappers_loss():
    reference, ours = paired_models(decoder_spec())
    x = prompts(length=12)
    x[1, 9:] = -100
    expected = AutoregressiveWrapper(reference)(x)
    torch.testing.assert_close(ours.loss(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_xtransformer_generate_equals_the_reference(cache):
    reference, ours = paired_models(xtransformer_spec({"tie_token_emb": True}))
    src, mask = prompts(length=10), lengths_mask([10, 7], 10)
    start = prompts(length=1)
    expected = reference.generate(src, start, 8, mask=mask, temperature=0.0, cache_kv=cache)
    actual = ours.generate(src, start, 8, mask=mask, temperature=0, cache=cache)
    assert torch.equal(actual, expected)


def test_generating_past_max_seq_len_is_an_error():
    _, ours = paired_models(decoder_spec())
    with pytest.raises(ValueError, match="exceeds max_seq_len 32"):
        ours.generate(prompts(length=30), 5)


def test_generate_restores_training_mode():
    _, ours = paired_models(decoder_spec())
    ours.train()
    ours.generate(prompts(), 2, temperature=0)
    assert ours.training


def test_generated_tokens_are_ordinary_tensors():
    # decoding runs in inference mode; its tensors would refuse in-place updates outside it
    _, ours = paired_models(decoder_spec())
    tokens = ours.generate(prompts(), 3, temperature=0)
    assert not tokens.is_inference()
    tokens[:, 0] = 0


def test_training_after_generating_works():
    # nothing made in inference mode (caches, rotary angles) may stay behind in the model
    _, ours = paired_models(decoder_spec(*DECODERS["llama"]))
    ours.generate(prompts(), 3, temperature=0)
    ours.train()
    ours.loss(prompts(length=8)).backward()
    assert all(p.grad is not None for p in ours.parameters())


def test_a_model_that_cannot_cache_says_so_when_asked_to():
    """generate(cache=True), the default, on a model with memory tokens warns that it recomputes
    (once per call site, Python's default); cache=False says so and stays quiet."""
    import warnings

    model = xtc.build(decoder_spec(model={"num_memory_tokens": 2})).eval()
    with pytest.warns(UserWarning, match="cannot use a kv cache"):
        model.generate(prompts(), 2, temperature=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.generate(prompts(), 2, temperature=0, cache=False)
