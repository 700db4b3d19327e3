"""Mirror of the metadata into a Neo4j graph (the seed's optional graph layer).

ML Metadata stays the source of truth; the graph is a projection of it:

- nodes ``Pipeline``, ``Stage``, ``Execution`` and one label per artifact kind
  (``Dataset``, ``Model``, ``Metrics``, ``Step_Metrics``, ``Dataslice``, ``Environment``);
- ``(Pipeline)-[:contains]->(Stage)``, ``(Stage)-[:runs]->(Execution)``,
  ``(Artifact)-[:input]->(Execution)``, ``(Execution)-[:output]->(Artifact)``,
  ``(producer:Execution)-[:linked]->(consumer:Execution)`` and
  ``(input)-[:derived {execution_uid}]->(output)`` for each execution.

Every node is keyed by ``uid``: the MLMD id qualified by the store's own identity
(``<store id>#execution/<id>``), so projecting an execution again changes nothing. Nodes
also carry ``store`` and ``id``, the names and content hashes (``uri``), paths, execution
state and the orchestration facts (attempt, orchestrator, run ids, times) unprefixed.

The statements are produced by a pure function (:func:`statements_for`); a backend runs
them in one transaction. :class:`Neo4jBackend` does so through the official driver's
managed transactions, which retry transient errors. This is the only module that imports
``neo4j``; nothing of the driver leaves it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import neo4j
from neo4j import exceptions as neo4j_errors

from cmf_orchestrate import _cypher
from cmf_orchestrate.errors import CmfError, ConfigError, GraphError, GraphUnavailableError
from cmf_orchestrate.records import ExecutionSnapshot

if TYPE_CHECKING:
    from cmf_orchestrate.settings import CmfSettings

__all__ = [
    "NODE_LABELS",
    "RELATIONSHIP_TYPES",
    "GraphBackend",
    "GraphSource",
    "Neo4jBackend",
    "Statement",
    "SyncReport",
    "mirror_execution",
    "pending",
    "schema_statements",
    "statements_for",
    "sync",
    "write_statements",
]

logger = logging.getLogger(__name__)

NODE_LABELS = _cypher.NODE_LABELS
RELATIONSHIP_TYPES = _cypher.RELATIONSHIP_TYPES

#: Seconds to connect to Neo4j or acquire a pooled connection.
DEFAULT_TIMEOUT = 5.0
#: Seconds a task keeps retrying a transient failure (a deadlock between concurrent
#: writers, a leader switch) before leaving its execution pending.
TASK_RETRY_TIME = 5.0
#: Seconds ``graph sync`` keeps retrying a transient failure.
SYNC_RETRY_TIME = 15.0
#: After Neo4j was found unavailable, tasks of this process skip it for this many seconds
#: (their executions stay pending) instead of each waiting for the connect timeout.
TASK_COOLDOWN = 30.0
#: Executions per transaction in ``graph sync``.
DEFAULT_BATCH = 500
#: Server-side limit of one write transaction, in seconds.
_TRANSACTION_TIMEOUT = 120.0


@dataclass(frozen=True)
class Statement:
    """One Cypher statement exactly as sent: constant text and its parameters.

    Attributes:
        text: Cypher text; it never contains a value from the metadata.
        params: Parameters bound to the text.
    """

    text: str
    params: Mapping[str, Any] = field(default_factory=dict)


def statements_for(snapshot: ExecutionSnapshot, store_id: str) -> list[Statement]:
    """The statements projecting one execution (one task run) into the graph.

    Args:
        snapshot: The execution with its contexts, artifacts and producers.
        store_id: Identity of the metadata store the ids belong to.

    Returns:
        Statements to run in order in one write transaction.
    """
    return write_statements([snapshot], store_id)


def write_statements(snapshots: Iterable[ExecutionSnapshot], store_id: str) -> list[Statement]:
    """The statements projecting many executions in one transaction (same texts, more rows).

    Args:
        snapshots: Executions to project.
        store_id: Identity of the metadata store the ids belong to.

    Returns:
        Statements to run in order in one write transaction.
    """
    return [
        Statement(text, MappingProxyType({"rows": rows})) for text, rows in _cypher.statement_rows(snapshots, store_id)
    ]


def schema_statements() -> list[Statement]:
    """Neo4j uniqueness constraints on ``uid`` for every label (idempotent).

    They make concurrent ``MERGE`` from many task processes safe and index the lookups.
    """
    return [Statement(text) for text in _cypher.SCHEMA]


class GraphBackend(Protocol):
    """Something that runs a list of statements as one write transaction."""

    def write(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in order, all or nothing.

        Raises:
            GraphUnavailableError: The graph cannot be reached, refused the credentials
                or timed out.
            GraphError: The graph rejected a statement.
        """

    def ensure_schema(self) -> None:
        """Create the constraints and indexes the writes rely on (idempotent)."""

    def close(self) -> None:
        """Release connections."""


class GraphSource(Protocol):
    """The part of the metadata store the graph layer reads and marks."""

    @property
    def store_id(self) -> str:
        """Stable identity of the store."""

    def execution_ids(self) -> list[int]:
        """Every execution id, ascending."""

    def unsynced_execution_ids(self) -> list[int]:
        """Executions whose mirror is pending, ascending."""

    def execution_snapshots(self, execution_ids: Sequence[int], chunk: int = 500) -> Iterable[ExecutionSnapshot]:
        """Snapshots of those executions."""

    def set_graph_synced(self, execution_ids: Sequence[int], synced: bool) -> None:
        """Mark executions mirrored (or pending)."""


class Neo4jBackend:
    """Writes to Neo4j through the official driver's managed write transactions.

    Args:
        uri: Bolt URL (``bolt://``, ``neo4j://`` and their ``+s``/``+ssc`` forms).
        user: User name; no authentication when empty.
        password: Password; it never appears in a message.
        database: Database name (the server's default when ``None``).
        timeout: Seconds for connecting and for acquiring a pooled connection.
        retry_time: Seconds the managed transactions keep retrying transient errors.
        cooldown: After an unavailability, fail writes at once for this many seconds.

    Raises:
        ConfigError: The URI is malformed.
    """

    def __init__(
        self,
        uri: str,
        user: str | None = None,
        password: str | None = None,
        *,
        database: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_time: float = SYNC_RETRY_TIME,
        cooldown: float = 0.0,
    ) -> None:
        self.uri = redact_uri(uri)
        self._password = password or ""
        self._database = database
        self._timeout = timeout
        self._cooldown = cooldown
        self._down_until = 0.0
        self._connected = False
        self._schema_done = False
        auth = (user, password or "") if user else None
        try:
            self._driver = neo4j.GraphDatabase.driver(
                uri,
                auth=auth,
                connection_timeout=timeout,
                connection_acquisition_timeout=timeout,
                max_transaction_retry_time=retry_time,
            )
        except (neo4j_errors.ConfigurationError, ValueError) as exc:
            raise ConfigError(f"invalid Neo4j URI {self.uri!r}: {self._scrub(str(exc))}") from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _translate(self, exc: Exception) -> GraphError:
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, neo4j_errors.AuthError):
            return GraphUnavailableError(f"Neo4j at {self.uri} refused the credentials: {detail}")
        if isinstance(
            exc,
            (
                neo4j_errors.ServiceUnavailable,
                neo4j_errors.SessionExpired,
                neo4j_errors.ConnectionPoolError,
                neo4j_errors.TransientError,
                TimeoutError,
                OSError,
            ),
        ):
            return GraphUnavailableError(f"Neo4j at {self.uri} is unavailable: {detail}")
        if isinstance(exc, neo4j_errors.ClientError) and exc.code and "Transaction.TransactionTimedOut" in exc.code:
            return GraphUnavailableError(f"Neo4j at {self.uri} timed out: {detail}")
        return GraphError(f"Neo4j at {self.uri} rejected the write: {detail}")

    def write(self, statements: Sequence[Statement]) -> None:
        """Run ``statements`` in one managed write transaction.

        Raises:
            GraphUnavailableError: Neo4j is unreachable, refused the credentials or timed out.
            GraphError: Neo4j rejected a statement.
        """
        if not statements:
            return
        self._connect()

        @neo4j.unit_of_work(timeout=_TRANSACTION_TIMEOUT)
        def work(tx: neo4j.ManagedTransaction) -> None:
            for statement in statements:
                tx.run(statement.text, dict(statement.params)).consume()

        try:
            with self._driver.session(database=self._database) as session:
                session.execute_write(work)
        except (neo4j_errors.Neo4jError, neo4j_errors.DriverError, OSError) as exc:
            raise self._failed(exc) from None

    def _connect(self) -> None:
        """Check the server once (and again after a failure) before writing.

        A server that is down or refuses the credentials is found in one round trip,
        instead of after the managed transaction's retries, which are kept for the
        transient errors of a server that is up.
        """
        if time.monotonic() < self._down_until:
            raise GraphUnavailableError(
                f"Neo4j at {self.uri} was unavailable less than {self._cooldown:g} s ago; not trying again yet"
            )
        if self._connected:
            return
        try:
            self._driver.verify_connectivity()
        except (neo4j_errors.Neo4jError, neo4j_errors.DriverError, OSError) as exc:
            raise self._failed(exc) from None
        self._connected = True

    def _failed(self, exc: Exception) -> GraphError:
        error = self._translate(exc)
        if isinstance(error, GraphUnavailableError):
            self._connected = False
            if self._cooldown > 0:
                self._down_until = time.monotonic() + self._cooldown
        return error

    def ensure_schema(self) -> None:
        """Create the ``uid`` uniqueness constraints once per backend.

        A user without schema rights can still write: the failure is logged, not raised.

        Raises:
            GraphUnavailableError: Neo4j is unreachable, refused the credentials or timed out.
        """
        if self._schema_done:
            return
        self._connect()
        for statement in schema_statements():

            def create(tx: neo4j.ManagedTransaction, text: str = statement.text) -> None:
                tx.run(text).consume()

            try:
                with self._driver.session(database=self._database) as session:
                    session.execute_write(create)
            except (neo4j_errors.Neo4jError, neo4j_errors.DriverError, OSError) as exc:
                error = self._failed(exc)
                if isinstance(error, GraphUnavailableError):
                    raise error from None
                logger.info("graph: cannot create the Neo4j constraints (%s); writing without them", error)
                break
        self._schema_done = True

    def close(self) -> None:
        """Close the driver and its connections."""
        self._driver.close()


def redact_uri(uri: str) -> str:
    """``uri`` without any password it embeds (``bolt://user:secret@host`` -> ``bolt://user:***@host``)."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))
    except ValueError:
        return "<malformed URI>"


_backends: dict[tuple[str, str, str], Neo4jBackend] = {}
_backends_lock = threading.Lock()


def _backend(settings: CmfSettings) -> Neo4jBackend:
    """The process-wide backend for the settings' Neo4j server (its driver pools connections).

    Raises:
        ConfigError: No Neo4j URI is configured, or it is malformed.
    """
    if not settings.neo4j_uri:
        raise ConfigError("the graph is enabled but no Neo4j URI is configured (NEO4J_URI)")
    key = (settings.neo4j_uri, settings.neo4j_user or "", settings.neo4j_password or "")
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = _backends[key] = Neo4jBackend(
                settings.neo4j_uri,
                settings.neo4j_user,
                settings.neo4j_password,
                retry_time=TASK_RETRY_TIME,
                cooldown=TASK_COOLDOWN,
            )
        return backend


def mirror_execution(
    settings: CmfSettings,
    store: GraphSource,
    execution_id: int,
    *,
    backend: GraphBackend | None = None,
) -> bool:
    """Project one finished execution into the graph, in one write transaction.

    Called by the task-run lifecycle after the execution's final write. Graph trouble
    never fails the task: the execution stays marked pending (``cmf.graph_synced`` = 0)
    for ``cmf-orchestrate graph sync`` and one warning is logged, without the password.

    Args:
        settings: Settings naming the Neo4j server.
        store: The metadata store holding the execution.
        execution_id: The execution to project.
        backend: Where to write (default: the settings' Neo4j server).

    Returns:
        True when the execution is in the graph and marked synced, False otherwise.
    """
    try:
        target = backend if backend is not None else _backend(settings)
        target.ensure_schema()
        snapshots = list(store.execution_snapshots([execution_id]))
        if not snapshots:
            logger.warning("graph: execution %s is not in the metadata store; nothing to mirror", execution_id)
            return False
        target.write(write_statements(snapshots, store.store_id))
    except CmfError as exc:
        logger.warning(
            "graph: execution %s is not mirrored yet (%s); `cmf-orchestrate graph sync` will push it",
            execution_id,
            _scrub(str(exc), settings),
        )
        _mark(store, [execution_id], synced=False)
        return False
    return _mark(store, [execution_id], synced=True)


def _mark(store: GraphSource, execution_ids: Sequence[int], *, synced: bool) -> bool:
    try:
        store.set_graph_synced(execution_ids, synced)
    except CmfError as exc:
        logger.warning("graph: cannot record the mirror state of execution(s) %s: %s", list(execution_ids), exc)
        return False
    return True


def _scrub(text: str, settings: CmfSettings) -> str:
    if settings.neo4j_password:
        text = text.replace(settings.neo4j_password, "***")
    return settings.location.scrub(text)


@dataclass(frozen=True)
class SyncReport:
    """What ``graph sync`` did.

    Attributes:
        pending: Executions it set out to push (pending ones, or all on a rebuild).
        written: Executions now in the graph and marked synced.
        failed: Executions still pending after this run.
        elapsed_s: Wall time in seconds.
        error: The first graph error (no password), ``None`` when all went through.
    """

    pending: int
    written: int
    failed: int
    elapsed_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every execution went through."""
        return self.failed == 0 and self.error is None

    @property
    def rate(self) -> float:
        """Executions written per second."""
        return self.written / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _open_source(settings: CmfSettings) -> GraphSource:
    from cmf_orchestrate.store import open_store

    return open_store(settings.location)


def pending(settings: CmfSettings, store: GraphSource | None = None) -> int:
    """How many executions wait for ``graph sync`` (reads the store only).

    Raises:
        StoreUnavailableError: The metadata store cannot be reached.
        StoreError: The metadata store failed the read.
    """
    source = store if store is not None else _open_source(settings)
    return len(source.unsynced_execution_ids())


def sync(
    settings: CmfSettings,
    *,
    rebuild: bool = False,
    progress: Callable[[int, int], None] | None = None,
    store: GraphSource | None = None,
    backend: GraphBackend | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> SyncReport:
    """Push pending executions to the graph, or (``rebuild``) project the whole store again.

    Idempotent: nodes and relationships are merged on their identity, so running it twice,
    or after a partial run, leaves the same graph. Executions go in batches, one write
    transaction each; a batch the graph rejects is retried one execution at a time so one
    bad execution does not hold back the rest. When the graph becomes unreachable the run
    stops and what is left stays pending.

    Args:
        settings: Settings naming the metadata store and the Neo4j server.
        rebuild: Project every execution, not only the pending ones.
        progress: Called as ``progress(done, total)`` after each batch.
        store: The metadata store (default: the settings' store).
        backend: Where to write (default: the settings' Neo4j server).
        batch_size: Executions per transaction.

    Returns:
        What was pushed and what is still pending.

    Raises:
        ConfigError: No Neo4j URI is configured, or it is malformed.
        StoreUnavailableError: The metadata store cannot be reached.
        StoreError: The metadata store failed a read or write.
    """
    started = time.perf_counter()
    source = store if store is not None else _open_source(settings)
    own = backend is None
    target = backend if backend is not None else _sync_backend(settings)
    try:
        return _sync(
            settings, source, target, rebuild=rebuild, progress=progress, batch_size=batch_size, started=started
        )
    finally:
        if own:
            target.close()


def _sync_backend(settings: CmfSettings) -> Neo4jBackend:
    if not settings.neo4j_uri:
        raise ConfigError("no Neo4j URI is configured (NEO4J_URI)")
    return Neo4jBackend(settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password, retry_time=SYNC_RETRY_TIME)


def _sync(
    settings: CmfSettings,
    source: GraphSource,
    target: GraphBackend,
    *,
    rebuild: bool,
    progress: Callable[[int, int], None] | None,
    batch_size: int,
    started: float,
) -> SyncReport:
    ids = source.execution_ids() if rebuild else source.unsynced_execution_ids()
    total = len(ids)
    written = 0
    error: str | None = None
    if progress is not None:
        progress(0, total)
    try:
        target.ensure_schema()
        store_id = source.store_id
        for start in range(0, total, max(1, batch_size)):
            batch = list(source.execution_snapshots(ids[start : start + batch_size]))
            done, batch_error = _write_batch(target, batch, store_id)
            source.set_graph_synced(done, True)
            written += len(done)
            if batch_error is not None and error is None:
                error = _scrub(str(batch_error), settings)
            if isinstance(batch_error, GraphUnavailableError):
                break
            if progress is not None:
                progress(min(start + batch_size, total), total)
    except GraphError as exc:
        error = _scrub(str(exc), settings)
    if error is not None:
        logger.warning("graph sync: %d of %d execution(s) still pending: %s", total - written, total, error)
    return SyncReport(
        pending=total,
        written=written,
        failed=total - written,
        elapsed_s=time.perf_counter() - started,
        error=error,
    )


def _write_batch(
    backend: GraphBackend, batch: Sequence[ExecutionSnapshot], store_id: str
) -> tuple[list[int], GraphError | None]:
    """Write a batch in one transaction; on rejection, one execution per transaction."""
    if not batch:
        return [], None
    try:
        backend.write(write_statements(batch, store_id))
    except GraphUnavailableError as exc:
        return [], exc
    except GraphError as exc:
        if len(batch) == 1:
            return [], exc
        first: GraphError | None = exc
    else:
        return [s.execution.id for s in batch], None
    done: list[int] = []
    for snapshot in batch:
        try:
            backend.write(statements_for(snapshot, store_id))
        except GraphUnavailableError as exc:
            return done, exc
        except GraphError as exc:
            logger.warning("graph sync: execution %s rejected: %s", snapshot.execution.id, exc)
            continue
        done.append(snapshot.execution.id)
    return done, (first if len(done) < len(batch) else None)
