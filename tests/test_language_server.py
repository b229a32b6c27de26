"""Editor support, proven with the real YAML language server (yaml-language-server, the server
behind VS Code's YAML extension and Neovim's yamlls) reading `xtc schema`'s output through the
`# yaml-language-server: $schema=...` modeline: problems at their lines, completion that offers
what xtc compiles at each place with its description, and nothing xtc would reject.

The server is pinned in tests/editor/package.json; `npm ci --prefix tests/editor` installs it
(node 20 or later).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest
import yaml
from conftest import ROOT
from language_server import LanguageServer
from xtc.spec.json_schema import spec_schema
from xtc.spec.keywords import ROUTED_SECTIONS, Keyword, keyword_table
from xtc.spec.load import read_spec
from xtc.spec.model import scalar
from xtc.spec.support import not_compiled, support_place

import xtc
from xtc import cli

EDITOR = ROOT / "tests" / "editor"
SERVER = EDITOR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
INSTALL = "run `npm ci --prefix tests/editor` to install the YAML language server"
# What docs/cli.md tells editors: validation, completion and hover on, and xtc's schema for the
# specs under specs/ (a path relative to the workspace), beside the modeline.
SETTINGS = {"yaml": {"validate": True, "completion": True, "hover": True,
                     "schemas": {"./xtc.schema.json": "specs/*.yaml"}}}
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def node_command() -> list[str]:
    """The command that starts the pinned server, or a failure that says how to install it."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: install node 20 or later, then {INSTALL}")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    major = re.match(r"v(\d+)\.", version)
    if not major or int(major[1]) < 20:
        pytest.fail(f"node {version.strip()} is too old: install node 20 or later, then {INSTALL}")
    if not SERVER.is_file():
        pytest.fail(f"{SERVER.relative_to(ROOT)} is missing: {INSTALL} (node 20 or later)")
    return [node, str(SERVER), "--stdio"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with the schema `xtc schema` writes, where the documents are opened."""
    folder = tmp_path_factory.mktemp("editor")
    assert cli.main(["schema", "-o", str(folder / "xtc.schema.json")]) == 0
    return folder


@pytest.fixture(scope="module")
def server(workspace):
    language_server = LanguageServer(node_command(), SETTINGS)
    try:
        language_server.initialize(workspace)
        yield language_server
    finally:
        language_server.close()


class Editor:
    """Documents opened in the server, each with the modeline that names xtc's schema."""

    def __init__(self, server: LanguageServer, workspace):
        self.server, self.workspace = server, workspace
        self.modeline = f"# yaml-language-server: $schema={(workspace / 'xtc.schema.json').as_uri()}\n"

    def open(self, name: str, body: str) -> tuple[str, str]:
        """Open body under the modeline: the document's URI and its text."""
        text = self.modeline + body
        return self.server.open(self.workspace / name, text), text

    def diagnostics(self, name: str, body: str) -> tuple[list[dict], str]:
        uri, text = self.open(name, body)
        return self.server.diagnostics_of(uri), text


@pytest.fixture(scope="module")
def editor(server, workspace):
    editor = Editor(server, workspace)
    # the server validates with xtc's schema, so that no diagnostics for a spec mean something
    assert editor.diagnostics("canary.yaml", "xtc: 2\n")[0], "a wrong version is reported"
    return editor


# -- problems at their lines -----------------------------------------------------------------

PROBLEMS = """\
xtc: 1
name: gpt
model:
  type: TransformerWrapper
  max_seq_len: many
  attn_layers:
    type: Decoder
    dim: 512
    depth: 6
    haeds: 8
    attn: {dim_head: 64}
"""


def lines_of(diagnostics: list[dict]) -> dict[str, int]:
    """Each diagnostic's message and 1-based line, as `xtc validate` counts."""
    return {d["message"]: d["range"]["start"]["line"] + 1 for d in diagnostics}


def loader_lines(text: str) -> dict[str, int]:
    """The loader's codes and lines for the same text."""
    _, problems = read_spec(text, "problems.yaml")
    return {p.code: p.line for p in problems}


def test_a_wrong_type_an_unknown_key_and_a_missing_key_are_reported_at_their_lines(editor):
    diagnostics, text = editor.diagnostics("problems.yaml", PROBLEMS)
    found = lines_of(diagnostics)
    loader = loader_lines(text)
    # the modeline is line 1: the spec's line n is the document's n + 1
    assert found.get('Incorrect type. Expected "integer".') == 6 == loader["expected-type"], found
    assert found.get("Property haeds is not allowed.") == 11 == loader["unknown-key"], found
    # a missing key: the server marks the key of the mapping that lacks it (`model:`), the
    # loader the mapping itself (its first line)
    assert found.get('Missing property "num_tokens".') == 4 == loader["missing-key"] - 1, found
    assert len(diagnostics) == 3, found


def test_the_settings_give_the_schema_to_specs_without_a_modeline(server, workspace):
    """`yaml.schemas` in the settings (VS Code's settings.json, Neovim's yamlls settings)."""
    (workspace / "specs").mkdir()
    in_specs = server.open(workspace / "specs" / "version.yaml", "xtc: 2\nname: m\nmodel: {}\n")
    elsewhere = server.open(workspace / "version.yaml", "xtc: 2\nname: m\nmodel: {}\n")
    assert any(d["range"]["start"]["line"] == 0 for d in server.diagnostics_of(in_specs))
    assert server.diagnostics_of(elsewhere) == []  # no schema: no problems, none to report


# -- completion, place by place ----------------------------------------------------------------

CURSOR = "|"  # where completion is asked for, in the documents below; not part of the text

WRAPPER_LAYERS = """\
xtc: 1
name: gpt
model:
  type: TransformerWrapper
  num_tokens: 20000
  max_seq_len: 1024
  |
  attn_layers:
    type: Decoder
    dim: 512
    depth: 6
    |
    attn:
      dim_head: 64
      |
    ff:
      glu: true
      |
    cross_attn:
      flash: true
      |
"""
XTRANSFORMER = """\
xtc: 1
name: seq2seq
model:
  type: XTransformer
  dim: 512
  encoder:
    num_tokens: 256
    max_seq_len: 1024
    |
  decoder:
    num_tokens: 256
    max_seq_len: 1024
    |
"""
COMPOSITE = """\
xtc: 1
name: captioner
components:
  encoder:
    type: ViTransformerWrapper
    image_size: 256
    patch_size: 32
    attn_layers: {type: Encoder, dim: 512, depth: 6}
    |
  decoder:
    type: TransformerWrapper
    num_tokens: 20000
    max_seq_len: 1024
    attn_layers: {type: Decoder, dim: 512, depth: 6, cross_attend: true}
    |
connections:
  - {from: encoder, to: decoder.context}
"""


def cursors(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without its cursor marks, and each mark's (line, column), counting the modeline."""
    lines, found = [], []
    for number, line in enumerate(marked.splitlines(keepends=True), start=1):
        if CURSOR in line:
            found.append((number, line.index(CURSOR)))
        lines.append(line.replace(CURSOR, ""))
    return "".join(lines), found


def compiled_keys(keywords: dict[str, Keyword], place: str, structure: set[str]) -> set[str]:
    """The keys xtc compiles in a mapping: its place's supported keywords that a spec can write
    (spec/support.py), and its structural keys (`type`, sections, sides)."""
    return structure | {name for name, kw in keywords.items()
                        if "object" not in kw.types
                        and not not_compiled(support_place(place, kw.owner), kw.owner, name)}


def not_compiled_keys(keywords: dict[str, Keyword], place: str) -> set[str]:
    return {name for name, kw in keywords.items()
            if "object" not in kw.types and not_compiled(support_place(place, kw.owner), kw.owner, name)}


TABLE = keyword_table()
SECTIONS = set(ROUTED_SECTIONS)


@dataclass(frozen=True)
class Place:
    """A cursor of the documents above: the path to its mapping, the schema's definition of it,
    its keywords and place in spec/support.py, its structural keys, and keys that must be
    offered there."""

    path: tuple[str, ...]
    definition: str
    keywords: dict[str, Keyword]
    support: str
    structure: set[str]
    expected: set[str]


PLACES = {
    WRAPPER_LAYERS: [
        Place(("model",), "TransformerWrapper", TABLE.wrapper("TransformerWrapper"),
              "TransformerWrapper", {"type", "autoregressive"},
              {"emb_dim", "use_abs_pos_emb", "tie_embedding"}),
        Place(("model", "attn_layers"), "Decoder", TABLE.layers("Decoder"), "layers",
              {"type"} | SECTIONS, {"heads", "rotary_pos_emb", "cross_attend"}),
        *(Place(("model", "attn_layers", section), section, TABLE.routed(section), section, set(),
                expected)
          for section, expected in (("attn", {"flash", "kv_heads", "qk_norm"}),
                                    ("ff", {"mult", "swish", "dropout"}),
                                    ("cross_attn", {"dim_head", "dim_context"}))),
    ],
    XTRANSFORMER: [
        Place(("model", side), f"XTransformer.{side}", TABLE.side(side), "layers", SECTIONS,
              {"depth", "heads", "rotary_pos_emb", "emb_dropout", "attn"})
        for side in ("encoder", "decoder")
    ],
    COMPOSITE: [
        Place(("components", "encoder"), "ViTransformerWrapper",
              TABLE.wrapper("ViTransformerWrapper"), "ViTransformerWrapper", {"type"},
              {"channels", "num_classes", "emb_dropout"}),
        Place(("components", "decoder"), "TransformerWrapper", TABLE.wrapper("TransformerWrapper"),
              "TransformerWrapper", {"type", "autoregressive"},
              {"emb_dim", "tie_embedding", "autoregressive"}),
    ],
}


def written_keys(text: str, path: tuple[str, ...]) -> set[str]:
    """The keys a mapping of the document already holds (completion leaves them out)."""
    node = yaml.safe_load(text)
    for key in path:
        node = node[key]
    return set(node)


@pytest.mark.parametrize("marked", list(PLACES), ids=["wrapper-layers-sections", "xtransformer",
                                                      "composite"])
def test_completion_offers_what_xtc_compiles_with_its_description(editor, marked):
    text, marks = cursors(marked)
    uri, _ = editor.open(f"completion-{PLACES[marked][0].definition}.yaml", text)
    assert editor.server.diagnostics_of(uri) == [], "the document is a valid spec"
    definitions = spec_schema()["definitions"]
    for (line, column), place in zip(marks, PLACES[marked], strict=True):
        # the modeline comes first: the 1-based line of a mark is the document's 0-based one
        offered = {item["label"]: item.get("documentation")
                   for item in editor.server.completion(uri, line, column)}
        compiled = compiled_keys(place.keywords, place.support, place.structure)
        assert place.expected <= set(offered), (place.definition, place.expected - set(offered))
        assert set(offered) == compiled - written_keys(text, place.path), place.definition
        properties = definitions[place.definition]["properties"]
        for label, documentation in offered.items():
            assert documentation and documentation == properties[label]["description"], label
        for name in place.expected & set(place.keywords):
            owner = place.keywords[name].owner
            assert offered[name].startswith(f"{owner}.{name} (default: "), offered[name]


def test_cross_attention_leaves_out_what_xtc_does_not_compile_there(editor):
    """cross_attn: takes every Attention keyword, and xtc compiles fewer than half of them."""
    text, [(line, column)] = cursors("xtc: 1\nname: m\nmodel:\n  type: Decoder\n  dim: 64\n"
                                     "  depth: 2\n  cross_attend: true\n  cross_attn:\n"
                                     "    flash: true\n    |\n")
    uri, _ = editor.open("cross-attn.yaml", text)
    offered = {item["label"] for item in editor.server.completion(uri, line, column)}
    left_out = not_compiled_keys(TABLE.routed("cross_attn"), "cross_attn")
    assert len(offered) < len(left_out) and not offered & left_out
    assert {"kv_heads", "qk_norm", "use_cope"} <= left_out  # computed, and what a user might try


# -- what xtc does not compile, written anyway -------------------------------------------------

def test_a_value_xtc_does_not_compile_gets_xtcs_message_and_the_default_passes(editor):
    keywords = TABLE.routed("cross_attn")
    name = next(name for name in sorted(not_compiled_keys(keywords, "cross_attn"))
                if keywords[name].types == ("bool",))
    kw = keywords[name]
    body = ("xtc: 1\nname: m\nmodel:\n  type: Decoder\n  dim: 64\n  depth: 2\n  heads: 4\n"
            f"  cross_attend: true\n  cross_attn:\n    {name}: {scalar(not kw.default)}\n")
    diagnostics, text = editor.diagnostics("not-compiled.yaml", body)
    _, problems = read_spec(text)
    # both 0-based; the value is on the document's line 10 (the modeline is its line 0)
    assert [(d["message"], d["range"]["start"]["line"]) for d in diagnostics] == \
        [(p.message, p.line - 1) for p in problems] == \
        [(not_compiled("cross_attn", kw.owner, name)[1], 10)]
    at_default = body.replace(f"{name}: {scalar(not kw.default)}", f"{name}: {scalar(kw.default)}")
    assert editor.diagnostics("not-compiled-default.yaml", at_default)[0] == []


# -- valid specs -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def opened_examples(editor) -> dict:
    """Every example and its explanation, opened at once: the server waits 200 ms after a
    document opens before it validates it, and these wait together."""
    return {path: (editor.open(f"{path.stem}.yaml", path.read_text())[0],
                   editor.open(f"{path.stem}-explained.yaml", xtc.explain(path))[0])
            for path in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_and_its_explanation_get_no_diagnostics(editor, opened_examples, path):
    """`xtc explain` writes every keyword with its default, those xtc does not compile too."""
    example, explanation = opened_examples[path]
    assert editor.server.diagnostics_of(example) == []
    assert editor.server.diagnostics_of(explanation) == []
