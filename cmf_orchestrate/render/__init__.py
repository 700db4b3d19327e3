"""Lineage renderers: one :class:`RenderGraph`, drawn as a tree, JSON, Mermaid, DOT or HTML."""

from __future__ import annotations

from typing import Literal, get_args

from cmf_orchestrate.render._html import to_html
from cmf_orchestrate.render._model import (
    Direction,
    EdgeKind,
    NodeKind,
    RenderEdge,
    RenderGraph,
    RenderNode,
)
from cmf_orchestrate.render._text import to_dot, to_json, to_mermaid, to_tree, tree_text

Format = Literal["tree", "json", "mermaid", "dot", "html"]
FORMATS: tuple[str, ...] = get_args(Format)


def render(graph: RenderGraph, fmt: Format) -> str:
    """Render ``graph`` in ``fmt`` as text (``tree`` as plain text without colour).

    Raises:
        ValueError: if ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "tree":
        return tree_text(graph)
    if fmt == "json":
        return to_json(graph)
    if fmt == "mermaid":
        return to_mermaid(graph)
    if fmt == "dot":
        return to_dot(graph)
    if fmt == "html":
        return to_html(graph)
    raise ValueError(f"unknown lineage format {fmt!r}; choose one of {', '.join(FORMATS)}")


__all__ = [
    "FORMATS",
    "Direction",
    "EdgeKind",
    "Format",
    "NodeKind",
    "RenderEdge",
    "RenderGraph",
    "RenderNode",
    "render",
    "to_dot",
    "to_html",
    "to_json",
    "to_mermaid",
    "to_tree",
    "tree_text",
]
