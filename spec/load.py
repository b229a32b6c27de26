"""From a path or text to a checked `Spec`: read, decode, load YAML, check the schema.

Each stage reports every problem it finds; a later stage runs on what the earlier one could
build, so that one run shows as much as possible. `checks` are the compiler's check passes,
handed in by the caller (spec/ never imports compiler/).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable

from .diagnostics import Diagnostic, SpecError, has_errors
from .model import Spec
from .schema import check_schema
from .source import check_characters, decode_spec, read_spec_bytes
from .yaml_loader import load_yaml

Check = Callable[[Spec], list[Diagnostic]]


def read_spec(data: bytes | str, path: str = "<string>",
              checks: Iterable[Check] = ()) -> tuple[Spec | None, list[Diagnostic]]:
    """The spec and every diagnostic (warnings included); the spec is None on any error."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    sha256 = hashlib.sha256(raw).hexdigest()
    text, problems = decode_spec(raw, path)
    if text is None:
        return None, problems
    problems = check_characters(text, path)
    if problems:
        return None, problems
    tree, problems = load_yaml(text, path)
    if tree is None:
        return None, problems
    loader_failed = has_errors(problems)
    spec, schema_problems = check_schema(tree, path, sha256)
    problems += schema_problems
    if spec is None or loader_failed:
        return None, problems
    for check in checks:
        if getattr(check, "needs_valid_spec", False) and has_errors(problems):
            continue
        found = check(spec)
        problems += found
        if getattr(check, "stops_on_error", False) and has_errors(found):
            break
    return (None if has_errors(problems) else spec), problems


def loads_spec(text: str, path: str = "<string>", checks: Iterable[Check] = ()) -> Spec:
    """Parse and check spec text; raise `SpecError` with every diagnostic if it is rejected."""
    return require_spec(*read_spec(text, path, checks))


def load_spec(path: str | os.PathLike, checks: Iterable[Check] = ()) -> Spec:
    """Read and check a spec file. Raises `SpecInputError` (an OSError) if the file cannot be
    read at all, `SpecError` if the spec is rejected."""
    return require_spec(*read_spec(read_spec_bytes(path), os.fspath(path), checks))


def require_spec(spec: Spec | None, problems: list[Diagnostic]) -> Spec:
    if spec is None:
        raise SpecError(problems)
    return spec
