"""Inputs for the model of any spec, for the tests and the benchmark scripts: tokens, images,
vectors, contexts and padding masks of a given batch and length."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from xtc.compiler.resolve import ADAPTIVE  # what makes a layer stack read a condition

import xtc

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Inputs:
    """Positional and keyword forward inputs, and the lengths that xtc.inspect counts FLOPs at
    (T: the sequence at the output, S: the source or context)."""
    args: tuple
    kwargs: dict = field(default_factory=dict)
    lengths: dict = field(default_factory=dict)



def make_inputs(spec: xtc.Spec, batch: int, length: int, *, masked: bool = False,
                context_length: int | None = None) -> Inputs:
    """Inputs any example's model takes, `length` long where the model allows it (at most its
    max_seq_len), a context `context_length` long (default: `length`). masked: add a padding
    mask (`mask`, or `<component>_mask` in a composite) to every token / vector input, and
    `context_mask` to a context given here.

    >>> spec = xtc.load_spec(ROOT / "examples" / "bert.yaml")
    >>> inputs = make_inputs(spec, 2, 16, masked=True)
    >>> [tuple(t.shape) for t in inputs.args], sorted(inputs.kwargs), inputs.lengths
    ([(2, 16)], ['mask'], {'T': 16})
    """
    generator = torch.Generator().manual_seed(0)
    composite = spec.model is None
    modules = spec.components.items() if composite else [(None, spec.model)]
    result = Inputs(())
    for name, module in modules:
        args, kwargs, lengths = module_inputs(module, batch, length, generator,
                                              context_length or length)
        result.args += args
        result.lengths.update(lengths)  # a composite's last component gives the output's T
        if not composite:  # in a composite, a context comes through a connection
            result.kwargs.update(kwargs)
        if masked and module.type != "ViTransformerWrapper":
            mask_name = f"{name}_mask" if composite else "mask"
            result.kwargs[mask_name] = padding_mask(batch, args[0].shape[1])
            context = result.kwargs.get("context")
            if context is not None:  # cross-attention reads the context's mask
                result.kwargs["context_mask"] = padding_mask(batch, context.shape[1])
    return result


def module_inputs(module: xtc.ModuleSpec, batch: int, length: int, generator: torch.Generator,
                  context_length: int) -> tuple[tuple, dict, dict]:
    """The primary inputs of one model, a context where it cross-attends, and its lengths."""
    if module.type == "ViTransformerWrapper":
        size = module["image_size"]
        return (torch.randn(batch, module["channels"], size, size, generator=generator),), {}, {}
    if module.type == "XTransformer":
        encoder, decoder = module.children["encoder"], module.children["decoder"]
        source_len = min(length, encoder["max_seq_len"])
        target_len = min(length, decoder["max_seq_len"])
        source = torch.randint(0, encoder["num_tokens"], (batch, source_len), generator=generator)
        target = torch.randint(0, decoder["num_tokens"], (batch, target_len), generator=generator)
        return (source, target), {}, {"T": target_len, "S": source_len}
    layers = module.children.get("attn_layers", module)
    T = min(length, module.options.get("max_seq_len") or length)
    dim = layers["dim"]
    kwargs, lengths = {}, {"T": T}
    if layers.type == "CrossAttender" or layers.options.get("cross_attend"):
        width = layers.section("cross_attn").get("dim_context") or dim
        kwargs["context"] = torch.randn(batch, context_length, width, generator=generator)
        lengths["S"] = context_length
    if any(layers.options.get(name) for name in ADAPTIVE):  # one condition per sequence
        width = layers.options.get("dim_condition") or dim
        kwargs["condition"] = torch.randn(batch, width, generator=generator)
    if layers.type == "PrefixDecoder":  # the prefix: one length per row, within the sequence
        kwargs["prefix_attn_len"] = prefix_lengths(batch, T)
    if module.options.get("recycling"):  # passes through the layers: given outside training
        kwargs["recycle_steps"] = 3
    if module.options.get("looped"):  # loops of the layers (max_looped_steps by default)
        kwargs["looped_steps"] = 3
    if module.type == "TransformerWrapper":
        tokens = torch.randint(0, module["num_tokens"], (batch, T), generator=generator)
        kwargs.update(embed_ids(module, batch, T, generator))
        return (tokens,), kwargs, lengths
    if module.type == "XValTransformerWrapper":
        return xval_inputs(module, batch, T, generator), kwargs, lengths
    width = module.options.get("dim_in") or dim  # a continuous wrapper's input, or bare layers
    return (torch.randn(batch, T, width, generator=generator),), kwargs, lengths


def embed_ids(module: xtc.ModuleSpec, batch: int, length: int,
              generator: torch.Generator) -> dict:
    """{"embed_ids": {name: ids (B, length)}} for a model with embed_num_tokens, else {}."""
    sizes = module.options.get("embed_num_tokens") or {}
    if not sizes:
        return {}
    return {"embed_ids": {name: torch.randint(0, size, (batch, length), generator=generator)
                          for name, size in sizes.items()}}


def xval_inputs(module: xtc.ModuleSpec, batch: int, length: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """An xVal model's tokens, every third the number token, and their numbers: NaN at the
    other tokens, where the models must not read them."""
    tokens = torch.randint(0, module["num_tokens"], (batch, length), generator=generator)
    tokens[:, ::3] = module["numerical_token_id"]
    numbers = torch.randn(batch, length, generator=generator)
    return tokens, numbers.masked_fill(tokens != module["numerical_token_id"], float("nan"))


def prefix_lengths(batch: int, length: int) -> torch.Tensor:
    """(B,) a PrefixDecoder's prefix per row: half the sequence, then a quarter, the whole, none,
    and so on.

    >>> prefix_lengths(5, 8)
    tensor([4, 2, 8, 0, 4])
    """
    return torch.tensor([length // 2, length // 4, length, 0])[torch.arange(batch) % 4]


def padding_mask(batch: int, length: int) -> torch.Tensor:
    """(B, T) True where a position is real. Odd rows are full; even rows end in padding, the
    first over its second half, the later ones over less (half of that, a third, ...): the first
    row padded and a later one, several positions each, and one full row from batch 2 on. No row
    is all padding, so every query sees some key, causal or not.

    >>> padding_mask(3, 8).int()
    tensor([[1, 1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.int32)
    """
    padded = torch.zeros(batch, dtype=torch.long)
    padded[::2] = (length // 2) // torch.arange(1, (batch + 1) // 2 + 1)
    return torch.arange(length)[None, :] < (length - padded)[:, None]
