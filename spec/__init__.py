"""spec/: YAML text -> `Spec`. Imports only the standard library and PyYAML.

Public: `load_spec`, `loads_spec`, `Spec`, `Diagnostic`, `SpecError`.
"""

from .diagnostics import Diagnostic, SpecError
from .load import load_spec, loads_spec, read_spec
from .model import Connection, ModuleSpec, Spec
from .source import SpecInputError

__all__ = [
    "Connection", "Diagnostic", "ModuleSpec", "Spec", "SpecError", "SpecInputError",
    "load_spec", "loads_spec", "read_spec",
]
