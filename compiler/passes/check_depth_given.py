"""check-depth-given: an Encoder or Decoder needs `depth`.

The keyword defaults to None because custom_layers replaces it, but without it
x-transformers asserts '`depth` must be passed in for `Decoder` or `Encoder`'
(AttentionLayers.__init__).
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from .modules import layer_modules

ID = "check-depth-given"
LAYOUTS_WITHOUT_DEPTH = ("custom_layers",)  # sandwich_coef and par_ratio use depth too


def check_depth_given(spec: Spec) -> list[Diagnostic]:
    found = []
    for module in layer_modules(spec):
        if module["depth"] is None and all(module[k] is None for k in LAYOUTS_WITHOUT_DEPTH):
            line, col = spec.location(f"{module.key}.type")
            found.append(Diagnostic(spec.path, line, col, f"{module.key}.depth", "missing-key",
                                    f"{module.type} needs 'depth' (the number of blocks)"))
    return found
