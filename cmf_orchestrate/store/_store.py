"""The metadata store: CMF's ML Metadata schema read and written with SQLAlchemy Core.

Writes that belong together are one transaction: an execution with its state,
properties, association, artifacts, attributions and events is recorded whole or not
at all. Shared rows (types, contexts, artifacts, attributions) are deduplicated by the
backend's own upsert, so concurrent writers never fail on one another. Every value is a
bound parameter; reads page by id and batch their lookups.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from sqlalchemy import Connection, Select, Table, and_, bindparam, exists, func, literal, select, tuple_, update
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql.elements import ColumnElement

from cmf_orchestrate._storeurl import StoreLocation
from cmf_orchestrate.errors import StoreError
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
from cmf_orchestrate.store import _schema as s
from cmf_orchestrate.store._bootstrap import ensure_schema
from cmf_orchestrate.store._engine import Database, Prepared, RawResult, database_for
from cmf_orchestrate.store._values import decode, encode, to_python

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ARTIFACT_TYPE_PROPERTIES",
    "EXECUTION_TYPE_PROPERTIES",
    "PIPELINE_CONTEXT_TYPE",
    "STAGE_CONTEXT_TYPE",
    "ArtifactDraft",
    "MetadataStore",
    "open_store",
]

PIPELINE_CONTEXT_TYPE = "Parent_Context"
STAGE_CONTEXT_TYPE = "Pipeline_Stage"


class _PropertyType:
    """ML Metadata's ``PropertyType`` values (``TypeProperty.data_type``)."""

    INT = 1
    DOUBLE = 2
    STRING = 3


_S = _PropertyType.STRING
_I = _PropertyType.INT
EXECUTION_TYPE_PROPERTIES: dict[str, int] = {
    "Execution_uuid": _S,
    "Context_Type": _S,
    "Execution_type_name": _S,
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
    ArtifactKind.LABEL: {"git_repo": _S, "Commit": _S, "url": _S},
    ArtifactKind.VALIDATION_OUTPUT: {"version": _S},
}
_STORE_CONTEXT_TYPE = "cmf_orchestrate.Store"
_CONTEXT_TYPE_PROPERTIES: dict[str, dict[str, int]] = {
    PIPELINE_CONTEXT_TYPE: {"Pipeline": _S},
    STAGE_CONTEXT_TYPE: {"Pipeline_Stage": _S},
    _STORE_CONTEXT_TYPE: {},
}

# ML Metadata's enum values as stored.
_STATE_CODES = s.EXECUTION_STATE_CODES
_CODE_STATES = {v: k for k, v in _STATE_CODES.items()}
_EVENT_CODES = {EventType.DECLARED_OUTPUT: 1, EventType.INPUT: 3, EventType.OUTPUT: 4, EventType.INTERNAL_OUTPUT: 6}
_CODE_EVENTS = {
    1: EventType.DECLARED_OUTPUT,
    2: EventType.INPUT,
    3: EventType.INPUT,
    4: EventType.OUTPUT,
    6: EventType.INTERNAL_OUTPUT,
}

_PAGE = 1000
_CHUNK = 500
_ARTIFACT_CACHE = 10_000

_Kind = int  # a TypeKind value
_T = TypeVar("_T")


class ExecutionFilters(TypedDict, total=False):
    """Filters of :meth:`MetadataStore.executions`; an execution matches every one given (None: no filter).

    Attributes:
        state: In this state.
        fact: ``(fact, value)``: its ``cmf.<fact>`` equals ``value``.
        context_ids: Associated to one of these contexts.
        stage: Of the stage context of this full name (``<pipeline>/<stage>``).
        pipeline: Of one of this pipeline's stages.
        since_ms: Created at or after this time (ms since the epoch).
        name_suffix: Its name ends with this text.
    """

    state: ExecutionState | str | None
    fact: tuple[str, Value] | None
    context_ids: Sequence[int] | None
    stage: str | None
    pipeline: str | None
    since_ms: int | None
    name_suffix: str | None


@dataclass(frozen=True)
class ArtifactDraft:
    """An artifact to record: looked up by (kind, name) and created when absent."""

    kind: ArtifactKind
    name: str
    uri: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    custom_properties: Mapping[str, Any] = field(default_factory=dict)
    #: Creation and last update time (ms) of an artifact recorded elsewhere before (default: now).
    times_ms: tuple[int, int] | None = None


@dataclass(frozen=True)
class _Type:
    id: int
    name: str
    kind: _Kind
    properties: Mapping[str, int]


@dataclass(frozen=True)
class _NodeTables:
    node: Table
    props: Table
    owner: str


_NODES = {
    s.TypeKind.EXECUTION: _NodeTables(s.EXECUTION, s.EXECUTION_PROPERTY, "execution_id"),
    s.TypeKind.ARTIFACT: _NodeTables(s.ARTIFACT, s.ARTIFACT_PROPERTY, "artifact_id"),
    s.TypeKind.CONTEXT: _NodeTables(s.CONTEXT, s.CONTEXT_PROPERTY, "context_id"),
}
_OWNERS = {t.props.name: t.owner for t in _NODES.values()}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _kind_name(kind: ArtifactKind | str) -> str:
    return kind.value if isinstance(kind, ArtifactKind) else str(kind)


class MetadataStore:
    """Typed access to one MLMD store.

    One instance serves a whole process and its threads; connections are pooled per
    process (a forked child opens its own).

    Raises (on any method):
        StoreUnavailableError: The store cannot be reached, or timed out.
        StoreError: The store refused the operation; nothing of it was written.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._lock = threading.Lock()
        self._types: dict[tuple[_Kind, str], _Type] = {}
        self._types_by_id: dict[int, _Type] = {}
        self._contexts: dict[tuple[str, str], ContextRecord] = {}
        self._linked: set[tuple[int, int]] = set()
        self._attributed: set[tuple[int, int]] = set()
        self._artifact_cache: OrderedDict[tuple[int, str], ArtifactRecord] = OrderedDict()
        # Statements are immutable: building each once saves their construction on every write.
        self._statements: dict[tuple[str, str], Any] = {}
        # The statements of every task run, compiled once (see Database.run).
        self._prepared: dict[tuple[str, ...], Prepared] = {}
        self._store_id: str | None = None
        # The connection of a transaction spanning several calls (see :meth:`in_transaction`).
        self._local = threading.local()
        ensure_schema(self._db())
        self._load_types()

    # -- plumbing -------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        """Stable, credential-free name of this store."""
        return self.location.identity

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql``."""
        return self.location.backend

    def _db(self) -> Database:
        return database_for(self.location)

    def _read(self, what: str, fn: Any) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return fn(conn)
        return self._db().transact(what, fn, write=False)

    def _write(self, what: str, fn: Any) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return fn(conn)
        return self._db().transact(what, fn, write=True)

    def in_transaction(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run ``fn``, which calls this store's methods, as one write transaction: all of it or none.

        Raises:
            StoreUnavailableError: The store cannot be reached.
            StoreError: The store refused some of the work; none of it was written.
        """

        def run(conn: Connection) -> _T:
            self._forget()  # a retried attempt starts from what the store holds
            self._local.conn = conn
            try:
                return fn()
            finally:
                self._local.conn = None

        try:
            return self._db().transact(what, run, write=True)
        except BaseException:
            self._forget()  # what this process remembered of the rolled-back work is gone
            raise

    def _forget(self) -> None:
        """Drop what this process remembers of the store (types, contexts, artifacts)."""
        with self._lock:
            self._types.clear()
            self._types_by_id.clear()
            self._contexts.clear()
            self._linked.clear()
            self._attributed.clear()
            self._artifact_cache.clear()

    def _run(
        self,
        conn: Connection,
        key: tuple[str, ...],
        build: Callable[[], Any],
        params: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    ) -> RawResult:
        """Run the statement ``build`` makes (compiled on first use, cached under ``key``) on the driver's cursor."""
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = self._db().prepare(build())
        return self._db().run(conn, prepared, params)

    def _write_rows(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], mode: str) -> None:
        """Insert rows of one shape: ``insert``, ``ignore`` (keep rows present) or ``upsert`` (properties).

        SQLite takes them through its driver's executemany; a server, which would get one
        round trip per row that way, gets SQLAlchemy's multi-row INSERTs.
        """
        if not rows:
            return

        def statement() -> Any:
            if mode == "ignore":
                return self._insert_ignore(table)
            if mode == "upsert":
                return self._upsert_properties(table, _OWNERS[table.name])
            return table.insert()

        if len(rows) > 1 and self.backend != "sqlite":
            conn.execute(statement(), list(rows))
            return
        keys = tuple(rows[0])
        self._run(
            conn,
            (mode, table.name, *keys),
            lambda: statement().values({k: bindparam(k) for k in keys}),
            rows[0] if len(rows) == 1 else rows,
        )

    def _insert_ignore(self, table: Table) -> Any:
        """An INSERT that does nothing where a unique key already holds the row (built once per table)."""
        built = self._statements.get(("insert_ignore", table.name))
        if built is None:
            built = self._statements[("insert_ignore", table.name)] = self._build_insert_ignore(table)
        return built

    def _build_insert_ignore(self, table: Table) -> Any:
        # The server dialects load only for their stores: the first task run pays for no other.
        if self.backend == "postgresql":
            from sqlalchemy.dialects import postgresql as pg_dialect

            return pg_dialect.insert(table).on_conflict_do_nothing()
        if self.backend == "mysql":
            from sqlalchemy.dialects import mysql as mysql_dialect

            # A no-op assignment (never VALUES(id), which would renumber the existing row).
            first = next(iter(table.primary_key.columns))
            return mysql_dialect.insert(table).on_duplicate_key_update({first.name: first})
        return sqlite_dialect.insert(table).on_conflict_do_nothing()

    def _upsert_properties(self, table: Table, owner: str) -> Any:
        """An INSERT of property rows that replaces the values of those present (built once per table)."""
        built = self._statements.get(("upsert", table.name))
        if built is None:
            built = self._statements[("upsert", table.name)] = self._build_upsert(table, owner)
        return built

    def _build_upsert(self, table: Table, owner: str) -> Any:
        values = ("int_value", "double_value", "string_value")
        key = [owner, "name", "is_custom_property"]
        if self.backend == "mysql":
            from sqlalchemy.dialects import mysql as mysql_dialect

            upsert = mysql_dialect.insert(table)
            return upsert.on_duplicate_key_update({c: upsert.inserted[c] for c in values})
        if self.backend == "postgresql":
            from sqlalchemy.dialects import postgresql as pg_dialect

            pg = pg_dialect.insert(table)
            return pg.on_conflict_do_update(index_elements=key, set_={c: pg.excluded[c] for c in values})
        lite = sqlite_dialect.insert(table)
        return lite.on_conflict_do_update(index_elements=key, set_={c: lite.excluded[c] for c in values})

    def _property_rows(
        self, owner: str, owner_id: int, values: Mapping[str, Any], custom: bool, declared: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        rows = []
        for name, given in values.items():
            # A type property declared STRING holds a string, whatever was given.
            value = str(given) if not custom and declared.get(name) == _S and not isinstance(given, str) else given
            column = encode(value, self.backend)
            rows.append(
                {
                    owner: owner_id,
                    "name": name,
                    "is_custom_property": custom,
                    "int_value": column.int_value,
                    "double_value": column.double_value,
                    "string_value": column.string_value,
                }
            )
        return rows

    def _put_properties(
        self,
        conn: Connection,
        kind: _Kind,
        owner_id: int,
        properties: Mapping[str, Any] | None,
        custom: Mapping[str, Any] | None,
        declared: Mapping[str, int],
        *,
        new: bool,
    ) -> None:
        tables = _NODES[kind]
        rows = self._property_rows(tables.owner, owner_id, properties or {}, False, declared)
        rows += self._property_rows(tables.owner, owner_id, custom or {}, True, declared)
        self._write_rows(conn, tables.props, rows, "insert" if new else "upsert")

    # -- types ----------------------------------------------------------------------------

    def _load_types(self, conn: Connection | None = None) -> None:
        def load(c: Connection) -> None:
            props: dict[int, dict[str, int]] = {}
            for type_id, name, data_type in c.execute(
                select(s.TYPE_PROPERTY.c.type_id, s.TYPE_PROPERTY.c.name, s.TYPE_PROPERTY.c.data_type)
            ):
                props.setdefault(int(type_id), {})[str(name)] = int(data_type or 0)
            found = [
                _Type(int(i), str(n), int(k), props.get(int(i), {}))
                for i, n, k in c.execute(select(s.TYPE.c.id, s.TYPE.c.name, s.TYPE.c.type_kind).order_by(s.TYPE.c.id))
            ]
            with self._lock:
                for t in found:
                    self._types.setdefault((t.kind, t.name), t)
                    self._types[(t.kind, t.name)] = min(t, self._types[(t.kind, t.name)], key=lambda x: x.id)
                    self._types_by_id[t.id] = t

        if conn is not None:
            load(conn)
        else:
            self._read("reading types", load)

    def _type(self, kind: _Kind, name: str, properties: Mapping[str, int]) -> _Type:
        """The type ``name`` with at least ``properties``, registered (or extended) when needed."""
        found = self._types.get((kind, name))
        if found is not None and all(p in found.properties for p in properties):
            return found
        self._load_types()
        found = self._types.get((kind, name))
        if found is not None and all(p in found.properties for p in properties):
            return found

        def register(conn: Connection) -> None:
            # Types have no unique key in ML Metadata's schema: one writer at a time creates them.
            self._lock_schema(conn)
            self._load_types(conn)
            current = self._types.get((kind, name))
            if current is None:
                type_id = self._insert_returning_id(conn, s.TYPE, {"name": name, "type_kind": kind})
                missing = dict(properties)
            else:
                type_id = current.id
                missing = {k: v for k, v in properties.items() if k not in current.properties}
            if missing:
                conn.execute(
                    s.TYPE_PROPERTY.insert(),
                    [{"type_id": type_id, "name": k, "data_type": v} for k, v in missing.items()],
                )

        self._write(f"registering type {name!r}", register)
        self._load_types()
        return self._types[(kind, name)]

    def _lock_schema(self, conn: Connection) -> None:
        if self.backend != "sqlite":  # SQLite's write transactions are exclusive already
            conn.execute(select(s.MLMD_ENV.c.schema_version).with_for_update())

    def _insert_returning_id(self, conn: Connection, table: Table, values: Mapping[str, Any]) -> int:
        keys = tuple(values)

        def build() -> Any:
            stmt = table.insert().values({k: bindparam(k) for k in keys})
            # MySQL has no RETURNING: the driver reports the new id.
            return stmt if self.backend == "mysql" else stmt.returning(table.c.id)

        result = self._run(conn, ("insert_id", table.name, *keys), build, values)
        if self.backend == "mysql":
            assert result.lastrowid is not None
            return int(result.lastrowid)
        return int(result.rows[0][0])

    def execution_type_id(self, name: str) -> int:
        """Id of the CMF execution type ``name`` (registered when absent)."""
        return self._type(s.TypeKind.EXECUTION, name, EXECUTION_TYPE_PROPERTIES).id

    def artifact_type_id(self, kind: ArtifactKind) -> int:
        """Id of a CMF artifact type (registered when absent)."""
        return self._type(s.TypeKind.ARTIFACT, kind.value, ARTIFACT_TYPE_PROPERTIES[kind]).id

    def type_id(self, kind: str, name: str) -> int | None:
        """Id of the ``kind`` ("execution", "artifact" or "context") type ``name``, or None."""
        codes = {"execution": s.TypeKind.EXECUTION, "artifact": s.TypeKind.ARTIFACT, "context": s.TypeKind.CONTEXT}
        return self._known_type_id(codes[kind], name)

    def type_names(self, kind: str) -> list[str]:
        """Names of every ``kind`` ("execution", "artifact" or "context") type, in order of id."""
        codes = {"execution": s.TypeKind.EXECUTION, "artifact": s.TypeKind.ARTIFACT, "context": s.TypeKind.CONTEXT}
        self._load_types()
        found = [t for t in self._types_by_id.values() if t.kind == codes[kind]]
        return [t.name for t in sorted(found, key=lambda t: t.id)]

    def _type_name(self, type_id: int) -> str:
        found = self._types_by_id.get(type_id)
        if found is None:
            self._load_types()
            found = self._types_by_id.get(type_id)
        return found.name if found is not None else f"type-{type_id}"

    def _known_type_id(self, kind: _Kind, name: str) -> int | None:
        found = self._types.get((kind, name))
        if found is None:
            self._load_types()
            found = self._types.get((kind, name))
        return None if found is None else found.id

    # -- reading nodes ----------------------------------------------------------------------

    def _properties_of(
        self, conn: Connection, kind: _Kind, ids: Sequence[int]
    ) -> dict[int, tuple[dict[str, Value], dict[str, Value]]]:
        tables = _NODES[kind]
        p = tables.props
        owner = p.c[tables.owner]
        result: dict[int, tuple[dict[str, Value], dict[str, Value]]] = {i: ({}, {}) for i in ids}
        for chunk in _chunks(list(ids), _CHUNK):
            rows = conn.execute(
                select(
                    owner,
                    p.c.name,
                    p.c.is_custom_property,
                    p.c.int_value,
                    p.c.double_value,
                    p.c.string_value,
                    p.c.bool_value,
                ).where(owner.in_(chunk))
            )
            for owner_id, name, is_custom, int_v, double_v, string_v, bool_v in rows:
                result[int(owner_id)][1 if is_custom else 0][str(name)] = decode(int_v, double_v, string_v, bool_v)
        return result

    def _select_nodes(
        self,
        kind: _Kind,
        where: Sequence[ColumnElement[bool]] = (),
        *,
        limit: int | None = None,
        newest_first: bool = False,
        joins: Any = None,
    ) -> list[Any]:
        """Records of one node kind matching ``where``: by id, paged, never skipping a row."""
        node = _NODES[kind].node

        def read(conn: Connection) -> list[Any]:
            rows: list[Any] = []
            base: Select[Any] = select(node)
            if joins is not None:
                base = joins(base)
            if where:
                base = base.where(and_(*where))
            if limit is not None:
                order = node.c.id.desc() if newest_first else node.c.id.asc()
                rows = list(conn.execute(base.order_by(order).limit(limit)).mappings())
            else:
                last = 0
                while True:
                    page = list(conn.execute(base.where(node.c.id > last).order_by(node.c.id).limit(_PAGE)).mappings())
                    rows.extend(page)
                    if len(page) < _PAGE:
                        break
                    last = int(page[-1]["id"])
                if newest_first:
                    rows.reverse()
            props = self._properties_of(conn, kind, [int(r["id"]) for r in rows])
            return [self._record(kind, r, props[int(r["id"])]) for r in rows]

        return list(self._read("reading metadata", read))

    def _record(self, kind: _Kind, row: Any, props: tuple[dict[str, Value], dict[str, Value]]) -> Any:
        type_name = self._type_name(int(row["type_id"]))
        if kind == s.TypeKind.EXECUTION:
            return ExecutionRecord(
                id=int(row["id"]),
                name=row["name"] or "",
                type=type_name,
                state=_CODE_STATES.get(row["last_known_state"] or 0, ExecutionState.UNKNOWN),
                properties=props[0],
                custom_properties=props[1],
                create_time_ms=int(row["create_time_since_epoch"]),
                update_time_ms=int(row["last_update_time_since_epoch"]),
            )
        if kind == s.TypeKind.ARTIFACT:
            return ArtifactRecord(
                id=int(row["id"]),
                kind=type_name,
                name=row["name"] or "",
                uri=row["uri"] or "",
                properties=props[0],
                custom_properties=props[1],
                create_time_ms=int(row["create_time_since_epoch"]),
                update_time_ms=int(row["last_update_time_since_epoch"] or row["create_time_since_epoch"]),
            )
        return ContextRecord(
            id=int(row["id"]),
            name=row["name"] or "",
            type=type_name,
            properties=props[0],
            custom_properties=props[1],
            create_time_ms=int(row["create_time_since_epoch"]),
            update_time_ms=int(row["last_update_time_since_epoch"]),
        )

    def _by_ids(self, kind: _Kind, ids: Iterable[int]) -> list[Any]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        node = _NODES[kind].node
        found: list[Any] = []
        for chunk in _chunks(wanted, _CHUNK):
            found.extend(self._select_nodes(kind, [node.c.id.in_(chunk)]))
        return found

    # -- contexts -------------------------------------------------------------------------

    def _get_or_create_context(
        self,
        type_name: str,
        name: str,
        properties: Mapping[str, Any],
        custom: Mapping[str, Any] | None,
        parent: ContextRecord | None = None,
    ) -> ContextRecord:
        key = (type_name, name)
        cached = self._contexts.get(key)
        if cached is not None and not custom and (parent is None or (cached.id, parent.id) in self._linked):
            return cached
        ctype = self._type(s.TypeKind.CONTEXT, type_name, _CONTEXT_TYPE_PROPERTIES[type_name])
        c = s.CONTEXT

        def find(conn: Connection) -> tuple[int | None, bool]:
            context_id = conn.execute(
                select(c.c.id).where(c.c.type_id == ctype.id, c.c.name == name)
            ).scalar_one_or_none()
            linked = parent is None
            if context_id is not None and parent is not None:
                linked = bool(
                    conn.execute(
                        select(
                            exists().where(
                                s.PARENT_CONTEXT.c.context_id == context_id,
                                s.PARENT_CONTEXT.c.parent_context_id == parent.id,
                            )
                        )
                    ).scalar()
                )
            return context_id, linked

        # A process that finds everything in place writes nothing.
        context_id, linked = self._read("reading a context", find)
        if context_id is None or not linked or custom:

            def put(conn: Connection) -> int:
                now = _now_ms()
                conn.execute(
                    self._insert_ignore(c),
                    {
                        "type_id": ctype.id,
                        "name": name,
                        "create_time_since_epoch": now,
                        "last_update_time_since_epoch": now,
                    },
                )
                found_id = int(
                    conn.execute(select(c.c.id).where(c.c.type_id == ctype.id, c.c.name == name)).scalar_one()
                )
                rows = self._property_rows("context_id", found_id, properties, False, ctype.properties)
                if rows:
                    conn.execute(self._insert_ignore(s.CONTEXT_PROPERTY), rows)
                if custom:
                    self._put_properties(conn, s.TypeKind.CONTEXT, found_id, None, custom, ctype.properties, new=False)
                    conn.execute(update(c).where(c.c.id == found_id).values(last_update_time_since_epoch=now))
                if parent is not None:
                    conn.execute(
                        self._insert_ignore(s.PARENT_CONTEXT), {"context_id": found_id, "parent_context_id": parent.id}
                    )
                return found_id

            context_id = int(self._write(f"recording context {name!r}", put))
        record: ContextRecord = self._by_ids(s.TypeKind.CONTEXT, [context_id])[0]
        with self._lock:
            self._contexts[key] = record
            if parent is not None:
                self._linked.add((record.id, parent.id))
        return record

    def pipeline_context(self, name: str, custom_properties: Mapping[str, Any] | None = None) -> ContextRecord:
        """The ``Parent_Context`` of a pipeline, created when absent."""
        return self._get_or_create_context(PIPELINE_CONTEXT_TYPE, name, {"Pipeline": name}, custom_properties)

    def stage_context(
        self, pipeline: ContextRecord, stage: str, custom_properties: Mapping[str, Any] | None = None
    ) -> ContextRecord:
        """The ``Pipeline_Stage`` context ``<pipeline>/<stage>``, a child of the pipeline."""
        full = f"{pipeline.name}/{stage}"
        return self._get_or_create_context(
            STAGE_CONTEXT_TYPE, full, {"Pipeline_Stage": full}, custom_properties, pipeline
        )

    def contexts_of_type(self, type_name: str) -> list[ContextRecord]:
        """Every context of a type, oldest first."""
        type_id = self._known_type_id(s.TypeKind.CONTEXT, type_name)
        if type_id is None:
            return []
        return list(self._select_nodes(s.TypeKind.CONTEXT, [s.CONTEXT.c.type_id == type_id]))

    def context(self, type_name: str, name: str) -> ContextRecord | None:
        """The context of a type by name, or None."""
        type_id = self._known_type_id(s.TypeKind.CONTEXT, type_name)
        if type_id is None:
            return None
        found = self._select_nodes(s.TypeKind.CONTEXT, [s.CONTEXT.c.type_id == type_id, s.CONTEXT.c.name == name])
        found = [c for c in found if c.name == name]  # MySQL compares names case-insensitively
        return found[0] if found else None

    def contexts_by_id(self, ids: Iterable[int]) -> list[ContextRecord]:
        """Contexts by id."""
        return list(self._by_ids(s.TypeKind.CONTEXT, ids))

    def children(self, context_id: int) -> list[ContextRecord]:
        """Child contexts (the stages of a pipeline)."""
        pc = s.PARENT_CONTEXT
        child_ids = select(pc.c.context_id).where(pc.c.parent_context_id == int(context_id))
        return list(self._select_nodes(s.TypeKind.CONTEXT, [s.CONTEXT.c.id.in_(child_ids)]))

    def parents(self, context_id: int) -> list[ContextRecord]:
        """Parent contexts (the pipeline of a stage)."""
        pc = s.PARENT_CONTEXT
        parent_ids = select(pc.c.parent_context_id).where(pc.c.context_id == int(context_id))
        return list(self._select_nodes(s.TypeKind.CONTEXT, [s.CONTEXT.c.id.in_(parent_ids)]))

    def contexts_of_execution(self, execution_id: int) -> list[ContextRecord]:
        """Contexts an execution is associated to."""
        a = s.ASSOCIATION
        ids = select(a.c.context_id).where(a.c.execution_id == int(execution_id))
        return list(self._select_nodes(s.TypeKind.CONTEXT, [s.CONTEXT.c.id.in_(ids)]))

    # -- executions -------------------------------------------------------------------------

    def _execution_filters(self, filters: ExecutionFilters) -> list[ColumnElement[bool]]:
        e = s.EXECUTION
        where: list[ColumnElement[bool]] = []
        state, fact, context_ids = filters.get("state"), filters.get("fact"), filters.get("context_ids")
        stage, pipeline, since_ms = filters.get("stage"), filters.get("pipeline"), filters.get("since_ms")
        name_suffix = filters.get("name_suffix")
        if state is not None:
            where.append(e.c.last_known_state == _STATE_CODES[ExecutionState(str(state).upper())])
        if fact is not None:
            name, value = fact
            p = s.EXECUTION_PROPERTY
            column = encode(value, self.backend)
            match = (
                p.c.int_value == column.int_value
                if column.int_value is not None
                else p.c.double_value == column.double_value
                if column.double_value is not None
                else p.c.string_value == column.string_value
            )
            where.append(
                e.c.id.in_(
                    select(p.c.execution_id).where(
                        p.c.name == FACT_PREFIX + name, p.c.is_custom_property == literal(True), match
                    )
                )
            )
        if context_ids is not None:
            a = s.ASSOCIATION
            ids = [int(i) for i in context_ids]
            where.append(e.c.id.in_(select(a.c.execution_id).where(a.c.context_id.in_(ids))))
        if stage is not None or pipeline is not None:
            stage_type = self._known_type_id(s.TypeKind.CONTEXT, STAGE_CONTEXT_TYPE)
            a, c = s.ASSOCIATION, s.CONTEXT
            if stage is not None:
                name_match: ColumnElement[bool] = c.c.name == stage
            else:
                name_match = c.c.name.like(_like_prefix(f"{pipeline}/"), escape="\\")
            stages = select(c.c.id).where(c.c.type_id == (stage_type or -1), name_match)
            where.append(e.c.id.in_(select(a.c.execution_id).where(a.c.context_id.in_(stages))))
        if since_ms is not None:
            where.append(e.c.create_time_since_epoch >= int(since_ms))
        if name_suffix is not None:
            where.append(e.c.name.like("%" + _like_escape(name_suffix), escape="\\"))
        return where

    def executions(
        self, *, limit: int | None = None, newest_first: bool = False, **filters: Unpack[ExecutionFilters]
    ) -> list[ExecutionRecord]:
        """Executions matching every filter given (see :class:`ExecutionFilters`), in order of id.

        Args:
            limit: At most this many (applied by the store).
            newest_first: Newest first instead of oldest first.
            **filters: The filters, each a keyword of :class:`ExecutionFilters`.
        """
        where = self._execution_filters(filters)
        pipeline, stage, name_suffix = filters.get("pipeline"), filters.get("stage"), filters.get("name_suffix")
        found: list[ExecutionRecord] = self._select_nodes(
            s.TypeKind.EXECUTION, where, limit=limit, newest_first=newest_first
        )
        if pipeline is not None and stage is None:
            found = [x for x in found if x.pipeline == pipeline]
        if name_suffix is not None:
            found = [x for x in found if x.name.endswith(name_suffix)]
        return found

    def execution_ids(self, **filters: Unpack[ExecutionFilters]) -> list[int]:
        """Ids of the executions matching the filters of :meth:`executions`, ascending."""
        return sorted(e.id for e in self.executions(**filters))

    def executions_by_id(self, ids: Iterable[int]) -> list[ExecutionRecord]:
        """Executions by id (missing ids are left out)."""
        return list(self._by_ids(s.TypeKind.EXECUTION, ids))

    def execution(self, execution_id: int) -> ExecutionRecord | None:
        """One execution by id, or None."""
        found = self.executions_by_id([execution_id])
        return found[0] if found else None

    def executions_in_context(
        self, context_id: int, *, state: ExecutionState | str | None = None, fact: tuple[str, Value] | None = None
    ) -> list[ExecutionRecord]:
        """Executions associated to a context, oldest first, optionally by state and fact."""
        return self.executions(context_ids=[context_id], state=state, fact=fact)

    def unsynced_execution_ids(self) -> list[int]:
        """Executions whose graph mirror is pending (``cmf.graph_synced`` = 0), ascending."""
        return self.execution_ids(fact=("graph_synced", 0))

    def set_graph_synced(self, execution_ids: Sequence[int], synced: bool) -> None:
        """Set ``cmf.graph_synced`` on executions, in one write."""
        ids = list(execution_ids)
        if not ids:
            return
        p = s.EXECUTION_PROPERTY

        def put(conn: Connection) -> None:
            present = [
                int(i) for i in conn.execute(select(s.EXECUTION.c.id).where(s.EXECUTION.c.id.in_(ids))).scalars()
            ]
            rows = [
                row
                for i in present
                for row in self._property_rows(
                    "execution_id", i, {FACT_PREFIX + "graph_synced": 1 if synced else 0}, True, {}
                )
            ]
            if rows:
                conn.execute(self._upsert_properties(p, "execution_id"), rows)

        self._write("updating executions", put)

    @property
    def store_id(self) -> str:
        """Stable identity of this store, kept in the store itself (survives a move or another URL)."""
        if self._store_id is not None:
            return self._store_id
        record = self._get_or_create_context(_STORE_CONTEXT_TYPE, "store", {}, None)
        value = record.custom_properties.get("store_id")
        if not value:
            candidate = str(uuid.uuid4())
            ctype = self._type(s.TypeKind.CONTEXT, _STORE_CONTEXT_TYPE, {})

            def put(conn: Connection) -> None:
                # The first writer wins; a racing one keeps the stored value.
                rows = self._property_rows("context_id", record.id, {"store_id": candidate}, True, ctype.properties)
                conn.execute(self._insert_ignore(s.CONTEXT_PROPERTY), rows)

            self._write("recording the store identity", put)
            [fresh] = self.contexts_by_id([record.id])
            value = fresh.custom_properties.get("store_id", candidate)
        self._store_id = str(value)
        return self._store_id

    def update_execution(
        self,
        execution_id: int,
        *,
        state: ExecutionState | None = None,
        custom_properties: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> ExecutionRecord:
        """Change an execution's state and properties (no artifacts), in one transaction.

        Raises:
            StoreError: The execution does not exist or the write failed.
        """
        current = self.execution(execution_id)
        if current is None:
            raise StoreError(f"execution {execution_id} does not exist in {self.location.redacted}")
        etype = self._type(s.TypeKind.EXECUTION, current.type, {})

        def put(conn: Connection) -> None:
            self._touch_execution(conn, execution_id, state)
            self._put_properties(
                conn, s.TypeKind.EXECUTION, execution_id, properties, custom_properties, etype.properties, new=False
            )

        self._write("updating an execution", put)
        updated = self.execution(execution_id)
        assert updated is not None
        return updated

    def _touch_execution(self, conn: Connection, execution_id: int, state: ExecutionState | None) -> None:
        e = s.EXECUTION
        values: dict[str, Any] = {"last_update_time_since_epoch": _now_ms()}
        if state is not None:
            values["last_known_state"] = _STATE_CODES[state]
        keys = tuple(values)
        values["execution_id"] = execution_id
        result = self._run(
            conn,
            ("touch_execution", *keys),
            lambda: update(e).where(e.c.id == bindparam("execution_id")).values({k: bindparam(k) for k in keys}),
            values,
        )
        if result.rowcount != 1:
            raise StoreError(f"execution {execution_id} does not exist in {self.location.redacted}")

    # -- artifacts and events ---------------------------------------------------------------

    def _resolve_artifacts(
        self, conn: Connection, drafts: Sequence[ArtifactDraft], created_ids: set[int] | None = None
    ) -> list[ArtifactRecord]:
        """The stored artifacts of drafts, created when absent (deduplicated by type and name).

        Artifacts are content identities: once read or written, this process remembers
        them, so logging a known artifact again costs no lookup.
        """
        types = {
            d.kind: self._type(s.TypeKind.ARTIFACT, d.kind.value, ARTIFACT_TYPE_PROPERTIES[d.kind]) for d in drafts
        }
        by_key = {(types[d.kind].id, d.name): d for d in drafts}
        known = {k: r for k in by_key if (r := self._artifact_cache.get(k)) is not None}
        # A fixed order of inserts keeps concurrent writers of the same artifacts from deadlocking.
        missing = sorted(k for k in by_key if k not in known)
        if missing:
            found = self._lookup_artifacts(conn, missing)
            absent = [k for k in missing if k not in found]
            created: dict[tuple[int, str], int] = {}
            if absent:
                now = _now_ms()
                fresh, raced = self._insert_artifacts(
                    conn,
                    [
                        {
                            "type_id": type_id,
                            "name": name,
                            "uri": by_key[(type_id, name)].uri,
                            "state": s.ARTIFACT_STATE_LIVE,
                            "create_time_since_epoch": (by_key[(type_id, name)].times_ms or (now, now))[0],
                            "last_update_time_since_epoch": (by_key[(type_id, name)].times_ms or (now, now))[1],
                        }
                        for type_id, name in absent
                    ],
                )
                # Properties go with the rows this transaction created; a racing writer's rows keep theirs.
                found.update(raced)
                rows: list[dict[str, Any]] = []
                for key, row in fresh.items():
                    draft, declared = by_key[key], types[by_key[key].kind].properties
                    rows += self._property_rows("artifact_id", row.id, draft.properties, False, declared)
                    rows += self._property_rows("artifact_id", row.id, draft.custom_properties, True, declared)
                    created[key] = row.id
                    if created_ids is not None:
                        created_ids.add(row.id)
                    known[key] = dataclasses.replace(
                        row,
                        properties=_as_stored(draft.properties, declared),
                        custom_properties=_as_stored(draft.custom_properties, {}),
                    )
                self._write_rows(conn, s.ARTIFACT_PROPERTY, rows, "ignore")
            if found:
                props = self._properties_of(conn, s.TypeKind.ARTIFACT, [r.id for r in found.values()])
                for key, row in found.items():
                    known[key] = dataclasses.replace(
                        row, properties=props[row.id][0], custom_properties=props[row.id][1]
                    )
        # Custom properties given for an artifact that already existed are merged over its own.
        merges: list[dict[str, Any]] = []
        for key, draft in by_key.items():
            record = known[key]
            if draft.custom_properties and not _contains(record.custom_properties, draft.custom_properties):
                declared = types[draft.kind].properties
                merges += self._property_rows("artifact_id", record.id, draft.custom_properties, True, declared)
                merged = {**record.custom_properties, **_as_stored(draft.custom_properties, {})}
                known[key] = dataclasses.replace(record, custom_properties=merged)
        self._write_rows(conn, s.ARTIFACT_PROPERTY, merges, "upsert")
        return [known[(types[d.kind].id, d.name)] for d in drafts]

    def _insert_artifacts(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[tuple[int, str], ArtifactRecord], dict[tuple[int, str], ArtifactRecord]]:
        """Insert artifacts found absent a moment ago (rows in key order).

        Returns:
            The records of the rows this transaction created, and of those a concurrent
            writer created first (both without properties).
        """
        keys = [(int(r["type_id"]), str(r["name"])) for r in rows]
        if self.backend == "mysql" or (self.backend == "postgresql" and len(rows) > 1):
            # No RETURNING (MySQL), or one statement for many rows rather than a round trip each.
            self._write_rows(conn, s.ARTIFACT, rows, "ignore")
            fresh = self._lookup_artifacts(conn, keys)
            p = s.ARTIFACT_PROPERTY
            ids = [r.id for r in fresh.values()]
            taken = {int(i) for i in conn.execute(select(p.c.artifact_id).where(p.c.artifact_id.in_(ids))).scalars()}
            return (
                {k: r for k, r in fresh.items() if r.id not in taken},
                {k: r for k, r in fresh.items() if r.id in taken},
            )
        a = s.ARTIFACT
        columns = tuple(rows[0])
        created: dict[tuple[int, str], ArtifactRecord] = {}
        for key, row in zip(keys, rows, strict=True):
            # RETURNING gives back exactly the rows this statement inserted.
            result = self._run(
                conn,
                ("insert_artifact", *columns),
                lambda: self._insert_ignore(a).values({c: bindparam(c) for c in columns}).returning(a.c.id),
                row,
            )
            if result.rows:
                created[key] = ArtifactRecord(
                    id=int(result.rows[0][0]),
                    kind=self._type_name(key[0]),
                    name=key[1],
                    uri=str(row["uri"] or ""),
                    create_time_ms=int(row["create_time_since_epoch"]),
                )
        raced = [k for k in keys if k not in created]
        return created, self._lookup_artifacts(conn, raced) if raced else {}

    def _lookup_artifacts(
        self, conn: Connection, keys: Sequence[tuple[int, str]]
    ) -> dict[tuple[int, str], ArtifactRecord]:
        """Artifacts by (type id, name), without their properties."""
        a = s.ARTIFACT
        wanted = set(keys)
        found: dict[tuple[int, str], ArtifactRecord] = {}
        columns = (a.c.id, a.c.type_id, a.c.name, a.c.uri, a.c.create_time_since_epoch)
        rows: list[Any] = []
        if self.backend == "sqlite" or len(keys) == 1:
            # One key at a time: a prepared statement in process (SQLite), or the one round trip anyway.
            for type_id, name in keys:
                rows += self._run(
                    conn,
                    ("lookup_artifact",),
                    lambda: select(*columns).where(a.c.type_id == bindparam("type_id"), a.c.name == bindparam("name")),
                    {"type_id": type_id, "name": name},
                ).rows
        else:
            for chunk in _chunks(list(keys), _CHUNK):
                rows += conn.execute(select(*columns).where(tuple_(a.c.type_id, a.c.name).in_(chunk))).all()
        for artifact_id, type_id, name, uri, created in rows:
            key = (int(type_id), name)
            if key in wanted:  # MySQL compares names case-insensitively
                found[key] = ArtifactRecord(
                    id=int(artifact_id),
                    kind=self._type_name(int(type_id)),
                    name=name,
                    uri=uri or "",
                    create_time_ms=int(created),
                )
        return found

    def _records_in(self, conn: Connection, kind: _Kind, ids: Sequence[int]) -> list[Any]:
        node = _NODES[kind].node
        rows: list[Any] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), _CHUNK):
            rows += list(conn.execute(select(node).where(node.c.id.in_(chunk))).mappings())
        props = self._properties_of(conn, kind, [int(r["id"]) for r in rows])
        return [self._record(kind, r, props[int(r["id"])]) for r in rows]

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
        previous: ExecutionRecord | None = None,
        times_ms: tuple[int, int] | None = None,
    ) -> tuple[ExecutionRecord, list[ArtifactRecord]]:
        """Create or update an execution together with artifacts and their events, in one transaction.

        Args:
            execution_id: The execution to update, or None to create one.
            type_name: The execution type (registered when absent).
            name: Unique execution name (for a new execution).
            state: The execution state to record.
            properties: CMF type properties to set.
            custom_properties: Custom properties to set (merged over those recorded).
            stage: The stage context the execution and artifacts belong to.
            artifacts: Artifacts to record, each with its event type.
            previous: The execution as this process last recorded it (an update then
                reads nothing back: the result is it with the changes applied).
            times_ms: Creation and last update time of a new execution (default: now),
                for an execution recorded elsewhere before.

        Returns:
            The execution as recorded and the artifacts in the order given.

        Raises:
            StoreError: The store refused the write; nothing of it was recorded.
        """
        etype = self._type(s.TypeKind.EXECUTION, type_name, EXECUTION_TYPE_PROPERTIES)
        drafts = [d for d, _ in artifacts]
        if artifacts:
            for kind in {d.kind for d in drafts}:
                self.artifact_type_id(kind)
        attributed: list[tuple[int, int]] = []

        def write(conn: Connection) -> tuple[ExecutionRecord, list[ArtifactRecord]]:
            now = _now_ms()
            if execution_id is None:
                created_ms, updated_ms = times_ms or (now, now)
                exec_id = self._insert_returning_id(
                    conn,
                    s.EXECUTION,
                    {
                        "type_id": etype.id,
                        "name": name or None,
                        "last_known_state": _STATE_CODES[state],
                        "create_time_since_epoch": created_ms,
                        "last_update_time_since_epoch": updated_ms,
                    },
                )
                self._write_rows(conn, s.ASSOCIATION, [{"context_id": stage.id, "execution_id": exec_id}], "insert")
            else:
                exec_id = execution_id
                self._touch_execution(conn, exec_id, state)
            self._put_properties(
                conn,
                s.TypeKind.EXECUTION,
                exec_id,
                properties,
                custom_properties,
                etype.properties,
                new=execution_id is None,
            )
            fresh: set[int] = set()
            records = self._resolve_artifacts(conn, drafts, fresh) if drafts else []
            if records:
                # As CMF attributes: an artifact belongs to the stage that first recorded it.
                pairs = [
                    (stage.id, r.id) for r in records if r.id in fresh and (stage.id, r.id) not in self._attributed
                ]
                if pairs:
                    self._write_rows(
                        conn,
                        s.ATTRIBUTION,
                        [{"context_id": c, "artifact_id": a} for c, a in dict.fromkeys(pairs)],
                        "ignore",
                    )
                    attributed.extend(pairs)
                linked: set[tuple[int, int]] = set()
                events = []
                for record, (_, event_type) in zip(records, artifacts, strict=True):
                    key = (record.id, _EVENT_CODES[event_type])
                    # Logging the same artifact twice in one direction is one event, not an error.
                    if key not in linked:
                        linked.add(key)
                        events.append(
                            {
                                "artifact_id": record.id,
                                "execution_id": exec_id,
                                "type": key[1],
                                "milliseconds_since_epoch": now,
                            }
                        )
                if events:
                    # An event recorded before (the same artifact logged again) stays as it was.
                    self._write_rows(conn, s.EVENT, events, "ignore" if execution_id is not None else "insert")
            if execution_id is None:
                execution = ExecutionRecord(
                    id=exec_id,
                    name=name or "",
                    type=type_name,
                    state=state,
                    properties=_as_stored(properties or {}, etype.properties),
                    custom_properties=_as_stored(custom_properties or {}, {}),
                    create_time_ms=(times_ms or (now, now))[0],
                    update_time_ms=(times_ms or (now, now))[1],
                )
            elif previous is not None and previous.id == exec_id:
                execution = dataclasses.replace(
                    previous,
                    state=state,
                    properties={**previous.properties, **_as_stored(properties or {}, etype.properties)},
                    custom_properties={**previous.custom_properties, **_as_stored(custom_properties or {}, {})},
                    update_time_ms=now,
                )
            else:
                [execution] = self._records_in(conn, s.TypeKind.EXECUTION, [exec_id])
            return execution, records

        result: tuple[ExecutionRecord, list[ArtifactRecord]] = self._write("recording an execution", write)
        with self._lock:
            self._attributed.update(attributed)
            for record in result[1]:
                self._remember_artifact(record)
        return result

    def _remember_artifact(self, record: ArtifactRecord) -> None:
        type_id = self._known_type_id(s.TypeKind.ARTIFACT, record.kind)
        if type_id is None:
            return
        cache = self._artifact_cache
        cache[(type_id, record.name)] = record
        cache.move_to_end((type_id, record.name))
        while len(cache) > _ARTIFACT_CACHE:
            cache.popitem(last=False)

    def artifacts_by_id(self, ids: Iterable[int]) -> list[ArtifactRecord]:
        """Artifacts by id (missing ids are left out)."""
        return list(self._by_ids(s.TypeKind.ARTIFACT, ids))

    def update_artifact(
        self,
        artifact_id: int,
        *,
        properties: Mapping[str, Any] | None = None,
        custom_properties: Mapping[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Set properties of an artifact (merged over its own), in one transaction.

        Raises:
            StoreError: The artifact does not exist or the write failed.
        """
        found = self.artifacts_by_id([artifact_id])
        if not found:
            raise StoreError(f"artifact {artifact_id} does not exist in {self.location.redacted}")
        atype = self._type(s.TypeKind.ARTIFACT, found[0].kind, {})
        a = s.ARTIFACT

        def put(conn: Connection) -> None:
            conn.execute(update(a).where(a.c.id == artifact_id).values(last_update_time_since_epoch=_now_ms()))
            self._put_properties(
                conn, s.TypeKind.ARTIFACT, artifact_id, properties, custom_properties, atype.properties, new=False
            )

        self._write("updating an artifact", put)
        [updated] = self.artifacts_by_id([artifact_id])
        self._remember_artifact(updated)
        return updated

    def artifacts_by_uri(self, uri: str) -> list[ArtifactRecord]:
        """Artifacts whose uri (md5) is ``uri``."""
        return self.artifacts(uri=uri)

    def artifact_by_name(self, kind: ArtifactKind | str, name: str) -> ArtifactRecord | None:
        """An artifact by type and name, or None."""
        found = self.artifacts(type_name=_kind_name(kind), name=name)
        return found[0] if found else None

    def artifacts(
        self,
        *,
        type_name: ArtifactKind | str | None = None,
        name: str | None = None,
        name_prefix: str | None = None,
        uri: str | None = None,
        uri_prefix: str | None = None,
        url: str | None = None,
        limit: int | None = None,
    ) -> list[ArtifactRecord]:
        """Artifacts matching every filter given, in order of id.

        Args:
            type_name: Only artifacts of this type (``Dataset``, ``Model``, ...).
            name: Only the artifact of exactly this name.
            name_prefix: Only artifacts whose name starts with this text.
            uri: Only artifacts of exactly this uri (md5).
            uri_prefix: Only artifacts whose uri starts with this text.
            url: Only artifacts whose ``url`` property is exactly this path.
            limit: At most this many.
        """
        a = s.ARTIFACT
        where: list[ColumnElement[bool]] = []
        if type_name is not None:
            type_id = self._known_type_id(s.TypeKind.ARTIFACT, _kind_name(type_name))
            if type_id is None:
                return []
            where.append(a.c.type_id == type_id)
        if name is not None:
            where.append(a.c.name == name)
        if name_prefix is not None:
            where.append(a.c.name.like(_like_prefix(name_prefix), escape="\\"))
        if uri is not None:
            where.append(a.c.uri == uri)
        if uri_prefix is not None:
            where.append(a.c.uri.like(_like_prefix(uri_prefix), escape="\\"))
        if url is not None:
            p = s.ARTIFACT_PROPERTY
            where.append(
                a.c.id.in_(
                    select(p.c.artifact_id).where(
                        p.c.name == "url", p.c.is_custom_property == literal(False), p.c.string_value == url
                    )
                )
            )
        found: list[ArtifactRecord] = self._select_nodes(s.TypeKind.ARTIFACT, where, limit=limit)
        # Exact comparisons again: MySQL's collation compares text case-insensitively.
        return [
            x
            for x in found
            if (name is None or x.name == name)
            and (name_prefix is None or x.name.startswith(name_prefix))
            and (uri is None or x.uri == uri)
            and (uri_prefix is None or x.uri.startswith(uri_prefix))
            and (url is None or x.properties.get("url") == url)
        ]

    def artifacts_of_type(self, kind: ArtifactKind | str) -> list[ArtifactRecord]:
        """Every artifact of a type."""
        return self.artifacts(type_name=kind)

    def artifacts_in_context(self, context_id: int) -> list[ArtifactRecord]:
        """Artifacts attributed to a context."""
        at = s.ATTRIBUTION
        ids = select(at.c.artifact_id).where(at.c.context_id == int(context_id))
        return list(self._select_nodes(s.TypeKind.ARTIFACT, [s.ARTIFACT.c.id.in_(ids)]))

    def _events(self, column: str, ids: Iterable[int], types: Iterable[EventType] | None) -> list[EventRecord]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        ev = s.EVENT
        codes = sorted(code for code, kind in _CODE_EVENTS.items() if types is None or kind in set(types))

        def read(conn: Connection) -> list[EventRecord]:
            found: list[EventRecord] = []
            for chunk in _chunks(wanted, _CHUNK):
                rows = conn.execute(
                    select(ev.c.execution_id, ev.c.artifact_id, ev.c.type, ev.c.milliseconds_since_epoch)
                    .where(ev.c[column].in_(chunk), ev.c.type.in_(codes))
                    .order_by(ev.c.id)
                )
                found += [
                    EventRecord(int(e), int(a), _CODE_EVENTS[int(t)], int(ms or 0))
                    for e, a, t, ms in rows
                    if int(t) in _CODE_EVENTS
                ]
            return found

        return list(self._read("reading events", read))

    def events_of_executions(self, ids: Iterable[int], types: Iterable[EventType] | None = None) -> list[EventRecord]:
        """Events of the given executions (only of ``types``, when given)."""
        return self._events("execution_id", ids, types)

    def events_of_artifacts(self, ids: Iterable[int], types: Iterable[EventType] | None = None) -> list[EventRecord]:
        """Events of the given artifacts (only of ``types``, when given)."""
        return self._events("artifact_id", ids, types)

    def count(self, what: str) -> int:
        """Number of rows of ``executions``, ``artifacts``, ``contexts`` or ``events``."""
        table = {"executions": s.EXECUTION, "artifacts": s.ARTIFACT, "contexts": s.CONTEXT, "events": s.EVENT}[what]
        return int(self._read("counting", lambda conn: conn.execute(select(func.count()).select_from(table)).scalar()))

    # -- snapshots ----------------------------------------------------------------------------

    def execution_snapshots(self, execution_ids: Sequence[int], chunk: int = 500) -> Iterator[ExecutionSnapshot]:
        """Snapshots of many executions, read in bulk per chunk of ids (missing ids are left out)."""
        contexts: dict[int, ContextRecord] = {}
        # An artifact's producers are written once; a data set read by every run would
        # otherwise bring all its events back with every chunk.
        producers: dict[int, set[int]] = {}
        for ids in _chunks(list(execution_ids), chunk):
            executions = self.executions_by_id(ids)
            events = self.events_of_executions(ids)
            artifacts = {a.id: a for a in self.artifacts_by_id(e.artifact_id for e in events)}
            input_ids = list(dict.fromkeys(e.artifact_id for e in events if e.type is EventType.INPUT))
            unknown = [a for a in input_ids if a not in producers]
            for artifact_id in unknown:
                producers[artifact_id] = set()
            for event in self.events_of_artifacts(unknown, [EventType.OUTPUT]):
                producers[event.artifact_id].add(event.execution_id)
            wanted = [i for e in executions for i in (e.stage_id, e.pipeline_id) if i not in contexts]
            for context in self.contexts_by_id(wanted):
                contexts[context.id] = context
            by_execution: dict[int, list[EventRecord]] = {}
            for event in events:
                by_execution.setdefault(event.execution_id, []).append(event)
            for execution in executions:
                yield _snapshot(
                    execution,
                    contexts,
                    by_execution.get(execution.id, []),
                    artifacts,
                    {a: producers.get(a, set()) for a in input_ids},
                )

    def execution_snapshot(self, execution_id: int) -> ExecutionSnapshot:
        """Same as :meth:`snapshot`."""
        return self.snapshot(execution_id)

    def snapshot(self, execution_id: int) -> ExecutionSnapshot:
        """An execution with its pipeline, stage, input and output artifacts and their producers.

        Raises:
            StoreError: The execution does not exist.
        """
        found = list(self.execution_snapshots([execution_id]))
        if not found:
            raise StoreError(f"execution {execution_id} does not exist in {self.location.redacted}")
        return found[0]


def _snapshot(
    execution: ExecutionRecord,
    contexts: Mapping[int, ContextRecord],
    events: Sequence[EventRecord],
    artifacts: Mapping[int, ArtifactRecord],
    producers: Mapping[int, set[int]],
) -> ExecutionSnapshot:
    inputs = tuple(artifacts[e.artifact_id] for e in events if e.type is EventType.INPUT and e.artifact_id in artifacts)
    outputs = tuple(
        artifacts[e.artifact_id] for e in events if e.type is EventType.OUTPUT and e.artifact_id in artifacts
    )
    return ExecutionSnapshot(
        pipeline=contexts.get(execution.pipeline_id)
        or ContextRecord(execution.pipeline_id, execution.pipeline, PIPELINE_CONTEXT_TYPE),
        stage=contexts.get(execution.stage_id) or ContextRecord(execution.stage_id, "", STAGE_CONTEXT_TYPE),
        execution=execution,
        inputs=inputs,
        outputs=outputs,
        producers={
            a.id: tuple(sorted(producers.get(a.id, set()) - {execution.id}))
            for a in inputs
            if producers.get(a.id, set()) - {execution.id}
        },
    )


def _as_stored(values: Mapping[str, Any], declared: Mapping[str, int]) -> dict[str, Value]:
    """Values as a read of the store returns them."""
    stored: dict[str, Value] = {}
    for name, value in values.items():
        plain = to_python(value)
        stored[name] = str(plain) if declared.get(name) == _S and not isinstance(plain, str) else plain
    return stored


def _contains(current: Mapping[str, Value], wanted: Mapping[str, Any]) -> bool:
    for name, value in _as_stored(wanted, {}).items():
        if name not in current:
            return False
        have = current[name]
        same_nan = isinstance(have, float) and isinstance(value, float) and math.isnan(have) and math.isnan(value)
        if have != value and not same_nan:
            return False
    return True


def _chunks(values: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(text: str) -> str:
    return _like_escape(text) + "%"


_stores: dict[tuple[str, str], MetadataStore] = {}
_stores_lock = threading.Lock()


def open_store(location: StoreLocation) -> MetadataStore:
    """The process-wide :class:`MetadataStore` of a location (opened, and created, on first use).

    Raises:
        StoreUnavailableError: The store cannot be reached or opened.
        StoreError: The store is not an ML Metadata store this release can use.
    """
    key = (location.identity, location.user)
    with _stores_lock:
        store = _stores.get(key)
        if store is None or store.location != location:
            store = _stores[key] = MetadataStore(location)
        return store
