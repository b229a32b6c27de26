"""The generation loop shared by every emitted decoder: prompt in, new tokens (or vectors) out.

`generate` follows x-transformers' AutoregressiveWrapper.generate, so that greedy decoding gives
the same tokens: prompts of different lengths are right-aligned internally (the left padding is
masked and positions start at each row's first real token), filters run before the
temperature, and generation stops once every row has produced `eos_token`, with the pad value
(0) after a row's own eos. `generate_vectors` follows ContinuousAutoregressiveWrapper.generate:
each step's last output is the next input; `generate_numbers`, XValAutoregressiveWrapper's:
each new token comes with the number predicted at it. All run `decode`, one decoding step per
new item.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_future_embed_ids, check_prefix_within_prompt
from .compiled import compiled_decode_step
from .numbers import NumberGeneration
from .sampling import sample, sample_normal


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
    if "embed_ids" in forward_kwargs:  # the ids of every position, the new ones' included
        check_future_embed_ids(forward_kwargs["embed_ids"], prompt.shape[0],
                               prompt.shape[1] + max_new_tokens)
    prepended = forward_kwargs.get("prepend_embeds")  # in front of the prompt: in the prefix too
    check_prefix_within_prompt(forward_kwargs.get("prefix_attn_len"),
                               prompt.shape[1] + (0 if prepended is None else prepended.shape[1]))
    warn_without_cache(cache, cacheable)
    choose = next_token(temperature, top_k, top_p, min_p, generator)
    new, _ = decode(model, prompt, max_new_tokens, choose, eos_token, cache and cacheable,
                    prompt_lens, compile, forward_kwargs)
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
    warn_without_cache(cache, cacheable)
    choose = next_token(temperature, top_k, top_p, min_p, generator)
    new, values = decode(model, prompt, max_new_tokens, choose, eos_token, cache and cacheable,
                         prompt_lens, compile, forward_kwargs, numbers=numbers)
    is_number = new == numerical_token_id
    return NumberGeneration(new.clone(), values.masked_fill(~is_number, float("nan")), is_number)


def generate_vectors(model, start: Tensor, n: int, *, temperature: float = 1.0,
                     cache: bool = True, generator: torch.Generator | None = None,
                     max_seq_len: int | None = None, cacheable: bool = True,
                     probabilistic: bool = False, **forward_kwargs) -> Tensor:
    """n new vectors (B, n, d) after `start` (B, t, d), or (n, d) after (t, d): each step's
    last output is the next input. A probabilistic model's outputs are means and variances
    (2, B, T, d), sampled with the standard deviation times temperature (0: the mean).
    forward_kwargs go to every step (a condition)."""
    batched = start.ndim != 2
    start = start if batched else start[None]  # (1, t, d)
    check_generate_arguments(start, n, None, max_seq_len, vectors=True)
    warn_without_cache(cache, cacheable)

    def choose(out: Tensor) -> Tensor:  # (B, T, d), or (2, B, T, d) -> the next vector (B, 1, d)
        if not probabilistic:
            return out[:, -1:]
        mean, variance = out[:, :, -1:]
        return sample_normal(mean, variance, temperature, generator)

    new, _ = decode(model, start, n, choose, None, cache and cacheable, None, False, forward_kwargs)
    return new.clone() if batched else new[0].clone()


def next_token(temperature: float, top_k: int | None, top_p: float | None,
               min_p: float | None, generator: torch.Generator | None
               ) -> Callable[[Tensor], Tensor]:
    """What picks a token model's next token from a step's logits: (B, T, V) -> (B, 1)."""
    def choose(logits: Tensor) -> Tensor:
        return sample(logits[:, -1], temperature, top_k, top_p, min_p, generator)
    return choose


def warn_without_cache(cache: bool, cacheable: bool) -> None:
    if cache and not cacheable:
        warnings.warn("this model cannot use a kv cache (memory tokens prepended at every "
                      "step, or an option that reads the whole sequence, such as belief "
                      "attention, or value residuals with a latent cache: `xtc validate` says "
                      "which), so generate recomputes the whole sequence for each new token; "
                      "pass cache=False to say so and silence this",
                      stacklevel=3)


# Inference mode skips autograd's bookkeeping (version counters, grad metadata) on every op of
# every step: about a tenth of a small model's decoding time.
@torch.inference_mode()
def decode(model, prompt: Tensor, max_new_tokens: int, choose: Callable[[Tensor], Tensor],
           eos_token: int | None, cache: bool, prompt_lens: Tensor | None, compile: bool,
           forward_kwargs: dict, numbers: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """The loop of `generate`, on checked arguments: `choose` picks the next item (B, 1, ...)
    from a step's output. Returns the new items, and for an xVal model (`numbers`, the
    prompt's, given) the numbers it predicted at them."""
    batch, length = prompt.shape[:2]
    total = length + max_new_tokens
    start, padding_mask = None, None
    # embed_num_tokens: each name's ids (B, total), of which each step reads its positions'
    embed_ids = forward_kwargs.pop("embed_ids", None)
    if prompt_lens is not None:
        if numbers is not None:  # scale 1 for the padding, whatever its token
            numbers, _ = align_right(numbers, prompt_lens, fill=1.0)
        if embed_ids is not None:  # the prompt's ids move with its tokens, the new ones stay
            embed_ids = {name: torch.cat((align_right(ids[:, :length], prompt_lens)[0],
                                          ids[:, length:]), dim=1)
                         for name, ids in embed_ids.items()}
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
        if start is not None:
            step_kwargs["seq_start_pos"] = start
        if numbers is not None:  # an xVal model reads each token's number with it
            step_kwargs["x_num"] = numbers[:, -x.shape[1]:]
        if embed_ids is not None:  # the ids of the positions this step runs
            end = out.shape[1]
            step_kwargs["embed_ids"] = {name: ids[:, end - x.shape[1] : end]
                                        for name, ids in embed_ids.items()}
        decode_step = model.decode_step if step == 0 else later_step
        result = decode_step(x, mask=mask, **step_kwargs, **forward_kwargs)
        if numbers is not None:  # logits and numbers: the next token's number is its prediction
            result, predicted = result
            numbers = torch.cat((numbers, predicted[:, -1:]), dim=1)
        item = choose(result)  # (B, 1, ...)
        out = torch.cat((out, item), dim=1)
        if eos_token is not None:
            done |= item[:, 0] == eos_token
            if bool(done.all()):
                break
    new = out[:, length:]
    values = None if numbers is None else numbers[:, length : out.shape[1]]
    return (new if eos_token is None else blank_after_eos(new, eos_token)), values


def check_generate_arguments(prompt: Tensor, max_new_tokens: int, prompt_lens: Tensor | None,
                             max_seq_len: int | None, vectors: bool = False) -> None:
    """generate's (prompt, max_new_tokens), or generate_vectors' (start, n) with `vectors`."""
    given, count = ("start", "n") if vectors else ("prompt", "max_new_tokens")
    if prompt.ndim != 2 + vectors:
        shape = "(batch, length, width)" if vectors else "(batch, length)"
        raise ValueError(f"{given} must be {shape}, got shape {tuple(prompt.shape)}")
    if max_new_tokens < 1:
        raise ValueError(f"{count} must be >= 1, got {max_new_tokens}")
    total = prompt.shape[1] + max_new_tokens
    if max_seq_len is not None and total > max_seq_len:
        raise ValueError(f"{given} ({prompt.shape[1]}) + {count} ({max_new_tokens}) = "
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


def blank_after_eos(tokens: Tensor, eos_token: int, pad_value: int = 0) -> Tensor:
    """Positions after each row's first eos become pad_value (the eos itself stays)."""
    after = F.pad(tokens == eos_token, (1, -1)).cumsum(dim=-1) >= 1
    return tokens.masked_fill(after, pad_value)
