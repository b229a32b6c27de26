"""`xtc diff` output: text for people, JSON for tools (with `breaking`), Markdown for a
pull-request comment, GitHub workflow annotations at the changed keys of the second spec.

Block indices are folded into ranges in text and Markdown (`blocks.0-5.attn.to_qkv.weight`);
JSON lists every key.
"""

from __future__ import annotations

import json

from xtc.spec.diagnostics import workflow_command
from xtc.spec.model import plain, scalar

from .explain import Entry, shown
from .inspect_format import BLOCK_INDEX, index_ranges, scaled
from .inspection import AttentionPath
from .spec_diff import MODEL, ComponentDiff, Figure, KeyChange, KeywordChange, PathChange, SpecDiff

FORMATS = ("text", "json", "markdown", "github")
ANNOTATION_TITLE = "xtc diff"


def render(diff: SpecDiff, fmt: str = "text") -> str:
    if fmt == "json":
        return render_json(diff)
    if fmt == "markdown":
        return render_markdown(diff)
    if fmt == "github":
        return render_github(diff)
    return render_text(diff)


def identical_line(diff: SpecDiff) -> str:
    return (f"{diff.before.path} and {diff.after.path} are the same model once defaults are "
            "filled in")


def loads_line(diff: SpecDiff) -> str:
    if not diff.breaking:
        return f"a checkpoint of {diff.before.path} loads into {diff.after.path}: the same keys and shapes"
    counts = {change: sum(c.change == change for c in diff.state_dict)
              for change in ("added", "removed", "reshaped")}
    what = ", ".join(f"{count} {change}" for change, count in counts.items() if count)
    return f"a checkpoint of {diff.before.path} does not load into {diff.after.path}: keys {what}"


# -- values ----------------------------------------------------------------------------------------


def described(entry: Entry | None) -> str:
    """A keyword's value as explain shows it: `null (default; computed: 8 (heads))`."""
    if entry is None:
        return "(none)"
    if entry.is_header:
        return "(module)"
    notes = ["from attn" if "# from attn" in entry.comment else "default"] if not entry.given else []
    if entry.computed is not None:
        notes.append(f"computed: {shown(entry.value, entry.effective)} ({entry.computed[1]})")
    return scalar(entry.value) + (f" ({'; '.join(notes)})" if notes else "")


def keyword_text(change: KeywordChange) -> str:
    if change.change == "added":
        return f"+ {change.key}: {described(change.after)}"
    if change.change == "removed":
        return f"- {change.key}: {described(change.before)}"
    return f"  {change.key}: {described(change.before)} -> {described(change.after)}"


def figure_value(figure: Figure, value: float) -> str:
    if "FLOPs" in figure.name:
        return scaled(value, "FLOP")
    return f"{value:,.0f}"


def change_text(figure: Figure) -> str:
    """`+1,024 (+12.5%)`, `unchanged`, or `+1,024 (new)` from 0."""
    if not figure.delta:
        return "unchanged"
    sign = "+" if figure.delta > 0 else "-"
    amount = figure_value(figure, abs(figure.delta))
    share = f"{figure.ratio:+.1%}" if figure.ratio is not None else "new"
    return f"{sign}{amount} ({share})"


def path_text(path: AttentionPath) -> str:
    return f"{path.path}, flash: {path.flash}"


def path_reason(change: PathChange) -> str:
    """Why the second spec's layer runs as it does; where it gets back to SDPA or to flash, why
    the first's did not."""
    before, after = change.before, change.after
    freer = (after.path == "sdpa" and before.path == "explicit") or (after.flash == "yes" != before.flash)
    return f"{after.why} (was: {before.why})" if freer else after.why


def folded(items: list, path_of, signature) -> list[tuple[str, object]]:
    """Items whose module paths differ only in the block index and whose signatures are equal,
    as one row: (`blocks.0-5.attn`, the first such item)."""
    rows: dict[tuple, list[str]] = {}
    first: dict[tuple, object] = {}
    for item in items:
        path = path_of(item)
        match = BLOCK_INDEX.search(path)
        row = (BLOCK_INDEX.sub(r"\1blocks.{}.", path, count=1) if match else path, *signature(item))
        rows.setdefault(row, []).append(match.group(2) if match else "")
        first.setdefault(row, item)
    return [(row[0].replace("{}", index_ranges(indices), 1), first[row])
            for row, indices in rows.items()]


def folded_paths(changes: list[PathChange]) -> list[tuple[str, PathChange]]:
    """Layers that change alike, blocks folded into ranges."""
    return folded(changes, lambda c: c.layer, lambda c: (*sides(c.before), *sides(c.after)))


def sides(path: AttentionPath) -> tuple[str, str, str]:
    return path.path, path.flash, path.why


def folded_keys(changes: list[KeyChange]) -> list[tuple[str, KeyChange]]:
    """State-dict changes, blocks folded into ranges where they change alike."""
    return folded(changes, lambda c: c.key,
                  lambda c: (c.change, key_shape(c.before), key_shape(c.after)))


def key_shape(entry) -> str:
    """`(96, 32)`; where xtc does not compute the shape, its op's parameter count."""
    if entry is None:
        return ""
    if entry.shape is None:
        return f"{entry.owner_parameters:,} parameters in its layer"
    return "(" + ", ".join(map(str, entry.shape)) + ")"


def key_change_text(change: KeyChange) -> str:
    if change.change == "reshaped":
        return f"{key_shape(change.before)} -> {key_shape(change.after)}"
    return key_shape(change.before or change.after)


# -- text ------------------------------------------------------------------------------------------


def render_text(diff: SpecDiff) -> str:
    if diff.identical:
        return identical_line(diff) + "\n"
    lines = [f"{diff.before.path} -> {diff.after.path}", ""]
    lines += keyword_lines(diff) + [""]
    lines += figure_lines(diff) + [""]
    lines += attention_lines(diff) + [""]
    lines += state_dict_lines(diff)
    return "\n".join(lines) + "\n"


def keyword_lines(diff: SpecDiff) -> list[str]:
    lines = ["keywords (defaults filled in; computed: what the compiler uses, and why)"]
    return lines + [f"  {keyword_text(change)}" for change in diff.every_keyword]


def figure_rows(diff: SpecDiff) -> list[tuple[str, Figure]]:
    """(label, figure): the whole model's, a composite's parameters per component after the
    total."""
    rows = [(figure.name, figure) for figure in diff.figures]
    if diff.before.model is None or diff.after.model is None:
        rows[1:1] = [(f"  {c.name}", c.parameters) for c in diff.components if c.parameters]
    return rows


def figure_lines(diff: SpecDiff) -> list[str]:
    lines = ["figures (as xtc inspect computes them" + lengths_note(diff) + ")"]
    for label, figure in figure_rows(diff):
        before, after = figure_value(figure, figure.before), figure_value(figure, figure.after)
        lines.append(f"  {label:<56}{before:>14} -> {after:>14}  {change_text(figure)}")
    lines += [f"  {c.name}: {side}" for c in diff.components if c.parameters is None
              for side in [component_side(diff, c)]]
    return lines


def component_side(diff: SpecDiff, component: ComponentDiff) -> str:
    names = [MODEL] if diff.after.model is not None else list(diff.after.components)
    return "added" if component.name in names else "removed"


def lengths_note(diff: SpecDiff) -> str:
    """The lengths per-token figures assume, where they differ between the specs."""
    old, new = diff.before_figures.lengths, diff.after_figures.lengths
    if old == new:
        return f", at {lengths_text(new)}" if new else ""
    return f", at {lengths_text(old)} -> {lengths_text(new)}"


def lengths_text(lengths: dict[str, int]) -> str:
    return " ".join(f"{symbol}={value}" for symbol, value in lengths.items())


def attention_lines(diff: SpecDiff) -> list[str]:
    if not diff.attention:
        return ["attention paths: unchanged"]
    lines = ["attention paths (path, may SDPA use its flash kernel; why)"]
    for layers, change in folded_paths(diff.attention):
        lines.append(f"  {layers}: {path_text(change.before)} -> {path_text(change.after)}; "
                     f"{path_reason(change)}")
    return lines


def state_dict_lines(diff: SpecDiff) -> list[str]:
    lines = [f"state dict: {loads_line(diff)}"]
    return lines + [f"  {change:<9} {key:<44} {shape}".rstrip() for change, key, shape in key_rows(diff)]


def key_rows(diff: SpecDiff) -> list[tuple[str, str, str]]:
    return [row for component in diff.components for row in component_key_rows(component)]


def component_key_rows(component: ComponentDiff) -> list[tuple[str, str, str]]:
    """(change, key, shapes) per folded key; a component on one side only in one row."""
    changes = component.state_dict
    if component.parameters is None and changes:
        return [(changes[0].change, f"{component.name}.*", f"every key of the component ({len(changes)})")]
    return [(c.change, key, key_change_text(c)) for key, c in folded_keys(changes)]


# -- JSON ------------------------------------------------------------------------------------------


def render_json(diff: SpecDiff) -> str:
    return json.dumps(diff_data(diff), indent=2) + "\n"


def diff_data(diff: SpecDiff) -> dict:
    """Everything of the text, unfolded, plus `breaking`."""
    return {
        "before": diff.before.path,
        "after": diff.after.path,
        "identical": diff.identical,
        "breaking": diff.breaking,
        "lengths": {"before": diff.before_figures.lengths, "after": diff.after_figures.lengths},
        "keywords": [keyword_data(change) for change in diff.keywords],
        "figures": {figure.key: figure_data(figure) for figure in diff.figures},
        "components": {c.name: component_data(c) for c in diff.components},
    }


def component_data(component: ComponentDiff) -> dict:
    return {
        "keywords": [keyword_data(change) for change in component.keywords],
        "parameters": figure_data(component.parameters) if component.parameters else None,
        "attention": [{"layer": c.layer, "before": vars(c.before), "after": vars(c.after)}
                      for c in component.attention],
        "state_dict": [{"key": c.key, "change": c.change, "before": shape_data(c.before),
                        "after": shape_data(c.after)} for c in component.state_dict],
    }


def shape_data(entry) -> dict | None:
    """A key's shape (None where xtc does not compute it) and its layer's parameters."""
    if entry is None:
        return None
    return {"shape": None if entry.shape is None else list(entry.shape),
            "layer_parameters": entry.owner_parameters}


def keyword_data(change: KeywordChange) -> dict:
    return {"key": change.key, "change": change.change, "before": entry_data(change.before),
            "after": entry_data(change.after)}


def entry_data(entry: Entry | None) -> dict | None:
    if entry is None:
        return None
    if entry.is_header:
        return {"module": True}
    computed = entry.computed and {"value": plain(entry.computed[0]), "why": entry.computed[1]}
    return {"value": plain(entry.value), "given": entry.given, "computed": computed or None}


def figure_data(figure: Figure) -> dict:
    return {"before": figure.before, "after": figure.after, "change": figure.delta,
            "ratio": figure.ratio}


# -- Markdown --------------------------------------------------------------------------------------


def render_markdown(diff: SpecDiff) -> str:
    """A pull-request comment: a heading, the figures as a table, then the keywords, the
    attention paths and the state dict."""
    heading = f"### xtc diff: `{diff.before.path}` → `{diff.after.path}`"
    if diff.identical:
        return f"{heading}\n\n{identical_line(diff)}.\n"
    verdict = "Breaking" if diff.breaking else "Not breaking"
    lines = [heading, "", f"**{verdict}:** {loads_line(diff)}.", ""]
    lines += ["| figure | before | after | change |", "| --- | ---: | ---: | ---: |"]
    for label, figure in figure_rows(diff):
        lines.append(f"| {cell(label.strip())} | {figure_value(figure, figure.before)} | "
                     f"{figure_value(figure, figure.after)} | {change_text(figure)} |")
    note = lengths_note(diff)
    lines += ["", f"Figures as `xtc inspect` computes them{note}.", ""]
    lines += ["<details open><summary>Keywords (defaults filled in)</summary>", "",
              "| key | before | after |", "| --- | --- | --- |"]
    for change in diff.every_keyword:
        lines.append(f"| `{change.key}` | {cell(described(change.before))} | "
                     f"{cell(described(change.after))} |")
    lines += ["", "</details>", ""]
    if diff.attention:
        lines += ["**Attention paths**", ""]
        lines += [f"- `{layers}`: {path_text(c.before)} → {path_text(c.after)}; {cell(path_reason(c))}"
                  for layers, c in folded_paths(diff.attention)]
        lines.append("")
    if diff.breaking:
        lines += ["**State dict**", ""]
        lines += [f"- {change} `{key}` {shape.replace('->', '→')}".rstrip()
                  for change, key, shape in key_rows(diff)]
        lines.append("")
    return "\n".join(lines)


def cell(text: str) -> str:
    """Text inside a Markdown table cell: its pipes escaped."""
    return text.replace("|", "\\|")


# -- GitHub annotations ----------------------------------------------------------------------------


def render_github(diff: SpecDiff) -> str:
    """A notice at each changed or added key of the second spec (a removed one at its parent
    mapping there), the figures at its first line, and a warning where checkpoints stop
    loading, at each component whose keys change."""
    after, path = diff.after, diff.after.path
    if diff.identical:
        return workflow_command("notice", path, 1, identical_line(diff), title=ANNOTATION_TITLE) + "\n"
    lines = []
    for change in diff.every_keyword:
        line, _ = after.location(change.key)
        lines.append(workflow_command("notice", path, line, keyword_text(change).strip(),
                                      title=ANNOTATION_TITLE))
    summary = "; ".join(f"{label.strip()}: {figure_value(f, f.before)} -> {figure_value(f, f.after)}, "
                        f"{change_text(f)}" for label, f in figure_rows(diff))
    lines.append(workflow_command("notice", path, 1, summary, title=ANNOTATION_TITLE))
    for component in diff.components:
        line, _ = after.location(MODEL if component.name == MODEL else f"components.{component.name}")
        for layers, change in folded_paths(component.attention):
            lines.append(workflow_command(
                "notice", path, line, f"attention {layers}: {path_text(change.before)} -> "
                f"{path_text(change.after)}; {path_reason(change)}", title=ANNOTATION_TITLE))
        if component.state_dict:
            keys = "\n".join(f"{change} {key} {shape}".rstrip()
                             for change, key, shape in component_key_rows(component))
            lines.append(workflow_command(
                "warning", path, line, f"checkpoints of {diff.before.path} stop loading:\n{keys}",
                title="xtc diff: breaking"))
    return "".join(line + "\n" for line in lines)

