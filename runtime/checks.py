"""Run-time checks on a model's inputs: clear ValueError / TypeError instead of an IndexError
deep inside an embedding, a CUDA device-side assert, or silently wrong output (x-transformers
accepts float token ids and checks lengths with `assert`, which `python -O` removes).

They are skipped while torch.compile traces the model (they read tensor values).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tokens(x: object, num_tokens: int, max_seq_len: int | None = None, cached: int = 0) -> None:
    """Token ids: an integer tensor (B, T), both non-empty, ids in [0, num_tokens), and (after
    `cached` positions in a kv cache) at most max_seq_len long where positions are absolute
    (None: no limit)."""
    if torch.compiler.is_compiling():
        return
    if not isinstance(x, Tensor):
        raise TypeError(f"tokens must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"tokens must be an integer tensor (got {str(x.dtype).removeprefix('torch.')})")
    if x.ndim != 2:
        raise ValueError(f"tokens must be (batch, length), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("empty batch: tokens have shape (0, ...)")
    if x.shape[1] == 0:
        raise ValueError("empty sequence: tokens have length 0")
    if max_seq_len is not None and cached + x.shape[1] > max_seq_len:
        raise ValueError(f"sequence length {cached + x.shape[1]} exceeds max_seq_len {max_seq_len}")
    low, high = (int(bound) for bound in torch.aminmax(x))  # one pass over the ids
    if low < 0 or high >= num_tokens:
        raise ValueError(f"token ids must be in [0, {num_tokens}); got min {low}, max {high}")


def check_embed_ids(embed_ids: object, sizes: tuple[tuple[str, int], ...], x: Tensor) -> None:
    """Ids of further embeddings (embed_num_tokens): a dict with exactly the model's names,
    each an integer tensor shaped like the tokens x, ids in [0, that vocabulary's size)."""
    if torch.compiler.is_compiling():
        return
    if not isinstance(embed_ids, dict):
        raise TypeError(f"embed_ids must be a dict of name -> ids, got {type(embed_ids).__name__}")
    names = [name for name, _ in sizes]
    missing = [name for name in names if name not in embed_ids]
    unexpected = [name for name in embed_ids if name not in names]
    if missing or unexpected:
        raise ValueError(f"embed_ids must hold exactly {names}: missing {missing}, unexpected "
                         f"{[str(name)[:40] for name in unexpected]}")
    for name, size in sizes:
        ids = embed_ids[name]
        if not isinstance(ids, Tensor) or ids.dtype == torch.bool or ids.is_floating_point() \
                or ids.is_complex():
            got = str(ids.dtype).removeprefix("torch.") if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(f"embed_ids[{name!r}] must be an integer tensor, got {got}")
        if ids.shape != x.shape:
            raise ValueError(f"embed_ids[{name!r}] must be shaped like the tokens "
                             f"{tuple(x.shape)}, got {tuple(ids.shape)}")
        low, high = (int(bound) for bound in torch.aminmax(ids))
        if low < 0 or high >= size:
            raise ValueError(f"embed_ids[{name!r}] must be in [0, {size}); got min {low}, max {high}")


def check_future_embed_ids(embed_ids: object, batch: int, total: int) -> None:
    """generate's embed_ids: each name's ids (batch, prompt length + max_new_tokens), the ids of
    the positions to come given up front (the names and values are checked at each step)."""
    if not isinstance(embed_ids, dict):
        raise TypeError(f"embed_ids must be a dict of name -> ids, got {type(embed_ids).__name__}")
    for name, ids in embed_ids.items():
        if not isinstance(ids, Tensor) or tuple(ids.shape) != (batch, total):
            got = tuple(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"embed_ids[{str(name)[:40]!r}] must be (batch, prompt length + "
                             f"max_new_tokens) = {(batch, total)}, the ids of the new positions "
                             f"given up front; got {got}")


def check_mask(mask: object, x: Tensor, cached: int = 0) -> None:
    """A padding mask: None, or a bool tensor shaped like the tokens (True = a real token); with
    a kv cache it covers the cached positions too, (B, cached + T)."""
    if mask is None or torch.compiler.is_compiling():
        return
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (got {str(mask.dtype).removeprefix('torch.')})")
    expected = (x.shape[0], cached + x.shape[1])
    if tuple(mask.shape) != expected:
        what = "tokens shape" if not cached else f"{cached} cached + tokens"
        raise ValueError(f"mask shape {tuple(mask.shape)} != {what} {expected}")


def check_numbers(x_num: object, x: Tensor) -> None:
    """An xVal model's numbers: a floating tensor shaped like the tokens (only the numbers at
    number tokens are read, so any value, NaN included, may stand elsewhere)."""
    if torch.compiler.is_compiling():
        return
    check_float_tensor(x_num, "x_num")
    if x_num.shape != x.shape:
        raise ValueError(f"x_num shape {tuple(x_num.shape)} != tokens shape {tuple(x.shape)}")


def check_features(x: object, dim: int, max_seq_len: int | None = None, name: str = "x",
                   cached: int = 0) -> None:
    """Continuous input: a floating tensor (B, T, dim), both non-empty, and (after `cached`
    positions in a kv cache) at most max_seq_len long."""
    if torch.compiler.is_compiling():
        return
    check_float_tensor(x, name)
    if x.ndim != 3 or x.shape[-1] != dim:
        raise ValueError(f"{name} must be (batch, length, {dim}), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if max_seq_len is not None and cached + x.shape[1] > max_seq_len:
        raise ValueError(f"sequence length {cached + x.shape[1]} exceeds max_seq_len {max_seq_len}")


def check_context(context: object, dim: int, batch: int, name: str = "context",
                  required: bool = True) -> None:
    """What is attended to or put in front: a floating tensor (batch, length, dim)."""
    if torch.compiler.is_compiling() or (context is None and not required):
        return
    if context is None:
        raise TypeError(f"{name} is required: this model cross-attends to it")
    check_float_tensor(context, name)
    if context.ndim != 3 or context.shape[0] != batch or context.shape[-1] != dim:
        raise ValueError(f"{name} must be ({batch}, length, {dim}), got shape {tuple(context.shape)}")


def check_prefix_attn_len(prefix_attn_len: object, x: Tensor) -> None:
    """A PrefixDecoder's prefix: an int, or an integer tensor with one length per row of x."""
    if torch.compiler.is_compiling() or prefix_attn_len is None:
        return
    if isinstance(prefix_attn_len, bool) or not isinstance(prefix_attn_len, (int, Tensor)):
        raise TypeError("prefix_attn_len must be an int or an integer tensor (batch,), got "
                        f"{type(prefix_attn_len).__name__}")
    if isinstance(prefix_attn_len, Tensor) and (
            prefix_attn_len.is_floating_point() or prefix_attn_len.is_complex()
            or prefix_attn_len.dtype == torch.bool
            or tuple(prefix_attn_len.shape) != (x.shape[0],)):
        raise ValueError(f"prefix_attn_len must be an integer tensor ({x.shape[0]},), one length "
                         f"per row; got {prefix_attn_len.dtype} of shape "
                         f"{tuple(prefix_attn_len.shape)}")


def check_prefix_within_prompt(prefix_attn_len: object, length: int) -> None:
    """generate's prefix must lie within the prompt: a new token inside a two-way prefix would
    change the outputs of the positions before it."""
    if prefix_attn_len is None:
        return
    longest = int(prefix_attn_len.max()) if isinstance(prefix_attn_len, Tensor) else prefix_attn_len
    if isinstance(longest, int) and longest > length:
        raise ValueError(f"prefix_attn_len ({longest}) must be at most the prompt's length "
                         f"({length}, with any prepended embeddings): tokens generated inside the "
                         "two-way prefix would change the outputs before them")


def check_condition(condition: object, dim: int, x: Tensor) -> None:
    """What adaptive norms and layer scales read: a floating tensor (batch, dim) for the whole
    sequence, or (batch, length, dim) with one per token of x."""
    if torch.compiler.is_compiling():
        return
    if condition is None:
        raise TypeError("condition is required: this model's norms or layer scales are adaptive "
                        f"(pass condition=, shaped ({x.shape[0]}, {dim}))")
    check_float_tensor(condition, "condition")
    whole = condition.ndim == 2 and tuple(condition.shape) == (x.shape[0], dim)
    per_token = condition.ndim == 3 and tuple(condition.shape) == (*x.shape[:2], dim)
    if not (whole or per_token):
        raise ValueError(f"condition must be ({x.shape[0]}, {dim}) or, one per token, "
                         f"({x.shape[0]}, {x.shape[1]}, {dim}); got shape {tuple(condition.shape)}")


def check_image(img: object, channels: int, size: int) -> None:
    """Images: a floating tensor (B, channels, size, size) with B > 0."""
    if torch.compiler.is_compiling():
        return
    check_float_tensor(img, "img")
    if tuple(img.shape[1:]) != (channels, size, size) or img.ndim != 4:
        raise ValueError(f"img must be (batch, {channels}, {size}, {size}), got shape {tuple(img.shape)}")
    if img.shape[0] == 0:
        raise ValueError("empty batch: img has shape (0, ...)")


def check_memory_chunks(mask: object, prepend_embeds: Tensor | None, every: int) -> None:
    """Memory tokens before every chunk of `every` positions take what x-transformers can chunk:
    no padding mask (it has none for the interleaved sequence; generate's prompt_lens needs
    one), and a prefix of whole chunks (it pads the tokens alone to whole chunks)."""
    if torch.compiler.is_compiling():
        return
    if mask is not None:
        raise ValueError("memory_tokens_interspersed_every takes no padding mask (nor prompt_lens)")
    if prepend_embeds is not None and prepend_embeds.shape[1] % every:
        raise ValueError(f"prepend_embeds must fill whole chunks of memory_tokens_interspersed_every "
                         f"= {every} positions, got {prepend_embeds.shape[1]}")


def check_float_tensor(x: object, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (got {str(x.dtype).removeprefix('torch.')})")


def check_memories(mems: object, x: Tensor, depth: int, dim: int) -> None:
    """Transformer-XL memories: None, or one tensor (B, M, dim) per block, all as long."""
    if mems is None or torch.compiler.is_compiling():
        return
    if not isinstance(mems, (list, tuple)) or len(mems) != depth:
        raise ValueError(f"mems must be a list of {depth} tensors (one per block), got "
                         f"{type(mems).__name__} of {len(mems) if isinstance(mems, (list, tuple)) else 0}")
    shape = (x.shape[0], mems[0].shape[1] if isinstance(mems[0], Tensor) and mems[0].ndim == 3 else -1, dim)
    for index, memory in enumerate(mems):
        if not isinstance(memory, Tensor) or tuple(memory.shape) != shape:
            got = tuple(memory.shape) if isinstance(memory, Tensor) else type(memory).__name__
            raise ValueError(f"mems[{index}] must be (batch, memory length, dim) = {shape}, got {got}")
