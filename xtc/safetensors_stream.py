"""safetensors files read and written one tensor at a time, so that a model larger than memory
converts (`xtc import-hf --weights`).

The format: an 8-byte little-endian header length N, N bytes of JSON, `{name: {"dtype",
"shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then the data, each
tensor's bytes (little-endian, row-major) at its offsets from the end of the header.

Reading checks the header before any tensor is read (its size bounded, every entry's dtype
known, its byte length the product of its shape times the dtype's size, offsets inside the
data and no two tensors overlapping) and reads each tensor with a seek and a read into a buffer
of its own: an mmap of the whole file would keep every page it touched resident. Writing takes
every tensor's name, dtype and shape up front, writes the header, then each tensor's bytes as
they are produced, atomically (xtc/output.py). Header parsing needs no torch; tensors do.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .checkpoints import CheckpointError
from .output import replace_atomically

# safetensors itself refuses headers over 100 MB; a real one is a few hundred bytes a tensor
MAX_HEADER_BYTES = 100_000_000
LENGTH_BYTES = 8
ALIGNMENT = 8  # the header is padded with spaces so that the data starts 8-byte aligned

# safetensors' dtype names: (bytes per element, torch's name)
DTYPES: dict[str, tuple[int, str]] = {
    "BOOL": (1, "bool"), "U8": (1, "uint8"), "I8": (1, "int8"),
    "F8_E4M3": (1, "float8_e4m3fn"), "F8_E5M2": (1, "float8_e5m2"),
    "I16": (2, "int16"), "U16": (2, "uint16"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
    "I32": (4, "int32"), "U32": (4, "uint32"), "F32": (4, "float32"),
    "I64": (8, "int64"), "U64": (8, "uint64"), "F64": (8, "float64"),
}


@dataclass(frozen=True)
class TensorLayout:
    """A tensor's name, safetensors dtype and shape: what the header says about it."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPES[self.dtype][0]


@dataclass(frozen=True)
class StoredTensor:
    """A tensor of a file: its layout and where its bytes lie, from the start of the file."""

    layout: TensorLayout
    start: int

    @property
    def end(self) -> int:
        return self.start + self.layout.nbytes


@dataclass(frozen=True)
class SafetensorsFile:
    """A checked header: every tensor of the file by name, in the header's order."""

    path: str
    tensors: dict[str, StoredTensor]
    metadata: dict[str, str]

    def read(self, name: str) -> Any:
        """One tensor, read into memory of its own (nothing else of the file stays resident)."""
        import torch

        stored = self.tensors[name]
        layout = stored.layout
        buffer = bytearray(layout.nbytes)
        with open(self.path, "rb") as handle:
            handle.seek(stored.start)
            if handle.readinto(buffer) != len(buffer):
                raise CheckpointError(f"{self.path!a}: tensor {name!a} ends past the end of "
                                      "the file (was it truncated while being read?)")
        dtype = getattr(torch, DTYPES[layout.dtype][1])
        if not buffer:
            return torch.empty(layout.shape, dtype=dtype)
        return torch.frombuffer(buffer, dtype=dtype).reshape(layout.shape)


def read_header(path: str | os.PathLike) -> SafetensorsFile:
    """The header of a safetensors file, checked; CheckpointError naming the file and every
    entry that is wrong otherwise."""
    path = os.fspath(path)
    if sys.byteorder != "little":  # the format is little-endian and frombuffer reads native
        raise CheckpointError("reading safetensors needs a little-endian machine")
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path!a} is not a regular file")
        with open(path, "rb") as handle:
            header_bytes = read_header_bytes(handle, path, info.st_size)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path!a}: {exc.strerror or exc}") from None
    data_start = LENGTH_BYTES + len(header_bytes)
    header = parse_header(header_bytes, path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(value, str) for value in metadata.values()):
        raise CheckpointError(f"{path!a}: __metadata__ is not a mapping of strings")
    tensors, problems = {}, []
    for name, entry in header.items():
        stored = stored_tensor(name, entry, data_start, problems)
        if stored is not None:
            tensors[name] = stored
    problems += placement_problems(tensors.values(), info.st_size)
    if problems:
        raise CheckpointError(f"{path!a} is not a valid safetensors file: " + "; ".join(problems))
    return SafetensorsFile(path, tensors, metadata)


def read_header_bytes(handle, path: str, file_size: int) -> bytes:
    length_bytes = handle.read(LENGTH_BYTES)
    if len(length_bytes) < LENGTH_BYTES:
        raise CheckpointError(f"{path!a} is not a safetensors file: it is shorter than the "
                              "8 bytes of the header length")
    length = int.from_bytes(length_bytes, "little")
    if length > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path!a}: its header claims {length} bytes, more than the "
                              f"{MAX_HEADER_BYTES} a safetensors header may have")
    if LENGTH_BYTES + length > file_size:
        raise CheckpointError(f"{path!a}: its header claims {length} bytes, past the end of the "
                              f"file ({file_size} bytes)")
    return handle.read(length)


def parse_header(header_bytes: bytes, path: str) -> dict:
    def no_duplicates(pairs):
        twice = repeated(key for key, _ in pairs)
        if twice:
            raise CheckpointError(f"{path!a}: the header names {', '.join(map(ascii, twice))} "
                                  "more than once")
        return dict(pairs)

    try:
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path!a} is not a safetensors file: its header is not UTF-8 "
                              f"JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path!a}: its header is not a JSON object")
    return header


def stored_tensor(name: str, entry: Any, data_start: int, problems: list[str]) -> StoredTensor | None:
    """The entry as a StoredTensor, or None with what is wrong with it added to `problems`."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        problems.append(f"{name!a} is not {{dtype, shape, data_offsets}}")
        return None
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        problems.append(f"{name!a} has dtype {dtype!a}, which xtc does not read "
                        f"(it reads {', '.join(DTYPES)})")
        return None
    if not isinstance(shape, list) or not all(natural(size) for size in shape):
        problems.append(f"{name!a} has shape {shape!a}, not a list of sizes")
        return None
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(map(natural, offsets))
            or offsets[0] > offsets[1]):
        problems.append(f"{name!a} has data_offsets {offsets!a}, not [begin, end]")
        return None
    layout = TensorLayout(name, dtype, tuple(shape))
    if offsets[1] - offsets[0] != layout.nbytes:
        problems.append(f"{name!a} holds {offsets[1] - offsets[0]} bytes, but {dtype} of shape "
                        f"{list(shape)} is {layout.nbytes}")
        return None
    return StoredTensor(layout, data_start + offsets[0])


def repeated(names: Iterable[str]) -> list[str]:
    """The names given more than once, sorted (counted in one pass: a header may list a
    great many tensors)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def placement_problems(tensors: Iterable[StoredTensor], file_size: int) -> list[str]:
    """Tensors past the end of the file, and tensors whose bytes overlap."""
    problems, previous = [], None
    for stored in sorted(tensors, key=lambda t: (t.start, t.end)):
        if stored.end > file_size:
            problems.append(f"{stored.layout.name!a} ends at byte {stored.end}, past the end of "
                            f"the file ({file_size} bytes)")
        if previous is not None and stored.start < previous.end:
            problems.append(f"{stored.layout.name!a} overlaps {previous.layout.name!a}")
        if previous is None or stored.end > previous.end:
            previous = stored
    return problems


# -- writing -------------------------------------------------------------------------------------

def header_bytes_for(layouts: Sequence[TensorLayout], metadata: Mapping[str, str]) -> bytes:
    """The length and header of a file holding `layouts` in order, padded to ALIGNMENT."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for layout in layouts:
        header[layout.name] = {"dtype": layout.dtype, "shape": list(layout.shape),
                               "data_offsets": [offset, offset + layout.nbytes]}
        offset += layout.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(LENGTH_BYTES + len(text)) % ALIGNMENT)
    return len(text).to_bytes(LENGTH_BYTES, "little") + text


def write_streamed(path: str | os.PathLike, layouts: Sequence[TensorLayout],
                   tensors: Iterable[Any], metadata: Mapping[str, str] | None = None) -> int:
    """Write `tensors` (an iterable giving one tensor per layout, in order: each is made only
    when the previous one is written) to a safetensors file at `path`, atomically; the number
    of tensors written. A tensor whose dtype or shape is not its layout's is a CheckpointError,
    and `path` stays as it was."""
    twice = repeated(layout.name for layout in layouts)
    if twice:
        raise CheckpointError(f"cannot write {', '.join(map(ascii, twice))} twice to one file")

    def write(temporary: str) -> None:
        with open(temporary, "wb") as handle:
            handle.write(header_bytes_for(layouts, metadata or {"format": "pt"}))
            produced = iter(tensors)
            for layout in layouts:
                tensor = next(produced, None)
                if tensor is None:
                    raise CheckpointError(f"no tensor came for {layout.name!a}")
                write_tensor(handle, layout, tensor)
                del tensor  # before the next is made: one tensor in memory at a time
            if next(produced, None) is not None:
                raise CheckpointError(f"more tensors came than the {len(layouts)} laid out")

    replace_atomically(path, write)
    return len(layouts)


def write_tensor(handle, layout: TensorLayout, tensor: Any) -> None:
    import torch

    dtype = getattr(torch, DTYPES[layout.dtype][1])
    if tensor.dtype != dtype or tuple(tensor.shape) != layout.shape:
        raise CheckpointError(f"{layout.name!a} came as {tensor.dtype} {list(tensor.shape)}, laid "
                              f"out as {layout.dtype} {list(layout.shape)}")
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
    handle.write(memoryview(data.numpy()))


def dtype_name(dtype: Any) -> str:
    """safetensors' name of a torch dtype."""
    name = str(dtype).removeprefix("torch.")
    for safetensors_name, (_, torch_name) in DTYPES.items():
        if torch_name == name:
            return safetensors_name
    raise CheckpointError(f"safetensors has no dtype for {dtype}")
