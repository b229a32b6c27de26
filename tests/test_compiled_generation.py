"""generate(..., compile=True): the steps after the prompt's run through torch.compile and give
the eager path's tokens (which tests/test_features.py proves equal to the reference's). One tiny
decoder in the default run, compiled once and reused; other layouts under `slow`, each compile
taking seconds."""

from __future__ import annotations

import pytest
import torch
from features import feature, feature_spec
from inputs import make_inputs
from reference import paired_models
from torch._dynamo.utils import counters

PROMPT_BATCH, PROMPT_LENGTH, NEW_TOKENS, CONTEXT_LENGTH = 2, 5, 10, 7


def eager_and_compiled(row: str, cache: bool = True, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy tokens of a row's model, eager then compiled, with the same arguments."""
    (kind,) = feature(row).kinds if row.startswith(("xtransformer", "prefix")) else ("Decoder",)
    spec = feature_spec(feature(row), kind, flash=feature(row).flash)
    _, model = paired_models(spec)
    inputs = make_inputs(spec, PROMPT_BATCH, PROMPT_LENGTH, context_length=CONTEXT_LENGTH)
    if kind == "XTransformer":
        source, target = inputs.args
        args = (source, target[:, :1], NEW_TOKENS)
    else:  # token ids (and an xVal model's numbers)
        args = (*inputs.args, NEW_TOKENS)
        kwargs = {**inputs.kwargs, **kwargs}
    eager = model.generate(*args, temperature=0, cache=cache, **kwargs)
    compiled = model.generate(*args, temperature=0, cache=cache, compile=True, **kwargs)
    return eager, compiled


def test_compiled_steps_give_the_eager_tokens_and_compile_once():
    lens = torch.tensor([PROMPT_LENGTH, 3])  # a left-padded row: the mask and start positions
    graphs = counters["stats"]["unique_graphs"]
    eager, compiled = eager_and_compiled("options-plain", prompt_lens=lens)
    assert counters["stats"]["unique_graphs"] > graphs  # the steps did run compiled
    assert compiled.shape == (PROMPT_BATCH, NEW_TOKENS) and torch.equal(compiled, eager)
    with torch._dynamo.config.patch(error_on_recompile=True):  # the second call reuses it
        _, again = eager_and_compiled("options-plain", prompt_lens=lens)
    assert torch.equal(again, eager)


@pytest.mark.slow
@pytest.mark.parametrize("row", ["decoder-llama", "positions-alibi", "positions-xpos",
                                 "positions-t5", "layout-custom_residual_attn_shift",
                                 "cross-plain", "xtransformer-readme",
                                 "attention-latent_rope_subheads", "prefix-rotary"])
def test_every_kind_of_decoding_step_compiles_to_the_eager_tokens(row):
    eager, compiled = eager_and_compiled(row)
    assert torch.equal(compiled, eager)


@pytest.mark.slow
def test_compiled_generation_without_a_cache_and_with_a_prefix():
    """Without a cache every step reads the whole sequence (its length grows: dynamic shapes);
    a prefix of embeddings is cached at the eager first step."""
    eager, compiled = eager_and_compiled("options-num_memory_tokens", cache=False)
    assert torch.equal(compiled, eager)
    prefix = torch.randn(PROMPT_BATCH, 3, 32, generator=torch.Generator().manual_seed(4))
    eager, compiled = eager_and_compiled("positions-rotary", prepend_embeds=prefix)
    assert torch.equal(compiled, eager)


@pytest.mark.slow
def test_compiled_xval_steps_give_the_eager_tokens_and_numbers():
    eager, compiled = eager_and_compiled("xval-options")
    assert torch.equal(compiled.sampled_token_ids, eager.sampled_token_ids)
    torch.testing.assert_close(compiled.sampled_numbers, eager.sampled_numbers, equal_nan=True)
