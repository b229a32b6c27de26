"""Regenerate spec/keywords.json, the keyword table of x-transformers 2.31.10.

    python scripts/gen_keyword_table.py          # rewrite the table
    python scripts/gen_keyword_table.py --check  # exit 1 if the checked-in table is stale

Names and defaults come from `inspect.signature` of the installed reference; types come from the
defaults, except where a default is None or too narrow (an int default for a float option), which
TYPE_OVERRIDES below settles by reading the reference's use of the keyword. The routing rules (which
keywords the layers pass to Attention and FeedForward themselves, so that a spec may not) were read
from `AttentionLayers.__init__` and `XTransformer.__init__`, and
tests/test_keyword_table.py checks them against the reference by construction.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

REFERENCE = "x-transformers==2.31.10"
TABLE = Path(__file__).resolve().parent.parent / "spec" / "keywords.json"

# Keywords whose default does not tell their type. "object" is a Python object (a module, a
# function): part of the reference's signature, never expressible in a spec.
TYPE_OVERRIDES = {
    "TransformerWrapper": {
        "num_tokens": ["int"], "max_seq_len": ["int"], "attn_layers": ["module"],
        "embed_num_tokens": ["dict"], "emb_dim": ["int"], "num_memory_tokens": ["int"],
        "memory_tokens_interspersed_every": ["int"], "tie_embedding_scale": ["float"],
        "logits_dim": ["int"], "dim_pooled_tokens": ["int"], "token_emb": ["object"],
        "to_logits": ["object"],
    },
    "ViTransformerWrapper": {
        "image_size": ["int"], "patch_size": ["int"], "attn_layers": ["module"],
        "num_classes": ["int"],
    },
    "ContinuousTransformerWrapper": {
        "max_seq_len": ["int"], "attn_layers": ["module"], "dim_in": ["int"], "dim_out": ["int"],
        "project_in": ["object"], "project_out": ["object"], "num_memory_tokens": ["int"],
    },
    "XValTransformerWrapper": {
        "num_tokens": ["int"], "max_seq_len": ["int"], "numerical_token_id": ["int"],
        "attn_layers": ["module"], "emb_dim": ["int"], "logits_dim": ["int"],
        "num_memory_tokens": ["int"],
    },
    "XTransformer": {"dim": ["int"]},
    "AttentionLayers": {
        "dim": ["int"], "depth": ["int"], "dim_condition": ["int"], "alibi_num_heads": ["int"],
        "rotary_emb_dim": ["int"], "rotate_num_heads": ["int"], "custom_layers": ["layer_types"],
        "layers_execute_order": ["int_list"], "sandwich_coef": ["int"], "par_ratio": ["int"],
        "disable_abs_pos_emb": ["bool"], "depth_scale_residual": ["bool", "float"],
        "rotary_xpos_scale_base": ["float"], "softclamp_output_value": ["float"],
    },
    "Attention": {
        "dim": ["int"], "dim_context": ["int"], "sparse_topk": ["int"], "gate_values_rank": ["int"],
        "output_gate_rank": ["int"], "output_proj_depth": ["int"], "max_attend_past": ["int"],
        "qk_norm_scale": ["float"], "custom_attn_fn": ["object"], "hybrid_module": ["object"],
        "hybrid_mask_kwarg": ["str"], "hybrid_fold_axial_dim": ["int"], "kv_heads": ["int"],
        "value_dim_head": ["int"], "dim_out": ["int"], "rotate_num_heads": ["int"],
        "project_out": ["bool"], "dim_latent_q": ["int"], "dim_latent_kv": ["int"],
        "latent_rope_subheads": ["int"],
    },
    "FeedForward": {
        "dim": ["int"], "dim_out": ["int"], "custom_activation": ["object"],
        "softclamp_value": ["float"], "mult": ["float"], "output_proj_depth": ["int"],
    },
    # The training wrappers: their `net` is the spec's model, the rest a spec's `autoregressive:`.
    "AutoregressiveWrapper": {"net": ["object"], "looped_loss_slope": ["float"]},
    "XLAutoregressiveWrapper": {
        "net": ["object"], "ttt_module_paths": ["object"], "ttt_low_rank_paths": ["object"],
        "ttt_custom_loss_module": ["object"],
    },
    "ContinuousAutoregressiveWrapper": {"net": ["object"], "loss_fn": ["object"]},
    "XValAutoregressiveWrapper": {"net": ["object"]},
}

# Keywords that may be given as one value per layer (a YAML list; the reference takes a tuple).
PER_LAYER = {
    "AttentionLayers": {"layer_dropout", "shift_tokens"},
    "Attention": "all",  # every attn_/cross_attn_ value may be a tuple of one per layer (AttentionLayers.__init__)
    "FeedForward": "all",
}

# Keywords the layers set themselves, so a spec's attn:/cross_attn:/ff: may not (a TypeError
# for a duplicate keyword in the reference).
ROUTING = {
    "attn": {"class": "Attention", "exclude": [
        "dim", "heads", "causal", "qkv_receive_diff_residuals", "learned_value_residual_mix",
        "rotate_num_heads", "output_proj_depth"]},
    "cross_attn": {"class": "Attention", "exclude": [
        "dim", "heads", "output_proj_depth"]},
    "ff": {"class": "FeedForward", "exclude": ["dim", "output_proj_depth"]},
}

# The layer classes (Encoder, Decoder, PrefixDecoder, CrossAttender) fix some AttentionLayers keywords themselves.
LAYER_CLASSES = {
    "Encoder": {"exclude": ["causal"]},
    "Decoder": {"exclude": ["causal"]},
    "PrefixDecoder": {"exclude": ["causal"]},
    "CrossAttender": {"exclude": ["cross_attend", "only_cross"]},
}

# XTransformer: which enc_/dec_ keywords go to the TransformerWrapper (XTransformer.__init__); the rest go
# to Encoder / Decoder, which fix `dim` (and the decoder `cross_attend`).
XTRANSFORMER_SIDES = {
    "encoder": {"layers": "Encoder",
                "wrapper_keys": ["num_tokens", "max_seq_len", "emb_dropout", "num_memory_tokens",
                                 "scaled_sinu_pos_emb", "use_abs_pos_emb"],
                "exclude": ["dim", "causal"]},
    "decoder": {"layers": "Decoder",
                "wrapper_keys": ["num_tokens", "max_seq_len", "emb_dropout",
                                 "scaled_sinu_pos_emb", "use_abs_pos_emb"],
                "exclude": ["dim", "causal", "cross_attend"]},
}


def reference_classes() -> dict[str, type]:
    import x_transformers as xt
    from x_transformers.continuous import (
        ContinuousAutoregressiveWrapper,
        ContinuousTransformerWrapper,
    )
    from x_transformers.x_transformers import Attention, AttentionLayers, FeedForward
    from x_transformers.xval import XValAutoregressiveWrapper, XValTransformerWrapper

    return {
        "TransformerWrapper": xt.TransformerWrapper,
        "ViTransformerWrapper": xt.ViTransformerWrapper,
        "ContinuousTransformerWrapper": ContinuousTransformerWrapper,
        "XValTransformerWrapper": XValTransformerWrapper,
        "XTransformer": xt.XTransformer,
        "AttentionLayers": AttentionLayers,
        "Attention": Attention,
        "FeedForward": FeedForward,
        "AutoregressiveWrapper": xt.AutoregressiveWrapper,
        "XLAutoregressiveWrapper": xt.XLAutoregressiveWrapper,
        "ContinuousAutoregressiveWrapper": ContinuousAutoregressiveWrapper,
        "XValAutoregressiveWrapper": XValAutoregressiveWrapper,
    }


def type_of_default(default: object) -> list[str] | None:
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                              (dict, "dict")):
        if isinstance(default, python_type):
            return [name]
    return None


def keyword_entry(class_name: str, name: str, param: inspect.Parameter) -> dict:
    required = param.default is inspect.Parameter.empty
    default = None if required else param.default
    if isinstance(default, tuple):  # an object's default (ttt_module_paths=()): JSON has lists
        default = list(default)
    types = TYPE_OVERRIDES.get(class_name, {}).get(name) or type_of_default(default)
    if types is None:
        raise SystemExit(f"{class_name}.{name}: default {default!r} does not tell the type; "
                         "add it to TYPE_OVERRIDES")
    per_layer = PER_LAYER.get(class_name, set())
    entry = {"type": types, "default": default}
    if required:
        entry["required"] = True
    if (per_layer == "all" and "object" not in types and "dict" not in types) or name in per_layer:
        entry["per_layer"] = True
    return entry


def class_keywords(class_name: str, cls: type) -> dict[str, dict]:
    params = inspect.signature(cls.__init__).parameters
    return {
        name: keyword_entry(class_name, name, param)
        for name, param in params.items()
        if name != "self" and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
    }


def build_table() -> dict:
    classes = {name: class_keywords(name, cls) for name, cls in reference_classes().items()}
    return {
        "reference": REFERENCE,
        "generated_by": "scripts/gen_keyword_table.py",
        "classes": classes,
        "routing": ROUTING,
        "layer_classes": LAYER_CLASSES,
        "xtransformer_sides": XTRANSFORMER_SIDES,
    }


def render(table: dict) -> str:
    """JSON with one line per keyword, so that a reference upgrade reads as a small diff."""
    lines = ["{"]
    for section, value in table.items():
        if section != "classes":
            lines.append(f"  {json.dumps(section)}: {json.dumps(value)},")
            continue
        lines.append('  "classes": {')
        for c, (class_name, keywords) in enumerate(value.items()):
            lines.append(f"    {json.dumps(class_name)}: {{")
            for k, (name, entry) in enumerate(keywords.items()):
                comma = "," if k < len(keywords) - 1 else ""
                lines.append(f"      {json.dumps(name)}: {json.dumps(entry)}{comma}")
            lines.append("    }" + ("," if c < len(value) - 1 else ""))
        lines.append("  },")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(build_table())
    if "--check" in argv:
        if TABLE.read_text() != text:
            print(f"{TABLE} is stale: run python scripts/gen_keyword_table.py", file=sys.stderr)
            return 1
        return 0
    TABLE.write_text(text)
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
