"""The fenced blocks of the Markdown docs, read as a test reads them.

A block's info string is its language, then `key=value` words that renderers ignore:

- ```` ```yaml file=tiny.yaml ````: the block is written to that file before later blocks run;
- ```` ```sh ````: each line is a shell command that must exit 0 (`exit=N`: must exit N);
- ```` ```text ```` starting with `$ `: a transcript; each `$ ` line is run and its output (stdout
  and stderr) must show the lines below it in order, where a line `...` stands for any lines;
- ```` ```python ````: run with the other Python blocks of the page, in order, in one process;
- any other block is prose.

`<!-- not run: REASON -->` on the line just before a fence keeps a runnable block from running
(it needs a GPU, torchrun, minutes, the network, or is what CI itself runs); the tests list it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\S*)(.*)$")
NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")
RUNNABLE = ("sh", "python")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    options: dict[str, str]
    text: str
    not_run: str | None = None  # the reason given in the page

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"

    @property
    def is_transcript(self) -> bool:
        return self.language == "text" and self.text.startswith("$ ")

    @property
    def runs(self) -> bool:
        return self.not_run is None and (self.language in RUNNABLE or self.is_transcript)

    @property
    def expected_exit(self) -> int:
        return int(self.options.get("exit", "0"))


@dataclass
class Command:
    """One `$ ` line of a transcript and the output lines it must show."""
    line: str
    expected: list[str] = field(default_factory=list)


def read_blocks(page: Path) -> list[Block]:
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening or not opening.group(1):
            index += 1
            continue
        end = lines.index("```", index + 1)
        before = NOT_RUN.match(lines[index - 1]) if index else None
        options = dict(word.split("=", 1) for word in opening.group(2).split() if "=" in word)
        blocks.append(Block(page, index + 1, opening.group(1), options,
                            "\n".join(lines[index + 1:end]), before and before.group(1)))
        index = end + 1
    return blocks


def transcript_commands(block: Block) -> list[Command]:
    commands = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append(Command(line[2:]))
        else:
            commands[-1].expected.append(line)
    return commands


def shows(output: str, expected: list[str]) -> str | None:
    """None when `output` shows the expected lines in order (`...` skips any lines), else the
    first expected line it lacks."""
    actual = [line.rstrip() for line in output.splitlines()]
    position, skipping = 0, False
    for want in (line.rstrip() for line in expected):
        if want == "...":
            skipping = True
            continue
        if skipping:
            found = next((i for i in range(position, len(actual)) if actual[i] == want), None)
        else:
            found = position if position < len(actual) and actual[position] == want else None
        if found is None:
            return want
        position, skipping = found + 1, False
    return None
