"""The graph every lineage renderer draws: plain, ordered, JSON-friendly value objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NodeKind = Literal["pipeline", "stage", "execution", "artifact"]
EdgeKind = Literal["contains", "runs", "input", "output"]
Direction = Literal["up", "down", "both"]

NODE_KINDS: tuple[NodeKind, ...] = ("pipeline", "stage", "execution", "artifact")


@dataclass(frozen=True)
class RenderNode:
    """One drawable node.

    Attributes:
        id: Unique, stable identifier inside the graph (for example ``execution:12``).
        kind: What the node stands for.
        label: Short human-readable caption.
        subtype: Artifact type (``Dataset``, ``Model``, ...) or execution type.
        state: Execution state (``COMPLETE``, ``FAILED``, ...); empty for other kinds.
        properties: Everything worth showing on hover (md5, parameters, times, ...).
    """

    id: str
    kind: NodeKind
    label: str
    subtype: str = ""
    state: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the node as a JSON-serialisable mapping."""
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "subtype": self.subtype,
            "state": self.state,
            "properties": _jsonable(self.properties),
        }


@dataclass(frozen=True)
class RenderEdge:
    """One directed edge, oriented the way data flows.

    ``input`` goes artifact -> execution, ``output`` execution -> artifact,
    ``contains`` pipeline -> stage, ``runs`` stage -> execution.
    """

    source: str
    target: str
    kind: EdgeKind

    def to_dict(self) -> dict[str, str]:
        """Return the edge as a JSON-serialisable mapping."""
        return {"source": self.source, "target": self.target, "kind": self.kind}


@dataclass(frozen=True)
class RenderGraph:
    """A lineage graph ready to draw.

    Attributes:
        root: Id of the node the lineage was asked for.
        direction: ``up`` (where it came from), ``down`` (what was built from it) or ``both``.
        nodes: Nodes in a stable order (kind, then id).
        edges: Edges in a stable order; both ends are always among ``nodes``.
        title: Caption for documents (defaults to the root's label).
    """

    root: str
    direction: Direction
    nodes: tuple[RenderNode, ...]
    edges: tuple[RenderEdge, ...]
    title: str = ""

    @classmethod
    def build(
        cls,
        root: str,
        direction: Direction,
        nodes: Iterable[RenderNode],
        edges: Iterable[RenderEdge],
        title: str = "",
    ) -> RenderGraph:
        """Build a graph, dropping duplicate nodes/edges and edges to unknown nodes.

        Raises:
            ValueError: if ``root`` is not among the nodes.
        """
        by_id: dict[str, RenderNode] = {}
        for node in nodes:
            by_id.setdefault(node.id, node)
        if root not in by_id:
            raise ValueError(f"root node {root!r} is not in the graph")
        order = {kind: i for i, kind in enumerate(NODE_KINDS)}
        ordered = sorted(by_id.values(), key=lambda n: (order[n.kind], _natural(n.id)))
        seen: set[tuple[str, str, str]] = set()
        kept: list[RenderEdge] = []
        for edge in edges:
            key = (edge.source, edge.target, edge.kind)
            if key in seen or edge.source not in by_id or edge.target not in by_id:
                continue
            seen.add(key)
            kept.append(edge)
        kept.sort(key=lambda e: (_natural(e.source), _natural(e.target), e.kind))
        return cls(root, direction, tuple(ordered), tuple(kept), title or by_id[root].label)

    def node(self, node_id: str) -> RenderNode:
        """Return the node with this id.

        Raises:
            KeyError: if there is no such node.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def to_dict(self) -> dict[str, Any]:
        """Return the whole graph as a JSON-serialisable mapping."""
        return {
            "root": self.root,
            "direction": self.direction,
            "title": self.title,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }


def _natural(node_id: str) -> tuple[str, int, str]:
    """Sort ``execution:10`` after ``execution:9``."""
    prefix, _, rest = node_id.partition(":")
    return (prefix, int(rest), "") if rest.isdigit() else (prefix, -1, rest)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
