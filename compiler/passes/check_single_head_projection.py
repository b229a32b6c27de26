"""check-single-head-projection: with one head, x-transformers has no output projection.

`Attention` projects its output back to `dim` only when `heads > 1` (Attention.__init__), so one
head must already be `dim` wide; otherwise the reference builds and then fails on the first
forward with a shape error (reference/x-transformers.md section 2.6). `attn.project_out: true`
(or `on_attn`) gives it one; check-attention-options checks an explicit `project_out: false`.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from .modules import layer_modules

ID = "check-single-head-projection"


def check_single_head_projection(spec: Spec) -> list[Diagnostic]:
    found = []
    for module in layer_modules(spec):
        attn = module.section("attn")
        dim, dim_head = module["dim"], attn["dim_head"]
        # project_out written (check-attention-options checks false), or on_attn, projects
        if attn["project_out"] is not None or attn["on_attn"]:
            continue
        if module["heads"] == 1 and dim_head != dim:
            key = f"{module.key}.attn.dim_head" if "dim_head" in module.sections_given.get("attn", ()) \
                else f"{module.key}.heads"
            line, col = spec.location(key)
            found.append(Diagnostic(
                spec.path, line, col, key, "single-head-needs-dim-head-equal-dim",
                f"with heads: 1 x-transformers has no output projection, so attn.dim_head "
                f"({dim_head}) must equal dim ({dim}), or set attn.project_out: true"))
    return found
