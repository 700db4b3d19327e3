"""Self-contained HTML lineage view: Cytoscape.js and dagre inlined, no network at view time."""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import metadata, resources

from cmf_orchestrate.render._model import RenderGraph

_TOKEN = re.compile(r"@@(TITLE|VERSION|DATA|CYTOSCAPE|CYTOSCAPE_DAGRE|APP)@@")

#: The vendored JavaScript files (from the npm registry; licenses in ``_static/licenses``).
VENDORED = ("cytoscape.min.js", "cytoscape-dagre.min.js")


@functools.cache
def _static(name: str) -> str:
    return (resources.files("cmf_orchestrate") / "_static" / name).read_text(encoding="utf-8")


def _script_safe(source: str) -> str:
    # A literal "</script" would end the inline element early; "<\/" means the same in JS.
    return re.sub(r"</(script)", r"<\\/\1", source, flags=re.IGNORECASE)


def _json_for_script(graph: RenderGraph) -> str:
    text = json.dumps(graph.to_dict(), ensure_ascii=False, separators=(",", ":"))
    # Inside <script type="application/json"> only "<" can break out; JSON accepts \u escapes.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _version() -> str:
    try:
        return metadata.version("cmf-orchestrate")
    except metadata.PackageNotFoundError:
        return "dev"


def to_html(graph: RenderGraph) -> str:
    """Render the graph as one self-contained, interactive HTML page.

    Pipelines, stages, executions and artifacts get distinct shapes, execution states
    distinct colours; hovering or clicking a node shows its properties. The page loads
    nothing from the network.
    """
    values = {
        "TITLE": html.escape(f"Lineage: {graph.title}"),
        "VERSION": html.escape(_version()),
        "DATA": _json_for_script(graph),
        "CYTOSCAPE": _script_safe(_static(VENDORED[0])),
        "CYTOSCAPE_DAGRE": _script_safe(_static(VENDORED[1])),
        "APP": _script_safe(_static("lineage.js")),
    }
    # One pass: inserted text is never scanned for tokens again.
    return _TOKEN.sub(lambda m: values[m.group(1)], _static("lineage.html"))
