"""Writing an imported spec as YAML, with the comments of the Python it came from.

PyYAML drops comments, so the spec's structure is written here by hand: mappings of the spec
(`model:`, `attn_layers:`, `attn:`, `autoregressive:`, `components:`) in block style, one key a
line, and every value in flow style by `spec.model.scalar`, which gives YAML that reads back as
the same value. Keys are keyword and component names (identifiers), so they need no quoting.

>>> spec = Block(xtc=1, name="gpt", model=Block(type="Decoder", dim=64, heads=(4, 8)))
>>> print(text_of(dump_lines(spec, {("model", "dim"): (Comment("width", own_line=False),)})), end="")
xtc: 1
name: gpt
model:
  type: Decoder
  dim: 64  # width
  heads: [4, 8]
"""

from __future__ import annotations

from collections.abc import Mapping

from xtc.spec.model import scalar

from .python_source import Comment

INDENT = "  "


class Block(dict):
    """A mapping of the spec's own structure: written in block style, one key a line. A plain
    dict is a keyword's value (`embed_num_tokens: {a: 4}`) and is written in flow style."""


class Items(list):
    """A list written one item a line (`connections:`), each item in flow style."""


Path = tuple[str, ...]
Comments = Mapping[Path, tuple[Comment, ...]]  # key path -> the comments on its key


def text_of(lines: list[tuple[str, Path]]) -> str:
    """The YAML text of dump_lines' lines."""
    return "".join(f"{text}\n" for text, _ in lines)


def dump_lines(spec: Block, comments: Comments, header: str = "") -> list[tuple[str, Path]]:
    """The YAML's lines, each with the key path it writes (a comment's: the key below it; an
    item of a list: the list's key and the item's index), so that a diagnostic about a line
    can be traced to what it was made from."""
    lines = [(f"# {line}".rstrip(), ()) for line in header.splitlines()]
    write_block(spec, (), comments, lines)
    return lines


def write_block(block: Block, path: Path, comments: Comments, lines: list[tuple[str, Path]]) -> None:
    indent = INDENT * len(path)
    for key, value in block.items():
        here = (*path, key)
        own = comments.get(here, ())
        lines.extend((f"{indent}# {c.text}".rstrip(), here) for c in own if c.own_line)
        after = "".join(f"  # {c.text}" for c in own if not c.own_line)
        if isinstance(value, Block):
            lines.append((f"{indent}{key}:{after}", here))
            write_block(value, here, comments, lines)
        elif isinstance(value, Items):
            lines.append((f"{indent}{key}:{after}", here))
            lines.extend((f"{indent}{INDENT}- {scalar(item)}", (*here, str(i)))
                         for i, item in enumerate(value))
        else:
            lines.append((f"{indent}{key}: {scalar(value)}{after}", here))
