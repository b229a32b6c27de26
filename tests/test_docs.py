"""The README and docs/ stay true: every shell command, transcript and Python example in them that
runs on a CPU machine within seconds is run here (tests/doc_blocks.py says how blocks are read);
the others are listed as not run, with the reason the page gives."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from doc_blocks import Block, read_blocks, shows, transcript_commands

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [block for page in PAGES for block in read_blocks(page)]
# What a page's examples may use, linked into the directory they run in.
SHARED_FOLDERS = ("examples", "benchmarks", "tests", "scripts")
TIMEOUT = 120


def environment() -> dict[str, str]:
    """The running interpreter's environment first on PATH, so that `xtc` and `python` are the
    ones under test; unbuffered, so that stdout and stderr interleave as a terminal shows them."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", COLUMNS="100")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for folder in SHARED_FOLDERS:
        (tmp_path / folder).symlink_to(ROOT / folder)
    return tmp_path


def run_shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=environment(), check=False,
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=TIMEOUT)


def run_block(block: Block, cwd: Path) -> None:
    if block.language == "sh":
        for command in filter(None, (line.strip() for line in block.text.splitlines())):
            result = run_shell(command, cwd)
            assert result.returncode == block.expected_exit, \
                f"{block.where}: `{command}` exited {result.returncode}:\n{result.stdout[-3000:]}"
        return
    for command in transcript_commands(block):
        result = run_shell(command.line, cwd)
        assert result.returncode == block.expected_exit, \
            f"{block.where}: `{command.line}` exited {result.returncode}:\n{result.stdout[-3000:]}"
        missing = shows(result.stdout, command.expected)
        assert missing is None, \
            f"{block.where}: `{command.line}` did not print {missing!r}; it printed:\n{result.stdout}"


PYTHON_DRIVER = """
import sys, traceback
namespace = {"__name__": "__main__"}
for page, line, text in BLOCKS:
    try:
        exec(compile("\\n" * line + text, page, "exec"), namespace)
    except BaseException:
        print(f"{page}:{line}: this block failed", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def run_python_blocks(blocks: list[Block], cwd: Path) -> None:
    """A page's Python blocks in one process, in order, sharing their names as in a notebook."""
    listed = [(str(block.page.relative_to(ROOT)), block.line, block.text) for block in blocks]
    driver = f"BLOCKS = {listed!r}\n{PYTHON_DRIVER}"
    result = subprocess.run([sys.executable, "-c", driver], cwd=cwd, env=environment(),
                            check=False, text=True, capture_output=True, timeout=TIMEOUT * 2)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_the_examples_of_a_page_run(page: Path, workdir: Path):
    """Files, commands and transcripts in page order, then the page's Python blocks."""
    blocks = [block for block in BLOCKS if block.page == page]
    for block in blocks:
        if block.not_run is None and "file" in block.options:
            (workdir / block.options["file"]).write_text(block.text + "\n")
        elif block.runs and block.language != "python":
            run_block(block, workdir)
    python = [block for block in blocks if block.runs and block.language == "python"]
    if python:
        run_python_blocks(python, workdir)


NOT_RUN = [block for block in BLOCKS if block.not_run]


@pytest.mark.parametrize("block", NOT_RUN, ids=lambda block: block.where)
def test_blocks_marked_not_run(block: Block):
    """Listed in the summary with the page's reason (pytest -ra), never dropped silently."""
    assert block.language in ("sh", "python") or block.is_transcript, \
        f"{block.where}: only runnable blocks need a not-run mark"
    pytest.skip(f"not run: {block.not_run} ({block.where})")


def test_readme_opens_with_the_setup_and_test_commands():
    setup, tests = [block for block in BLOCKS if block.page == README and block.language == "sh"][:2]
    assert "pip install torch==2.13.0" in setup.text
    assert "examples/demo.py examples/gpt.yaml" in setup.text
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests.text in ci, "the README's test command must be what .ci/run runs"
    # CI installs what the README does: the project with its extras, the editor tests' server
    for readme_step, ci_step in (('pip install -e ".[torch,test,examples]"',
                                  'pip install --quiet -e ".[torch,test,examples]"'),
                                 ("npm ci --prefix tests/editor", "npm ci --prefix tests/editor")):
        assert readme_step in setup.text
        assert ci_step in ci


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


def test_paths_named_in_the_docs_exist():
    pattern = r"`((?:examples|tests|scripts|spec|compiler|runtime|benchmarks|docs|xtc)/[\w./-]+\.\w+)`"
    for page in PAGES:
        for path in re.findall(pattern, page.read_text()):
            assert (ROOT / path).exists(), f"{page.name}: {path}"


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+:", target):
                assert (page.parent / target).exists(), f"{page.name}: link to {target}"


def test_nothing_refers_to_files_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    outside = re.compile(r"\b(?:DESIGN|STYLE)\.md\b|\.\./shared\b|bad-inputs\.md")
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".py", ".md", ".yaml", ".toml", ".jinja", ".json", ".txt", "") \
                and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not outside.search(text), f"{name} refers to a file outside the repository"


def test_design_lists_every_node_kind():
    from xtc.compiler.ir import OpKind

    design = (ROOT / "docs" / "design.md").read_text()
    assert all(f"`{kind.value}`" in design for kind in OpKind)


# The where column of docs/options.md, by the keyword-table class whose keywords it may hold.
WHERE = {"wrapper": "TransformerWrapper", "ViT wrapper": "ViTransformerWrapper",
         "continuous wrapper": "ContinuousTransformerWrapper",
         "xVal wrapper": "XValTransformerWrapper", "layers": "AttentionLayers",
         "XTransformer": "XTransformer", "`attn:`": "attn", "`cross_attn:`": "cross_attn",
         "`ff:`": "ff", "`autoregressive:`": "training"}


def option_rows() -> list[tuple[str, str]]:
    """(where, key) for every key of the option tables of docs/options.md."""
    rows, in_table = [], False
    for line in (ROOT / "docs" / "options.md").read_text().splitlines():
        if line.startswith("| where | option |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("| ---"):
            where, keys = (cell.strip() for cell in line.split("|")[1:3])
            rows += [(place.strip(), key) for place in where.split(",")
                     for key in re.findall(r"`([a-z_]+)`", keys)]
    return rows


def test_every_documented_option_is_a_keyword_of_the_mapping_it_is_written_in():
    from xtc.spec.keywords import RECURRENT_TRAINER, TRAINERS, keyword_table

    trainers = (*TRAINERS.values(), RECURRENT_TRAINER)
    table, rows = keyword_table(), option_rows()
    assert len(rows) > 80
    for where, key in rows:
        owner = WHERE[where]
        if owner == "training":  # the keywords of some model's training wrapper
            keywords = {name for trainer in trainers for name in table.trainer(trainer)}
        elif owner in ("attn", "cross_attn", "ff"):
            keywords = table.routed(owner)
        else:  # the reference's keywords and xtc's extensions (under "Extensions")
            keywords = table.keywords(owner)
        assert key in keywords, f"docs/options.md: `{key}` is not written in {where}"
