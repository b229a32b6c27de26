"""xtc: compile declarative YAML transformer specs into readable PyTorch modules.

Validating and compiling never import torch (it costs seconds); only the calls that build or
convert models do, inside the call.

>>> spec = loads_spec('''
... xtc: 1
... name: tiny_gpt
... model:
...   type: TransformerWrapper
...   num_tokens: 256
...   max_seq_len: 64
...   attn_layers: {type: Decoder, dim: 64, depth: 2, heads: 4}
... ''')
>>> spec.class_name, spec.model.children["attn_layers"]["heads"]
('TinyGpt', 4)
"""

from __future__ import annotations

import os

from .spec import Diagnostic, ModuleSpec, Spec, SpecError, SpecInputError
from .spec import load as _load

__version__ = "0.1.0"
__all__ = ["Diagnostic", "ModuleSpec", "Spec", "SpecError", "SpecInputError", "load_spec",
           "loads_spec"]


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and check a spec file: loader, schema and every check pass."""
    return _load.load_spec(path)


def loads_spec(text: str, path: str = "<string>") -> Spec:
    """Check spec text: loader, schema and every check pass. `path` names it in diagnostics."""
    return _load.loads_spec(text, path)
