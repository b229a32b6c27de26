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
from .numbers import NumberGeneration
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
        warn_uncached()
    new, _ = decode(model, prompt, None, max_new_tokens, temperature, top_k, top_p, min_p,
                    eos_token, cache and cacheable, prompt_lens, generator, compile,
                    forward_kwargs)
    # inference tensors refuse in-place updates outside inference mode: hand out an ordinary copy
    return new.clone()


def generate_numbers(model, prompt: Tensor, numbers: Tensor, max_new_tokens: int, *,
                     numerical_token_id: int, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None, min_p: float | None = None,
                     eos_token: int | None = None, cache: bool = True,
                     prompt_lens: Tensor | None = None, generator: torch.Generator | None = None,
                     compile: bool = False, max_seq_len: int | None = None,
                     cacheable: bool = True, **forward_kwargs) -> NumberGeneration:
    """An xVal model's `generate`: new tokens after `prompt` (B, n) whose numbers are `numbers`
    (B, n), each new position given the number the model predicted there, as x-transformers'
    XValAutoregressiveWrapper.generate does. The numbers come back NaN where the token is not
    the number token."""
    check_generate_arguments(prompt, max_new_tokens, prompt_lens, max_seq_len)
    if not isinstance(numbers, Tensor) or not numbers.is_floating_point() \
            or numbers.shape != prompt.shape:
        raise ValueError(f"the prompt's numbers must be a floating-point tensor shaped like the "
                         f"prompt {tuple(prompt.shape)}")
    if cache and not cacheable:
        warn_uncached()
    new, values = decode(model, prompt, numbers, max_new_tokens, temperature, top_k, top_p,
                         min_p, eos_token, cache and cacheable, prompt_lens, generator, compile,
                         forward_kwargs)
    is_number = new == numerical_token_id
    return NumberGeneration(new.clone(), values.masked_fill(~is_number, float("nan")), is_number)


# Inference mode skips autograd's bookkeeping (version counters, grad metadata) on every op of
# every step: about a tenth of a small model's decoding time.
@torch.inference_mode()
def decode(model, prompt: Tensor, numbers: Tensor | None, max_new_tokens: int,
           temperature: float, top_k: int | None, top_p: float | None, min_p: float | None,
           eos_token: int | None, cache: bool, prompt_lens: Tensor | None,
           generator: torch.Generator | None, compile: bool,
           forward_kwargs: dict) -> tuple[Tensor, Tensor | None]:
    """The loop of `generate`, on checked arguments: the new tokens, and for an xVal model
    (`numbers`, the prompt's, given) the numbers it predicted at them."""
    batch, length = prompt.shape
    total = length + max_new_tokens
    start, padding_mask = None, None
    if prompt_lens is not None:
        if numbers is not None:  # scale 1 for the padding, whatever its token
            numbers, _ = align_right(numbers, prompt_lens, fill=1.0)
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
        if numbers is not None:  # an xVal model reads each token's number with it
            step_kwargs["x_num"] = numbers[:, -x.shape[1]:]
        decode_step = model.decode_step if step == 0 else later_step
        logits = decode_step(x, mask=mask, seq_start_pos=start, **step_kwargs, **forward_kwargs)
        if numbers is not None:  # logits and numbers: the next token's number is its prediction
            logits, predicted = logits
            numbers = torch.cat((numbers, predicted[:, -1:]), dim=1)
        token = sample(logits[:, -1], temperature, top_k, top_p, min_p, generator)  # (B, 1)
        out = torch.cat((out, token), dim=1)
        if eos_token is not None:
            done |= token[:, 0] == eos_token
            if bool(done.all()):
                break
    new = out[:, length:]
    values = None if numbers is None else numbers[:, length : out.shape[1]]
    return (new if eos_token is None else blank_after_eos(new, eos_token)), values


def warn_uncached() -> None:
    warnings.warn("this model cannot use a kv cache (its memory tokens are prepended at "
                  "every step: `xtc validate` says so), so generate recomputes the whole "
                  "sequence for each new token; pass cache=False to say so and silence this",
                  stacklevel=3)


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


def align_right(prompt: Tensor, lengths: Tensor, fill: float = 0) -> tuple[Tensor, Tensor]:
    """Move each row's first `length` tokens (or numbers) to the right end, padding with `fill`
    on the left; also return where each row starts."""
    length = prompt.shape[1]
    start = length - lengths  # (B,)
    source = torch.arange(length, device=prompt.device)[None, :] - start[:, None]  # (B, n)
    aligned = prompt.gather(1, source.clamp(min=0))
    return aligned.masked_fill(source < 0, fill), start


def blank_after_eos(tokens: Tensor, eos_token: int) -> Tensor:
    """Positions after each row's first eos become 0 (the eos itself stays)."""
    after = F.pad(tokens == eos_token, (1, -1)).cumsum(dim=-1) >= 1
    return tokens.masked_fill(after, 0)
