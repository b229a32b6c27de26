"""The benchmark script's logic, on tiny inputs (its figures come from benchmarks/bench.py runs;
tests never time anything)."""

from __future__ import annotations

import pytest
from conftest import ROOT, load_script

import xtc


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench.py")


def test_abba_runs_the_rounds_in_a_b_b_a_order(bench):
    calls = []
    bench.abba(lambda: calls.append("a"), lambda: calls.append("b"), rounds=2, repeats=1)
    # each timing is a warm-up call and one timed call
    assert "".join(calls) == "aabbbbaa" * 2


def test_interleaved_turns_alternate_the_order_and_ratios_pair_each_turn(bench):
    calls = []
    times = bench.interleaved({name: (lambda n=name: calls.append(n)) for name in "abc"}, turns=3)
    assert "".join(calls) == "abc" + "abc" + "cba" + "abc"  # warm-ups, then turns
    assert all(len(t) == 3 for t in times.values())
    assert bench.paired({"slow": [2.0, 9.0, 4.0], "fast": [1.0, 3.0, 1.0]}, "slow", "fast") == 3.0


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "benchmarks" / "specs").glob("*.yaml")))
def test_every_config_gets_inputs_its_model_takes(bench, name):
    spec = xtc.load_spec(ROOT / "benchmarks" / "specs" / f"{name}.yaml")
    config = bench.make_inputs(name, spec, batch=2)
    assert config.generate == (name.startswith("gpt") or name == "encoder_decoder")
    assert "mask" in config.kwargs if name == "bert" else not config.kwargs


TINY = """
xtc: 1
name: tiny_bench
model:
  type: TransformerWrapper
  num_tokens: 32
  max_seq_len: 16
  attn_layers: {type: Decoder, dim: 16, depth: 1, heads: 2, attn: {dim_head: 8}}
"""


def test_measure_reports_every_figure(bench, eager_compile):
    spec = xtc.loads_spec(TINY)
    result = bench.measure("tiny", spec, batch=2, rounds=1, repeats=1, new_tokens=4)
    for kind in ("forward", "training_step"):
        figures = result[kind]
        assert figures["ratio"] == figures["xtc_s"] / figures["reference_s"] > 0
        assert figures["control_ratio"] > 0
    generation = result["generation"]
    assert generation["speedup"] > 0 and generation["control_speedup"] > 0
    assert generation["new_tokens"] == 4
    assert generation["compiled_speedup"] > 0 and generation["compile_s"] > 0
    # q k v (one matrix), out, the feedforward's two and the logits head, 4 bytes per weight
    assert generation["matrices"] == 5
    assert generation["weight_bytes"] == 4 * (4 * 16**2 + 2 * 16 * 64 + 16 * 32)
    assert generation["ceiling_tokens_per_s"] > 0
    assert 0 < generation["ceiling_fraction"] and 0 < generation["compiled_ceiling_fraction"]
    assert generation["turns"] == 2
    assert "| tiny |" in bench.table([result]) and "| tiny |" in bench.generation_table([result])


def test_a_rewrite_is_timed_against_the_model_emitted_without_it(bench):
    from xtc.compiler.passes.fuse_qkv import fuse_qkv

    spec = xtc.loads_spec(TINY)
    reference, _ = bench.paired_models(spec)
    without = bench.built_without(spec, fuse_qkv, reference.state_dict())
    assert hasattr(without.blocks[0].attn, "to_q") and not hasattr(without.blocks[0].attn, "to_qkv")
    figures = bench.measure_rewrite("tiny", spec, fuse_qkv, rounds=1, repeats=1, new_tokens=4)
    assert figures["speedup"] > 0 and figures["control_speedup"] > 0  # paired: see above
    assert figures["with_tokens_per_s"] > 0 and figures["without_tokens_per_s"] > 0
    assert bench.rewrite_line(figures).startswith("fuse_qkv (tiny, cached generation, batch 1)")


def test_the_ceiling_counts_the_matrices_a_decoding_step_reads(bench):
    """An encoder-decoder's step reads its decoder's matrices, but not the cross-attention's key
    and value projections: they read the context once."""
    spec = xtc.load_spec(ROOT / "benchmarks" / "specs" / "encoder_decoder.yaml")
    weights = bench.decoding_weights(xtc.build(spec))
    assert len(weights) == 2 * (2 + 2 + 2) + 1  # per layer: self qkv, out; cross q, out; ff


def test_the_peer_has_the_llama_config_s_shapes_and_is_timed_on_each_path(bench, eager_compile):
    import torch

    pytest.importorskip("transformers", reason="the optional benchmark peer (.[bench])")
    spec = xtc.loads_spec("""
xtc: 1
name: tiny_llama
model:
  type: TransformerWrapper
  num_tokens: 32
  max_seq_len: 32
  attn_layers:
    type: Decoder
    dim: 16
    depth: 1
    heads: 2
    rotary_pos_emb: true
    use_rmsnorm: true
    attn: {dim_head: 8, kv_heads: 1}
    ff: {glu: true, swish: true}
""")
    figures = bench.measure_peer("tiny_llama", spec, rounds=1, repeats=1, new_tokens=4)
    assert figures["parameters"]["hf"] == figures["parameters"]["xtc"]
    for key in ("dynamic", "static", "compiled_static"):
        paths = figures[key]
        assert min(paths["speedup"], paths["xtc_tokens_per_s"], paths["hf_tokens_per_s"]) > 0
    assert bench.peer_line(figures).startswith("transformers LlamaForCausalLM (tiny_llama shapes")
    hf = bench.peer.llama_like(32, 32, 16, 1, 2, 8, 1, 64)
    prompt = torch.randint(0, 32, (1, 5))
    dynamic, static = (bench.peer.generation_runner(hf, prompt, 4, cache)()
                       for cache in ("dynamic", "static"))
    assert dynamic.shape == (1, 9)  # exactly 4 new tokens: no stop at an eos
    assert torch.equal(dynamic, static)


def test_inductor_figures_are_reported(bench, eager_compile):
    spec = xtc.load_spec(ROOT / "benchmarks" / "specs" / "gpt.yaml")
    figures = bench.measure_inductor("gpt", spec, batch=1, rounds=1, repeats=1)
    assert figures["compile_s"] > 0 and figures["inductor_s"] > 0
    assert figures["eager_s"] > 0 and figures["reference_s"] > 0
    assert bench.inductor_line(figures).startswith("inductor (gpt, forward, batch 1)")


def test_generation_prompts_fit_each_model(bench):
    gpt = xtc.load_spec(ROOT / "benchmarks" / "specs" / "gpt.yaml")
    (tokens,) = bench.generation_prompt(gpt, bench.make_inputs("gpt", gpt, batch=2), 64)
    assert tokens.shape == (1, 16)
    seq2seq = xtc.load_spec(ROOT / "benchmarks" / "specs" / "encoder_decoder.yaml")
    config = bench.make_inputs("encoder_decoder", seq2seq, batch=2)
    source, start = bench.generation_prompt(seq2seq, config, 64)
    assert source.shape == (1, 256) and start.shape == (1, 1)


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "benchmarks" / "specs").glob("*.yaml")))
def test_the_reference_runs_at_its_fastest(bench, name):
    """Every config is compared with x-transformers as a user who wants speed sets it up:
    attn_flash=True on every layer stack (all of today's configs allow it)."""
    from reference import reference_model

    reference = reference_model(bench.fastest(ROOT / "benchmarks" / "specs" / f"{name}.yaml"))
    attends = [m for m in reference.modules() if type(m).__name__ == "Attend"]
    assert attends and all(m.flash for m in attends)


def test_a_windowed_config_reports_its_cache_beside_the_full_cache_model_s(bench):
    """gpt_windowed: 4 layers of 2 key / value heads 64 wide, float32, keys and values: 4 KiB a
    position; windows of 32 keep 32 positions where the full cache keeps every one."""
    spec = xtc.load_spec(ROOT / "benchmarks" / "specs" / "gpt_windowed.yaml")
    config = bench.make_inputs("gpt_windowed", spec, batch=1)
    figures = bench.measure_cache(spec, xtc.build(spec).eval(), config, new_tokens=64)
    per_position = 4 * 2 * 64 * 2 * 4
    assert figures["generation"] == {"positions": 80, "xtc": 32 * per_position,
                                     "full_cache": 80 * per_position}
    assert figures["max_seq_len"] == {"positions": 256, "xtc": 32 * per_position,
                                      "full_cache": 256 * per_position}
    assert bench.cache_line("gpt_windowed", figures).endswith("(12%)")
