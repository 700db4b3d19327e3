"""The read side: CMF's query API and lineage graphs.

Names follow cmflib's ``CmfQuery``; results are typed records instead of data frames.
The class is :class:`MetadataQuery` (``CmfQuery`` is the same class, under the name this
project has always exported); CMF's data-frame API is :mod:`cmf_orchestrate.cmfquery`.
An artifact is referred to by its name (``<path>:<md5>``), its md5, or its path (the
latest version recorded at that path). Lineage walks the event graph one level at a
time with batched lookups, never scanning the store per hop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cmf_orchestrate.errors import ArtifactNotFoundError, InvalidArgumentError
from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    EventType,
    ExecutionRecord,
    ExecutionSnapshot,
)
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import (
    PIPELINE_CONTEXT_TYPE,
    STAGE_CONTEXT_TYPE,
    MetadataStore,
    open_store,
)

__all__ = ["CmfQuery", "LineageEdge", "LineageGraph", "LineageNode", "MetadataQuery"]

Direction = Literal["up", "down"]
NodeKind = Literal["pipeline", "stage", "execution", "artifact"]


@dataclass(frozen=True)
class LineageNode:
    """A node of a lineage graph.

    Attributes:
        id: Graph-unique id: ``pipeline:<id>``, ``stage:<id>``, ``execution:<id>``, ``artifact:<id>``.
        kind: pipeline, stage, execution or artifact.
        label: Short human label.
        type: MLMD type name (``Dataset``, ``Model``, the execution type, ...).
        record: The underlying record.
        depth: Execution hops from the starting artifact (0 for it).
    """

    id: str
    kind: NodeKind
    label: str
    type: str
    record: ArtifactRecord | ExecutionRecord | ContextRecord
    depth: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "type": self.type,
            "depth": self.depth,
            "record": self.record.to_dict(),
        }


@dataclass(frozen=True)
class LineageEdge:
    """A directed edge: ``input`` (artifact -> execution), ``output`` (execution -> artifact),
    ``runs`` (stage -> execution), ``contains`` (pipeline -> stage)."""

    source: str
    target: str
    relation: str

    def to_dict(self) -> dict[str, str]:
        """Plain JSON-ready form."""
        return {"source": self.source, "target": self.target, "relation": self.relation}


@dataclass(frozen=True)
class LineageGraph:
    """Everything upstream or downstream of an artifact."""

    roots: tuple[str, ...]
    direction: Direction
    nodes: tuple[LineageNode, ...] = ()
    edges: tuple[LineageEdge, ...] = ()
    _index: Mapping[str, LineageNode] = field(default_factory=dict, repr=False, compare=False)

    def node(self, node_id: str) -> LineageNode:
        """A node by id.

        Raises:
            KeyError: No such node.
        """
        return self._index[node_id]

    def of_kind(self, kind: NodeKind) -> list[LineageNode]:
        """The nodes of one kind."""
        return [n for n in self.nodes if n.kind == kind]

    @property
    def artifacts(self) -> list[ArtifactRecord]:
        """The artifact records."""
        return [n.record for n in self.nodes if isinstance(n.record, ArtifactRecord)]

    @property
    def executions(self) -> list[ExecutionRecord]:
        """The execution records."""
        return [n.record for n in self.nodes if isinstance(n.record, ExecutionRecord)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "roots": list(self.roots),
            "direction": self.direction,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }


class CmfQuery:
    """Read a CMF store.

    Args:
        filepath: Store path or URL (default: from settings / the environment).
        settings: Settings to read the store location from.

    Raises:
        ConfigError: The store location is malformed.
        StoreUnavailableError: The store cannot be reached.
    """

    def __init__(self, filepath: str | os.PathLike[str] | None = None, *, settings: CmfSettings | None = None) -> None:
        base = settings or CmfSettings.from_env()
        if filepath is not None:
            base = base.replace(store=os.fspath(filepath))
        self.settings = base
        self.store: MetadataStore = open_store(base.location)

    # -- pipelines and stages ---------------------------------------------------------------------

    def get_pipeline_names(self) -> list[str]:
        """Names of every pipeline."""
        return [c.name for c in self.store.contexts_of_type(PIPELINE_CONTEXT_TYPE)]

    def get_pipeline_id(self, pipeline_name: str) -> int:
        """Id of a pipeline context, -1 when absent (as cmflib)."""
        context = self.store.context(PIPELINE_CONTEXT_TYPE, pipeline_name)
        return -1 if context is None else context.id

    def get_pipeline(self, pipeline_name: str) -> ContextRecord | None:
        """The pipeline context, or None."""
        return self.store.context(PIPELINE_CONTEXT_TYPE, pipeline_name)

    def get_pipeline_stages(self, pipeline_name: str) -> list[str]:
        """Stage names (``<pipeline>/<stage>``) of a pipeline."""
        return [c.name for c in self.get_stages(pipeline_name)]

    def get_stages(self, pipeline_name: str) -> list[ContextRecord]:
        """Stage contexts of a pipeline."""
        pipeline = self.store.context(PIPELINE_CONTEXT_TYPE, pipeline_name)
        return [] if pipeline is None else self.store.children(pipeline.id)

    def _stage(self, stage_name: str) -> ContextRecord | None:
        return self.store.context(STAGE_CONTEXT_TYPE, stage_name)

    # -- executions ------------------------------------------------------------------------------------

    def get_all_exe_in_stage(self, stage_name: str) -> list[ExecutionRecord]:
        """Executions of a stage (by its full name ``<pipeline>/<stage>``), oldest first."""
        stage = self._stage(stage_name)
        return [] if stage is None else self.store.executions_in_context(stage.id)

    def get_all_executions_in_stage(self, stage_name: str) -> list[ExecutionRecord]:
        """Same as :meth:`get_all_exe_in_stage` (cmflib returns a data frame here)."""
        return self.get_all_exe_in_stage(stage_name)

    def get_execution(self, execution_id: int) -> ExecutionRecord | None:
        """One execution by id."""
        return self.store.execution(int(execution_id))

    def get_all_artifacts_for_execution(self, execution_id: int) -> list[ArtifactRecord]:
        """Every artifact an execution read or wrote."""
        events = self.store.events_of_executions([int(execution_id)])
        return self.store.artifacts_by_id(_unique(e.artifact_id for e in events))

    def get_artifacts_for_execution(self, execution_id: int) -> dict[EventType, list[ArtifactRecord]]:
        """An execution's artifacts by direction (``DECLARED_OUTPUT``: declared, not written by it)."""
        events = self.store.events_of_executions([int(execution_id)])
        by_id = {a.id: a for a in self.store.artifacts_by_id(_unique(e.artifact_id for e in events))}
        result: dict[EventType, list[ArtifactRecord]] = {EventType.INPUT: [], EventType.OUTPUT: []}
        for event in events:
            if event.artifact_id in by_id:
                result.setdefault(event.type, []).append(by_id[event.artifact_id])
        return result

    # -- artifacts ----------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> list[ArtifactRecord]:
        """Artifacts named by ``ref``: an artifact name, an md5, or a path (its latest version).

        Raises:
            ArtifactNotFoundError: Nothing in the store matches.
        """
        if not isinstance(ref, str) or not ref:
            raise InvalidArgumentError(f"artifact reference must be a non-empty string, got {ref!r}")
        found = self.store.artifacts(name=ref)
        if found:
            return found
        found = self.store.artifacts_by_uri(ref)
        if found:
            return found
        path = ref[2:] if ref.startswith("./") else ref
        # CMF records a remote location as ``url`` when the project has a DVC remote: the name tells the path.
        found = self.store.artifacts(url=path) or [
            a for a in self.store.artifacts(name_prefix=f"{path}:") if a.path == path
        ]
        if found:
            latest = max(found, key=lambda a: (a.create_time_ms, a.id))
            return [a for a in found if a.uri == latest.uri]
        raise ArtifactNotFoundError(
            f"no artifact named {ref!r} (by name, md5 or path) in {self.store.location.redacted}"
        )

    def resolve_artifact(self, text: str) -> ArtifactRecord:
        """The one artifact a user means by ``text``.

        Tried in order: a path (its newest version), an artifact name, a full md5, an
        artifact id, a unique md5 prefix of at least 6 characters.

        Raises:
            ArtifactNotFoundError: Nothing matches.
            InvalidArgumentError: An md5 prefix is ambiguous.
        """
        try:
            return self.get_artifact(text)
        except ArtifactNotFoundError:
            pass
        if text.isdigit():
            found = self.store.artifacts_by_id([int(text)])
            if found:
                return found[0]
        if len(text) >= 6 and all(c in "0123456789abcdef." for c in text.lower()):
            matches = self.store.artifacts(uri_prefix=text.lower())
            uris = {a.uri for a in matches}
            if len(uris) > 1:
                raise InvalidArgumentError(f"md5 prefix {text!r} is ambiguous: {', '.join(sorted(uris)[:5])}")
            if matches:
                return max(matches, key=lambda a: (a.create_time_ms, a.id))
        raise ArtifactNotFoundError(f"no artifact matches {text!r} (path, name, md5, md5 prefix or id)")

    def executions(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        state: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[ExecutionRecord]:
        """Executions filtered by pipeline, stage (``<pipeline>/<stage>`` or the bare stage
        with ``pipeline``), state and creation time, filtered and limited by the store.

        Raises:
            InvalidArgumentError: An unknown state.
        """
        if state:
            from cmf_orchestrate.records import ExecutionState

            names = {s.value for s in ExecutionState}
            if state.upper() not in names:
                raise InvalidArgumentError(f"unknown state {state!r} (one of {', '.join(sorted(names))})")
        full = None
        if stage:
            full = stage if "/" in stage or not pipeline else f"{pipeline}/{stage}"
        found = self.store.executions(
            stage=full,
            pipeline=None if full else pipeline,
            state=state.upper() if state else None,
            since_ms=since_ms,
            limit=limit,
            newest_first=newest_first,
        )
        return found

    def get_executions_by_fact(self, fact: str, value: str | int) -> list[ExecutionSnapshot]:
        """Executions whose orchestration fact ``cmf.<fact>`` equals ``value``, oldest first.

        Raises:
            InvalidArgumentError: ``fact`` is not a documented fact.
        """
        from cmf_orchestrate.facts import RESERVED_FACTS

        if fact not in RESERVED_FACTS:
            raise InvalidArgumentError(f"unknown fact {fact!r} (one of {', '.join(sorted(RESERVED_FACTS))})")
        found = self.store.execution_ids(fact=(fact, value))
        return list(self.store.execution_snapshots(found))

    def get_artifact(self, ref: str) -> ArtifactRecord:
        """The single artifact ``ref`` names (the latest when several match).

        Raises:
            ArtifactNotFoundError: Nothing matches.
        """
        return max(self.resolve(ref), key=lambda a: (a.create_time_ms, a.id))

    def get_all_executions_for_artifact(self, artifact_name: str) -> list[ExecutionRecord]:
        """Executions that read or wrote the artifact."""
        ids = [a.id for a in self.resolve(artifact_name)]
        events = self.store.events_of_artifacts(ids)
        return self.store.executions_by_id(_unique(e.execution_id for e in events))

    def get_producer_execution(self, artifact_name: str) -> list[ExecutionRecord]:
        """Executions that wrote the artifact."""
        ids = [a.id for a in self.resolve(artifact_name)]
        events = self.store.events_of_artifacts(ids)
        return self.store.executions_by_id(_unique(e.execution_id for e in events if e.type is EventType.OUTPUT))

    def get_one_hop_parent_artifacts(self, artifact_name: str) -> list[ArtifactRecord]:
        """Inputs of the executions that produced the artifact."""
        return self.lineage(artifact_name, "up", depth=1).artifacts[len(self.resolve(artifact_name)) :]

    def get_all_parent_artifacts(self, artifact_name: str) -> list[ArtifactRecord]:
        """Every artifact upstream of the artifact."""
        return self.lineage(artifact_name, "up").artifacts[len(self.resolve(artifact_name)) :]

    def get_one_hop_child_artifacts(self, artifact_name: str) -> list[ArtifactRecord]:
        """Outputs of the executions that read the artifact."""
        return self.lineage(artifact_name, "down", depth=1).artifacts[len(self.resolve(artifact_name)) :]

    def get_all_child_artifacts(self, artifact_name: str) -> list[ArtifactRecord]:
        """Every artifact downstream of the artifact."""
        return self.lineage(artifact_name, "down").artifacts[len(self.resolve(artifact_name)) :]

    # -- lineage --------------------------------------------------------------------------------------------

    def lineage(
        self,
        path_or_md5: str,
        direction: Direction = "up",
        depth: int | None = None,
        *,
        contexts: bool = True,
    ) -> LineageGraph:
        """Everything upstream (``up``) or downstream (``down``) of an artifact.

        Args:
            path_or_md5: Artifact path, md5 or name.
            direction: ``up``: producers, their inputs, their producers, ...;
                ``down``: consumers, their outputs, their consumers, ...
            depth: Maximum execution hops (None: all).
            contexts: Include the stages and pipelines of the executions.

        Raises:
            InvalidArgumentError: Bad direction or depth.
            ArtifactNotFoundError: Nothing matches ``path_or_md5``.
        """
        if direction not in ("up", "down"):
            raise InvalidArgumentError(f"direction must be 'up' or 'down', got {direction!r}")
        if depth is not None and (not isinstance(depth, int) or depth < 0):
            raise InvalidArgumentError(f"depth must be a non-negative integer, got {depth!r}")
        roots = self.resolve(path_or_md5)
        nodes: dict[str, LineageNode] = {}
        edges: dict[tuple[str, str, str], LineageEdge] = {}
        for artifact in roots:
            nodes[_aid(artifact.id)] = _artifact_node(artifact, 0)
        frontier = [a.id for a in roots]
        seen_executions: set[int] = set()
        # Walking up: an artifact's OUTPUT events lead to producers, whose INPUT events lead further.
        toward, away = (EventType.OUTPUT, EventType.INPUT) if direction == "up" else (EventType.INPUT, EventType.OUTPUT)
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            hop = self.store.events_of_artifacts(frontier, [toward])
            execution_ids = _unique(e.execution_id for e in hop if e.execution_id not in seen_executions)
            for event in hop:
                self._edge(edges, event.artifact_id, event.execution_id, toward)
            if not execution_ids:
                break
            seen_executions.update(execution_ids)
            for execution in self.store.executions_by_id(execution_ids):
                nodes[_eid(execution.id)] = LineageNode(
                    _eid(execution.id),
                    "execution",
                    f"{execution.type} #{execution.id}",
                    execution.type,
                    execution,
                    level,
                )
            further = self.store.events_of_executions(execution_ids, [away])
            new_ids = _unique(e.artifact_id for e in further if _aid(e.artifact_id) not in nodes)
            for event in further:
                self._edge(edges, event.artifact_id, event.execution_id, away)
            frontier = []
            for artifact in self.store.artifacts_by_id(new_ids):
                nodes[_aid(artifact.id)] = _artifact_node(artifact, level)
                # The Python environment is every execution's input and nobody's output:
                # walking through it would only read every event in the store.
                if artifact.kind != ArtifactKind.ENVIRONMENT.value:
                    frontier.append(artifact.id)
        # Edges may name executions found on a later level only; keep those whose ends are known.
        kept = [e for e in edges.values() if e.source in nodes and e.target in nodes]
        if contexts and seen_executions:
            self._add_contexts(nodes, kept, [n.record for n in nodes.values() if isinstance(n.record, ExecutionRecord)])
        return LineageGraph(
            roots=tuple(_aid(a.id) for a in roots),
            direction=direction,
            nodes=tuple(nodes.values()),
            edges=tuple(kept),
            _index=dict(nodes),
        )

    @staticmethod
    def _edge(
        edges: dict[tuple[str, str, str], LineageEdge], artifact_id: int, execution_id: int, kind: EventType
    ) -> None:
        if kind is EventType.INPUT:
            edge = LineageEdge(_aid(artifact_id), _eid(execution_id), "input")
        else:
            edge = LineageEdge(_eid(execution_id), _aid(artifact_id), "output")
        edges[(edge.source, edge.target, edge.relation)] = edge

    def _add_contexts(
        self, nodes: dict[str, LineageNode], edges: list[LineageEdge], executions: Sequence[ExecutionRecord]
    ) -> None:
        stage_ids = _unique(e.stage_id for e in executions)
        pipeline_ids = _unique(e.pipeline_id for e in executions)
        for context in self.store.contexts_by_id([*stage_ids, *pipeline_ids]):
            is_stage = context.type == STAGE_CONTEXT_TYPE
            node_id = f"{'stage' if is_stage else 'pipeline'}:{context.id}"
            label = context.name.split("/", 1)[-1] if is_stage else context.name
            nodes[node_id] = LineageNode(node_id, "stage" if is_stage else "pipeline", label, context.type, context)
        for execution in executions:
            if f"stage:{execution.stage_id}" in nodes:
                edges.append(LineageEdge(f"stage:{execution.stage_id}", _eid(execution.id), "runs"))
        linked = {(e.stage_id, e.pipeline_id) for e in executions}
        for stage_id, pipeline_id in sorted(linked):
            if f"stage:{stage_id}" in nodes and f"pipeline:{pipeline_id}" in nodes:
                edges.append(LineageEdge(f"pipeline:{pipeline_id}", f"stage:{stage_id}", "contains"))


def _artifact_node(artifact: ArtifactRecord, depth: int) -> LineageNode:
    return LineageNode(_aid(artifact.id), "artifact", artifact.path or artifact.name, artifact.kind, artifact, depth)


def _aid(artifact_id: int) -> str:
    return f"artifact:{artifact_id}"


def _eid(execution_id: int) -> str:
    return f"execution:{execution_id}"


def _unique(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


#: The typed read API under its own name (``cmf_orchestrate.cmfquery.CmfQuery`` returns data frames).
MetadataQuery = CmfQuery
