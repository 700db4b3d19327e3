"""The metadata store: ML Metadata behind typed value objects (the only module importing ml_metadata).

Writes that belong together go through one ``put_execution`` call, which ML Metadata
runs as one transaction: an execution's state, its artifacts, their events and their
attribution to the stage context are recorded together or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from cmf_orchestrate._storeurl import StoreLocation
from cmf_orchestrate.errors import StoreError, StoreUnavailableError
from cmf_orchestrate.facts import FACT_PREFIX
from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    EventRecord,
    EventType,
    ExecutionRecord,
    ExecutionSnapshot,
    ExecutionState,
    Value,
)

__all__ = [
    "ARTIFACT_TYPE_PROPERTIES",
    "EXECUTION_TYPE_PROPERTIES",
    "PIPELINE_CONTEXT_TYPE",
    "STAGE_CONTEXT_TYPE",
    "ArtifactDraft",
    "MetadataStore",
    "fact_filter",
    "open_store",
    "quote",
    "to_value",
]

logger = logging.getLogger(__name__)

PIPELINE_CONTEXT_TYPE = "Parent_Context"
STAGE_CONTEXT_TYPE = "Pipeline_Stage"

_S = pb.STRING
_I = pb.INT
EXECUTION_TYPE_PROPERTIES: dict[str, int] = {
    "Execution_uuid": _S,
    "Context_Type": _S,
    "Context_ID": _I,
    "Execution": _S,
    "Pipeline_Type": _S,
    "Pipeline_id": _I,
    "Git_Repo": _S,
    "Git_Start_Commit": _S,
    "Git_End_Commit": _S,
}
ARTIFACT_TYPE_PROPERTIES: dict[ArtifactKind, dict[str, int]] = {
    ArtifactKind.DATASET: {"git_repo": _S, "Commit": _S, "url": _S},
    ArtifactKind.MODEL: {"model_framework": _S, "model_type": _S, "model_name": _S, "Commit": _S, "url": _S},
    ArtifactKind.METRICS: {"metrics_name": _S},
    ArtifactKind.STEP_METRICS: {"Commit": _S, "url": _S},
    ArtifactKind.DATASLICE: {"git_repo": _S, "Commit": _S, "url": _S},
    ArtifactKind.ENVIRONMENT: {"git_repo": _S, "Commit": _S, "url": _S},
}
_STORE_CONTEXT_TYPE = "cmf_orchestrate.Store"
_CONTEXT_TYPE_PROPERTIES: dict[str, dict[str, int]] = {
    PIPELINE_CONTEXT_TYPE: {"Pipeline": _S},
    STAGE_CONTEXT_TYPE: {"Pipeline_Stage": _S},
    _STORE_CONTEXT_TYPE: {},
}

_STATE_TO_PB = {
    ExecutionState.UNKNOWN: pb.Execution.UNKNOWN,
    ExecutionState.NEW: pb.Execution.NEW,
    ExecutionState.RUNNING: pb.Execution.RUNNING,
    ExecutionState.COMPLETE: pb.Execution.COMPLETE,
    ExecutionState.FAILED: pb.Execution.FAILED,
    ExecutionState.CACHED: pb.Execution.CACHED,
    ExecutionState.CANCELED: pb.Execution.CANCELED,
}
_PB_TO_STATE = {v: k for k, v in _STATE_TO_PB.items()}
_EVENT_TO_PB = {
    EventType.INPUT: pb.Event.INPUT,
    EventType.OUTPUT: pb.Event.OUTPUT,
    EventType.DECLARED_OUTPUT: pb.Event.DECLARED_OUTPUT,
}
_PB_TO_EVENT = {
    pb.Event.INPUT: EventType.INPUT,
    pb.Event.OUTPUT: EventType.OUTPUT,
    pb.Event.DECLARED_INPUT: EventType.INPUT,
    pb.Event.DECLARED_OUTPUT: EventType.DECLARED_OUTPUT,
}

_RETRIES = 8
_CONNECT_ATTEMPTS = 6
_UNREACHABLE = (
    "connection pointer is NULL",
    "mysql_real_connect failed",
    "Connection refused",
    "ECONNREFUSED",
    "unable to open database file",
)
T = TypeVar("T")


def to_value(value: Any) -> pb.Value:
    """An MLMD value as CMF writes it: int, float, else a string (JSON for containers)."""
    if isinstance(value, bool):
        return pb.Value(int_value=int(value))
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, float):
        return pb.Value(double_value=value)
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, (dict, list, tuple)):
        try:
            return pb.Value(string_value=json.dumps(value, sort_keys=True, default=str))
        except (TypeError, ValueError):
            pass
    return pb.Value(string_value=str(value))


def _from_value(value: pb.Value) -> Value:
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return int(value.int_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "string_value":
        return str(value.string_value)
    if kind == "bool_value":
        return int(value.bool_value)
    if kind is None:
        return ""
    return str(getattr(value, kind))


def _props(message: Any) -> dict[str, Value]:
    return {k: _from_value(v) for k, v in message.items()}


@dataclass(frozen=True)
class ArtifactDraft:
    """An artifact to record: looked up by (kind, name) and created when absent."""

    kind: ArtifactKind
    name: str
    uri: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    custom_properties: Mapping[str, Any] = field(default_factory=dict)


class MetadataStore:
    """Typed access to one ML Metadata store.

    One instance serves a whole process: each thread gets its own MLMD connection,
    since an MLMD connection is not shared between threads.

    Raises (on any method):
        StoreUnavailableError: The store cannot be reached or opened.
        StoreError: ML Metadata refused the operation.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._local = threading.local()
        self._lock = threading.Lock()
        self._type_ids: dict[tuple[str, str], int] = {}
        self._type_names: dict[int, str] = {}
        self._contexts: dict[tuple[str, str], ContextRecord] = {}
        self._linked: set[tuple[int, int]] = set()
        self._context_protos: dict[int, pb.Context] = {}
        self._attributed: set[tuple[int, int]] = set()
        self._mlmd()  # fail early on an unreachable store

    # -- connection ---------------------------------------------------------------------

    @property
    def identity(self) -> str:
        """Stable, credential-free name of this store."""
        return self.location.identity

    def _config(self) -> pb.ConnectionConfig:
        loc = self.location
        if loc.backend == "sqlite":
            assert loc.path is not None
            loc.path.parent.mkdir(parents=True, exist_ok=True)
            _ensure_wal(loc.path)
            return pb.ConnectionConfig(
                sqlite=pb.SqliteMetadataSourceConfig(
                    filename_uri=str(loc.path),
                    connection_mode=pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE,
                )
            )
        if loc.backend == "postgresql":
            return pb.ConnectionConfig(
                postgresql=pb.PostgreSQLDatabaseConfig(
                    host=loc.host, port=str(loc.port), dbname=loc.database, user=loc.user, password=loc.password
                )
            )
        return pb.ConnectionConfig(
            mysql=pb.MySQLDatabaseConfig(
                host=loc.host, port=loc.port, database=loc.database, user=loc.user, password=loc.password
            )
        )

    def _mlmd(self) -> metadata_store.MetadataStore:
        conn = getattr(self._local, "conn", None)
        # A connection inherited through fork() belongs to the parent: never share it.
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    def _connect(self) -> metadata_store.MetadataStore:
        # Workers starting together on a new database race to create MLMD's schema; the
        # losers fail on a duplicate table or type and succeed once the winner is done.
        error = ""
        for attempt in range(_CONNECT_ATTEMPTS):
            try:
                return metadata_store.MetadataStore(self._config(), enable_upgrade_migration=True)
            except Exception as exc:  # noqa: BLE001 - MLMD raises several types here, incl. RuntimeError
                error = self.location.scrub(str(exc))
                if any(marker in error for marker in _UNREACHABLE):
                    break
                time.sleep(0.1 * (attempt + 1))
        raise StoreUnavailableError(f"cannot open the metadata store {self.location.redacted}: {error}")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except mlmd_errors.NotFoundError:
            raise
        except mlmd_errors.AlreadyExistsError:
            raise
        except mlmd_errors.UnavailableError as exc:
            self._local.conn = None
            raise StoreUnavailableError(
                f"{what}: the metadata store {self.location.redacted} is unavailable: {self.location.scrub(str(exc))}"
            ) from None
        except mlmd_errors.StatusError as exc:
            raise StoreError(f"{what} failed on {self.location.redacted}: {self.location.scrub(str(exc))}") from None

    def _retrying(self, what: str, fn: Any) -> Any:
        # Concurrent writers may create the same type, context or artifact at once; the
        # loser of such a race gets AlreadyExists and simply looks again.
        for attempt in range(_RETRIES):
            try:
                return fn()
            except mlmd_errors.AlreadyExistsError:
                if attempt == _RETRIES - 1:
                    raise StoreError(
                        f"{what}: lost a write race {_RETRIES} times on {self.location.redacted}"
                    ) from None
                time.sleep(0.01 * (attempt + 1))
            except mlmd_errors.AbortedError:
                time.sleep(0.05 * (attempt + 1))
        raise StoreError(f"{what}: aborted {_RETRIES} times on {self.location.redacted}")

    # -- types ----------------------------------------------------------------------------

    def _type_id(self, kind: str, name: str, properties: Mapping[str, int]) -> int:
        key = (kind, name)
        cached = self._type_ids.get(key)
        if cached is not None:
            return cached
        conn = self._mlmd()
        cls = {"execution": pb.ExecutionType, "artifact": pb.ArtifactType, "context": pb.ContextType}[kind]
        put = {
            "execution": conn.put_execution_type,
            "artifact": conn.put_artifact_type,
            "context": conn.put_context_type,
        }[kind]
        message = cls(name=name, properties=dict(properties))

        def create() -> int:
            return int(
                self._call(f"registering {kind} type {name!r}", put, message, can_add_fields=True, can_omit_fields=True)
            )

        type_id = int(self._retrying(f"registering {kind} type {name!r}", create))
        with self._lock:
            self._type_ids[key] = type_id
            self._type_names[type_id] = name
        return type_id

    def execution_type_id(self, name: str) -> int:
        """Id of the CMF execution type ``name`` (registered when absent)."""
        return self._type_id("execution", name, EXECUTION_TYPE_PROPERTIES)

    def artifact_type_id(self, kind: ArtifactKind) -> int:
        """Id of a CMF artifact type (registered when absent)."""
        return self._type_id("artifact", kind.value, ARTIFACT_TYPE_PROPERTIES[kind])

    def _type_name(self, type_id: int, getter: str) -> str:
        name = self._type_names.get(type_id)
        if name is None:
            types = self._call("reading types", getattr(self._mlmd(), getter), [type_id])
            name = types[0].name if types else f"type-{type_id}"
            with self._lock:
                self._type_names[type_id] = name
        return name

    # -- contexts -------------------------------------------------------------------------

    def _context_record(self, context: pb.Context, type_name: str | None = None) -> ContextRecord:
        return ContextRecord(
            id=context.id,
            name=context.name,
            type=type_name or context.type or self._type_name(context.type_id, "get_context_types_by_id"),
            properties=_props(context.properties),
            custom_properties=_props(context.custom_properties),
            create_time_ms=context.create_time_since_epoch,
            update_time_ms=context.last_update_time_since_epoch,
        )

    def _get_or_create_context(
        self, type_name: str, name: str, properties: Mapping[str, Any], custom: Mapping[str, Any] | None
    ) -> ContextRecord:
        key = (type_name, name)
        cached = self._contexts.get(key)
        if cached is not None and not custom:
            return cached
        type_id = self._type_id("context", type_name, _CONTEXT_TYPE_PROPERTIES[type_name])
        conn = self._mlmd()

        def get_or_put() -> ContextRecord:
            found = self._call("reading a context", conn.get_context_by_type_and_name, type_name, name)
            if found is None:
                found = pb.Context(type_id=type_id, name=name)
                for k, v in properties.items():
                    found.properties[k].CopyFrom(to_value(v))
            elif not custom:
                return self._context_record(found, type_name)
            for k, v in (custom or {}).items():
                found.custom_properties[k].CopyFrom(to_value(v))
            [context_id] = self._call(f"recording context {name!r}", conn.put_contexts, [found])
            found.id = context_id
            with self._lock:
                self._context_protos.pop(context_id, None)
            return self._context_record(found, type_name)

        record: ContextRecord = self._retrying(f"recording context {name!r}", get_or_put)
        with self._lock:
            self._contexts[key] = record
        return record

    def _context_proto(self, context_id: int) -> pb.Context:
        # put_execution updates a context given with an id when it differs from the stored
        # one; handing back the stored proto unchanged makes that a no-op.
        cached = self._context_protos.get(context_id)
        if cached is None:
            found = self._call("reading a context", self._mlmd().get_contexts_by_id, [context_id])
            if not found:
                raise StoreError(f"context {context_id} does not exist in {self.location.redacted}")
            cached = found[0]
            with self._lock:
                self._context_protos[context_id] = cached
        copy = pb.Context()
        copy.CopyFrom(cached)
        return copy

    def pipeline_context(self, name: str, custom_properties: Mapping[str, Any] | None = None) -> ContextRecord:
        """The ``Parent_Context`` of a pipeline, created when absent."""
        return self._get_or_create_context(PIPELINE_CONTEXT_TYPE, name, {"Pipeline": name}, custom_properties)

    def stage_context(
        self, pipeline: ContextRecord, stage: str, custom_properties: Mapping[str, Any] | None = None
    ) -> ContextRecord:
        """The ``Pipeline_Stage`` context ``<pipeline>/<stage>``, a child of the pipeline."""
        full = f"{pipeline.name}/{stage}"
        record = self._get_or_create_context(STAGE_CONTEXT_TYPE, full, {"Pipeline_Stage": full}, custom_properties)
        link = (record.id, pipeline.id)
        if link not in self._linked:
            conn = self._mlmd()
            with contextlib.suppress(mlmd_errors.AlreadyExistsError):
                self._call(
                    "linking a stage to its pipeline",
                    conn.put_parent_contexts,
                    [pb.ParentContext(child_id=record.id, parent_id=pipeline.id)],
                )
            with self._lock:
                self._linked.add(link)
        return record

    def contexts_of_type(self, type_name: str) -> list[ContextRecord]:
        """Every context of a type, oldest first."""
        found = self._call("listing contexts", self._mlmd().get_contexts_by_type, type_name)
        return [self._context_record(c, type_name) for c in found]

    def context(self, type_name: str, name: str) -> ContextRecord | None:
        """The context of a type by name, or None."""
        found = self._call("reading a context", self._mlmd().get_context_by_type_and_name, type_name, name)
        return None if found is None else self._context_record(found, type_name)

    def contexts_by_id(self, ids: Iterable[int]) -> list[ContextRecord]:
        """Contexts by id."""
        ids = list(ids)
        if not ids:
            return []
        return [self._context_record(c) for c in self._call("reading contexts", self._mlmd().get_contexts_by_id, ids)]

    def children(self, context_id: int) -> list[ContextRecord]:
        """Child contexts (the stages of a pipeline)."""
        found = self._call("reading child contexts", self._mlmd().get_children_contexts_by_context, context_id)
        return [self._context_record(c) for c in found]

    def parents(self, context_id: int) -> list[ContextRecord]:
        """Parent contexts (the pipeline of a stage)."""
        found = self._call("reading parent contexts", self._mlmd().get_parent_contexts_by_context, context_id)
        return [self._context_record(c) for c in found]

    # -- executions -------------------------------------------------------------------------

    def _execution_record(self, execution: pb.Execution) -> ExecutionRecord:
        return ExecutionRecord(
            id=execution.id,
            name=execution.name,
            type=execution.type or self._type_name(execution.type_id, "get_execution_types_by_id"),
            state=_PB_TO_STATE.get(execution.last_known_state, ExecutionState.UNKNOWN),
            properties=_props(execution.properties),
            custom_properties=_props(execution.custom_properties),
            create_time_ms=execution.create_time_since_epoch,
            update_time_ms=execution.last_update_time_since_epoch,
        )

    def _artifact_record(self, artifact: pb.Artifact) -> ArtifactRecord:
        return ArtifactRecord(
            id=artifact.id,
            kind=artifact.type or self._type_name(artifact.type_id, "get_artifact_types_by_id"),
            name=artifact.name,
            uri=artifact.uri,
            properties=_props(artifact.properties),
            custom_properties=_props(artifact.custom_properties),
            create_time_ms=artifact.create_time_since_epoch,
        )

    def _ensure_artifact(self, draft: ArtifactDraft) -> pb.Artifact:
        """The stored artifact of a draft, created in its own transaction when absent.

        Artifacts are content identities shared by concurrent writers; creating them
        apart from the execution keeps duplicate-key races out of the execution's
        transaction (PostgreSQL aborts a whole transaction on any failed statement).
        """
        type_id = self.artifact_type_id(draft.kind)
        conn = self._mlmd()
        found = self._call("reading an artifact", conn.get_artifact_by_type_and_name, draft.kind.value, draft.name)
        if found is None:
            artifact = pb.Artifact(type_id=type_id, name=draft.name, uri=draft.uri, state=pb.Artifact.LIVE)
            for k, v in draft.properties.items():
                artifact.properties[k].CopyFrom(to_value(v))
            for k, v in draft.custom_properties.items():
                artifact.custom_properties[k].CopyFrom(to_value(v))
            try:
                [artifact.id] = self._call("recording an artifact", conn.put_artifacts, [artifact])
                return artifact
            except mlmd_errors.AlreadyExistsError:
                found = self._call(
                    "reading an artifact", conn.get_artifact_by_type_and_name, draft.kind.value, draft.name
                )
                if found is None:
                    raise StoreError(f"artifact {draft.name!r} vanished while being recorded") from None
        changed = False
        for k, v in draft.custom_properties.items():
            value = to_value(v)
            if found.custom_properties[k] != value:
                found.custom_properties[k].CopyFrom(value)
                changed = True
        if changed:
            self._call("updating an artifact", conn.put_artifacts, [found])
        return found

    def _ensure_attributed(self, context_id: int, artifact_ids: Iterable[int]) -> None:
        missing = [a for a in artifact_ids if (context_id, a) not in self._attributed]
        if not missing:
            return
        conn = self._mlmd()
        for artifact_id in missing:
            with contextlib.suppress(mlmd_errors.AlreadyExistsError):
                self._call(
                    "attributing an artifact",
                    conn.put_attributions_and_associations,
                    [pb.Attribution(context_id=context_id, artifact_id=artifact_id)],
                    [],
                )
            with self._lock:
                self._attributed.add((context_id, artifact_id))

    def write_execution(
        self,
        *,
        execution_id: int | None,
        type_name: str,
        name: str | None = None,
        state: ExecutionState,
        properties: Mapping[str, Any] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
        stage: ContextRecord,
        artifacts: Sequence[tuple[ArtifactDraft, EventType]] = (),
    ) -> tuple[ExecutionRecord, list[ArtifactRecord]]:
        """Create or update an execution together with artifacts and their events, atomically.

        Args:
            execution_id: The execution to update, or None to create one.
            type_name: The execution type (registered when absent).
            name: Unique execution name (for a new execution).
            state: The execution state to record.
            properties: CMF type properties to set.
            custom_properties: Custom properties to set (merged over those recorded).
            stage: The stage context the execution and artifacts belong to.
            artifacts: Artifacts to record, each with its event type.

        Returns:
            The execution as recorded and the artifacts in the order given.

        Raises:
            StoreError: ML Metadata refused the write; nothing of it was recorded.
        """
        type_id = self.execution_type_id(type_name)
        conn = self._mlmd()

        def write() -> tuple[ExecutionRecord, list[ArtifactRecord]]:
            if execution_id is None:
                execution = pb.Execution(type_id=type_id, name=name or "")
            else:
                found = self._call("reading an execution", conn.get_executions_by_id, [execution_id])
                if not found:
                    raise StoreError(f"execution {execution_id} does not exist in {self.location.redacted}")
                execution = found[0]
            execution.last_known_state = _STATE_TO_PB[state]
            for k, v in (properties or {}).items():
                execution.properties[k].CopyFrom(to_value(v))
            for k, v in (custom_properties or {}).items():
                execution.custom_properties[k].CopyFrom(to_value(v))
            linked: set[tuple[int, int]] = set()
            if execution_id is not None and artifacts:
                events = self._call("reading events", conn.get_events_by_execution_ids, [execution_id])
                linked = {(e.artifact_id, e.type) for e in events}
            resolved = [self._ensure_artifact(draft) for draft, _ in artifacts]
            self._ensure_attributed(stage.id, [a.id for a in resolved])
            pairs: list[tuple[pb.Artifact, pb.Event | None]] = []
            for artifact, (_, event_type) in zip(resolved, artifacts, strict=True):
                kind = _EVENT_TO_PB[event_type]
                # Logging the same artifact twice in one direction is one event, not an error.
                event = None if artifact.id and (artifact.id, kind) in linked else pb.Event(type=kind)
                pairs.append((artifact, event))
            context = self._context_proto(stage.id)
            exec_id, artifact_ids, _ = self._call(
                "recording an execution",
                conn.put_execution,
                execution,
                pairs,
                [context],
                reuse_context_if_already_exist=True,
            )
            execution.id = exec_id
            records = []
            for (artifact, _), artifact_id in zip(pairs, artifact_ids, strict=True):
                artifact.id = artifact_id
                records.append(self._artifact_record(artifact))
            return self._execution_record(execution), records

        result: tuple[ExecutionRecord, list[ArtifactRecord]] = self._retrying("recording an execution", write)
        return result

    def executions_by_id(self, ids: Iterable[int]) -> list[ExecutionRecord]:
        """Executions by id (missing ids are left out)."""
        ids = list(ids)
        if not ids:
            return []
        found = self._call("reading executions", self._mlmd().get_executions_by_id, ids)
        return [self._execution_record(e) for e in found]

    def execution(self, execution_id: int) -> ExecutionRecord | None:
        """One execution by id, or None."""
        found = self.executions_by_id([execution_id])
        return found[0] if found else None

    def executions_in_context(self, context_id: int, filter_query: str | None = None) -> list[ExecutionRecord]:
        """Executions associated to a context, oldest first, optionally filtered (MLMD filter syntax)."""
        options = metadata_store.ListOptions(filter_query=filter_query) if filter_query else None
        found = self._call(
            "reading executions", self._mlmd().get_executions_by_context, context_id, list_options=options
        )
        return [self._execution_record(e) for e in found]

    def executions(
        self, filter_query: str | None = None, *, limit: int | None = None, newest_first: bool = False
    ) -> list[ExecutionRecord]:
        """Executions, optionally filtered (MLMD filter syntax), ordered by creation time.

        Args:
            filter_query: An MLMD filter, e.g. ``last_known_state = RUNNING``.
            limit: At most this many (applied by the store, not in Python).
            newest_first: Newest first instead of oldest first.
        """
        options = metadata_store.ListOptions(
            filter_query=filter_query or "",
            limit=limit,
            order_by=metadata_store.OrderByField.CREATE_TIME,
            is_asc=not newest_first,
        )
        found = self._call("reading executions", self._mlmd().get_executions, list_options=options)
        return [self._execution_record(e) for e in found]

    def execution_ids(self, filter_query: str | None = None) -> list[int]:
        """Ids of every execution (optionally filtered), ascending."""
        return sorted(e.id for e in self.executions(filter_query))

    def unsynced_execution_ids(self) -> list[int]:
        """Executions whose graph mirror is pending (``cmf.graph_synced`` = 0), ascending."""
        return self.execution_ids(fact_filter("graph_synced", 0))

    def set_graph_synced(self, execution_ids: Sequence[int], synced: bool) -> None:
        """Set ``cmf.graph_synced`` on executions, in one write."""
        ids = list(execution_ids)
        if not ids:
            return
        conn = self._mlmd()
        found = self._call("reading executions", conn.get_executions_by_id, ids)
        for execution in found:
            execution.custom_properties["cmf.graph_synced"].CopyFrom(to_value(1 if synced else 0))
        self._call("updating executions", conn.put_executions, list(found))

    @property
    def store_id(self) -> str:
        """Stable identity of this store, kept in the store itself (survives a move or another URL)."""
        cached = getattr(self, "_store_id", None)
        if cached is not None:
            return str(cached)
        record = self._get_or_create_context(_STORE_CONTEXT_TYPE, "store", {}, None)
        value = record.custom_properties.get("store_id")
        if not value:
            candidate = str(uuid.uuid4())
            conn = self._mlmd()
            [context] = self._call("reading the store identity", conn.get_contexts_by_id, [record.id])
            if not context.custom_properties["store_id"].string_value:
                # Two first writers may race here; the later put wins and both re-read it.
                context.custom_properties["store_id"].CopyFrom(to_value(candidate))
                self._call("recording the store identity", conn.put_contexts, [context])
            [context] = self._call("reading the store identity", conn.get_contexts_by_id, [record.id])
            value = context.custom_properties["store_id"].string_value
        self._store_id = str(value)
        return str(value)

    def update_execution(
        self,
        execution_id: int,
        *,
        state: ExecutionState | None = None,
        custom_properties: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> ExecutionRecord:
        """Change an execution's state and properties (no artifacts).

        Raises:
            StoreError: The execution does not exist or the write failed.
        """
        current = self.execution(execution_id)
        if current is None:
            raise StoreError(f"execution {execution_id} does not exist in {self.location.redacted}")
        conn = self._mlmd()
        [execution] = self._call("reading an execution", conn.get_executions_by_id, [execution_id])
        if state is not None:
            execution.last_known_state = _STATE_TO_PB[state]
        for k, v in (properties or {}).items():
            execution.properties[k].CopyFrom(to_value(v))
        for k, v in (custom_properties or {}).items():
            execution.custom_properties[k].CopyFrom(to_value(v))
        self._call("updating an execution", conn.put_executions, [execution])
        return self._execution_record(execution)

    # -- artifacts and events ---------------------------------------------------------------

    def artifacts_by_id(self, ids: Iterable[int]) -> list[ArtifactRecord]:
        """Artifacts by id (missing ids are left out)."""
        ids = list(ids)
        if not ids:
            return []
        found = self._call("reading artifacts", self._mlmd().get_artifacts_by_id, ids)
        return [self._artifact_record(a) for a in found]

    def artifacts_by_uri(self, uri: str) -> list[ArtifactRecord]:
        """Artifacts whose uri (md5) is ``uri``."""
        found = self._call("reading artifacts", self._mlmd().get_artifacts_by_uri, uri)
        return [self._artifact_record(a) for a in found]

    def artifact_by_name(self, kind: ArtifactKind | str, name: str) -> ArtifactRecord | None:
        """An artifact by type and name, or None."""
        type_name = kind.value if isinstance(kind, ArtifactKind) else kind
        found = self._call("reading an artifact", self._mlmd().get_artifact_by_type_and_name, type_name, name)
        return None if found is None else self._artifact_record(found)

    def artifacts(self, filter_query: str | None = None) -> list[ArtifactRecord]:
        """Every artifact, optionally filtered (MLMD filter syntax)."""
        options = metadata_store.ListOptions(filter_query=filter_query) if filter_query else None
        found = self._call("reading artifacts", self._mlmd().get_artifacts, list_options=options)
        return [self._artifact_record(a) for a in found]

    def artifacts_of_type(self, kind: ArtifactKind | str) -> list[ArtifactRecord]:
        """Every artifact of a type."""
        type_name = kind.value if isinstance(kind, ArtifactKind) else kind
        found = self._call("reading artifacts", self._mlmd().get_artifacts_by_type, type_name)
        return [self._artifact_record(a) for a in found]

    def artifacts_in_context(self, context_id: int) -> list[ArtifactRecord]:
        """Artifacts attributed to a context."""
        found = self._call("reading artifacts", self._mlmd().get_artifacts_by_context, context_id)
        return [self._artifact_record(a) for a in found]

    def events_of_executions(self, ids: Iterable[int]) -> list[EventRecord]:
        """Events of the given executions."""
        ids = list(ids)
        if not ids:
            return []
        found = self._call("reading events", self._mlmd().get_events_by_execution_ids, ids)
        return [_event_record(e) for e in found if e.type in _PB_TO_EVENT]

    def events_of_artifacts(self, ids: Iterable[int]) -> list[EventRecord]:
        """Events of the given artifacts."""
        ids = list(ids)
        if not ids:
            return []
        found = self._call("reading events", self._mlmd().get_events_by_artifact_ids, ids)
        return [_event_record(e) for e in found if e.type in _PB_TO_EVENT]

    def contexts_of_execution(self, execution_id: int) -> list[ContextRecord]:
        """Contexts an execution is associated to."""
        found = self._call("reading contexts", self._mlmd().get_contexts_by_execution, execution_id)
        return [self._context_record(c) for c in found]

    def execution_snapshots(self, execution_ids: Sequence[int], chunk: int = 500) -> Iterable[ExecutionSnapshot]:
        """Snapshots of many executions, read in bulk per chunk of ids (missing ids are left out)."""
        contexts: dict[int, ContextRecord] = {}
        # An artifact's producers are written once; a data set read by every run would
        # otherwise bring all its events back with every chunk.
        producers: dict[int, set[int]] = {}
        for ids in _chunks(list(execution_ids), chunk):
            executions = self.executions_by_id(ids)
            events = self.events_of_executions(ids)
            artifacts = {a.id: a for a in self.artifacts_by_id(_dedupe(e.artifact_id for e in events))}
            input_ids = _dedupe(e.artifact_id for e in events if e.type is EventType.INPUT)
            unknown = [a for a in input_ids if a not in producers]
            for artifact_id in unknown:
                producers[artifact_id] = set()
            for event in self.events_of_artifacts(unknown):
                if event.type is EventType.OUTPUT:
                    producers[event.artifact_id].add(event.execution_id)
            wanted = [i for e in executions for i in (e.stage_id, e.pipeline_id) if i not in contexts]
            for context in self.contexts_by_id(_dedupe(wanted)):
                contexts[context.id] = context
            by_execution: dict[int, list[EventRecord]] = {}
            for event in events:
                by_execution.setdefault(event.execution_id, []).append(event)
            for execution in executions:
                mine = by_execution.get(execution.id, [])
                inputs = tuple(
                    artifacts[e.artifact_id] for e in mine if e.type is EventType.INPUT and e.artifact_id in artifacts
                )
                outputs = tuple(
                    artifacts[e.artifact_id] for e in mine if e.type is EventType.OUTPUT and e.artifact_id in artifacts
                )
                yield ExecutionSnapshot(
                    pipeline=contexts.get(execution.pipeline_id)
                    or ContextRecord(execution.pipeline_id, execution.pipeline, PIPELINE_CONTEXT_TYPE),
                    stage=contexts.get(execution.stage_id) or ContextRecord(execution.stage_id, "", STAGE_CONTEXT_TYPE),
                    execution=execution,
                    inputs=inputs,
                    outputs=outputs,
                    producers={
                        a.id: tuple(sorted(producers[a.id] - {execution.id}))
                        for a in inputs
                        if producers.get(a.id, set()) - {execution.id}
                    },
                )

    def execution_snapshot(self, execution_id: int) -> ExecutionSnapshot:
        """Same as :meth:`snapshot`."""
        return self.snapshot(execution_id)

    def snapshot(self, execution_id: int) -> ExecutionSnapshot:
        """An execution with its pipeline, stage, input and output artifacts and their producers.

        Raises:
            StoreError: The execution does not exist.
        """
        execution = self.execution(execution_id)
        if execution is None:
            raise StoreError(f"execution {execution_id} does not exist in {self.location.redacted}")
        contexts = self.contexts_by_id([execution.stage_id, execution.pipeline_id])
        by_id = {c.id: c for c in contexts}
        stage = by_id.get(execution.stage_id) or ContextRecord(execution.stage_id, "", STAGE_CONTEXT_TYPE)
        pipeline = by_id.get(execution.pipeline_id) or ContextRecord(
            execution.pipeline_id, execution.pipeline, PIPELINE_CONTEXT_TYPE
        )
        events = self.events_of_executions([execution_id])
        artifacts = {a.id: a for a in self.artifacts_by_id({e.artifact_id for e in events})}
        inputs = tuple(
            artifacts[e.artifact_id] for e in events if e.type is EventType.INPUT and e.artifact_id in artifacts
        )
        outputs = tuple(
            artifacts[e.artifact_id] for e in events if e.type is EventType.OUTPUT and e.artifact_id in artifacts
        )
        producers: dict[int, list[int]] = {}
        for event in self.events_of_artifacts([a.id for a in inputs]):
            if event.type is EventType.OUTPUT and event.execution_id != execution_id:
                producers.setdefault(event.artifact_id, []).append(event.execution_id)
        return ExecutionSnapshot(
            pipeline=pipeline,
            stage=stage,
            execution=execution,
            inputs=inputs,
            outputs=outputs,
            producers={k: tuple(sorted(set(v))) for k, v in producers.items()},
        )


def _chunks(values: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _event_record(event: pb.Event) -> EventRecord:
    return EventRecord(
        execution_id=event.execution_id,
        artifact_id=event.artifact_id,
        type=_PB_TO_EVENT[event.type],
        time_ms=event.milliseconds_since_epoch,
    )


_stores: dict[tuple[str, str], MetadataStore] = {}
_stores_lock = threading.Lock()


def quote(text: str) -> str:
    """``text`` as the inside of a quoted literal of an MLMD filter query."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def fact_filter(fact: str, value: str | int) -> str:
    """The MLMD filter matching executions whose orchestration fact ``cmf.<fact>`` is ``value``."""
    if isinstance(value, int):
        return f"custom_properties.`{FACT_PREFIX}{fact}`.int_value = {value}"
    return f"custom_properties.`{FACT_PREFIX}{fact}`.string_value = '{quote(value)}'"


def _ensure_wal(path: Path) -> None:
    """Put a SQLite store in write-ahead-log mode (a property of the file, set once).

    WAL lets readers run beside a writer and costs one sync per transaction instead of
    several, which makes each recorded step several times cheaper. The switch runs in a
    child process: this process's ML Metadata holds its own SQLite library, and two SQLite
    libraries in one process must never open the same file.
    """
    try:
        with path.open("rb") as fh:
            header = fh.read(20)
    except FileNotFoundError:
        header = b""
    if len(header) == 20 and header[:16] == b"SQLite format 3\x00" and header[18] == 2:
        return
    script = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], timeout=30)\n"
        "c.execute('PRAGMA journal_mode=WAL')\n"
        "c.close()\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script; the path is an argument, not shell
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        logger.warning("could not switch %s to WAL mode: %s", path, result.stderr.strip()[-500:])


def _dedupe(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


def open_store(location: StoreLocation) -> MetadataStore:
    """The process-wide :class:`MetadataStore` of a location (opened on first use).

    Raises:
        StoreUnavailableError: The store cannot be reached or opened.
    """
    key = (location.identity, location.user)
    with _stores_lock:
        store = _stores.get(key)
        if store is None or store.location != location:
            store = _stores[key] = MetadataStore(location)
        return store
