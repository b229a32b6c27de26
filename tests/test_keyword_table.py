"""The checked-in keyword table matches the installed reference, and its routing rules (which
keywords a spec may set where) match what the reference accepts."""

from __future__ import annotations

import inspect
import runpy

import pytest
import x_transformers
from conftest import ROOT
from x_transformers import CrossAttender, Decoder, Encoder, XTransformer
from x_transformers.continuous import ContinuousAutoregressiveWrapper, ContinuousTransformerWrapper
from x_transformers.x_transformers import Attention, AttentionLayers, FeedForward
from x_transformers.xval import XValAutoregressiveWrapper, XValTransformerWrapper
from xtc.spec.keywords import keyword_table
from xtc.spec.support import section_coverage

CLASSES = {
    "TransformerWrapper": x_transformers.TransformerWrapper,
    "ViTransformerWrapper": x_transformers.ViTransformerWrapper,
    "ContinuousTransformerWrapper": ContinuousTransformerWrapper,
    "XValTransformerWrapper": XValTransformerWrapper,
    "XTransformer": XTransformer,
    "AttentionLayers": AttentionLayers,
    "Attention": Attention,
    "FeedForward": FeedForward,
    "AutoregressiveWrapper": x_transformers.AutoregressiveWrapper,
    "XLAutoregressiveWrapper": x_transformers.XLAutoregressiveWrapper,
    "ContinuousAutoregressiveWrapper": ContinuousAutoregressiveWrapper,
    "XValAutoregressiveWrapper": XValAutoregressiveWrapper,
}


def test_reference_version():
    from importlib.metadata import version

    assert keyword_table().reference == f"x-transformers=={version('x-transformers')}"


@pytest.mark.parametrize("class_name", sorted(CLASSES))
def test_table_matches_signature(class_name):
    params = [p for name, p in inspect.signature(CLASSES[class_name].__init__).parameters.items()
              if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    table = keyword_table().classes[class_name]
    assert list(table) == [p.name for p in params]
    for p in params:
        entry = table[p.name]
        assert entry.required == (p.default is inspect.Parameter.empty), p.name
        if not entry.required and "object" not in entry.types:  # (a tuple default is a list)
            assert entry.default == p.default and type(entry.default) is type(p.default), p.name


def test_every_type_is_from_the_closed_set():
    allowed = {"int", "float", "bool", "str", "dict", "module", "object", "layer_types", "int_list"}
    for keywords in keyword_table().classes.values():
        for kw in keywords.values():
            assert set(kw.types) <= allowed and kw.types, kw


def test_generator_reproduces_the_checked_in_table():
    generator = runpy.run_path(str(ROOT / "scripts" / "gen_keyword_table.py"))
    table_file = ROOT / "spec" / "keywords.json"
    assert generator["render"](generator["build_table"]()) == table_file.read_text(), \
        "spec/keywords.json is stale: run python scripts/gen_keyword_table.py"


TINY = {"dim": 8, "depth": 1, "heads": 2}


@pytest.mark.parametrize("section", ["attn", "ff"])
def test_routed_exclusions_are_refused_by_the_reference(section):
    """A keyword the layers set themselves is a duplicate keyword argument in the reference."""
    table = keyword_table()
    owner = table.routing[section]["class"]
    for name in table.routing[section]["exclude"]:
        default = table.classes[owner][name].default
        with pytest.raises(TypeError):
            Decoder(**TINY, **{f"{section}_{name}": default if default is not None else 1})


def test_routed_keywords_reach_the_reference():
    layers = Decoder(**TINY, attn_dim_head=4, ff_mult=2, attn_dropout=0.1)
    attn, ff = layers.layers[0][1], layers.layers[1][1]
    assert attn.to_q.out_features == 2 * 4 and ff.ff[0][0].out_features == 16


def test_cross_attn_exclusions_are_refused_by_the_reference():
    with pytest.raises(TypeError):
        Decoder(**TINY, cross_attend=True, cross_attn_heads=2)


@pytest.mark.parametrize("layer_class, name", [(Encoder, "causal"), (Decoder, "causal"),
                                               (CrossAttender, "cross_attend"),
                                               (CrossAttender, "only_cross")])
def test_layer_class_exclusions(layer_class, name):
    assert name in keyword_table().layer_classes[layer_class.__name__]["exclude"]
    with pytest.raises((TypeError, AssertionError)):
        layer_class(**TINY, **{name: True})


def test_xtransformer_sides_match_the_reference():
    sides = keyword_table().side
    base = {"dim": 8, "enc_num_tokens": 16, "enc_max_seq_len": 8, "dec_num_tokens": 16,
            "dec_max_seq_len": 8, "enc_depth": 1, "dec_depth": 1, "enc_heads": 2, "dec_heads": 2}
    XTransformer(**base, enc_num_memory_tokens=2, dec_emb_dropout=0.1, enc_use_abs_pos_emb=False)
    assert "num_memory_tokens" in sides("encoder") and "num_memory_tokens" not in sides("decoder")
    assert "cross_attend" not in sides("decoder") and "post_emb_norm" not in sides("encoder")
    with pytest.raises(TypeError):
        XTransformer(**base, dec_cross_attend=True)
    with pytest.raises(AssertionError):
        XTransformer(**base, enc_post_emb_norm=True)


def coverage_table(section: str) -> str:
    """docs/options.md's table of what xtc does with each keyword behind a section."""
    kinds = section_coverage(keyword_table(), section)
    rows = [f"| {kind} | {len(names)} | {', '.join(f'`{n}`' for n in names)} |"
            for kind, names in kinds.items() if names]
    total = sum(len(names) for names in kinds.values())
    return "\n".join(["| keywords | count | which |", "| --- | --- | --- |", *rows,
                      f"| all | {total} | |"])


@pytest.mark.parametrize("section", ["attn", "ff", "layers", "TransformerWrapper",
                                     "ContinuousTransformerWrapper", "XValTransformerWrapper",
                                     "ViTransformerWrapper", "XTransformer"])
def test_the_docs_give_the_coverage_of_every_class(section):
    """docs/options.md states what xtc does with every keyword of x-transformers' Attention,
    FeedForward, AttentionLayers and model classes."""
    table = coverage_table(section)
    assert table in (ROOT / "docs" / "options.md").read_text(), (
        "paste this under 'Coverage' in docs/options.md:\n" + table)
