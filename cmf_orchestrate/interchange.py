"""Export a store as CMF ``dumptojson`` JSON, and merge such a document into another store.

The document has CMF's shape: ``{"Pipeline": [pipeline]}``, each pipeline a context
dict with ``"stages"``, each stage with ``"executions"``, each execution with
``"events"``, each event with its ``"artifact"``. Node dicts carry the keys CMF writes
(``id``, ``name``, ``type``, ``properties``, ``custom_properties``,
``create_time_since_epoch``, ``last_update_time_since_epoch``, ``uri`` for artifacts);
an event's ``type`` is ML Metadata's enum number (3 INPUT, 4 OUTPUT, 1 DECLARED_OUTPUT,
6 INTERNAL_OUTPUT for CMF's validation outputs). Executions also
carry ``last_known_state`` and events ``artifact_id``/``execution_id``/
``milliseconds_since_epoch``, which CMF's readers ignore.

Importing never duplicates: an execution whose ``Execution_uuid`` is already in the
target store is skipped, and an artifact whose md5 (``uri``) and type are already there
is reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cmf_orchestrate.errors import ArtifactNotFoundError, InvalidArgumentError
from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    EventType,
    ExecutionRecord,
    ExecutionState,
)
from cmf_orchestrate.store import (
    PIPELINE_CONTEXT_TYPE,
    STAGE_CONTEXT_TYPE,
    ArtifactDraft,
    MetadataStore,
    restore_times,
)

__all__ = ["EVENT_INPUT", "EVENT_OUTPUT", "ImportReport", "export_document", "import_document", "summarize"]

logger = logging.getLogger(__name__)

#: ML Metadata's ``Event.Type`` numbers, as CMF writes them.
EVENT_INPUT = 3
EVENT_OUTPUT = 4
_DECLARED_INPUT = 2
_DECLARED_OUTPUT = 1
_INTERNAL_OUTPUT = 6
_EVENT_CODES = {
    EventType.INPUT: EVENT_INPUT,
    EventType.OUTPUT: EVENT_OUTPUT,
    EventType.DECLARED_OUTPUT: _DECLARED_OUTPUT,
    EventType.INTERNAL_OUTPUT: _INTERNAL_OUTPUT,
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImportReport:
    """What an import did.

    Attributes:
        pipelines: Pipelines in the document.
        stages: Stages in the document.
        executions_added: Executions written to the store.
        executions_skipped: Executions already in the store (same ``Execution_uuid``).
        artifacts_added: Artifacts created.
        artifacts_reused: Artifact references resolved to an artifact already in the store.
        events: Events written.
    """

    pipelines: int
    stages: int
    executions_added: int
    executions_skipped: int
    artifacts_added: int
    artifacts_reused: int
    events: int

    def to_dict(self) -> dict[str, int]:
        """Plain JSON-ready form."""
        return dict(self.__dict__)


# --------------------------------------------------------------------------- export


def _context_dict(context: ContextRecord) -> dict[str, Any]:
    return {
        "create_time_since_epoch": context.create_time_ms,
        "custom_properties": dict(context.custom_properties),
        "id": context.id,
        "last_update_time_since_epoch": context.update_time_ms,
        "name": context.name,
        "properties": dict(context.properties),
        "type": context.type,
    }


def _execution_dict(execution: ExecutionRecord) -> dict[str, Any]:
    return {
        "create_time_since_epoch": execution.create_time_ms,
        "custom_properties": dict(execution.custom_properties),
        "id": execution.id,
        "last_update_time_since_epoch": execution.update_time_ms,
        "name": execution.name,
        "properties": dict(execution.properties),
        "type": execution.type,
        "last_known_state": execution.state.value,
        "events": [],
    }


def _artifact_dict(artifact: ArtifactRecord) -> dict[str, Any]:
    return {
        "create_time_since_epoch": artifact.create_time_ms,
        "custom_properties": dict(artifact.custom_properties),
        "id": artifact.id,
        "last_update_time_since_epoch": getattr(artifact, "update_time_ms", artifact.create_time_ms),
        "name": artifact.name,
        "properties": dict(artifact.properties),
        "type": artifact.kind,
        "uri": artifact.uri,
    }


def export_document(
    store: MetadataStore, pipeline: str | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """The store (or one pipeline of it) as a CMF ``dumptojson`` document.

    Args:
        store: The store to read.
        pipeline: Only this pipeline (default: every pipeline).
        progress: Called with ``(stages done, stages total)``.

    Raises:
        ArtifactNotFoundError: ``pipeline`` is not in the store.
        StoreError: The store failed a read.
    """
    pipelines = store.contexts_of_type(PIPELINE_CONTEXT_TYPE)
    if pipeline is not None:
        pipelines = [p for p in pipelines if p.name == pipeline]
        if not pipelines:
            raise ArtifactNotFoundError(f"no pipeline named {pipeline!r} in {store.location.redacted}")
    stages_of = {p.id: store.children(p.id) for p in pipelines}
    total = sum(len(s) for s in stages_of.values())
    done = 0
    document: dict[str, Any] = {"Pipeline": []}
    for parent in pipelines:
        pipeline_dict = _context_dict(parent)
        pipeline_dict["stages"] = []
        for stage in stages_of[parent.id]:
            stage_dict = _context_dict(stage)
            executions = sorted(store.executions_in_context(stage.id), key=lambda e: e.id)
            events = store.events_of_executions([e.id for e in executions])
            artifacts = {a.id: a for a in store.artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
            by_execution: dict[int, list[dict[str, Any]]] = {e.id: [] for e in executions}
            ordered = sorted(events, key=lambda ev: (ev.execution_id, ev.type is not EventType.INPUT, ev.artifact_id))
            for event in ordered:
                artifact = artifacts.get(event.artifact_id)
                if artifact is None:
                    continue
                by_execution[event.execution_id].append(
                    {
                        "type": _EVENT_CODES[event.type],
                        "artifact_id": event.artifact_id,
                        "execution_id": event.execution_id,
                        "milliseconds_since_epoch": event.time_ms,
                        "artifact": _artifact_dict(artifact),
                    }
                )
            stage_dict["executions"] = []
            for execution in executions:
                execution_dict = _execution_dict(execution)
                execution_dict["events"] = by_execution[execution.id]
                stage_dict["executions"].append(execution_dict)
            pipeline_dict["stages"].append(stage_dict)
            done += 1
            if progress is not None:
                progress(done, total)
        document["Pipeline"].append(pipeline_dict)
    return document


# --------------------------------------------------------------------------- import


def _event_type(value: Any) -> EventType:
    if value in (EVENT_INPUT, _DECLARED_INPUT, "INPUT", "input"):
        return EventType.INPUT
    if value in (EVENT_OUTPUT, "OUTPUT", "output"):
        return EventType.OUTPUT
    # An output the attempt declared but did not write stays so: it names no producer.
    if value in (_DECLARED_OUTPUT, "DECLARED_OUTPUT"):
        return EventType.DECLARED_OUTPUT
    if value in (_INTERNAL_OUTPUT, "INTERNAL_OUTPUT"):
        return EventType.INTERNAL_OUTPUT
    raise InvalidArgumentError(
        f"unknown event type {value!r} (expected 3/INPUT, 4/OUTPUT, 1/DECLARED_OUTPUT or 6/INTERNAL_OUTPUT)"
    )


def _kind(value: Any) -> ArtifactKind:
    try:
        return ArtifactKind(str(value))
    except ValueError:
        known = ", ".join(k.value for k in ArtifactKind)
        raise InvalidArgumentError(f"unknown artifact type {value!r} (one of {known})") from None


def _state(value: Any) -> ExecutionState:
    if value is None:
        return ExecutionState.COMPLETE  # CMF's own dumps carry no state; CMF treats them as done
    if isinstance(value, int) and not isinstance(value, bool):
        # ML Metadata's Execution.State numbers; an unset state (0) is a run CMF recorded as done.
        codes = ["COMPLETE", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED"]
        if 0 <= value < len(codes):
            return ExecutionState(codes[value])
    try:
        return ExecutionState(str(value).upper())
    except ValueError:
        raise InvalidArgumentError(f"unknown execution state {value!r}") from None


def _items(mapping: Any, what: str) -> list[Mapping[str, Any]]:
    if not isinstance(mapping, list) or not all(isinstance(x, Mapping) for x in mapping):
        raise InvalidArgumentError(f"malformed document: {what} must be a list of objects")
    return mapping


def _require(node: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in node:
        raise InvalidArgumentError(f"{where}: malformed document: no {key!r}")
    return node[key]


def _check_properties(values: Any, declared: Mapping[str, int], where: str, what: str) -> None:
    """Type properties must be those the type declares; values plain numbers or text."""
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(f"{where}: {what} must be an object")
    unknown = sorted(str(k) for k in values if k not in declared)
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown {what} {', '.join(repr(k) for k in unknown)}")
    _check_values(values, where, what)


def _check_values(values: Any, where: str, what: str) -> None:
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(f"{where}: {what} must be an object")
    for key, value in values.items():
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InvalidArgumentError(f"{where}: {what} {key!r} is not a number or text: {value!r}")


def _validate(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Check the whole document before writing anything.

    Raises:
        InvalidArgumentError: The first problem, naming where it is (pipeline, stage,
            execution index, event index).
    """
    from cmf_orchestrate.store import ARTIFACT_TYPE_PROPERTIES, EXECUTION_TYPE_PROPERTIES

    if not isinstance(document, Mapping) or "Pipeline" not in document:
        raise InvalidArgumentError("not a CMF metadata document: no top-level 'Pipeline' list")
    pipelines = _items(document["Pipeline"], "'Pipeline'")
    for p_index, pipeline in enumerate(pipelines):
        where = f"pipeline #{p_index}"
        name = _require(pipeline, "name", where)
        where = f"pipeline {name!r}"
        _check_values(pipeline.get("custom_properties"), where, "custom property")
        for s_index, stage in enumerate(_items(pipeline.get("stages", []), f"{where}: 'stages'")):
            stage_name = _require(stage, "name", f"{where}, stage #{s_index}")
            at_stage = f"{where}, stage {stage_name!r}"
            _check_values(stage.get("custom_properties"), at_stage, "custom property")
            for e_index, execution in enumerate(_items(stage.get("executions", []), f"{at_stage}: 'executions'")):
                at_execution = f"{at_stage}, execution #{e_index}"
                _require(execution, "type", at_execution)
                _guard(at_execution, _state, execution.get("last_known_state"))
                _check_properties(execution.get("properties"), EXECUTION_TYPE_PROPERTIES, at_execution, "property")
                _check_values(execution.get("custom_properties"), at_execution, "custom property")
                for v_index, event in enumerate(_items(execution.get("events", []), f"{at_execution}: 'events'")):
                    at_event = f"{at_execution}, event #{v_index}"
                    _guard(at_event, _event_type, _require(event, "type", at_event))
                    artifact = _require(event, "artifact", at_event)
                    if not isinstance(artifact, Mapping):
                        raise InvalidArgumentError(f"{at_event}: 'artifact' must be an object")
                    kind: ArtifactKind = _guard(at_event, _kind, _require(artifact, "type", at_event))
                    _require(artifact, "name", at_event)
                    at_artifact = f"{at_event}, artifact {artifact['name']!r}"
                    _check_properties(
                        artifact.get("properties"), ARTIFACT_TYPE_PROPERTIES[kind], at_artifact, "property"
                    )
                    _check_values(artifact.get("custom_properties"), at_artifact, "custom property")
    return pipelines


def _guard(where: str, check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``; its error is reported with ``where`` in front."""
    try:
        return check(value)
    except InvalidArgumentError as exc:
        message = str(exc)
        raise InvalidArgumentError(message if message.startswith(where) else f"{where}: {message}") from None


class _ArtifactIndex:
    """Finds the artifact already in the store for (type, md5), so imports reuse it."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store
        self._names: dict[tuple[str, str], str | None] = {}
        self.added = 0
        self.reused = 0

    def name_for(self, kind: ArtifactKind, uri: str, name: str) -> str:
        if not uri:
            existing = self._store.artifact_by_name(kind, name)
            self._count(existing is not None)
            return name
        key = (kind.value, uri)
        if key not in self._names:
            same = [a for a in self._store.artifacts_by_uri(uri) if a.kind == kind.value]
            self._names[key] = min(same, key=lambda a: a.id).name if same else None
        known = self._names[key]
        self._count(known is not None)
        if known is None:
            self._names[key] = name
            return name
        return known

    def _count(self, reused: bool) -> None:
        if reused:
            self.reused += 1
        else:
            self.added += 1


def import_document(
    store: MetadataStore, document: Mapping[str, Any], progress: Progress | None = None
) -> ImportReport:
    """Merge a CMF ``dumptojson`` document into ``store``.

    Executions already present (same ``Execution_uuid``; same type and name when a
    document has no uuids) are skipped; artifacts already present (same type and md5)
    are reused. The whole document is written in one transaction, after it was checked
    completely: all of it is recorded, or none of it. Executions, artifacts and the
    contexts the import creates keep the creation and update times the document gives;
    events keep their ``milliseconds_since_epoch``. CMF's own dumps give events no time:
    such an event takes its artifact's creation time, within its execution's lifetime
    (an output CMF created with the event gets the event's own time, an older input
    its execution's start).

    Args:
        store: The store to write.
        document: A parsed ``dumptojson`` document.
        progress: Called with ``(executions done, executions total)``.

    Raises:
        InvalidArgumentError: The document is malformed (nothing was written).
        StoreError: The store refused a write (nothing of the document was written).
    """
    pipelines = _validate(document)

    def body() -> ImportReport:
        importer = _Importer(store, pipelines, progress)
        for pipeline in pipelines:
            importer.pipeline(pipeline)
        return importer.finish()

    # The whole document, or nothing of it.
    return store.in_transaction("importing a document", body)


class _Importer:
    """One document's import, inside the caller's transaction."""

    def __init__(self, store: MetadataStore, pipelines: Sequence[Mapping[str, Any]], progress: Progress | None) -> None:
        self.store = store
        self.pipelines = pipelines
        self.progress = progress
        existing = store.executions()
        self.known_uuids = {e.uuid for e in existing if e.uuid}
        self.known_names = {(e.type, e.name) for e in existing}
        self.artifacts = _ArtifactIndex(store)
        self.total = sum(len(s.get("executions", [])) for p in pipelines for s in p.get("stages", []))
        self.done = self.added = self.skipped = self.events = self.stages = 0
        self.context_times: dict[int, tuple[int, int]] = {}
        self.event_times: list[tuple[int, int, EventType, int]] = []

    def pipeline(self, pipeline: Mapping[str, Any]) -> None:
        name = str(pipeline["name"])
        before = self.store.context(PIPELINE_CONTEXT_TYPE, name)
        parent = self.store.pipeline_context(name, _new_values(before, pipeline))
        self._created(before, parent, pipeline)
        for stage in pipeline.get("stages", []):
            self.stages += 1
            full = str(stage["name"])
            short = full[len(parent.name) + 1 :] if full.startswith(parent.name + "/") else full
            before = self.store.context(STAGE_CONTEXT_TYPE, f"{parent.name}/{short}")
            context = self.store.stage_context(parent, short, _new_values(before, stage))
            self._created(before, context, stage)
            for execution in stage.get("executions", []):
                self.done += 1
                self.execution(parent, context, execution)
                if self.progress is not None:
                    self.progress(self.done, self.total)

    def _created(self, before: ContextRecord | None, context: ContextRecord, node: Mapping[str, Any]) -> None:
        """A context this import created keeps the document's times; one already there keeps its own."""
        times = _times(node)
        if before is None and times is not None:
            self.context_times[context.id] = times

    def execution(self, parent: ContextRecord, context: ContextRecord, execution: Mapping[str, Any]) -> None:
        properties = dict(execution.get("properties") or {})
        uuid = str(properties.get("Execution_uuid") or "")
        type_name = str(execution["type"])
        name = str(execution.get("name") or "")
        if (uuid and uuid in self.known_uuids) or (not uuid and (type_name, name) in self.known_names):
            self.skipped += 1
            return
        if name and (type_name, name) in self.known_names:
            name = f"{name}:{uuid}"  # a different run under a clashing name: keep both
        properties.update({"Context_ID": context.id, "Pipeline_id": parent.id, "Pipeline_Type": parent.name})
        events = list(execution.get("events", []))
        drafts = [(self._draft(event["artifact"]), _event_type(event["type"])) for event in events]
        record, recorded = self.store.write_execution(
            execution_id=None,
            type_name=type_name,
            name=name or None,
            state=_state(execution.get("last_known_state")),
            properties=properties,
            custom_properties=dict(execution.get("custom_properties") or {}),
            stage=context,
            artifacts=drafts,
            times_ms=_times(execution),
        )
        logger.debug("imported execution %s as %s", uuid or name, record.id)
        for event, artifact, (_, event_type) in zip(events, recorded, drafts, strict=True):
            when = _event_time(event, execution)
            if when is not None:
                self.event_times.append((record.id, artifact.id, event_type, when))
        if uuid:
            self.known_uuids.add(uuid)
        self.known_names.add((type_name, record.name))
        self.added += 1
        self.events += len(drafts)

    def _draft(self, artifact: Mapping[str, Any]) -> ArtifactDraft:
        kind = _kind(artifact["type"])
        uri = str(artifact.get("uri") or "")
        return ArtifactDraft(
            kind,
            self.artifacts.name_for(kind, uri, str(artifact["name"])),
            uri,
            dict(artifact.get("properties") or {}),
            dict(artifact.get("custom_properties") or {}),
            _times(artifact),
        )

    def finish(self) -> ImportReport:
        restore_times(self.store, contexts=self.context_times, events=_first_per_event(self.event_times))
        return ImportReport(
            pipelines=len(self.pipelines),
            stages=self.stages,
            executions_added=self.added,
            executions_skipped=self.skipped,
            artifacts_added=self.artifacts.added,
            artifacts_reused=self.artifacts.reused,
            events=self.events,
        )


def _times(node: Mapping[str, Any]) -> tuple[int, int] | None:
    """The recorded creation and update times of a node, when the document has them."""
    created = node.get("create_time_since_epoch")
    if not isinstance(created, int) or isinstance(created, bool) or created <= 0:
        return None
    updated = node.get("last_update_time_since_epoch")
    if isinstance(updated, int) and not isinstance(updated, bool) and updated >= created:
        return created, updated
    return created, created


def _new_values(context: ContextRecord | None, node: Mapping[str, Any]) -> dict[str, Any] | None:
    """The custom properties a context is to get, or None when it holds them all already
    (writing them again would stamp it as updated by an import that changed nothing)."""
    given = dict(node.get("custom_properties") or {})
    if not given:
        return None
    if context is not None and all(context.custom_properties.get(k) == v for k, v in given.items()):
        return None
    return given


def _event_time(event: Mapping[str, Any], execution: Mapping[str, Any]) -> int | None:
    """When an event happened: its recorded time, else its artifact's creation time kept
    within its execution's lifetime; None when the document tells nothing."""
    given = event.get("milliseconds_since_epoch")
    if isinstance(given, int) and not isinstance(given, bool) and given > 0:
        return given
    lifetime = _times(execution)
    artifact = event.get("artifact")
    created = _times(artifact) if isinstance(artifact, Mapping) else None
    if lifetime is None:
        return None if created is None else created[0]
    if created is None:
        return lifetime[0]
    return min(max(created[0], lifetime[0]), lifetime[1])


def _first_per_event(
    events: Sequence[tuple[int, int, EventType, int]],
) -> list[tuple[int, int, EventType, int]]:
    """One time per stored event: the same artifact logged twice in one direction is one event."""
    first: dict[tuple[int, int, EventType], int] = {}
    for execution_id, artifact_id, event_type, when in events:
        first.setdefault((execution_id, artifact_id, event_type), when)
    return [(e, a, t, ms) for (e, a, t), ms in first.items()]


def summarize(document: Mapping[str, Any]) -> dict[str, int]:
    """Counts of pipelines, stages, executions, events and distinct artifacts in a document."""
    pipelines = document.get("Pipeline", [])
    stages = [s for p in pipelines for s in p.get("stages", [])]
    executions = [e for s in stages for e in s.get("executions", [])]
    events: Sequence[Mapping[str, Any]] = [ev for e in executions for ev in e.get("events", [])]
    return {
        "pipelines": len(pipelines),
        "stages": len(stages),
        "executions": len(executions),
        "events": len(events),
        "artifacts": len({(ev["artifact"].get("type"), ev["artifact"].get("name")) for ev in events}),
    }
