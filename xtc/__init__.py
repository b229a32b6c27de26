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

from .api import (
    build,
    compile,
    convert_hf_checkpoint,
    convert_state_dict,
    explain,
    export_python,
    graph,
    import_hf,
    import_python,
    inspect,
    load_reference_checkpoint,
    load_spec,
    loads_spec,
    reference_state_dict,
)
from .spec import Diagnostic, ModuleSpec, Spec, SpecError, SpecInputError
from .state_dicts import StateDictMismatch

__version__ = "0.1.0"
__all__ = [
    "Diagnostic", "ModuleSpec", "Spec", "SpecError", "SpecInputError", "StateDictMismatch",
    "build", "compile", "convert_hf_checkpoint", "convert_state_dict", "explain",
    "export_python", "graph", "import_hf", "import_python", "inspect",
    "load_reference_checkpoint", "load_spec", "loads_spec", "reference_state_dict",
]
