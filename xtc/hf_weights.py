"""A Hugging Face Llama or Mistral checkpoint's weights as xtc's state dict (`xtc import-hf
--weights`), streamed: one tensor read, converted and written at a time.

The checkpoint is a folder with `model.safetensors`, or the shards that
`model.safetensors.index.json` lists; only safetensors are read (a `pytorch_model.bin` is a
pickle, and xtc never unpickles what it did not write).

The conversion is planned before anything is read: every tensor of xtc's state dict, which
Hugging Face tensors make it and how. It goes through the reference's names: each reference
(x-transformers) tensor is made from Hugging Face tensors here, and xtc's own rules
(compiler/state_dict.py, as `xtc.convert_state_dict` applies them) say which xtc tensor it
is, and which rows of it. What a Llama checkpoint stores differently from the reference, each
silent if missed (issue #50):

- grouped-query heads pair up differently: the reference's query head p reads key / value head
  p % kv_heads, Hugging Face's head q reads q // (heads / kv_heads); the query rows and the
  output projection's input columns are reordered by head;
- rotary embedding rotates halves of a head (features i and i + D/2) in Hugging Face's
  layout and adjacent pairs (2i, 2i + 1) in the reference's: query and key rows are permuted
  within each head;
- the reference's gated feedforward is one projection, value half then gate half, and it always
  has a bias: `cat([up_proj, gate_proj])`, with a zero bias;
- a norm's weight is its gain as it is (the spec says `norm_add_unit_offset: false`), and the
  rotary frequencies are a buffer xtc computes from the spec, written as xtc computes them;
- a tied checkpoint's logits reuse the embedding: a `lm_head.weight` beside it is ignored, as
  Hugging Face ignores it.

A tensor the checkpoint lacks, one it holds that the plan does not read, one of the wrong shape:
all are reported together, as a CheckpointError, before anything is written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from .checkpoints import CheckpointError
from .extras import EINOPS, NUMPY, TORCH, require
from .output import output_path_problem
from .safetensors_stream import DTYPES, SafetensorsFile, TensorLayout, read_header, write_streamed

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_INDEX_BYTES = 50_000_000  # a real index is about 100 bytes a tensor
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# what converting needs of the torch extra: torch, einops (the model built on meta to plan) and
# numpy (the writer hands each tensor's bytes to the file through it)
REQUIRED = (TORCH, EINOPS, NUMPY)

Shape = tuple[int, ...]


# -- the checkpoint folder -------------------------------------------------------------------------

@dataclass(frozen=True)
class HFCheckpoint:
    """The tensors of a checkpoint folder, each with the file that holds it (headers read and
    checked; no tensor read yet)."""

    folder: str
    files: dict[str, SafetensorsFile]  # tensor name -> its file

    def layout(self, name: str) -> TensorLayout:
        return self.files[name].tensors[name].layout

    def file_of(self, name: str) -> str:
        return os.path.basename(self.files[name].path)

    def read(self, name: str) -> Any:
        return self.files[name].read(name)


def read_hf_checkpoint(folder: str | os.PathLike) -> HFCheckpoint:
    """The checkpoint in `folder`: `model.safetensors` (as Hugging Face, it comes first), else
    the shards of `model.safetensors.index.json`, every header checked."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise CheckpointError(f"{folder!a} is not a folder (a Hugging Face checkpoint is a folder "
                              f"with config.json and {SINGLE_FILE} or {INDEX_FILE})")
    single = os.path.join(folder, SINGLE_FILE)
    if os.path.exists(single):
        header = read_header(single)
        return HFCheckpoint(folder, dict.fromkeys(header.tensors, header))
    index = os.path.join(folder, INDEX_FILE)
    if os.path.exists(index):
        return HFCheckpoint(folder, sharded_files(folder, read_weight_map(index)))
    pickled = [name for name in PICKLED_WEIGHTS if os.path.exists(os.path.join(folder, name))]
    raise CheckpointError(
        f"{folder!a} holds neither {SINGLE_FILE} nor {INDEX_FILE}"
        + (f"; it holds {pickled[0]}, a pickle, which xtc does not read: save the model again "
           "with save_pretrained (safetensors is its default)" if pickled else ""))


def read_weight_map(index: str) -> dict[str, str]:
    """The index's tensor -> shard mapping; a shard is named by a file name in the folder."""
    try:
        if os.path.getsize(index) > MAX_INDEX_BYTES:
            raise CheckpointError(f"{index!a} is over {MAX_INDEX_BYTES} bytes: not an index")
        with open(index, "rb") as handle:
            weight_map = json.loads(handle.read().decode("utf-8")).get("weight_map")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise CheckpointError(f"cannot read {index!a} as a safetensors index: {exc}") from None
    if not isinstance(weight_map, dict) or not all(
            isinstance(shard, str) for shard in weight_map.values()):
        raise CheckpointError(f"{index!a}: its weight_map is not a mapping of tensor names to "
                              "shard file names")
    strays = sorted({shard for shard in weight_map.values()
                     if os.path.basename(shard) != shard or shard in ("", ".", "..")
                     or not shard.endswith(".safetensors")})
    if strays:
        raise CheckpointError(f"{index!a} names shards that are not .safetensors files in its "
                              f"folder: {', '.join(map(ascii, strays))}")
    return weight_map


def sharded_files(folder: str, weight_map: Mapping[str, str]) -> dict[str, SafetensorsFile]:
    """Each tensor's shard, where the index and the shards' headers agree on every tensor."""
    shards = {shard: read_header(os.path.join(folder, shard)) for shard in sorted(set(weight_map.values()))}
    problems = [f"{name!a} is listed in {shard!a}, which does not hold it"
                for name, shard in weight_map.items() if name not in shards[shard].tensors]
    problems += [f"{shard!a} holds {name!a}, which the index does not list there"
                 for shard, header in shards.items() for name in header.tensors
                 if weight_map.get(name) != shard]
    if problems:
        raise CheckpointError(f"{os.path.join(folder, INDEX_FILE)!a} and its shards disagree: "
                              + "; ".join(problems))
    return {name: shards[shard] for name, shard in weight_map.items()}


# -- the plan --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """A reference tensor, made from Hugging Face tensors (`inputs`, each of its shape in
    `shapes`) by `make`, which is given them in order. A part with no inputs is computed (in
    float32) and written in `dtype`, or in the dtype of the `dtype_of` tensors."""

    reference: str
    make: Callable[[list], Any]
    inputs: tuple[str, ...] = ()
    shapes: tuple[Shape, ...] = ()
    dtype: str | None = None
    dtype_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planned:
    """A tensor of xtc's state dict: its name, dtype and shape, and the parts it is made of,
    stacked by rows in order (a fused query / key / value projection has three)."""

    layout: TensorLayout
    parts: tuple[Part, ...]


@dataclass
class Problems:
    """What does not fit, gathered so that every one is reported at once."""

    missing: set[str] = field(default_factory=set)
    unread: set[str] = field(default_factory=set)
    other: list[str] = field(default_factory=list)

    def raise_any(self, checkpoint: HFCheckpoint) -> None:
        said = [f"missing {', '.join(map(ascii, sorted(self.missing)))}"] if self.missing else []
        said += ["not read by the spec's model (a different architecture or depth?): "
                 + ", ".join(f"{name!a} ({checkpoint.file_of(name)})" for name in sorted(self.unread))
                 ] if self.unread else []
        said += self.other
        if said:
            raise CheckpointError(f"the checkpoint in {checkpoint.folder!a} does not fit the spec: "
                                  + "; ".join(said))


@dataclass(frozen=True)
class Dims:
    """What the conversion needs to know of the spec's model."""

    depth: int
    heads: int
    kv_heads: int
    dim_head: int
    tied: bool


def plan_conversion(spec, checkpoint: HFCheckpoint) -> list[Planned]:
    """Every tensor of `xtc.build(spec)`'s state dict (a tie once), in its order, with the
    Hugging Face tensors that make it. CheckpointError with every problem otherwise."""
    from .api import build
    from .checkpoints import module_ties
    from .compiler import compile_graph
    from .compiler.state_dict import parameter_rules
    from .state_dicts import reference_shapes

    graph = compile_graph(spec)
    dims = llama_dims(graph)
    rules = parameter_rules(graph)
    model = build(spec, device="meta")  # shapes and ties, without memory
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    aliases = {name for names in module_ties(model) for name in names[1:]}
    parts = reference_parts(dims, reference_shapes(rules, shapes), rotary_frequencies(graph))
    problems = Problems()
    problems.other += [f"the spec's {rule.emitted!a} (the reference's {rule.reference!a}) has "
                       "no Hugging Face tensor to come from" for rule in rules if rule.reference not in parts]
    problems.other += [f"the spec's {rule.emitted!a} is part of the reference's {rule.reference!a}, "
                       "a layout no Llama-family model has" for rule in rules if rule.columns is not None]
    check_inputs(parts.values(), checkpoint, problems)
    ignored = ignored_tensors(checkpoint, dims)
    read = {name for part in parts.values() for name in part.inputs}
    problems.unread |= checkpoint.files.keys() - read - ignored
    problems.raise_any(checkpoint)
    once = {name: shape for name, shape in shapes.items() if name not in aliases}  # a tie once
    plan = planned_tensors(rules, parts, once, checkpoint, problems)
    problems.raise_any(checkpoint)
    return plan


def llama_dims(graph) -> Dims:
    """Depth, heads, key / value heads and head width of the spec's attention layers, which a
    Llama checkpoint has all alike, with rotary over each whole head."""
    from .compiler.ir import OpKind

    attention = [op.attrs for op in graph.ops(OpKind.ATTENTION)]
    rotary = [op.attrs for op in graph.ops(OpKind.ROTARY)]
    logits = [op.attrs for op in graph.ops(OpKind.LOGITS)]
    kinds = {(a.heads, a.kv_heads or a.heads, a.dim_head, a.rotary, a.rotate_heads) for a in attention}
    if len(kinds) != 1 or len(rotary) != 1 or len(logits) != 1:
        raise CheckpointError("a Llama-family checkpoint converts to a TransformerWrapper over a "
                              "Decoder whose layers have one kind of attention, with rotary "
                              "positions (the spec `xtc import-hf` writes)")
    heads, kv_heads, dim_head, uses_rotary, rotate_heads = kinds.pop()
    if not uses_rotary or rotate_heads or rotary[0].dim != dim_head:
        raise CheckpointError(f"a Llama-family checkpoint rotates every head whole: the spec "
                              f"needs rotary_emb_dim: {dim_head} (the head width), on every head")
    return Dims(len(attention), heads, kv_heads, dim_head, logits[0].tied)


def rotary_frequencies(graph) -> Callable[[list], Any]:
    """The rotary frequencies as xtc's model computes them (a buffer Hugging Face does not
    store): xtc's RotaryEmbedding for the spec's rotary settings."""
    from .compiler.ir import OpKind

    attrs = next(iter(graph.ops(OpKind.ROTARY))).attrs

    def compute(_inputs: list) -> Any:
        from .runtime.positions import RotaryEmbedding

        return RotaryEmbedding(attrs.dim, attrs.dim_head,
                               interpolation_factor=attrs.interpolation_factor,
                               base_rescale_factor=attrs.base_rescale_factor,
                               xpos_scale_base=attrs.xpos_scale_base).inv_freq

    return compute


def ignored_tensors(checkpoint: HFCheckpoint, dims: Dims) -> set[str]:
    """Tensors Hugging Face holds and does not load either: a tied model's `lm_head.weight`,
    and the rotary frequencies that older versions saved with each layer."""
    stale_rotary = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")
    ignored = {name for name in checkpoint.files if stale_rotary.fullmatch(name)}
    return ignored | ({"lm_head.weight"} & checkpoint.files.keys() if dims.tied else set())


def reference_parts(dims: Dims, shapes: Mapping[str, Shape], frequencies) -> dict[str, Part]:
    """Each reference tensor of a Llama-shaped model with the Hugging Face tensors it is made
    of; `shapes`, the reference's, give the shapes the Hugging Face tensors must have."""
    parts = [Part("token_emb.emb.weight", first, ("model.embed_tokens.weight",)),
             Part("attn_layers.rotary_pos_emb.inv_freq", frequencies, dtype="F32"),
             Part("attn_layers.final_norm.g", first, ("model.norm.weight",))]
    if not dims.tied:
        parts.append(Part("to_logits.weight", first, ("lm_head.weight",)))
    for layer in range(dims.depth):
        parts += layer_parts(layer, dims)
    return {part.reference: with_shapes(part, shapes) for part in parts}


def layer_parts(layer: int, dims: Dims) -> list[Part]:
    """Hugging Face's layer i is the reference's attention layer 2i and feedforward layer 2i+1,
    each a norm (`.0.0`) and its block (`.1`)."""
    hf, attn, ff = f"model.layers.{layer}.", f"attn_layers.layers.{2 * layer}.", f"attn_layers.layers.{2 * layer + 1}."
    up_gate = (f"{hf}mlp.up_proj.weight", f"{hf}mlp.gate_proj.weight")
    return [
        Part(f"{attn}0.0.g", first, (f"{hf}input_layernorm.weight",)),
        Part(f"{attn}1.to_q.weight", partial(query_rows, dims=dims), (f"{hf}self_attn.q_proj.weight",)),
        Part(f"{attn}1.to_k.weight", partial(key_rows, dims=dims), (f"{hf}self_attn.k_proj.weight",)),
        Part(f"{attn}1.to_v.weight", first, (f"{hf}self_attn.v_proj.weight",)),
        Part(f"{attn}1.to_out.weight", partial(output_columns, dims=dims), (f"{hf}self_attn.o_proj.weight",)),
        Part(f"{ff}0.0.g", first, (f"{hf}post_attention_layernorm.weight",)),
        Part(f"{ff}1.ff.0.proj.weight", concatenated, up_gate),  # value half, then gate half
        Part(f"{ff}1.ff.0.proj.bias", zeros, dtype_of=up_gate),  # made at its reference shape
        Part(f"{ff}1.ff.2.weight", first, (f"{hf}mlp.down_proj.weight",)),
    ]


def with_shapes(part: Part, shapes: Mapping[str, Shape]) -> Part:
    """The part with the shapes its inputs must have (the GLU halves are half the rows each),
    and the zero bias made at its reference shape."""
    shape = shapes.get(part.reference)
    if shape is None:  # the spec has no such tensor: its inputs are reported as not read
        return part
    if part.make is zeros:
        return replace(part, make=partial(zeros, shape=shape))
    if part.make is concatenated:
        half = (shape[0] // len(part.inputs), *shape[1:])
        return replace(part, shapes=(half,) * len(part.inputs))
    return replace(part, shapes=(shape,) * len(part.inputs))


def first(inputs: list) -> Any:
    return inputs[0]


def concatenated(inputs: list) -> Any:
    import torch

    return torch.cat(inputs)


def zeros(inputs: list, shape: Shape = ()) -> Any:
    import torch

    return torch.zeros(shape)


def kv_head_order(dims: Dims) -> list[int]:
    """For each of the reference's query heads, Hugging Face's head with the same key / value
    head and the same place among that head's queries: reference head p reads key / value head
    p % kv_heads, Hugging Face's head q reads q // group."""
    group = dims.heads // dims.kv_heads
    return [(p % dims.kv_heads) * group + p // dims.kv_heads for p in range(dims.heads)]


def query_rows(inputs: list, dims: Dims) -> Any:
    """q_proj's rows: heads in the reference's order, then each head's rows as pairs."""
    import torch

    by_head = inputs[0].unflatten(0, (dims.heads, dims.dim_head))
    return to_pairs(by_head[torch.tensor(kv_head_order(dims))].flatten(0, 1), dims.heads, dims.dim_head)


def key_rows(inputs: list, dims: Dims) -> Any:
    return to_pairs(inputs[0], dims.kv_heads, dims.dim_head)


def output_columns(inputs: list, dims: Dims) -> Any:
    """o_proj's input columns, head by head in the reference's order (as the query rows)."""
    import torch

    by_head = inputs[0].unflatten(1, (dims.heads, dims.dim_head))
    return by_head[:, torch.tensor(kv_head_order(dims))].flatten(1, 2)


def to_pairs(weight: Any, heads: int, dim_head: int) -> Any:
    """Within each head, Hugging Face's rotate-half rows (feature i pairs with i + dim_head / 2)
    as the reference's adjacent pairs (2i, 2i + 1)."""
    halves = weight.unflatten(0, (heads, 2, dim_head // 2))  # (head, half, i, ...)
    return halves.transpose(1, 2).flatten(0, 2)  # (head, i, half) -> rows


def check_inputs(parts, checkpoint: HFCheckpoint, problems: Problems) -> None:
    """Every input the parts read exists with its shape; the inputs of one part share a dtype."""
    for part in parts:
        for name, shape in zip(part.inputs, part.shapes):
            if name not in checkpoint.files:
                problems.missing.add(name)
            elif checkpoint.layout(name).shape != shape:
                problems.other.append(f"{name!a} ({checkpoint.file_of(name)}) is "
                                      f"{list(checkpoint.layout(name).shape)}, the spec's model "
                                      f"needs {list(shape)}")


def planned_tensors(rules: Sequence, parts: Mapping[str, Part], shapes: Mapping[str, Shape],
                    checkpoint: HFCheckpoint, problems: Problems) -> list[Planned]:
    """xtc's tensors in state-dict order, each with its parts in row order and one dtype."""
    by_emitted: dict[str, list] = {}
    for rule in rules:
        by_emitted.setdefault(rule.emitted, []).append(rule)
    plan = []
    for name, shape in shapes.items():
        made = sorted(by_emitted.get(name, []), key=lambda rule: rule.rows or (0, 0))
        if not made:
            problems.other.append(f"the spec's {name!a} has no reference tensor to come from")
            continue
        tensor_parts = tuple(parts[rule.reference] for rule in made)
        dtypes = {part_dtype(part, checkpoint) for part in tensor_parts}
        if len(dtypes) != 1:
            problems.other.append(f"the spec's {name!a} would be made of tensors of dtypes "
                                  f"{', '.join(sorted(dtypes))}: "
                                  + ", ".join(map(ascii, (n for p in tensor_parts for n in p.inputs))))
            continue
        plan.append(Planned(TensorLayout(name, dtypes.pop(), shape), tensor_parts))
    return plan


def part_dtype(part: Part, checkpoint: HFCheckpoint) -> str:
    if part.dtype is not None:
        return part.dtype
    dtypes = sorted({checkpoint.layout(name).dtype for name in part.inputs or part.dtype_of})
    return dtypes[0] if len(dtypes) == 1 else "/".join(dtypes)


# -- converting ------------------------------------------------------------------------------------

def produced(plan: Sequence[Planned], checkpoint: HFCheckpoint) -> Iterator[Any]:
    """Each planned tensor in turn, made only when asked for (the generator keeps nothing of
    the one before: `made` returns)."""
    for planned in plan:
        yield made(planned, checkpoint)


def made(planned: Planned, checkpoint: HFCheckpoint) -> Any:
    """A planned tensor: its inputs read, transformed and stacked by rows."""
    import torch

    dtype = getattr(torch, DTYPES[planned.layout.dtype][1])
    parts = [made_part(part, checkpoint, dtype) for part in planned.parts]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def made_part(part: Part, checkpoint: HFCheckpoint, dtype) -> Any:
    if not part.inputs:  # computed (in float32), in the tensor's dtype
        return part.make([]).to(dtype)
    return part.make([checkpoint.read(name) for name in part.inputs])


def convert_hf_checkpoint(spec, folder: str | os.PathLike, output: str | os.PathLike) -> int:
    """Convert the Llama-family checkpoint in `folder` (safetensors, one file or sharded) to
    xtc's state dict for `spec` (a Spec or a spec path), written to `output` (.safetensors),
    one tensor at a time and atomically; the number of tensors written. Dtypes are kept.
    CheckpointError names every tensor that does not fit, before anything is written."""
    require("xtc.convert_hf_checkpoint", *REQUIRED)
    from .api import as_spec

    problem = output_path_problem(os.fspath(output))
    if problem:
        raise CheckpointError(problem)
    checkpoint = read_hf_checkpoint(folder)
    plan = plan_conversion(as_spec(spec), checkpoint)
    return write_streamed(output, [planned.layout for planned in plan], produced(plan, checkpoint),
                          metadata={"format": "pt"})
