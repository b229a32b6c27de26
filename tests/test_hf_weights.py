"""Hugging Face Llama-family checkpoints as xtc's state dict (issue #50, "Weights"): tiny random
LlamaForCausalLM (grouped-query, untied) and MistralForCausalLM (sliding window, tied) saved
with `save_pretrained` (one file, sharded, bf16) convert to weights that give HF's logits in
xtc's model; each layout trap, undone, moves the logits far past the tolerance; every tensor
that does not fit is named at once and nothing is written; the streamed reader refuses bad
headers and the writer's files load in `safetensors`; a checkpoint larger than the memory a
process may allocate converts.

HF's RMSNorm adds rms_norm_eps inside the root and the reference's has none (the spec keyword
`norm_eps` says it): here every HF norm's eps is set to 0, so the logits agree to float32
rounding, and the tolerance (1e-5 of the largest logit) is 100 times tighter than what the
smallest trap moves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import safetensors.torch
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

import xtc
from xtc import hf_weights
from xtc.checkpoints import CheckpointError
from xtc.hf_weights import convert_hf_checkpoint
from xtc.safetensors_stream import TensorLayout, read_header, write_streamed

TOLERANCE = 1e-5  # of the largest logit
LLAMA = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
         "rope_theta": 500000.0, "tie_word_embeddings": False}
MISTRAL = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 8,
           "max_position_embeddings": 64, "sliding_window": 8, "tie_word_embeddings": True}


def spec_for(config, name: str) -> xtc.Spec:
    """The spec `xtc import-hf` writes for a Llama-family config (written here by hand)."""
    head = config.head_dim
    attn = {"dim_head": head, "flash": True}
    if config.num_key_value_heads != config.num_attention_heads:
        attn["kv_heads"] = config.num_key_value_heads
    if getattr(config, "sliding_window", None):
        attn["max_attend_past"] = config.sliding_window - 1
    layers = {"type": "Decoder", "dim": config.hidden_size, "depth": config.num_hidden_layers,
              "heads": config.num_attention_heads, "use_rmsnorm": True,
              "norm_add_unit_offset": False, "rotary_pos_emb": True, "rotary_emb_dim": head,
              "attn": attn, "ff": {"glu": True, "swish": True, "no_bias": True,
                                   "mult": config.intermediate_size / config.hidden_size}}
    theta = config.rope_parameters["rope_theta"]
    if theta != 10000:
        layers["rotary_base_rescale_factor"] = (theta / 10000) ** ((head - 2) / head)
    model = {"type": "TransformerWrapper", "num_tokens": config.vocab_size,
             "max_seq_len": config.max_position_embeddings, "use_abs_pos_emb": False,
             "attn_layers": layers}
    if config.tie_word_embeddings:
        model |= {"tie_embedding": True, "tie_embedding_scale": 1.0}
    return xtc.loads_spec(yaml.safe_dump({"xtc": 1, "name": name, "model": model}))


def hf_model(cls, config_class, settings: dict):
    """A tiny random model with random norm gains (HF starts them at one), its eps at 0."""
    torch.manual_seed(0)
    model = cls(config_class(**settings)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    for module in model.modules():
        if hasattr(module, "variance_epsilon"):
            module.variance_epsilon = 0.0
    return model


def saved(tmp_path_factory, cls, config_class, settings: dict, name: str):
    """The model, its spec and the folder save_pretrained wrote it to."""
    model = hf_model(cls, config_class, settings)
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(folder)
    return model, spec_for(model.config, name), folder


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return saved(tmp_path_factory, LlamaForCausalLM, LlamaConfig, LLAMA, "tiny_llama")


@pytest.fixture(scope="module")
def mistral(tmp_path_factory):
    return saved(tmp_path_factory, MistralForCausalLM, MistralConfig, MISTRAL, "tiny_mistral")


def relative_difference(hf, spec, weights, seq_len: int = 24) -> float:
    """max |HF's logits - xtc's| / max |HF's logits|, xtc's model loaded strictly."""
    model = xtc.build(spec).eval()
    model.load_state_dict(safetensors.torch.load_file(str(weights)), strict=True)
    tokens = torch.randint(0, spec.model["num_tokens"], (2, seq_len), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = hf(tokens).logits, model(tokens)
    return ((expected - got).abs().max() / expected.abs().max()).item()


def converted(spec, folder, output) -> dict[str, torch.Tensor]:
    assert convert_hf_checkpoint(spec, folder, output) == len(xtc.build(spec, device="meta").state_dict())
    return safetensors.torch.load_file(str(output))


# -- parity ----------------------------------------------------------------------------------------

def test_llama_with_grouped_query_heads_gives_hf_logits(llama, tmp_path):
    hf, spec, folder = llama
    convert_hf_checkpoint(spec, folder, tmp_path / "xtc.safetensors")
    assert relative_difference(hf, spec, tmp_path / "xtc.safetensors") < TOLERANCE


def test_mistral_with_sliding_window_and_tied_embeddings_gives_hf_logits(mistral, tmp_path):
    """24 tokens through a window of 8; the tied checkpoint has no lm_head.weight, and xtc's
    model none either (its logits read the embedding)."""
    hf, spec, folder = mistral
    assert "lm_head.weight" not in read_header(folder / "model.safetensors").tensors
    convert_hf_checkpoint(spec, folder, tmp_path / "xtc.safetensors")
    assert relative_difference(hf, spec, tmp_path / "xtc.safetensors") < TOLERANCE


TRAPS = {  # each layout difference undone: (the function replaced, its replacement)
    "grouped-query head order": ("kv_head_order", lambda dims: list(range(dims.heads))),
    "rotate-half pairs": ("to_pairs", lambda weight, heads, dim_head: weight),
    "GLU halves": ("concatenated", lambda inputs: torch.cat(inputs[::-1])),
}


@pytest.mark.parametrize("trap", TRAPS)
def test_each_layout_trap_undone_moves_the_logits_far_past_the_tolerance(llama, tmp_path, monkeypatch, trap):
    hf, spec, folder = llama
    monkeypatch.setattr(hf_weights, *TRAPS[trap])
    convert_hf_checkpoint(spec, folder, tmp_path / "xtc.safetensors")
    assert relative_difference(hf, spec, tmp_path / "xtc.safetensors") > 100 * TOLERANCE


def test_the_rotary_frequencies_are_hfs(llama, tmp_path):
    """xtc computes them from the spec (HF does not save them): they equal HF's at theta 5e5."""
    hf, spec, folder = llama
    state = converted(spec, folder, tmp_path / "xtc.safetensors")
    assert torch.equal(state["rotary.inv_freq"], hf.model.rotary_emb.inv_freq.float())


# -- files -----------------------------------------------------------------------------------------

def test_a_sharded_checkpoint_converts_as_the_single_file(llama, tmp_path):
    hf, spec, folder = llama
    sharded = tmp_path / "sharded"
    hf.save_pretrained(sharded, max_shard_size="40KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    assert not (sharded / "model.safetensors").exists()
    single = converted(spec, folder, tmp_path / "single.safetensors")
    from_shards = converted(spec, sharded, tmp_path / "sharded.safetensors")
    assert single.keys() == from_shards.keys()
    assert all(torch.equal(single[name], from_shards[name]) for name in single)


def test_bf16_stays_bf16(llama, tmp_path):
    """The conversion only moves values: a bf16 checkpoint's tensors are the float32 one's
    rounded, exactly; the rotary frequencies stay float32, as xtc computes them."""
    hf, spec, folder = llama
    bf16 = tmp_path / "bf16"
    hf.to(torch.bfloat16).save_pretrained(bf16)
    hf.float()
    assert read_header(bf16 / "model.safetensors").tensors["lm_head.weight"].layout.dtype == "BF16"
    full = converted(spec, folder, tmp_path / "f32.safetensors")
    half = converted(spec, bf16, tmp_path / "bf16.safetensors")
    assert {name for name, tensor in half.items() if tensor.dtype != torch.bfloat16} == {"rotary.inv_freq"}
    assert all(torch.equal(half[name], full[name].to(half[name].dtype)) for name in full)
    xtc.build(spec, dtype=torch.bfloat16).load_state_dict(half, strict=True)


# -- what does not fit -----------------------------------------------------------------------------

def test_every_tensor_that_does_not_fit_is_named_and_nothing_is_written(llama, tmp_path):
    _, spec, folder = llama
    tensors = safetensors.torch.load_file(str(folder / "model.safetensors"))
    del tensors["model.layers.1.mlp.down_proj.weight"]
    tensors["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(64)  # Qwen2's, say
    tensors["model.norm.weight"] = torch.ones(32)
    broken = tmp_path / "broken"
    broken.mkdir()
    safetensors.torch.save_file(tensors, str(broken / "model.safetensors"))
    with pytest.raises(CheckpointError) as caught:
        convert_hf_checkpoint(spec, broken, tmp_path / "xtc.safetensors")
    message = str(caught.value)
    for said in (str(broken), "missing 'model.layers.1.mlp.down_proj.weight'",
                 "'model.layers.0.self_attn.q_proj.bias' (model.safetensors)",
                 "'model.norm.weight' (model.safetensors) is [32], the spec's model needs [64]"):
        assert said in message
    assert os.listdir(tmp_path) == ["broken"]


def test_a_deeper_checkpoint_than_the_spec_names_every_layer_left_over(llama, tmp_path):
    _, _, folder = llama
    shallow = spec_for(LlamaConfig(**(LLAMA | {"num_hidden_layers": 1})), "shallow")
    with pytest.raises(CheckpointError) as caught:
        convert_hf_checkpoint(shallow, folder, tmp_path / "xtc.safetensors")
    left_over = [name for name in read_header(folder / "model.safetensors").tensors
                 if name.startswith("model.layers.1.")]
    assert len(left_over) == 9 and all(repr(name) in str(caught.value) for name in left_over)


def test_a_folder_without_safetensors_says_what_it_holds(tmp_path):
    torch.save({}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin, a pickle, which xtc does not read"):
        hf_weights.read_hf_checkpoint(tmp_path)


@pytest.mark.parametrize("weight_map, said", [
    ({"a": "../elsewhere.safetensors"}, "not .safetensors files in its folder: '../elsewhere"),
    ({"a": "shard.safetensors", "b": "shard.safetensors"}, "'b' is listed in 'shard.safetensors', which does not hold it"),
    ({}, "'shard.safetensors' holds 'a', which the index does not list there"),
])
def test_an_index_that_disagrees_with_its_shards_is_refused(tmp_path, weight_map, said):
    safetensors.torch.save_file({"a": torch.zeros(2)}, str(tmp_path / "shard.safetensors"))
    weight_map = weight_map or {"c": "shard.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match=said.replace(".", r"\.")):
        hf_weights.read_hf_checkpoint(tmp_path)


# -- the streamed reader and writer ----------------------------------------------------------------

def with_header(header: dict | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def f32(shape, begin, end) -> dict:
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("content, said", [
    (b"\x01\x02", "shorter than the 8 bytes"),
    (with_header(b"{}", length=2**40), "more than the 100000000"),
    (with_header(b"{}", length=100), "past the end of the file"),
    (with_header(b"{not json"), "not UTF-8 JSON"),
    (with_header(b"[]"), "not a JSON object"),
    (with_header(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}', bytes(4)),
     "names 'a' more than once"),
    (with_header({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}}, bytes(1)), "dtype 'Q7'"),
    (with_header({"a": f32([2], 0, 4)}, bytes(4)), "'a' holds 4 bytes, but F32 of shape [2] is 8"),
    (with_header({"a": f32([-1], 0, 4)}, bytes(4)), "shape [-1]"),
    (with_header({"a": f32([1], 4, 0)}, bytes(4)), "data_offsets [4, 0]"),
    (with_header({"a": f32([4], 0, 16)}, bytes(8)), "'a' ends at byte"),
    (with_header({"a": f32([2], 0, 8), "b": f32([2], 4, 12)}, bytes(12)), "'b' overlaps 'a'"),
    (with_header({"a": f32([1], 0, 4), "__metadata__": {"n": 1}}, bytes(4)), "__metadata__"),
])
def test_the_reader_refuses_a_bad_header_naming_the_file(tmp_path, content, said):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        read_header(path)
    assert said in str(caught.value) and str(path) in str(caught.value)


def test_the_writer_writes_what_safetensors_reads_and_the_reader_reads_it_back(tmp_path):
    tensors = {"f32": torch.randn(3, 5), "bf16": torch.randn(4).to(torch.bfloat16),
               "i64": torch.arange(6).reshape(2, 3), "bool": torch.tensor([True, False, True]),
               "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3), "f16": torch.randn(7).half()}
    layouts = [TensorLayout(name, dtype_of(t), tuple(t.shape)) for name, t in tensors.items()]
    path = tmp_path / "out.safetensors"
    assert write_streamed(path, layouts, iter(tensors.values())) == len(tensors)
    loaded = safetensors.torch.load_file(str(path))
    header = read_header(path)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
        assert torch.equal(header.read(name), tensor)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    assert header.metadata == {"format": "pt"} and header_length % 8 == 0  # the data 8-aligned


def dtype_of(tensor) -> str:
    from xtc.safetensors_stream import dtype_name

    return dtype_name(tensor.dtype)


def test_a_tensor_that_is_not_its_layout_leaves_the_output_as_it_was(tmp_path):
    path = tmp_path / "out.safetensors"
    path.write_bytes(b"before")
    layouts = [TensorLayout("a", "F32", (2,)), TensorLayout("b", "F32", (2,))]
    with pytest.raises(CheckpointError, match="'b' came as torch.float64 \\[2\\], laid out as F32 \\[2\\]"):
        write_streamed(path, layouts, iter([torch.zeros(2), torch.zeros(2, dtype=torch.float64)]))
    assert path.read_bytes() == b"before" and os.listdir(tmp_path) == ["out.safetensors"]


# -- memory ----------------------------------------------------------------------------------------

BIG = {"vocab": 8192, "dim": 1024, "depth": 3, "heads": 8, "kv_heads": 2, "dim_head": 128, "inner": 2816}
MARGIN = 100 * 2**20  # what the converting process may allocate beyond what it holds at start


def big_checkpoint(folder) -> tuple[xtc.Spec, int]:
    """A Llama-shaped checkpoint of 202 MB of float32 (written a tensor at a time), its spec."""
    b = BIG
    shapes = {"model.embed_tokens.weight": (b["vocab"], b["dim"]), "model.norm.weight": (b["dim"],),
              "lm_head.weight": (b["vocab"], b["dim"])}
    for i in range(b["depth"]):
        layer, attn, kv = f"model.layers.{i}.", b["heads"] * b["dim_head"], b["kv_heads"] * b["dim_head"]
        shapes |= {f"{layer}input_layernorm.weight": (b["dim"],),
                   f"{layer}post_attention_layernorm.weight": (b["dim"],),
                   f"{layer}self_attn.q_proj.weight": (attn, b["dim"]),
                   f"{layer}self_attn.k_proj.weight": (kv, b["dim"]),
                   f"{layer}self_attn.v_proj.weight": (kv, b["dim"]),
                   f"{layer}self_attn.o_proj.weight": (b["dim"], attn),
                   f"{layer}mlp.up_proj.weight": (b["inner"], b["dim"]),
                   f"{layer}mlp.gate_proj.weight": (b["inner"], b["dim"]),
                   f"{layer}mlp.down_proj.weight": (b["dim"], b["inner"])}
    layouts = [TensorLayout(name, "F32", shape) for name, shape in shapes.items()]
    generator = torch.Generator().manual_seed(0)
    write_streamed(folder / "model.safetensors", layouts,
                   (torch.randn(shape, generator=generator) for shape in shapes.values()))
    config = LlamaConfig(vocab_size=b["vocab"], hidden_size=b["dim"], intermediate_size=b["inner"],
                         num_hidden_layers=b["depth"], num_attention_heads=b["heads"],
                         num_key_value_heads=b["kv_heads"], head_dim=b["dim_head"],
                         max_position_embeddings=64, tie_word_embeddings=False)
    return spec_for(config, "big_llama"), sum(layout.nbytes for layout in layouts)


CONVERT_UNDER_A_LIMIT = """
import resource, sys
import safetensors.torch, xtc
from xtc.hf_weights import convert_hf_checkpoint

spec_path, folder, output, margin = sys.argv[1:]
spec = xtc.load_spec(spec_path)
xtc.build(spec, device="meta")  # imports and the emitted module, before the limit
held = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmData:"))
limit = held + int(margin)
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
written = convert_hf_checkpoint(spec, folder, output)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
try:  # the control: loading the checkpoint whole does not fit under the limit
    safetensors.torch.load_file(folder + "/model.safetensors")
    whole = "fits"
except (MemoryError, RuntimeError):
    whole = "refused"
print(written, grown, whole)
"""


def test_a_checkpoint_larger_than_the_memory_allowed_converts(tmp_path):
    """RLIMIT_DATA bounds what the process allocates (heap and private mappings, not the page
    cache), set to what it holds after its imports plus 100 MB, under the 202 MB of weights: a
    conversion that loads the checkpoint whole fails under it (the control). A reader that
    mapped the file read-only would pass that limit and still keep every page resident, so
    the growth of the peak resident memory is bounded too (measured: 50 to 90 MB)."""
    folder = tmp_path / "big"
    folder.mkdir()
    spec, weights = big_checkpoint(folder)
    spec_path = tmp_path / "big.yaml"
    spec_path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    output = tmp_path / "xtc.safetensors"
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(CONVERT_UNDER_A_LIMIT), str(spec_path),
                          str(folder), str(output), str(MARGIN)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    written, grown, whole = run.stdout.split()
    assert weights > 1.9 * MARGIN and whole == "refused"
    assert int(written) == 2 + 7 * BIG["depth"] + 2 and int(grown) < weights / 2
    check_big_conversion(folder / "model.safetensors", output)


def check_big_conversion(source, output) -> None:
    """The output against the mapping written out here again (the prototype's, issue #50),
    one layer at a time."""
    b = BIG
    heads, kv, d, group = b["heads"], b["kv_heads"], b["dim_head"], b["heads"] // b["kv_heads"]
    order = [(p % kv) * group + p // kv for p in range(heads)]

    def pairs(rows, n):  # per head: rotate-half (i, i + d/2) -> (2i, 2i + 1)
        return rows.view(n, 2, d // 2, -1).transpose(1, 2).reshape(n * d, -1)

    with safetensors.safe_open(str(source), "pt") as hf, safetensors.safe_open(str(output), "pt") as ours:
        assert torch.equal(ours.get_tensor("token_emb.weight"), hf.get_tensor("model.embed_tokens.weight"))
        assert torch.equal(ours.get_tensor("to_logits.weight"), hf.get_tensor("lm_head.weight"))
        for i in range(b["depth"]):
            w = {name: hf.get_tensor(f"model.layers.{i}.{name}.weight") for name in (
                "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.up_proj", "mlp.gate_proj", "mlp.down_proj", "input_layernorm")}
            q = w["self_attn.q_proj"].view(heads, d, -1)[order].reshape(heads * d, -1)
            qkv = torch.cat([pairs(q, heads), pairs(w["self_attn.k_proj"], kv), w["self_attn.v_proj"]])
            out = w["self_attn.o_proj"].view(b["dim"], heads, d)[:, order].reshape(b["dim"], -1)
            assert torch.equal(ours.get_tensor(f"blocks.{i}.attn.to_qkv.weight"), qkv)
            assert torch.equal(ours.get_tensor(f"blocks.{i}.attn.to_out.weight"), out)
            assert torch.equal(ours.get_tensor(f"blocks.{i}.ff.proj_in.weight"),
                               torch.cat([w["mlp.up_proj"], w["mlp.gate_proj"]]))
            assert not ours.get_tensor(f"blocks.{i}.ff.proj_in.bias").any()
            assert torch.equal(ours.get_tensor(f"blocks.{i}.attn_norm.weight"), w["input_layernorm"])


def test_a_spec_that_rotates_part_of_each_head_is_refused(llama, tmp_path):
    """HF's Llama rotates every head whole; the reference's default rotates half of it."""
    _, spec, folder = llama
    half = spec.to_dict()
    half["model"]["attn_layers"]["rotary_emb_dim"] = 8
    with pytest.raises(CheckpointError, match="the spec needs rotary_emb_dim: 16"):
        convert_hf_checkpoint(xtc.loads_spec(yaml.safe_dump(half)), folder, tmp_path / "xtc.safetensors")
