"""From a path or text to a checked `Spec`: read, decode, load YAML, check the schema.

Each stage reports every problem it finds; a later stage runs on what the earlier one could
build, so that one run shows as much as possible. `checks` are the compiler's check passes,
handed in by the caller (spec/ never imports compiler/).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable

from .diagnostics import ERROR, NOTE, Diagnostic, SpecError, has_errors
from .model import Spec
from .partial import EVERY_KEY, Doubt, ReadLog, tracked
from .schema import check_schema
from .source import check_characters, decode_spec, read_spec_bytes
from .yaml_loader import load_yaml

Check = Callable[[Spec], list[Diagnostic]]


def read_spec(data: bytes | str, path: str = "<string>",
              checks: Iterable[Check] = ()) -> tuple[Spec | None, list[Diagnostic]]:
    """The spec and every diagnostic (warnings and notes included); the spec is None on any
    error. When some checks could not run, the last diagnostic is a note that says which."""
    checks = tuple(checks)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    sha256 = hashlib.sha256(raw).hexdigest()
    text, problems = decode_spec(raw, path)
    if text is None:
        return None, problems + not_run(path, problems, checks, UNREADABLE)
    problems = check_characters(text, path)
    if problems:
        return None, problems + not_run(path, problems, checks, UNREADABLE)
    tree, problems = load_yaml(text, path)
    if tree is None:
        return None, problems + not_run(path, problems, checks, UNREADABLE)
    spec, schema_problems = check_schema(tree, path, sha256)
    problems += schema_problems
    if spec is None or (spec.model is None and not spec.components):
        return None, problems + not_run(path, problems, checks, NO_MODEL)
    problems += run_checks(spec, checks, problems)
    return (None if has_errors(problems) else spec), problems


# Why a check did not run; the note groups the checks by reason.
UNREADABLE = "need a spec that can be read"
NO_MODEL = "need a model to check"
IN_DOUBT = "read values those errors leave in doubt"
CANNOT_RUN = "cannot run on the spec as it stands"


def run_checks(spec: Spec, checks: tuple[Check, ...], earlier: list[Diagnostic]) -> list[Diagnostic]:
    """Every check that can vouch for its findings. After errors, a check runs on a spec that
    records what it reads (spec/partial.py): one that reads a key in doubt, or that cannot run on
    the spec as it stands, is skipped and named in a closing note."""
    doubt = Doubt(earlier) if has_errors(earlier) else None
    found: list[Diagnostic] = []
    skipped: list[tuple[Check, str]] = []
    doubtful: set[str] = set()
    for index, check in enumerate(checks):
        fragile = getattr(check, "needs_valid_spec", False) and has_errors(earlier + found)
        if doubt is None and not fragile:
            findings = check(spec)
        else:
            findings, reason, read = guarded(check, spec, doubt)
            if reason:
                skipped.append((check, reason))
                doubtful.update(read)
                continue
        found += findings
        stops = getattr(check, "stops_on_error", "")  # why the others cannot run after an error
        if stops and has_errors(findings):
            reason = f"wait for {check_name(check)}: {stops}"
            skipped += [(later, reason) for later in checks[index + 1:]]
            break
    return found + skipped_note(spec.path, earlier + found, skipped, sorted(doubtful))


def guarded(check: Check, spec: Spec,
            doubt: Doubt | None) -> tuple[list[Diagnostic], str, list[str]]:
    """A check's findings on a spec with errors, or why they cannot be trusted (and the
    doubtful keys it read)."""
    log = ReadLog()
    try:
        findings = check(tracked(spec, log))
    except Exception:  # noqa: BLE001 - a spec with errors need not hold together; they say why
        return [], CANNOT_RUN, []
    read = doubt.doubtful(log) if doubt is not None else []
    return ([], IN_DOUBT, read) if read else (findings, "", [])


def not_run(path: str, problems: list[Diagnostic], checks: tuple[Check, ...],
            reason: str) -> list[Diagnostic]:
    return skipped_note(path, problems, [(check, reason) for check in checks])


def skipped_note(path: str, problems: list[Diagnostic], skipped: list[tuple[Check, str]],
                 doubtful: list[str] = ()) -> list[Diagnostic]:
    """One note that closes the output: how many checks did not run, which, and why, so that
    the author knows the next run may find more."""
    if not skipped:
        return []
    first = min((d for d in problems if d.severity == ERROR), default=None)
    line, col = (first.line, first.col) if first else (1, 1)
    by_reason: dict[str, list[str]] = {}
    for check, reason in skipped:
        by_reason.setdefault(reason, []).append(check_name(check))
    alone = len(by_reason) == 1
    why = "; ".join(f"{checks_named(names, alone)} {reason}"
                    + (f" ({keys_named(doubtful)})" if reason == IN_DOUBT else "")
                    for reason, names in by_reason.items())
    count = f"{len(skipped)} check{'s' if len(skipped) > 1 else ''}"
    return [Diagnostic(path, line, col, "", "checks-skipped",
                       f"{count} will run once the errors above are fixed: {why}", NOTE)]


def checks_named(names: list[str], alone: bool) -> str:
    """Up to three checks by name; more as `they` (the note's only reason) or a count."""
    if len(names) <= 3:
        return listed(names)
    return "they" if alone else f"{len(names)} checks"


def keys_named(keys: list[str]) -> str:
    """The first three doubtful keys; no count past them, as it grows with every option."""
    shown = [f"the entries of {key[:-2]}" if key.endswith(f".{EVERY_KEY}") else key
             for key in keys]
    return listed(shown) if len(shown) <= 3 else f"{', '.join(shown[:3])} and others"


def listed(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


def check_name(check: Check) -> str:
    """A check's id (`check-depth-given`), as its module names it and the docs list it."""
    module = sys.modules.get(getattr(check, "__module__", None) or type(check).__module__)
    return getattr(module, "ID", None) or getattr(check, "__name__", "a check").replace("_", "-")


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
