"""The torch extra: what the light install leaves out, and the one line that says so.

`pip install xtc` reads and writes specs and code (validate, compile, inspect, explain, schema,
diff, import, export-python) with pyyaml, jinja2 and networkx only. Running a model (`xtc.build`,
the state-dict conversions, `xtc convert`, the emitted modules' `xtc.runtime`) needs
`pip install "xtc[torch]"`. The calls that need it ask here first, so that a light install fails
with one line naming what to install instead of a traceback from deep inside an import.

>>> require("xtc.build", "json")
>>> require("xtc.build", "json", "no_such_package", "nor_this", "nor_that")
Traceback (most recent call last):
    ...
xtc.extras.MissingExtra: xtc.build needs no_such_package, nor_this and nor_that, which the light install of xtc leaves out: pip install "xtc[torch]"
"""

from __future__ import annotations

from importlib.util import find_spec

INSTALL = 'pip install "xtc[torch]"'
TORCH, EINOPS, SAFETENSORS, NUMPY = "torch", "einops", "safetensors", "numpy"


class MissingExtra(ImportError):
    """A call needs a package of the torch extra that is not installed."""


def require(what: str, *modules: str) -> None:
    """Raise MissingExtra naming every one of `modules` that cannot be imported."""
    missing = [module for module in dict.fromkeys(modules) if not installed(module)]
    if missing:
        names = " and ".join(filter(None, (", ".join(missing[:-1]), missing[-1])))
        raise MissingExtra(f"{what} needs {names}, which the light install of xtc leaves out: "
                           f"{INSTALL}")


def installed(module: str) -> bool:
    """Whether `module` can be found, without importing it (torch takes seconds)."""
    try:
        return find_spec(module) is not None
    except ValueError:  # sys.modules holds None for it: its import is blocked
        return False
