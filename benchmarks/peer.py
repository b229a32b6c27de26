"""Hugging Face transformers' Llama as a second peer for cached greedy generation.

benchmarks/specs/gpt_llama.yaml builds a decoder the way recent models are built (rotary, RMSNorm,
grouped-query attention, SwiGLU). transformers' `LlamaForCausalLM` is the most used implementation
of that architecture, so bench.py can time xtc's generation against it as well as against
x-transformers. `llama_like` builds it with the same shapes and parameter count (4,074,752 for
gpt_llama.yaml); its weights are random, as only time is compared. The runners here generate
greedily with HF's default DynamicCache, with a StaticCache, and with a StaticCache and a
`torch.compile`d forward (HF's recommended recipe for fast generation); the caller times them.

transformers is an optional benchmark dependency (`pip install transformers`): without it
`hf_available()` is False and the caller skips this peer.
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM

CACHES = {"dynamic": None, "static": "static"}  # our name -> generate()'s cache_implementation


def hf_available() -> bool:
    """Whether transformers is installed (it is only needed for this peer)."""
    return importlib.util.find_spec("transformers") is not None


def llama_like(num_tokens: int, max_seq_len: int, dim: int, depth: int, heads: int,
               dim_head: int, kv_heads: int, ff_inner_dim: int) -> LlamaForCausalLM:
    """A float32 LlamaForCausalLM in eval mode with the shapes of an x-transformers decoder
    built with rotary_pos_emb, use_rmsnorm, attn kv_heads and ff glu + swish."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=num_tokens, max_position_embeddings=max_seq_len, hidden_size=dim,
        num_hidden_layers=depth, num_attention_heads=heads, head_dim=dim_head,
        num_key_value_heads=kv_heads, intermediate_size=ff_inner_dim,
        tie_word_embeddings=False,  # x-transformers' logits head is its own matrix
        mlp_bias=True,  # x-transformers' feedforward Linears have biases ...
        attention_bias=False,  # ... its attention projections none
        attn_implementation="sdpa",  # the fused attention xtc uses too
    )
    return LlamaForCausalLM(config).to(torch.float32).eval()


def parameter_count(model: torch.nn.Module) -> int:
    """The number of trainable weights (buffers such as the rotary frequencies not counted)."""
    return sum(parameter.numel() for parameter in model.parameters())


def _generate_kwargs(prompt: torch.Tensor, new_tokens: int, cache: str) -> dict:
    """generate() arguments for greedy decoding of exactly `new_tokens` tokens."""
    if cache not in CACHES:
        raise ValueError(f"cache must be one of {sorted(CACHES)}, not {cache!r}")
    return {
        # Explicit: given a pad id, generate() infers the mask from the ids and masks out every
        # prompt token equal to it. No pad id is set either (batch of one, no eos: nothing to
        # pad, and generate() does not ask for one).
        "attention_mask": torch.ones_like(prompt),
        "max_new_tokens": new_tokens,
        "do_sample": False,
        # The config's eos id (2) would end generation early and vary its length by prompt.
        # None drops the stop criterion without touching the logits (min_new_tokens instead
        # would suppress token 2 and change the argmax).
        "eos_token_id": None,
        "cache_implementation": CACHES[cache],
    }


def generation_runner(model: LlamaForCausalLM, prompt: torch.Tensor, new_tokens: int,
                      cache: str) -> Callable[[], torch.Tensor]:
    """A zero-argument callable returning `prompt` followed by `new_tokens` greedy tokens, with
    the "dynamic" (HF's default) or "static" key/value cache."""
    kwargs = _generate_kwargs(prompt, new_tokens, cache)
    return lambda: model.generate(prompt, **kwargs)


def compiled_generation_runner(model: LlamaForCausalLM, prompt: torch.Tensor,
                               new_tokens: int) -> tuple[Callable[[], torch.Tensor], float]:
    """Static-cache generation with a compiled forward, as HF's inference guide recommends
    (cache_implementation="static" and `model.forward = torch.compile(model.forward,
    mode="reduce-overhead", fullgraph=True)`), and the seconds its first, compiling call took.

    That recipe is used rather than generate()'s own `compile_config`, which transformers 5
    applies only on CUDA-like devices (on CPU only through a private flag) and only to the
    decoding steps. Here both the prefill and the one-token step are compiled, on any device.
    The forward is compiled on a copy, so `model` itself stays eager for the other runners."""
    model = copy.deepcopy(model)
    model.forward = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)
    # disable_compile: the forward is compiled already; keeps generate() from wrapping it
    # again on a GPU.
    kwargs = {**_generate_kwargs(prompt, new_tokens, "static"), "disable_compile": True}

    def run() -> torch.Tensor:
        return model.generate(prompt, **kwargs)

    start = time.perf_counter()
    run()  # compiles the prefill and the decoding step
    return run, time.perf_counter() - start
