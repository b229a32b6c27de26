"""The `xtc` command line.

Exit codes (docs/cli.md): 0 ok (warnings allowed), 1 a spec rejected, 2 usage or
environment error, 3 internal error (one line, no traceback). With several specs the highest
applicable code wins.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .compiler import checks
from .spec import Diagnostic, SpecInputError
from .spec.diagnostics import (
    has_errors,
    in_output_order,
    printable,
    render_json,
    render_text,
    workflow_command,
)
from .spec.load import read_spec
from .spec.source import read_spec_bytes

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    """Bad arguments or environment: exit 2."""


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and exits 2; keep it to one line
        raise UsageError(message)


class VersionAction(argparse.Action):
    """argparse's version action, but the line is made only when asked (it reads the keyword
    table, which validating a spec does not always need)."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                         nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def version_line() -> str:
    """`xtc 0.1.0 (keyword table from x-transformers 2.31.10)`: what a bug report needs.
    xtc.__version__ is the one place the version is written (pyproject.toml reads it)."""
    from . import __version__
    from .spec.keywords import keyword_table

    name, _, version = keyword_table().reference.partition("==")
    return f"xtc {__version__} (keyword table from {name} {version})"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="xtc", description="Compile YAML transformer specs to PyTorch.")
    parser.add_argument("--version", action=VersionAction,
                        help="print xtc's version and the x-transformers version it targets")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser,
                                     help="what to do")
    validate = commands.add_parser("validate", help="check specs; report every problem")
    validate.add_argument("specs", nargs="+", metavar="SPEC", help="spec files to check")
    validate.add_argument("--format", choices=("text", "json", "github"), default="text",
                          help="text: diagnostics on stderr, for people (default); json: a list "
                               "of diagnostics on stdout, for tools; github: GitHub Actions "
                               "annotations on stdout, shown on the pull request")
    validate.set_defaults(run=run_validate)
    add_budget(validate)
    compile_ = commands.add_parser("compile", help="emit the PyTorch module of a spec")
    compile_.add_argument("spec", metavar="SPEC", help="the spec file")
    compile_.add_argument("-o", "--output", metavar="OUT.py", help="write here (default: stdout)")
    compile_.add_argument("--standalone", action="store_true",
                          help="copy in the runtime helpers: the module needs only torch and einops")
    compile_.set_defaults(run=run_compile)
    add_budget(compile_)
    explain = commands.add_parser("explain", help="print the spec with every default filled in")
    explain.add_argument("spec", metavar="SPEC", help="the spec file")
    explain.set_defaults(run=run_explain)
    add_budget(explain)
    inspect = commands.add_parser("inspect", help="show the graph, parameters, FLOPs, cache sizes")
    inspect.add_argument("spec", metavar="SPEC", help="the spec file")
    inspect.add_argument("--format", choices=("text", "json", "dot", "mermaid"), default="text",
                         help="text: a report for people (default); json: every op and figure, "
                              "for tools; dot: a Graphviz picture; mermaid: a Mermaid picture, "
                              "for Markdown")
    inspect.add_argument("--seq-len", type=positive_int, metavar="T",
                         help="sequence length of the figures (default: max_seq_len)")
    inspect.add_argument("--context-len", type=positive_int, metavar="S",
                         help="source / context length (default: the encoder's max_seq_len, else T)")
    inspect.add_argument("--mem-len", type=whole_number, metavar="M",
                         help="Transformer-XL: positions in each layer's memory (default: "
                              "max_mem_len, as after the first segment; 0: the first segment)")
    inspect.set_defaults(run=run_inspect)
    add_budget(inspect)
    diff = commands.add_parser("diff", help="what changing a spec does to the model: keywords, "
                                             "parameters, FLOPs, cache, attention paths, checkpoints")
    diff.add_argument("before", metavar="A", help="the spec before the change")
    diff.add_argument("after", metavar="B", help="the spec after the change")
    diff.add_argument("--format", choices=("text", "json", "markdown", "github"), default="text",
                      help="text: for people (default); json: the same, with `breaking`, for "
                           "tools; markdown: a pull-request comment; github: GitHub Actions "
                           "annotations at the changed keys of B")
    diff.set_defaults(run=run_diff)
    add_budget(diff)
    import_ = commands.add_parser("import", help="write the specs of the x-transformers models "
                                                 "a Python file builds (never runs it)")
    import_.add_argument("python", metavar="FILE.py", help="Python source that builds the models")
    import_.add_argument("-o", "--output", metavar="OUT",
                         help="write here: a spec file, or a folder for several specs (default: "
                              "stdout, specs separated by ---)")
    import_.add_argument("--model", metavar="NAME",
                         help="only the spec of this name, or the one holding this variable")
    import_.set_defaults(run=run_import)
    add_budget(import_)
    import_hf = commands.add_parser("import-hf", help="write the spec of a Hugging Face "
                                                      "Llama-family checkpoint folder (reads "
                                                      "config.json; never runs or downloads)")
    import_hf.add_argument("folder", metavar="DIR",
                           help="a local folder with config.json (and the *.safetensors weights "
                                "for --weights)")
    import_hf.add_argument("-o", "--output", metavar="SPEC", help="write the spec here (default: "
                                                                  "stdout)")
    import_hf.add_argument("--weights", metavar="OUT.safetensors",
                           help="also convert the folder's safetensors weights to xtc's state "
                                "dict for the spec, one tensor at a time")
    import_hf.set_defaults(run=run_import_hf)
    add_budget(import_hf)
    export = commands.add_parser("export-python",
                                 help="print the x-transformers Python that builds a spec's model")
    export.add_argument("spec", metavar="SPEC", help="the spec file")
    export.add_argument("-o", "--output", metavar="OUT.py", help="write here (default: stdout)")
    export.set_defaults(run=run_export_python)
    add_budget(export)
    convert = commands.add_parser("convert", help="convert a checkpoint between x-transformers' "
                                                  "names and xtc's (.pt or .safetensors)")
    convert.add_argument("spec", metavar="SPEC", help="the spec of the checkpoint's model")
    convert.add_argument("checkpoint", metavar="CHECKPOINT",
                         help="a state dict: .pt (read with weights_only=True) or .safetensors")
    convert.add_argument("-o", "--output", metavar="OUT", required=True,
                         help="write here, as its extension says (.pt or .safetensors)")
    convert.add_argument("--to", choices=("xtc", "reference"), default="xtc",
                         help="xtc: from an x-transformers checkpoint to xtc's model (default); "
                              "reference: from xtc's to x-transformers'")
    convert.add_argument("--key", metavar="KEY",
                         help="the key of a .pt file's mapping that holds the state dict")
    convert.add_argument("--prefix", metavar="PREFIX",
                         help="a wrapper's prefix of every key: taken off the input with --to xtc "
                              "(default: an AutoregressiveWrapper's 'net.' where every key has "
                              "it), put on the output with --to reference")
    convert.set_defaults(run=run_convert)
    add_budget(convert)
    schema = commands.add_parser("schema", help="print the JSON Schema of the spec language")
    schema.add_argument("-o", "--output", metavar="OUT.json", help="write here (default: stdout)")
    schema.set_defaults(run=run_schema)
    return parser


def add_budget(command: argparse.ArgumentParser) -> None:
    command.add_argument("--max-params", type=parameter_limit, metavar="N",
                         help="reject models with more parameters (default: $XTC_MAX_PARAMS or 1e11)")


def parameter_limit(text: str) -> int:
    from .compiler.passes.check_resource_budget import limit_from_text

    try:
        return limit_from_text(text, "--max-params")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def spec_checks(args: argparse.Namespace) -> tuple:
    """Every check (compiler.checks: the spec checks, then the graph checks), with the parameter
    budget of --max-params, else of XTC_MAX_PARAMS (read and checked here, so that a bad value is
    a usage error before any spec is read)."""
    from .compiler.passes.check_resource_budget import default_limit

    try:
        limit = args.max_params if args.max_params is not None else default_limit()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return checks(limit)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 999999999, got {text!r}")
    return int(text)


def whole_number(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 999999999, got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except SystemExit as exc:  # -h and --version print, then argparse exits: return the code
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        print(f"xtc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract is one line, never a traceback
        print(f"xtc: internal error: {type(exc).__name__}: {one_line(exc)} (please report)",
              file=sys.stderr)
        return EXIT_INTERNAL


def one_line(exc: BaseException) -> str:
    return ascii(str(exc))[1:-1][:200]


def check_file(path: str, checks: tuple) -> tuple[int, list[Diagnostic]]:
    """Exit code and diagnostics for one spec file."""
    try:
        data = read_spec_bytes(path)
    except SpecInputError as exc:
        print(f"xtc: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE, []
    _, problems = read_spec(data, path, checks)
    return (EXIT_REJECTED if has_errors(problems) else EXIT_OK), problems


def run_validate(args: argparse.Namespace) -> int:
    code, everything, checks = EXIT_OK, [], spec_checks(args)
    for path in args.specs:
        file_code, problems = check_file(path, checks)
        code = max(code, file_code)
        everything += problems
    emit(everything, args.format)
    if args.format == "text" and code == EXIT_OK:
        print(f"xtc: {len(args.specs)} spec(s) valid", file=sys.stderr)
    return code


def emit(diagnostics: list[Diagnostic], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(render_json(diagnostics))
    elif fmt == "github":
        sys.stdout.write("".join(github_annotation(d) + "\n" for d in in_output_order(diagnostics)))
    else:
        sys.stderr.write(render_text(diagnostics))


def github_annotation(d: Diagnostic) -> str:
    """A GitHub Actions workflow command, so problems show inline on the pull request."""
    level = {"error": "error", "warning": "warning"}.get(d.severity, "notice")
    message = f"{d.key}: {d.message}" if d.key else d.message
    return workflow_command(level, d.path, d.line, message, d.col, d.code)


def input_bytes(read, path: str) -> bytes:
    """An input file's bytes by `read` (bounded), or a usage error: missing, not a regular
    file, too large."""
    try:
        return read(path)
    except SpecInputError as exc:
        raise UsageError(one_line(exc)) from None


def load_or_report(args: argparse.Namespace):
    """The spec at args.spec, its diagnostics printed; None when it is rejected."""
    checks = spec_checks(args)
    spec, problems = read_spec(input_bytes(read_spec_bytes, args.spec), args.spec, checks)
    sys.stderr.write(render_text(problems))
    return spec


def run_explain(args: argparse.Namespace) -> int:
    from .compiler.explain import explain

    spec = load_or_report(args)
    if spec is None:
        return EXIT_REJECTED
    sys.stdout.write(explain(spec))
    return EXIT_OK


def run_inspect(args: argparse.Namespace) -> int:
    from .compiler import compile_graph
    from .compiler.inspect_format import render

    spec = load_or_report(args)
    if spec is None:
        return EXIT_REJECTED
    text, warnings = render(spec, compile_graph(spec), args.format, args.seq_len,
                            args.context_len, args.mem_len)
    for warning in warnings:  # the figures stand; the lengths they assume would be refused
        print(f"xtc: warning: {warning}", file=sys.stderr)
    sys.stdout.write(text)
    return EXIT_OK


def run_diff(args: argparse.Namespace) -> int:
    """Exit codes as validate's: 1 where either spec is rejected (its diagnostics printed as
    validate prints them), else 0 whatever the difference."""
    from .compiler import compile_graph
    from .compiler.diff_format import render
    from .compiler.spec_diff import spec_diff

    checks, code, specs, everything = spec_checks(args), EXIT_OK, [], []
    for path in (args.before, args.after):
        try:
            data = read_spec_bytes(path)
        except SpecInputError as exc:
            raise UsageError(one_line(exc)) from None
        spec, problems = read_spec(data, path, checks)
        code = max(code, EXIT_REJECTED if spec is None else EXIT_OK)
        specs.append(spec)
        everything += problems
    if code != EXIT_OK:
        emit(everything, args.format if args.format in ("json", "github") else "text")
        return code
    sys.stderr.write(render_text(everything))  # warnings: stdout is the difference
    before, after = specs
    sys.stdout.write(render(spec_diff(before, compile_graph(before), after, compile_graph(after)),
                            args.format))
    return EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    import json

    from .output import output_path_problem, write_atomically
    from .spec.json_schema import spec_schema

    if args.output is not None:
        problem = output_path_problem(args.output)
        if problem:
            raise UsageError(problem)
    text = json.dumps(spec_schema(), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_atomically(args.output, text)
    return EXIT_OK


def run_compile(args: argparse.Namespace) -> int:
    from .compiler import compile_spec

    spec = spec_to_write(args)
    if spec is None:
        return EXIT_REJECTED
    write_source(args.output, compile_spec(spec, args.standalone), f", class {spec.class_name}")
    return EXIT_OK


def run_export_python(args: argparse.Namespace) -> int:
    from .interop.python_export import export_problems, export_python

    spec = spec_to_write(args)
    if spec is None:
        return EXIT_REJECTED
    problems = export_problems(spec)  # what x-transformers cannot express
    if problems:
        sys.stderr.write(render_text(problems))
        return EXIT_REJECTED
    write_source(args.output, export_python(spec))
    return EXIT_OK


def spec_to_write(args: argparse.Namespace):
    """The spec of a command that writes source (load_or_report's), its -o path checked first."""
    if args.output is not None:
        check_output_path(args.output, args.spec)
    return load_or_report(args)


def write_source(output: str | None, source: str, about: str = "") -> None:
    """Source to stdout, or atomically to `output`. Then stdout stays empty: the source is in the
    file, and a line on stderr says which file (and `about` it)."""
    from .output import write_atomically

    if output is None:
        sys.stdout.write(source)
        return
    write_atomically(output, source)
    print(f"wrote {printable(output)}: {len(source.splitlines())} lines{about}", file=sys.stderr)


def check_output_path(output: str, spec_path: str) -> None:
    """Refuse, before any work, an output path that cannot or must not be written."""
    from .output import output_path_problem

    problem = output_path_problem(output, spec_path)
    if problem:
        raise UsageError(problem)


def run_import(args: argparse.Namespace) -> int:
    from .interop.python_import import import_python
    from .interop.python_source import read_python_bytes

    checks = spec_checks(args)
    specs, problems = import_python(input_bytes(read_python_bytes, args.python), args.python, checks)
    sys.stderr.write(render_text(problems))
    if has_errors(problems):
        return EXIT_REJECTED
    if args.model is not None:
        specs = chosen_spec(specs, args.model)
    write_imported(specs, args.output)
    return EXIT_OK


def run_import_hf(args: argparse.Namespace) -> int:
    """Exit 1 for a config (or checkpoint) xtc cannot import, every problem located; nothing is
    written unless everything converted."""
    from .interop.hf_config import import_hf, read_config_bytes

    checks = spec_checks(args)
    for path in filter(None, (args.output, args.weights)):
        check_output_path(path, os.path.join(args.folder, "config.json"))
    if args.weights is not None:
        require_for_weights(args.weights)
    imported, problems = import_hf(args.folder, input_bytes(read_config_bytes, args.folder), checks)
    sys.stderr.write(render_text(problems))
    if has_errors(problems):
        return EXIT_REJECTED
    if args.weights is not None and not write_hf_weights(imported.spec, args.folder, args.weights):
        return EXIT_REJECTED
    write_source(args.output, imported.text, f", spec {imported.name}")
    return EXIT_OK


def require_for_weights(output: str) -> None:
    """Before any work: an output named as what is written, and the packages converting needs
    (those convert_hf_checkpoint asks for itself)."""
    from . import extras
    from .checkpoints import SAFETENSORS
    from .hf_weights import REQUIRED

    if not output.endswith(SAFETENSORS):
        raise UsageError(f"--weights {printable(output)}: xtc writes the weights as {SAFETENSORS} "
                         "(name the file so)")
    try:
        extras.require("xtc import-hf --weights", *REQUIRED)
    except extras.MissingExtra as exc:
        raise UsageError(str(exc)) from None


def write_hf_weights(spec, folder: str, output: str) -> bool:
    """The checkpoint converted, streamed; False after printing why it could not be."""
    from .checkpoints import CheckpointError
    from .hf_weights import convert_hf_checkpoint

    try:
        count = convert_hf_checkpoint(spec, folder, output)
    except (CheckpointError, ValueError) as exc:
        print(f"xtc: error: {exc}", file=sys.stderr)
        return False
    print(f"wrote {printable(output)}: {count} tensors, xtc's names (class {spec.class_name})",
          file=sys.stderr)
    return True


def chosen_spec(specs: list, wanted: str) -> list:
    """The spec named `wanted`, or the one holding a model bound to the variable `wanted`."""
    chosen = [s for s in specs if s.name == wanted] or [s for s in specs if wanted in s.variables]
    if not chosen:
        names = ", ".join(s.name for s in specs)
        raise UsageError(f"--model {printable(wanted)}: no spec of that name or variable (the "
                         f"file builds: {names})")
    return chosen[:1]


def write_imported(specs: list, output: str | None) -> None:
    """One spec to stdout or a file; several to stdout as one YAML stream, or into a folder,
    one file each (the folder is made if its parent exists). Every path is checked before
    anything is written."""
    from .output import output_path_problem, write_atomically

    if output is None:
        sys.stdout.write("---\n".join(spec.text for spec in specs))
        return
    into_folder = len(specs) > 1 or os.path.isdir(output)
    if into_folder and os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"the file builds {len(specs)} specs: -o must name a folder, and "
                         f"{printable(output)} is a file")
    if into_folder and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise UsageError(f"the folder for -o cannot be made: its parent does not exist: "
                         f"{printable(output)}")
    targets = [(os.path.join(output, f"{spec.name}.yaml") if into_folder else output, spec)
               for spec in specs]
    for path, _ in targets:
        problem = os.path.isdir(os.path.dirname(os.path.abspath(path))) and output_path_problem(path)
        if problem:
            raise UsageError(problem)
    if into_folder:
        os.makedirs(output, exist_ok=True)
    for path, spec in targets:
        write_atomically(path, spec.text)
        print(f"wrote {printable(path)}: spec {spec.name}", file=sys.stderr)


def run_convert(args: argparse.Namespace) -> int:
    """Exit 1 for a rejected spec or a checkpoint that does not fit it (every key named),
    2 for paths and formats; the output is written only when everything converted."""
    from .checkpoints import (
        CheckpointError,
        checkpoint_format,
        packages_for,
        read_checkpoint,
        reference_to_xtc,
        write_checkpoint,
        xtc_to_reference,
    )
    from .extras import EINOPS, TORCH, MissingExtra, require
    from .output import output_path_problem

    for path in (args.checkpoint, args.output):
        try:
            checkpoint_format(path)
        except ValueError as exc:
            raise UsageError(one_line(exc)) from None
    try:
        require("xtc convert", TORCH, EINOPS, *packages_for(args.checkpoint),
                *packages_for(args.output, writing=True))
    except MissingExtra as exc:
        raise UsageError(str(exc)) from None
    if not os.path.isfile(args.checkpoint):
        raise UsageError(f"{printable(args.checkpoint)}: no such file")
    problem = output_path_problem(args.output, args.checkpoint) or output_path_problem(args.output, args.spec)
    if problem:
        raise UsageError(problem)
    spec = load_or_report(args)
    if spec is None:
        return EXIT_REJECTED
    composite = spec.model is None
    to_reference = args.to == "reference"
    try:
        state = read_checkpoint(args.checkpoint, args.key,
                                spec.components if composite and not to_reference else ())
        if to_reference:
            converted = xtc_to_reference(spec, state, args.prefix or "")
        else:
            converted = reference_to_xtc(spec, state, args.prefix)
    except (CheckpointError, ValueError) as exc:
        print(f"xtc: error: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    write_checkpoint(args.output, converted, composite=composite and to_reference)
    count = sum(len(part) for part in converted.values()) if composite and to_reference else len(converted)
    whose = "x-transformers'" if to_reference else f"xtc's (class {spec.class_name})"
    print(f"wrote {printable(args.output)}: {count} tensors, {whose} names", file=sys.stderr)
    return EXIT_OK
