"""A Hugging Face Llama-family config.json as an xtc spec (`xtc import-hf`), read as data.

Llama, Mistral and the models built like them (TinyLlama, SmolLM, ...) are x-transformers
Decoders with rotary positions over the whole head, RMSNorm, SwiGLU feedforwards, grouped-query
attention and no biases. Each field of config.json either becomes a keyword (FIELDS, the table
docs/huggingface.md shows), or changes nothing the spec describes (NOT_THE_MODEL: token ids,
dtype, training settings), or changes the model in a way no spec can say, which is an error at
the field's line. A field this module does not know is a warning: xtc cannot tell whether it
changes the model. Nothing is run: a config that asks for its own code (`auto_map`,
trust_remote_code) is refused.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from xtc.spec.diagnostics import ERROR, WARNING, Diagnostic, printable
from xtc.spec.load import Check, read_spec
from xtc.spec.model import Spec
from xtc.spec.source import SpecInputError, read_bounded_bytes

from .commented_yaml import Block, dump_lines, text_of
from .located_json import JSONError, KeyPath, Place, located_json
from .python_import import spec_name
from .python_source import Comment

MAX_CONFIG_BYTES = 1 << 20  # a config.json of the family is a few kB
ROTARY_BASE = 10000  # x-transformers' rotary base, which rotary_base_rescale_factor rescales

ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}
DTYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # float32, bfloat16: carried in the description
# Families built almost like Llama, and the part a spec cannot say.
UNLIKE_LLAMA = {
    "qwen2": "its q, k and v projections have biases, which x-transformers' attention lacks",
}

# Fields that change nothing a spec describes: carried in the spec's description (the first
# four) or ignored.
NOT_THE_MODEL = {
    "architectures": "checked against model_type",
    "model_type": "checked: llama or mistral",
    "torch_dtype": "the weights' dtype: --weights keeps it",
    "dtype": "the weights' dtype: --weights keeps it",
    "bos_token_id": "a token id of the tokenizer",
    "eos_token_id": "a token id of the tokenizer",
    "pad_token_id": "a token id of the tokenizer",
    "transformers_version": "the version that wrote the file",
    "initializer_range": "initialisation of a new model, not of these weights",
    "use_cache": "a setting of HF's generate",
    "attention_dropout": "dropout in training; 0 in every released config",
    "pretraining_tp": "HF splits its matmuls into this many slices, the same sums",
    "_name_or_path": "where HF loaded it from",
    "max_window_layers": "read by HF's Qwen2 only",
    "use_sliding_window": "read by HF's Qwen2 only",
}

Path = tuple[str, ...]  # a key path in the spec

# Warnings of the written spec that its comments answer: every Llama-family spec has them.
SAID_IN_COMMENTS = {"no-bias-keeps-glu-bias"}


@dataclass
class HFSpec:
    """The spec `import-hf` writes: its name, its YAML and the spec as `xtc validate` reads it."""

    name: str
    text: str
    spec: Spec | None


@dataclass
class Config:
    """config.json's fields, where each is, and what the mapping has read and found wrong."""

    values: dict
    places: dict[KeyPath, Place]
    path: str
    read: set[str] = field(default_factory=set)
    problems: list[Diagnostic] = field(default_factory=list)

    def place(self, key: str) -> Place:
        """Where a field (dotted for a nested one: `rope_parameters.rope_theta`) is written."""
        return self.places.get(tuple(key.split(".")), (1, 1))

    def problem(self, key: str, code: str, message: str, severity: str = ERROR) -> None:
        self.problems.append(Diagnostic(self.path, *self.place(key), key, code, message, severity))

    def get(self, name: str, default: object = None) -> object:
        self.read.add(name)
        return self.values.get(name, default)

    def positive(self, name: str, kind: type, default: object = None) -> object:
        return self.checked_positive(name, self.get(name, default), kind)

    def checked_positive(self, key: str, value: object, kind: type) -> object:
        """value, where it is a positive int (or a positive finite number); else None, after
        an error that says what it must be."""
        if value is None:
            self.problem(key, "hf-missing-field", f"config.json needs `{key}`")
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        fits = number and (isinstance(value, int) if kind is int else math.isfinite(value))
        if not fits or value <= 0:
            what = "a whole number" if kind is int else "a number"
            self.problem(key, "hf-bad-value", f"`{key}` must be {what} above 0, got {value!r}")
            return None
        return value


def read_config_bytes(folder: str | os.PathLike) -> bytes:
    """config.json of a checkpoint folder, bounded (spec.source.SpecInputError otherwise: the
    command line exits with 2). A folder that does not exist is not looked up anywhere else:
    xtc never downloads."""
    if not os.path.isdir(folder):
        where = os.fspath(folder)
        hint = (" (xtc never downloads: fetch the model first, e.g. `huggingface-cli download "
                f"{where} --local-dir DIR`, and give DIR)" if where.count("/") == 1 else "")
        raise SpecInputError(f"{where}: not a folder{hint}")
    return read_bounded_bytes(os.path.join(folder, "config.json"), MAX_CONFIG_BYTES, "config.json")


def read_hf_config(data: bytes, path: str) -> tuple[Config | None, list[Diagnostic]]:
    """config.json's bytes, decoded and parsed with the place of every key."""
    try:
        values, places, duplicates = located_json(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, [Diagnostic(path, 1, 1, "", "hf-invalid-json", f"not UTF-8: {exc.reason}")]
    except JSONError as exc:
        return None, [Diagnostic(path, exc.line, exc.col, "", "hf-invalid-json", f"not JSON: {exc}")]
    if not isinstance(values, dict):
        return None, [Diagnostic(path, 1, 1, "", "hf-invalid-json",
                                 "config.json must hold a JSON object")]
    config = Config(values, places, path)
    for key in duplicates:
        config.problem(".".join(key), "hf-duplicate-field", f"`{'.'.join(key)}` is written twice")
    return config, config.problems


# -- the mapping -------------------------------------------------------------------------------

@dataclass
class Draft:
    """The spec being written: its mappings, the config field behind each key (its location
    for the spec's own diagnostics) and the comment written beside it."""

    model: Block = field(default_factory=Block)
    layers: Block = field(default_factory=Block)
    attn: Block = field(default_factory=Block)
    ff: Block = field(default_factory=Block)
    head_dim: int | None = None
    head_source: str = "head_dim"  # the field, or how HF computes it where it is absent
    fields: dict[Path, str] = field(default_factory=dict)
    comments: dict[Path, str] = field(default_factory=dict)

    def set(self, where: Block, key: str, value: object, source: str | None, note: str = "") -> None:
        """key: value in a mapping, made from config field `source` (None: a constant of the
        family), with `note` saying why."""
        where[key] = value
        path = (*self.path_of(where), key)
        if source:
            self.fields[path] = source
        self.comments[path] = f"{source}: {note}" if source and note else source or note

    def path_of(self, where: Block) -> Path:
        layers = ("model", "attn_layers")
        return {id(self.model): ("model",), id(self.layers): layers,
                id(self.attn): (*layers, "attn"), id(self.ff): (*layers, "ff")}[id(where)]


def draft_of(config: Config) -> Draft:
    """Every field mapped to its keyword; problems go to config.problems."""
    draft = Draft()
    check_architecture(config)
    check_no_code(config)
    model_fields(config, draft)
    layer_fields(config, draft)
    attention_fields(config, draft)
    feedforward_fields(config, draft)
    check_unsupported(config)
    note_unread(config)
    return draft


def check_architecture(config: Config) -> None:
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        known = ", ".join(ARCHITECTURES)
        why = UNLIKE_LLAMA.get(model_type, "")
        config.problem("model_type", "hf-unsupported-architecture",
                       f"model_type {model_type!r} is not one xtc imports ({known}: decoders "
                       "with rotary positions, RMSNorm, SwiGLU and grouped-query attention)"
                       + (f": {why}" if why else ""))
        return
    architectures = config.get("architectures", [ARCHITECTURES[model_type]])
    if architectures != [ARCHITECTURES[model_type]]:
        config.problem("architectures", "hf-unsupported-architecture",
                       f"architectures {architectures!r}: xtc imports {ARCHITECTURES[model_type]}, "
                       "the causal language model")


def check_no_code(config: Config) -> None:
    if "auto_map" in config.values:
        config.read.add("auto_map")
        config.problem("auto_map", "hf-remote-code",
                       "the model's code comes with it (trust_remote_code): xtc reads "
                       "config.json as data and never runs code")


def model_fields(config: Config, draft: Draft) -> None:
    draft.model["type"] = "TransformerWrapper"
    draft.set(draft.model, "num_tokens", config.positive("vocab_size", int), "vocab_size")
    draft.set(draft.model, "max_seq_len", config.positive("max_position_embeddings", int),
              "max_position_embeddings")
    draft.set(draft.model, "use_abs_pos_emb", False, None, "positions are rotary only")
    tied = config.get("tie_word_embeddings", False)
    if tied is True:
        draft.set(draft.model, "tie_embedding", True, "tie_word_embeddings")
        draft.set(draft.model, "tie_embedding_scale", 1.0, "tie_word_embeddings",
                  "HF does not scale tied logits")
    elif tied is not False:
        config.problem("tie_word_embeddings", "hf-bad-value",
                       f"`tie_word_embeddings` must be true or false, got {tied!r}")


def layer_fields(config: Config, draft: Draft) -> None:
    layers = draft.layers
    layers["type"] = "Decoder"
    dim = config.positive("hidden_size", int)
    heads = config.positive("num_attention_heads", int)
    draft.set(layers, "dim", dim, "hidden_size")
    draft.set(layers, "depth", config.positive("num_hidden_layers", int), "num_hidden_layers")
    draft.set(layers, "heads", heads, "num_attention_heads")
    draft.set(layers, "use_rmsnorm", True, None, "LlamaRMSNorm")
    draft.set(layers, "norm_add_unit_offset", False, None, "HF stores the gain, not gain - 1")
    draft.set(layers, "norm_eps", config.positive("rms_norm_eps", float, 1e-6), "rms_norm_eps")
    head_dim = (config.positive("head_dim", int, dim // heads if dim and heads else None)
                if dim and heads or "head_dim" in config.values else None)
    draft.head_source = "head_dim" if "head_dim" in config.values else "hidden_size / num_attention_heads"
    draft.set(layers, "rotary_pos_emb", True, None, "RoPE")
    draft.set(layers, "rotary_emb_dim", head_dim, draft.head_source, "HF rotates the whole head")
    theta, source = rope_theta(config)
    if theta is not None and head_dim and theta != ROTARY_BASE:
        draft.set(layers, "rotary_base_rescale_factor", base_rescale_factor(theta, head_dim),
                  source, f"base {theta:g}")
    draft.model["attn_layers"] = layers
    draft.head_dim = head_dim


def rope_theta(config: Config) -> tuple[float | None, str]:
    """rope_theta and the field that holds it: at the top level (transformers 4) or in
    rope_parameters (transformers 5), whose rope_type must be the default; the scalings
    (llama3, yarn, longrope, dynamic, linear) have no spec equivalent."""
    parameters = config.get("rope_parameters")
    for name in ("rope_parameters", "rope_scaling"):
        value = config.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            config.problem(name, "hf-bad-value", f"`{name}` must be an object, got {value!r}")
            return None, name
        kind = value.get("rope_type", value.get("type", "default"))
        unknown = sorted(set(value) - {"rope_type", "type", "rope_theta"})
        if kind != "default" or unknown:
            what = f"rope_type {kind!r}" if kind != "default" else f"{', '.join(unknown)}"
            config.problem(name, "hf-not-expressible",
                           f"`{name}` with {what}: x-transformers has no such rotary scaling, so "
                           "a spec cannot say it")
            config.read.add("rope_theta")
            return None, name
    if isinstance(parameters, dict) and "rope_theta" in parameters:
        source = "rope_parameters.rope_theta"
        theta = config.checked_positive(source, parameters["rope_theta"], float)
        top = config.get("rope_theta", theta)
        if theta is not None and top != theta:
            config.problem("rope_theta", "hf-bad-value",
                           f"rope_theta {top!r} is not rope_parameters.rope_theta {theta!r}")
        return theta, source
    return config.positive("rope_theta", float, ROTARY_BASE), "rope_theta"


def base_rescale_factor(theta: float, head_dim: int) -> float:
    """x-transformers' rotary base is 10000 * factor ** (d / (d - 2)) for rotary width d, so
    this factor makes it theta (and the float32 frequencies bit-equal to HF's)."""
    return (theta / ROTARY_BASE) ** ((head_dim - 2) / head_dim)


def attention_fields(config: Config, draft: Draft) -> None:
    attn = draft.attn
    heads = draft.layers.get("heads")
    head_dim = draft.head_dim
    draft.set(attn, "dim_head", head_dim, draft.head_source)
    kv_heads = config.positive("num_key_value_heads", int, heads)
    if kv_heads and heads and heads % kv_heads:
        config.problem("num_key_value_heads", "hf-bad-value",
                       f"num_key_value_heads {kv_heads} must divide num_attention_heads {heads}")
    elif kv_heads and kv_heads != heads:
        draft.set(attn, "kv_heads", kv_heads, "num_key_value_heads")
    draft.set(attn, "flash", True, None, "scaled_dot_product_attention")
    window = config.get("sliding_window")
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            config.problem("sliding_window", "hf-bad-value",
                           f"`sliding_window` must be a whole number above 0, got {window!r}")
        else:
            draft.set(attn, "max_attend_past", window - 1, "sliding_window",
                      f"{window} tokens: each one and the {window - 1} before it")
    draft.layers["attn"] = attn


def feedforward_fields(config: Config, draft: Draft) -> None:
    ff = draft.ff
    draft.set(ff, "glu", True, None, "gate_proj and up_proj")
    act = config.get("hidden_act", "silu")
    if act != "silu":
        config.problem("hidden_act", "hf-not-expressible",
                       f"hidden_act {act!r}: xtc imports SwiGLU feedforwards (silu)")
    draft.set(ff, "swish", True, "hidden_act", "silu")
    draft.set(ff, "no_bias", True, "mlp_bias", "false (the gated projection keeps a bias: zeros)")
    dim = draft.layers.get("dim")
    inner = config.positive("intermediate_size", int)
    if dim and inner:
        draft.set(ff, "mult", exact_multiplier(inner, dim), "intermediate_size",
                  f"{inner} = int({dim} * mult)")
    draft.layers["ff"] = ff


def exact_multiplier(inner: int, dim: int) -> float:
    """The smallest float `mult` with int(dim * mult) == inner, the width x-transformers
    builds (inner / dim itself can fall a hair short: 704 * (960 / 704) is 959.99...).

    >>> exact_multiplier(176, 64), exact_multiplier(960, 704), int(704 * (960 / 704))
    (2.75, 1.3636363636363638, 959)
    """
    mult = inner / dim
    while int(dim * mult) < inner:
        mult = math.nextafter(mult, math.inf)
    return mult


def check_unsupported(config: Config) -> None:
    """Fields that change the model in ways a spec cannot say, where they are set."""
    for name in ("attention_bias", "mlp_bias"):
        value = config.get(name, False)
        if value is not False:
            config.problem(name, "hf-not-expressible",
                           f"`{name}: {value!r}`: x-transformers' Llama-style projections have "
                           "no biases, so a spec cannot say it")


def note_unread(config: Config) -> None:
    for name in config.values:
        if name not in config.read and name not in NOT_THE_MODEL:
            config.problem(name, "hf-unknown-field",
                           f"`{name}` is not a field xtc knows for this architecture; it was not "
                           "read: check that it does not change the model", severity=WARNING)


# -- the spec ----------------------------------------------------------------------------------

def import_hf(folder: str, data: bytes,
              checks: Iterable[Check] = ()) -> tuple[HFSpec | None, list[Diagnostic]]:
    """The spec of the model whose config.json holds `data`, checked as `xtc validate` checks
    it; diagnostics are located in config.json."""
    path = os.path.join(folder, "config.json")
    config, problems = read_hf_config(data, path)
    if config is None:
        return None, problems
    draft = draft_of(config)
    if any(d.severity == ERROR for d in config.problems):
        return None, config.problems
    name = spec_name(os.path.basename(os.path.normpath(folder)), set())
    mapping = Block(xtc=1, name=name, description=description(config), model=draft.model)
    comments = {path: (Comment(text, own_line=False),) for path, text in draft.comments.items()}
    text = text_of(dump_lines(mapping, comments,
                              header=f"Imported by `xtc import-hf` from {printable(path)}."))
    spec, found = read_spec(text, f"{name}.yaml", tuple(checks))
    moved = [located_in_config(d, draft, config) for d in found if d.code not in SAID_IN_COMMENTS]
    return HFSpec(name, text, spec), config.problems + moved


def description(config: Config) -> str:
    """What the spec does not hold but a user of the weights needs: the architecture, the
    weights' dtype and the tokenizer's special ids."""
    facts = [ARCHITECTURES[config.values["model_type"]]]
    dtype = config.values.get("dtype", config.values.get("torch_dtype"))
    if isinstance(dtype, str) and DTYPE_NAME.fullmatch(dtype):
        facts.append(f"weights in {dtype}")
    ids = [f"{name.removesuffix('_token_id')} {token_ids(config.values[name])}"
           for name in ("bos_token_id", "eos_token_id", "pad_token_id")
           if token_ids(config.values.get(name))]
    if ids:
        facts.append("token ids: " + ", ".join(ids))
    return "; ".join(facts)


def token_ids(value: object) -> str:
    """A token id, or a list of them (Llama 3's eos), as text; "" for anything else, which is
    left out of the spec rather than carried into it."""
    if isinstance(value, list) and 0 < len(value) <= 8:
        return f"[{', '.join(map(token_ids, value))}]" if all(map(token_ids, value)) else ""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def located_in_config(diagnostic: Diagnostic, draft: Draft, config: Config) -> Diagnostic:
    """A diagnostic of the written spec, at the config field its key came from (else at the
    top of config.json)."""
    path = tuple(diagnostic.key.split(".")) if diagnostic.key else ()
    line, col = config.place(draft.fields[path]) if path in draft.fields else (1, 1)
    return Diagnostic(config.path, line, col, diagnostic.key, diagnostic.code,
                      diagnostic.message, diagnostic.severity)
