"""check-extensions: xtc's extension keywords (spec/extensions.py) where they have a meaning.

`norm_eps` puts an epsilon inside the root of the stack's RMSNorms (Hugging Face's
rms_norm_eps). The other norms are refused rather than given a meaning no checkpoint needs:
LayerNorm's epsilon is torch's (1e-5) on both sides already, ScaleNorm, the simple RMSNorm and
the adaptive norms have no Hugging Face counterpart, and DyT and Derf divide by nothing. The
norms outside the stack's (qk_rmsnorm, k_rmsnorm and value_rmsnorm on heads, post_emb_norm, the
pooling and residual-mixing norms) keep the reference's computation under it.
"""

from __future__ import annotations

from xtc.spec import Diagnostic, Spec

from ..resolve import norm_type
from .modules import diagnostic, layer_modules

ID = "check-extensions"

# Each norm norm_eps does not apply to, as a message names it: the class and its switch.
OTHER_NORMS = {
    "layernorm": "LayerNorm (the default)",
    "scalenorm": "ScaleNorm (use_scalenorm)",
    "simple_rmsnorm": "the simple RMSNorm without a gain (use_simple_rmsnorm)",
    "dynamic_tanh": "DyT (use_dynamic_tanh), which has no root",
    "derf": "Derf (use_derf), which has no root",
    "adaptive_layernorm": "the adaptive LayerNorm (use_adaptive_layernorm)",
    "adaptive_rmsnorm": "the adaptive RMSNorm (use_adaptive_rmsnorm)",
}


def check_extensions(spec: Spec) -> list[Diagnostic]:
    found = []
    for module in layer_modules(spec):
        kind = norm_type(module)
        if module["norm_eps"] is not None and kind != "rmsnorm":
            found.append(diagnostic(
                spec, f"{module.key}.norm_eps", "norm-eps-needs-rmsnorm",
                f"norm_eps (an xtc extension) is the epsilon of RMSNorm (use_rmsnorm: true) "
                f"only; this stack's norm is {OTHER_NORMS[kind]}"))
    return found
