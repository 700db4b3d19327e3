"""Text renderers of a lineage graph: JSON, Mermaid, Graphviz DOT and a terminal tree."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.tree import Tree

from cmf_orchestrate.records import metrics_set_name
from cmf_orchestrate.render._model import RenderGraph, RenderNode

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")

STATE_COLOURS: Mapping[str, str] = {
    "COMPLETE": "#2e7d32",
    "FAILED": "#c62828",
    "RUNNING": "#1565c0",
    "CACHED": "#6a1b9a",
    "NEW": "#757575",
    "CANCELED": "#ef6c00",
    "UNKNOWN": "#757575",
}
_RICH_STATE = {
    "COMPLETE": "green",
    "FAILED": "red",
    "RUNNING": "blue",
    "CACHED": "magenta",
    "CANCELED": "yellow",
}


def to_json(graph: RenderGraph, indent: int | None = 2) -> str:
    """Render the graph as JSON: ``{root, direction, title, nodes: [...], edges: [...]}``."""
    return json.dumps(graph.to_dict(), indent=indent, sort_keys=False, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- mermaid

_MERMAID_SHAPES: Mapping[str, tuple[str, str]] = {
    "pipeline": ("{{", "}}"),
    "stage": ("([", "])"),
    "execution": ("(", ")"),
    "Dataset": ("[(", ")]"),
    "Model": ("{", "}"),
    "Metrics": ("[/", "/]"),
    "Step_Metrics": ("[/", "/]"),
    "Dataslice": ("[\\", "\\]"),
    "Environment": (">", "]"),
}


def _mermaid_text(text: str) -> str:
    # Mermaid reads entity codes inside quoted labels; quotes and angle brackets must be coded.
    out = text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return out.replace("\n", " ")


def to_mermaid(graph: RenderGraph) -> str:
    """Render the graph as a Mermaid ``flowchart LR`` document."""
    ids = {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for node in graph.nodes:
        key = node.subtype if node.kind == "artifact" else node.kind
        left, right = _MERMAID_SHAPES.get(key, ("[", "]"))
        caption = _caption(node)
        lines.append(f'    {ids[node.id]}{left}"{_mermaid_text(caption)}"{right}')
    for edge in graph.edges:
        arrow = "-.->" if edge.kind in ("contains", "runs") else "-->"
        lines.append(f"    {ids[edge.source]} {arrow}|{edge.kind}| {ids[edge.target]}")
    for state, colour in STATE_COLOURS.items():
        lines.append(f"    classDef state_{state} stroke:{colour},stroke-width:3px")
    for node in graph.nodes:
        if node.kind == "execution" and node.state in STATE_COLOURS:
            lines.append(f"    class {ids[node.id]} state_{node.state}")
    lines.append(f"    style {ids[graph.root]} stroke-width:4px,stroke-dasharray: 4 2")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- dot

_DOT_SHAPES: Mapping[str, str] = {
    "pipeline": "hexagon",
    "stage": "box",
    "execution": "ellipse",
    "Dataset": "cylinder",
    "Model": "diamond",
    "Metrics": "note",
    "Step_Metrics": "note",
    "Dataslice": "folder",
    "Environment": "component",
}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: RenderGraph) -> str:
    """Render the graph as a Graphviz ``digraph`` (left to right)."""
    lines = [
        f"digraph {_dot_quote('lineage')} {{",
        "    rankdir=LR;",
        f"    label={_dot_quote(graph.title)};",
        '    node [fontname="Helvetica", fontsize=10];',
        '    edge [fontname="Helvetica", fontsize=8];',
    ]
    for node in graph.nodes:
        key = node.subtype if node.kind == "artifact" else node.kind
        attrs = {
            "label": _caption(node),
            "shape": _DOT_SHAPES.get(key, "box"),
        }
        if node.kind == "stage":
            attrs["style"] = "rounded"
        if node.kind == "execution" and node.state:
            attrs["color"] = STATE_COLOURS.get(node.state, "#757575")
            attrs["penwidth"] = "2"
        if node.id == graph.root:
            attrs["peripheries"] = "2"
        body = ", ".join(f"{k}={_dot_quote(v)}" for k, v in attrs.items())
        lines.append(f"    {_dot_quote(node.id)} [{body}];")
    for edge in graph.edges:
        style = ', style="dashed"' if edge.kind in ("contains", "runs") else ""
        lines.append(
            f"    {_dot_quote(edge.source)} -> {_dot_quote(edge.target)} [label={_dot_quote(edge.kind)}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- tree


def _short(md5: object) -> str:
    text = str(md5 or "")
    return text[:8] + ("…" if len(text) > 8 else "")


def _metrics_set(node: RenderNode) -> str | None:
    """The name of metrics logged as values (``log_execution_metrics``), which have no file."""
    name = node.properties.get("metrics_name")
    md5 = str(node.properties.get("md5") or "")
    if node.subtype == "Metrics" and name and not _MD5.match(md5):
        return metrics_set_name(name)
    return None


def _caption(node: RenderNode) -> str:
    """One-line caption used by Mermaid and DOT."""
    if node.kind == "artifact":
        metrics = _metrics_set(node)
        if metrics is not None:
            return f"{node.subtype}: {metrics}"
        md5 = node.properties.get("md5")
        return f"{node.subtype}: {node.label}" + (f"\n{_short(md5)}" if md5 else "")
    if node.kind == "execution":
        return f"{node.label}" + (f"\n{node.state}" if node.state else "")
    return node.label


def _tree_label(node: RenderNode, short: bool = False) -> Text:
    props = node.properties
    if node.kind == "artifact":
        metrics = _metrics_set(node)
        if metrics is not None:
            # Values, not a file: the values say more than the name's uuid.
            values = props.get("custom_properties")
            shown = ", ".join(f"{k}={v}" for k, v in sorted(values.items())) if isinstance(values, Mapping) else ""
            return Text.from_markup(f"[cyan]{escape(node.subtype)}[/] {escape(metrics)} [dim]{escape(shown)}[/]")
        md5 = props.get("md5")
        # The environment file's path only repeats its md5; its kind says enough.
        label = "python environment" if node.subtype == "Environment" else node.label
        text = f"[cyan]{escape(node.subtype or 'Artifact')}[/] {escape(label)}"
        if md5:
            text += f" [dim]md5 {escape(_short(md5) if short else str(md5))}[/]"
        return Text.from_markup(text)
    if node.kind == "execution":
        colour = _RICH_STATE.get(node.state, "white")
        text = f"[bold]{escape(node.label)}[/]"
        if node.state:
            text += f" [{colour}]{escape(node.state)}[/]"
        extras: list[str] = []
        params = props.get("parameters")
        if isinstance(params, Mapping) and params:
            extras.append("params " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
        fingerprint = props.get("code_fingerprint")
        if fingerprint:
            extras.append(f"code {_short(fingerprint)}")
        if extras:
            text += " [dim]" + escape("; ".join(extras)) + "[/]"
        return Text.from_markup(text)
    return Text.from_markup(f"[yellow]{escape(node.kind)}[/] {escape(node.label)}")


def to_tree(graph: RenderGraph, short: bool = False) -> Tree:
    """Render the graph as a ``rich`` tree rooted at the asked-for node.

    Upstream graphs grow towards producers and their inputs, downstream graphs towards
    consumers and their outputs. A node reached twice is shown once in full and then as
    ``(see above)``; the Python environment, an input of every execution, only once.

    Args:
        graph: The lineage graph.
        short: Show md5s by their first eight digits (for narrow terminals).
    """
    flow = [e for e in graph.edges if e.kind in ("input", "output")]
    parents: dict[str, list[str]] = {}
    children: dict[str, list[str]] = {}
    for edge in flow:
        parents.setdefault(edge.target, []).append(edge.source)
        children.setdefault(edge.source, []).append(edge.target)
    by_id = {n.id: n for n in graph.nodes}
    neighbours: Callable[[str], list[str]]
    if graph.direction == "down":
        neighbours = lambda node_id: children.get(node_id, [])  # noqa: E731 - tiny selector
    else:
        neighbours = lambda node_id: parents.get(node_id, [])  # noqa: E731 - tiny selector

    root = by_id[graph.root]
    tree = Tree(_tree_label(root, short), guide_style="dim")
    seen = {root.id}
    # Depth-first, pre-order, iterative (lineage chains can be deeper than Python's stack).
    stack: list[tuple[str, Tree]] = [(nxt, tree) for nxt in reversed(neighbours(root.id))]
    while stack:
        node_id, parent = stack.pop()
        node = by_id[node_id]
        if node_id in seen and node.kind == "artifact" and node.subtype == "Environment":
            continue
        label = _tree_label(node, short)
        if node_id in seen:
            label.append(" (see above)", style="dim italic")
            parent.add(label)
            continue
        seen.add(node_id)
        branch = parent.add(label)
        stack.extend((nxt, branch) for nxt in reversed(neighbours(node_id)))
    return tree


def tree_text(graph: RenderGraph, width: int = 120) -> str:
    """Render the tree as plain text (no colour), for files and pipes."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, color_system=None, highlight=False)
    console.print(to_tree(graph))
    return buffer.getvalue()
