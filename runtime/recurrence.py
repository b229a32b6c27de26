"""Segment-level recurrence (Transformer-XL, Dai et al. 2019, https://arxiv.org/abs/1901.02860).

A model with a memory reads a long sequence one segment of max_seq_len tokens at a time. Each
self-attention layer keeps its input over the last `max_mem_len` positions as its memory, and
its keys and values over the next segment read that memory first. Gradients stop at a segment:
memories are detached. `segment_loss` and `generate_segments` follow x-transformers'
XLAutoregressiveWrapper, so that losses and greedy tokens are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .generation import blank_after_eos, check_generate_arguments
from .sampling import sample


def next_memories(memories: list[Tensor | None], inputs: list[Tensor], max_len: int,
                  extend: bool = True, detach: bool = True) -> list[Tensor]:
    """Each layer's memory for the next segment: the memory it read (if any), then its inputs
    (B, T, C) over this segment, the last max_len positions, detached (unless `detach` is
    false: truncated backpropagation through several segments). `extend=False`: its inputs
    over this segment alone, as x-transformers' ContinuousTransformerWrapper and
    XValTransformerWrapper keep (they drop the memory they read)."""
    kept = [(x if memory is None or not extend else torch.cat((memory, x), dim=1))[:, -max_len:]
            for memory, x in zip(memories, inputs)]
    return [memory.detach() for memory in kept] if detach else kept


def segment_loss(model, x: Tensor, segment: int, ignore_index: int,
                 mems: list[Tensor] | None = None, tbptt_steps: int = 1,
                 **forward_kwargs) -> Tensor:
    """Next-token cross entropy of x (B, T) over segments of `segment` inputs, each reading the
    memories of those before. As XLAutoregressiveWrapper: the loss of a segment is the mean of
    its rows' means over the predicted positions (ids equal to ignore_index are not predicted),
    weighted by the segment's share of the sequence. The memories are detached after every
    `tbptt_steps`-th segment: until then the gradient flows back through them (a model built
    with tbptt_steps above 1 takes detach_mems)."""
    inputs, targets = x[:, :-1], x[:, 1:]
    total = inputs.shape[1]
    loss = x.new_zeros((), dtype=torch.float32)
    chunks = zip(inputs.split(segment, dim=1), targets.split(segment, dim=1))
    for index, (chunk, labels) in enumerate(chunks):
        if tbptt_steps > 1:
            forward_kwargs["detach_mems"] = (index + 1) % tbptt_steps == 0
        logits, mems = model(chunk, mems=mems, return_mems=True, **forward_kwargs)
        predicted = labels != ignore_index  # (B, T)
        losses = F.cross_entropy(logits.transpose(1, 2), labels.masked_fill(~predicted, 0),
                                 reduction="none") * predicted  # (B, T)
        per_row = losses.sum(dim=1) / predicted.sum(dim=1).clamp(min=1e-5)  # (B,)
        loss = loss + per_row.mean() * (chunk.shape[1] / total)
    return loss


@torch.inference_mode()
def generate_segments(model, prompt: Tensor, max_new_tokens: int, *, segment: int,
                      temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, min_p: float | None = None,
                      eos_token: int | None = None, pad_value: int = 0,
                      mems: list[Tensor] | None = None,
                      generator: torch.Generator | None = None, **forward_kwargs) -> Tensor:
    """New tokens (B, n_new) after prompt (B, n), any number past `segment`, as
    XLAutoregressiveWrapper.generate decides them.

    The prompt's full segments only build the memories. Inside a segment each step is one
    token after a kv cache of the segment's tokens, reading the memories the segment began
    with. At each segment boundary the cache is dropped, the memories become those the last
    step returned (the earlier memories and that step's one new position), and the last full
    segment is recomputed, uncached, on them, for the next token; its memories then serve the
    new segment, whose first token runs uncached and whose later ones cached.
    """
    check_generate_arguments(prompt, max_new_tokens, None, None)
    *leading, _ = prompt.split(segment, dim=1)
    for tokens in leading:
        _, mems = model.decode_step(tokens, mems=mems, return_mems=True, **forward_kwargs)
    start, segment_mems, cache = len(leading) * segment, mems, None
    out, length = prompt, prompt.shape[1]
    done = torch.zeros(prompt.shape[0], dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        boundary = out.shape[1] % segment == 0
        if boundary:
            start, segment_mems, cache = out.shape[1], mems, None
        if cache is not None:  # one new token after the cached ones
            x = out[:, -1:]
        else:  # the segment's first token, or at a boundary the last full segment again
            x = out[:, start:] if out.shape[1] > start else out[:, start - segment:]
            cache = model.new_cache(out.shape[0], segment)
        logits, mems = model.decode_step(x, mems=segment_mems, cache=cache, return_mems=True,
                                         **forward_kwargs)
        if boundary:  # the recomputed segment's memories serve the new one, uncached at first
            segment_mems, cache = mems, None
        token = sample(logits[:, -1], temperature, top_k, top_p, min_p, generator)  # (B, 1)
        out = torch.cat((out, token), dim=1)
        if eos_token is not None:
            done |= token[:, 0] == eos_token
            if bool(done.all()):
                break
    new = out[:, length:]
    new = new if eos_token is None else blank_after_eos(new, eos_token, pad_value)
    return new.clone()  # an ordinary tensor, not an inference one
