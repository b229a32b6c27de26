"""The generation loop shared by every emitted decoder: prompt in, new tokens out.

It follows x-transformers' AutoregressiveWrapper.generate, so that greedy decoding gives the
same tokens: prompts of different lengths are right-aligned internally (the left padding is
masked and positions start at each row's first real token), filters run before the
temperature, and generation stops once every row has produced `eos_token`, with the pad value
(0) after a row's own eos.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from .compiled import compiled_decode_step
from .sampling import sample


def generate(model, prompt: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
             eos_token: int | None = None, cache: bool = True, prompt_lens: Tensor | None = None,
             generator: torch.Generator | None = None, compile: bool = False,
             max_seq_len: int | None = None, cacheable: bool = True, **forward_kwargs) -> Tensor:
    """New tokens (B, n_new <= max_new_tokens) after `prompt` (B, n).

    compile runs every step after the first (the prompt's) through torch.compile (see
    compiled.py); max_seq_len bounds prompt + new tokens where positions are absolute (None: no
    bound); cacheable says whether the model can use a kv cache (memory tokens prevent it).
    """
    check_generate_arguments(prompt, max_new_tokens, prompt_lens, max_seq_len)
    if cache and not cacheable:
        warnings.warn("this model cannot use a kv cache (its memory tokens are prepended at "
                      "every step: `xtc validate` says so), so generate recomputes the whole "
                      "sequence for each new token; pass cache=False to say so and silence this",
                      stacklevel=2)
    new = decode(model, prompt, max_new_tokens, temperature, top_k, top_p, min_p, eos_token,
                 cache and cacheable, prompt_lens, generator, compile, forward_kwargs)
    # inference tensors refuse in-place updates outside inference mode: hand out an ordinary copy
    return new.clone()


# Inference mode skips autograd's bookkeeping (version counters, grad metadata) on every op of
# every step: about a tenth of a small model's decoding time.
@torch.inference_mode()
def decode(model, prompt: Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
           top_p: float | None, min_p: float | None, eos_token: int | None, cache: bool,
           prompt_lens: Tensor | None, generator: torch.Generator | None, compile: bool,
           forward_kwargs: dict) -> Tensor:
    """The loop of `generate`, on checked arguments."""
    batch, length = prompt.shape
    total = length + max_new_tokens
    start, padding_mask = None, None
    if prompt_lens is not None:
        prompt, start = align_right(prompt, prompt_lens)
        padding_mask = torch.arange(total, device=prompt.device) >= start[:, None]  # (B, total)
    # embeddings in front of the prompt: cached with it at the first step, else given each step
    prefix = forward_kwargs.pop("prepend_embeds", None)
    prefix_length = 0 if prefix is None else prefix.shape[1]
    kv = model.new_cache(batch, prefix_length + total) if cache else None
    # the prompt's step runs eagerly: with a cache every later step is one token, and without
    # one, each is one longer than the last (dynamic shapes serve those)
    later_step = compiled_decode_step(model) if compile else model.decode_step
    out, done = prompt, torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    for step in range(max_new_tokens):
        x = out if kv is None or step == 0 else out[:, -1:]
        mask = None if padding_mask is None else padding_mask[:, : out.shape[1]]
        step_kwargs = {} if kv is None else {"cache": kv}
        if prefix is not None and (kv is None or step == 0):
            step_kwargs["prepend_embeds"] = prefix
        decode_step = model.decode_step if step == 0 else later_step
        logits = decode_step(x, mask=mask, seq_start_pos=start, **step_kwargs, **forward_kwargs)[:, -1]
        token = sample(logits, temperature, top_k, top_p, min_p, generator)  # (B, 1)
        out = torch.cat((out, token), dim=1)
        if eos_token is not None:
            done |= token[:, 0] == eos_token
            if bool(done.all()):
                break
    new = out[:, length:]
    return new if eos_token is None else blank_after_eos(new, eos_token)


def check_generate_arguments(prompt: Tensor, max_new_tokens: int, prompt_lens: Tensor | None,
                             max_seq_len: int | None) -> None:
    if prompt.ndim != 2:
        raise ValueError(f"prompt must be (batch, length), got shape {tuple(prompt.shape)}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    total = prompt.shape[1] + max_new_tokens
    if max_seq_len is not None and total > max_seq_len:
        raise ValueError(f"prompt ({prompt.shape[1]}) + max_new_tokens ({max_new_tokens}) = "
                         f"{total} exceeds max_seq_len {max_seq_len}: the model's absolute "
                         "positions end there")
    if prompt_lens is not None and (prompt_lens.shape != prompt.shape[:1]
                                    or bool((prompt_lens < 1).any() | (prompt_lens > prompt.shape[1]).any())):
        raise ValueError(f"prompt_lens must be ({prompt.shape[0]},) with values in "
                         f"[1, {prompt.shape[1]}], got {prompt_lens.tolist()}")


def align_right(prompt: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Move each row's first `length` tokens to the right end, padding with 0 on the left;
    also return where each row starts."""
    length = prompt.shape[1]
    start = length - lengths  # (B,)
    source = torch.arange(length, device=prompt.device)[None, :] - start[:, None]  # (B, n)
    aligned = prompt.gather(1, source.clamp(min=0))
    return aligned.masked_fill(source < 0, 0), start


def blank_after_eos(tokens: Tensor, eos_token: int, pad_value: int = 0) -> Tensor:
    """Positions after each row's first eos become pad_value (the eos itself stays)."""
    after = F.pad(tokens == eos_token, (1, -1)).cumsum(dim=-1) >= 1
    return tokens.masked_fill(after, pad_value)
