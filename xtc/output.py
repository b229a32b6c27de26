"""Writing the emitted module: atomically, and never over the spec or through a directory.

A failure leaves the output path as it was (a pre-existing file stays byte-identical) and no
temporary file behind (docs/security.md, E5).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable


def output_path_problem(output: str, spec_path: str | None = None) -> str | None:
    if os.path.isdir(output) or output.endswith(os.sep):
        return f"output path is a directory: {output!a}"
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        return f"output directory does not exist: {parent!a}"
    if (spec_path is not None and os.path.exists(output) and os.path.exists(spec_path)
            and os.path.samefile(output, spec_path)):
        return "output path is the spec itself"
    if os.path.exists(output) and not os.path.isfile(output):
        return f"output path is not a regular file: {output!a}"
    return None


def write_atomically(path: str, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename it over `path`."""
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)

    replace_atomically(path, write)


def replace_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """write(temporary) beside `path`, then rename it over `path`; a failure leaves `path` as
    it was and no temporary file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".xtc-", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
