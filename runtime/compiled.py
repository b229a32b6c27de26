"""A decoding step compiled by torch.compile, for `generate(..., compile=True)`.

An eager decoding step of a small model spends a third or more of its time in Python and op
dispatch around its matrix products; inductor fuses the step's element-wise ops into a few
kernels called from one graph. The step is compiled with dynamic shapes: the cached length grows
by one at every step, so one graph serves every length and cache capacity instead of one
compilation per step (a batch of one and larger batches compile apart: torch specialises sizes
0 and 1). CUDA graphs (`mode="reduce-overhead"`) replay fixed shapes only, so they are not used:
every step has a new key length.

Compiled steps are shared per model class, so a second model of the same class, or a second
call of generate, reuses the first one's compilation where torch.compile's guards allow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

logger = logging.getLogger("xtc.generate")  # a fixed name: standalone modules copy this

_compiled: dict[type, Callable] = {}
# seconds the first call of each kind took: (model class, batch, device type, optional inputs)
first_call_seconds: dict[tuple, float] = {}


def compiled_decode_step(model: torch.nn.Module) -> Callable:
    """model.decode_step under torch.compile, called as step(x, **kwargs). The first call of
    each kind (a model class, a batch size, which optional inputs are given) is timed and
    logged: it is the one that compiles."""
    cls = type(model)
    if cls not in _compiled:
        _compiled[cls] = torch.compile(cls.decode_step, dynamic=True)
    compiled = _compiled[cls]

    def step(x: torch.Tensor, **kwargs) -> torch.Tensor:
        given = tuple(name for name, value in kwargs.items() if value is not None)
        kind = (cls, x.shape[0], x.device.type, *given)
        if kind in first_call_seconds:
            return compiled(model, x, **kwargs)
        start = time.perf_counter()
        out = compiled(model, x, **kwargs)
        first_call_seconds[kind] = seconds = time.perf_counter() - start
        logger.info("compiled decode_step of %s for batch %d on %s (%s): first call %.1f s",
                    cls.__name__, x.shape[0], x.device.type, ", ".join(given) or "no options",
                    seconds)
        return out
    return step
