"""Generation (issue #7): greedy tokens equal x-transformers' AutoregressiveWrapper.generate
(every generating row of tests/features.py, cache on and off, in tests/test_features.py; here
prompts of different lengths and an end token); sampling with one filter at a time equals it under the same seed; cached
logits equal full-sequence logits; loss equals the wrapper's loss."""

from __future__ import annotations

import warnings

import pytest
import torch
from features import feature, feature_spec, layers, spec_of
from reference import paired_models
from x_transformers import AutoregressiveWrapper
from xtc.runtime.layers import forgetful_mask

import xtc

VOCAB = 64


def decoder_spec(name: str = "options-plain") -> xtc.Spec:
    """The Decoder of a row of tests/features.py."""
    return feature_spec(feature(name), "Decoder", flash=False)


def prompts(batch=2, length=5, seed=7) -> torch.Tensor:
    """Prompts without token 0, which the tests here use as padding."""
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def greedy_pair(spec, prompt, new_tokens, cache, **kwargs):
    reference, ours = paired_models(spec)
    wrapper = AutoregressiveWrapper(reference)
    expected = wrapper.generate(prompt, new_tokens, temperature=0.0, cache_kv=cache, **kwargs)
    renamed = {"prompt_lens": kwargs.get("prompt_lens"), "eos_token": kwargs.get("eos_token")}
    extra = {k: v for k, v in kwargs.items() if k in ("context", "context_mask", "prepend_embeds")}
    actual = ours.generate(prompt, new_tokens, temperature=0, cache=cache, **renamed, **extra)
    return expected, actual


# greedy tokens of every generating row, cache on and off: tests/test_features.py


@pytest.mark.parametrize("name", ["options-plain", "positions-rotary", "positions-alibi",
                                  "layout-custom", "options-no_abs_pos_emb"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_prepended_embeddings_generate_like_the_reference(name, cache):
    """A prefix of embeddings (PaLI-style) in front of the prompt: cached once at the first step,
    the tokens' positions counted without it; tokens equal AutoregressiveWrapper.generate's."""
    prefix = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(4))
    expected, actual = greedy_pair(decoder_spec(name), prompts(), 8, cache, prepend_embeds=prefix)
    assert actual.shape == (2, 8) and torch.equal(actual, expected)


def test_a_prefix_is_cached_once_and_counted_apart_from_the_tokens():
    _, ours = paired_models(decoder_spec())
    prefix, sequence = torch.randn(2, 3, 32), prompts(length=6)
    full = ours(sequence, prepend_embeds=prefix)[:, 3:]  # the tokens' logits
    cache = ours.new_cache(2, 9)
    steps = [ours.decode_step(sequence[:, :4], cache=cache, prepend_embeds=prefix)[:, 3:]]
    steps += [ours.decode_step(sequence[:, i:i + 1], cache=cache) for i in range(4, 6)]
    assert (cache.length, cache.prefix) == (9, 3)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)

@pytest.mark.parametrize("name", ["options-plain", "decoder-llama"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_prompts_of_different_lengths(cache, name):
    prompt = prompts(length=6)
    lengths = torch.tensor([6, 3])
    prompt[1, 3:] = 0  # padding at the end of the shorter prompt
    expected, actual = greedy_pair(decoder_spec(name), prompt, 8, cache, prompt_lens=lengths)
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


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
@pytest.mark.parametrize("name", [
    "options-num_mem_kv",
    # what the cache carries beside keys and values: running sums over the positions
    "explicit-selective", "explicit-selective_memory_zero_kv_cope",
    "attention-data_dependent_alibi", "attention-dda_per_row_memory_kv",
    # a sliding window's cache keeps the window's keys, and what it carries beside them
    "window-rotary_memory_kv_zero_kv", "window-alibi_per_layer", "window-xpos",
    "window-data_dependent_alibi", "window-dda_per_row", "window-selective_cope_memory_kv",
    "window-custom_layout_per_layer",
    # multi-head latent attention: keys and values re-projected from the cached latent
    "attention-latent_kv", "attention-latent_rope_subheads",
    "attention-latent_rope_qk_norm_mem_kv", "attention-latent_rope_xpos_k_rmsnorm",
    # per layer: a latent in some layers, keys and values (or a window's) in the others
    "attention-latent_per_layer", "attention-latent_kv_per_layer", "attention-latent_custom_layout",
])
def test_cached_logits_equal_full_sequence_logits(name, masked):
    """A prompt, then one token at a time through the cache, gives the whole sequence's logits
    (the reference turns its cache off for selective attention, and its cached data-dependent
    ALiBi differs from its full forward: the full forward is the oracle)."""
    _, ours = paired_models(decoder_spec(name))
    sequence = prompts(length=9)
    mask = torch.ones_like(sequence, dtype=torch.bool)
    if masked:
        mask[1, :2] = False  # the second row left-padded
    kwargs = {"mask": mask} if masked else {}
    full = ours(sequence, **kwargs)
    cache = ours.new_cache(2, 9)
    steps = [ours.decode_step(sequence[:, :4], cache=cache, mask=mask[:, :4] if masked else None)]
    steps += [ours.decode_step(sequence[:, i:i + 1], cache=cache,
                               mask=mask[:, :i + 1] if masked else None) for i in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_loss_equals_the_wrappers_loss():
    reference, ours = paired_models(decoder_spec())
    x = prompts(length=12)
    x[1, 9:] = -100
    expected = AutoregressiveWrapper(reference)(x)
    torch.testing.assert_close(ours.loss(x), expected, rtol=1e-4, atol=1e-5)


def test_forgetful_masks_hide_a_fixed_share_of_keys_never_the_first():
    torch.manual_seed(0)
    kept = forgetful_mask(2000, 12, 0.25, "cpu")  # int(12 * 0.25) = 3 keys hidden a row
    assert kept[:, 0].all() and ((~kept).sum(dim=1) == 3).all()
    share = (~kept[:, 1:]).float().mean(dim=0)  # uniform over the other 11: 3 / 11 each
    assert ((share - 3 / 11).abs() < 0.04).all(), share
    assert ((~forgetful_mask(5, 4, 0.99, "cpu")).sum(dim=1) == 3).all()  # the first stays


def test_forgetful_masking_acts_in_training_only():
    _, ours = paired_models(decoder_spec("training-mask_prob"))
    x = prompts(length=12)
    evaluated = ours.loss(x)
    assert torch.equal(ours.loss(x), evaluated)
    ours.train()
    torch.manual_seed(1)
    first = ours.loss(x)
    torch.manual_seed(2)
    assert not torch.isclose(first, evaluated) and not torch.isclose(first, ours.loss(x))


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
    _, ours = paired_models(decoder_spec("decoder-llama"))
    ours.generate(prompts(), 3, temperature=0)
    ours.train()
    ours.loss(prompts(length=8)).backward()
    assert all(p.grad is not None for p in ours.parameters())


def test_a_model_that_cannot_cache_says_so_when_asked_to():
    """generate(cache=True), the default, on a model with memory tokens warns that it recomputes
    (once per call site, Python's default); cache=False says so and stays quiet."""
    import warnings

    model = xtc.build(decoder_spec("decoder-memory_tokens")).eval()
    with pytest.warns(UserWarning, match="cannot use a kv cache"):
        model.generate(prompts(), 2, temperature=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.generate(prompts(), 2, temperature=0, cache=False)


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("name", ["options-plain", "positions-rotary", "positions-alibi"])
def test_a_prefix_with_prompts_of_different_lengths_generates_each_row_as_alone(name, cache):
    """x-transformers builds the padding mask of prompt_lens over the prefixed sequence, so it
    masks prefix positions and leaves padding open: not an oracle here. Each row generated
    alone, unpadded, is: the padding goes before the prefix, so relative positions (rotary
    here) see the prefix next to the first token, as they would alone."""
    _, ours = paired_models(decoder_spec(name))
    prefix, prompt, lengths = torch.randn(2, 3, 32), prompts(), torch.tensor([3, 5])
    batched = ours.generate(prompt, 8, temperature=0, cache=cache, prepend_embeds=prefix,
                            prompt_lens=lengths)
    for row, length in enumerate(lengths.tolist()):
        alone = ours.generate(prompt[row:row + 1, :length], 8, temperature=0, cache=cache,
                              prepend_embeds=prefix[row:row + 1])
        assert torch.equal(batched[row:row + 1], alone), row


@pytest.mark.parametrize("name", ["layers-shift_tokens", "layers-shift_tokens_rotary_layerscale"])
def test_token_shifting_caches_what_it_shifts_in(name):
    """Cached, with prompts of different lengths, without the cannot-cache warning, the tokens of
    a token-shifting decoder equal its uncached ones (and those the reference's uncached ones:
    tests/test_features.py)."""
    _, ours = paired_models(decoder_spec(name))
    prompt, lengths = prompts(), torch.tensor([3, 5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached = ours.generate(prompt, 10, temperature=0, prompt_lens=lengths)
    assert torch.equal(cached, ours.generate(prompt, 10, temperature=0, cache=False,
                                             prompt_lens=lengths))


def windowed_decoder(windows) -> xtc.Spec:
    """A Decoder with sliding windows and rotary positions alone (no learned absolute ones), so
    that it may run past max_seq_len."""
    return spec_of({"type": "TransformerWrapper", "num_tokens": VOCAB, "max_seq_len": 16,
                    "use_abs_pos_emb": False,
                    "attn_layers": layers("Decoder", depth=len(windows), rotary_pos_emb=True,
                                          attn={"dim_head": 8, "max_attend_past": list(windows)})})


def test_a_window_s_cache_keeps_the_window_however_long_it_generates():
    """300 tokens after a prompt, far past max_seq_len 16 and the windows (4 and 6; the third
    layer sees everything): each windowed layer's buffers hold its window, the other every
    position; the greedy tokens are those of one uncached forward over the whole sequence."""
    torch.manual_seed(0)
    model = xtc.build(windowed_decoder([4, 6, None])).eval()
    prompt, steps = prompts(batch=1, length=5), 300
    cache = model.new_cache(1, prompt.shape[1] + steps)
    with torch.no_grad():
        logits = model.decode_step(prompt, cache=cache)
        tokens = [logits[:, -1].argmax(dim=-1, keepdim=True)]
        for _ in range(steps - 1):
            tokens.append(model.decode_step(tokens[-1], cache=cache)[:, -1].argmax(-1, keepdim=True))
        sequence = torch.cat((prompt, *tokens), dim=1)
        full = model(sequence[:, :-1])  # (1, 304, VOCAB): no cache, no truncation
    assert [kv.keys.shape[2] for kv in cache.self_attn] == [4, 6, prompt.shape[1] + steps]
    assert cache.length == prompt.shape[1] + steps - 1  # the last token is not fed back
    assert torch.equal(full[:, prompt.shape[1] - 1:].argmax(dim=-1), sequence[:, prompt.shape[1]:])
    assert torch.equal(model.generate(prompt, steps, temperature=0), sequence[:, prompt.shape[1]:])
