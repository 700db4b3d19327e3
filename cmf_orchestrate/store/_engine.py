"""Connections: one SQLAlchemy engine per process and store, transactions and their retries.

- SQLite runs in WAL mode (set once the file is known to be a store) with a busy
  timeout; every write transaction starts with ``BEGIN IMMEDIATE``, so writers queue for
  the lock instead of failing half-way.
- PostgreSQL (pg8000) and MySQL (PyMySQL) connections carry socket timeouts, so a frozen
  server gives :class:`StoreUnavailableError` in bounded time; pools pre-ping, so a
  restarted server is reconnected to.
- A forked child never touches its parent's connections: its engines are dropped without
  closing them (``dispose(close=False)``) and it opens its own.
- Transient conflicts (SQLite busy, serialization failures, deadlocks) retry the whole
  transaction with jittered backoff, then raise one clear error. A lost server (refused
  connections, a restart in progress) is retried while the connect timeout lasts.
- The statements of every task run (:class:`Prepared`) are compiled once per engine and
  run on the driver's cursor inside SQLAlchemy's transaction: SQLAlchemy's per-statement
  work (compiling, caching, result objects) would otherwise cost more than SQLite itself.
  Driver errors are raised as SQLAlchemy's, so retries and messages are the same.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, exc
from sqlalchemy.sql import ClauseElement

from cmf_orchestrate._storeurl import StoreLocation
from cmf_orchestrate.errors import StoreError, StoreUnavailableError

__all__ = ["Database", "Prepared", "RawResult", "database_for"]

logger = logging.getLogger(__name__)
#: SQLAlchemy's statement log, where statements run on the driver's cursor are logged as well.
_SQL_LOG = logging.getLogger("sqlalchemy.engine.Engine")

T = TypeVar("T")

_ATTEMPTS = 12
_BACKOFF_S = 0.01
_BACKOFF_CAP_S = 0.5
_RECONNECT_S = 0.1
_RECONNECT_CAP_S = 1.0

# SQLSTATEs / error numbers worth retrying: the transaction lost a race, not a logic error.
_PG_TRANSIENT = {"40001", "40P01", "55P03"}
_MY_TRANSIENT = {1205, 1213}
_MY_REFUSED = {1044, 1045, 1049}  # access denied, wrong password, unknown database
_MY_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}
# Refusals that no retry changes: wrong credentials, no such database.
_PG_REFUSED = {"28P01", "28000", "3D000"}
# The server shuts down or is starting up: a restart in progress, worth waiting for.
_PG_RESTARTING = {"57P01", "57P02", "57P03"}
_SQLITE_TRANSIENT = ("database is locked", "database is busy", "database table is locked")

_DRIVERS = {"postgresql": ("pg8000", "postgresql"), "mysql": ("pymysql", "mysql")}


@dataclass(frozen=True)
class Prepared:
    """A statement compiled for one dialect: its SQL text and the names of its parameters.

    ``named``: the driver takes them by name (PyMySQL), not in ``keys`` order.
    """

    sql: str
    keys: tuple[str, ...]
    named: bool = False

    def arguments(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's arguments for one row of values."""
        if self.named:
            return {k: row[k] for k in self.keys}
        return tuple(row[k] for k in self.keys)


@dataclass(frozen=True)
class RawResult:
    """What a :meth:`Database.run` returned: the rows (of a RETURNING or SELECT), the row count and the new id."""

    rows: list[tuple[Any, ...]]
    rowcount: int
    lastrowid: int | None


class Database:
    """One store's engine in this process, with transactions that retry transient failures."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.backend = location.backend
        self.engine = _create_engine(location)

    def use_wal(self) -> None:
        """Put an SQLite store in WAL mode (persistent in the file), so readers never block writers.

        Called once the file is known to be an ML Metadata store. A read-only file, or one
        that another process holds locked for longer than the busy timeout, keeps its mode:
        the store works in either.
        """
        if self.backend != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                # Outside any transaction: the journal mode cannot change inside one.
                cursor.execute("PRAGMA journal_mode = WAL")
            except Exception as error:  # noqa: BLE001 - any driver error only keeps the old mode
                logger.debug("%s stays in its journal mode: %s", self.location.redacted, error)
            finally:
                cursor.close()
        finally:
            raw.close()

    def prepare(self, statement: ClauseElement) -> Prepared:
        """Compile ``statement`` (whose values are all named bind parameters) for this engine's dialect."""
        compiled = statement.compile(dialect=self.engine.dialect)
        keys: list[str] | None = getattr(compiled, "positiontup", None)
        if keys is None:
            names = getattr(compiled, "bind_names", {})
            return Prepared(compiled.string, tuple(dict.fromkeys(names.values())), named=True)
        return Prepared(compiled.string, tuple(keys))

    def run(
        self, conn: Connection, prepared: Prepared, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> RawResult:
        """Run a prepared statement on the driver's cursor of ``conn``, inside its transaction.

        ``params`` is one row of values, or a sequence of rows for an executemany (which
        returns no rows).

        Raises:
            sqlalchemy.exc.DBAPIError: The driver's error, wrapped as SQLAlchemy wraps it.
        """
        many = not isinstance(params, Mapping)
        if _SQL_LOG.isEnabledFor(logging.INFO):
            # A deployment that turned SQLAlchemy's statement log on sees these statements too.
            _SQL_LOG.info("%s [cmf-orchestrate, on the driver's cursor%s]", prepared.sql, ", many" if many else "")
        cursor = conn.connection.cursor()
        try:
            if isinstance(params, Mapping):
                cursor.execute(prepared.sql, prepared.arguments(params))
                rows = list(cursor.fetchall()) if cursor.description else []
                return RawResult(rows, cursor.rowcount, getattr(cursor, "lastrowid", None))
            many_args: list[Any] = [prepared.arguments(row) for row in params]
            cursor.executemany(prepared.sql, many_args)
            return RawResult([], cursor.rowcount, None)
        except self.engine.dialect.loaded_dbapi.Error as error:
            dialect = self.engine.dialect
            lost = bool(dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor))
            raise exc.DBAPIError.instance(
                prepared.sql,
                None,
                error,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=dialect,
                ismulti=many,
            ) from error
        finally:
            cursor.close()

    def dispose_inherited(self) -> None:
        """Forget connections inherited through fork without closing the parent's sockets."""
        self.engine.dispose(close=False)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def connect(self, *, write: bool) -> Iterator[Connection]:
        """A connection in a transaction (``BEGIN IMMEDIATE`` for SQLite writes), committed on exit."""
        with self.engine.connect() as conn:
            if self.backend == "sqlite":
                conn.execution_options(cmf_begin="BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                with conn.begin():
                    yield conn
            except OSError:
                # pg8000 lets a socket timeout or reset through untranslated: the connection
                # is in an unknown state, so it must never go back to the pool.
                conn.invalidate()
                raise
            except exc.DBAPIError as error:
                # A statement run on the driver's cursor (:meth:`run`) lost the server:
                # SQLAlchemy did not see it, so the connection is discarded here.
                if error.connection_invalidated and not conn.invalidated:
                    conn.invalidate()
                raise

    def transact(self, what: str, fn: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``fn`` in one transaction; retry it whole on a transient failure.

        Raises:
            StoreUnavailableError: The store cannot be reached (after retries for a lost connection).
            StoreError: The store refused the work; nothing of it was written.
        """
        lost_since: float | None = None
        for attempt in range(_ATTEMPTS):
            try:
                with self.connect(write=write) as conn:
                    return fn(conn)
            except exc.DBAPIError as error:
                kind = self.classify(error)
                if kind == "transient" and attempt < _ATTEMPTS - 1:
                    _sleep(attempt)
                    continue
                if kind == "disconnect":
                    lost_since = lost_since or time.monotonic()
                    if self._reconnecting(attempt, lost_since):
                        continue
                raise self.translate(what, error) from None
            except OSError as error:
                # A socket timeout or reset that the driver did not wrap (pg8000 on a frozen
                # server, during the pool's pre-ping or a statement): the server is gone.
                lost_since = lost_since or time.monotonic()
                if self._reconnecting(attempt, lost_since):
                    continue
                raise StoreUnavailableError(
                    f"{what}: the metadata store {self.location.redacted} is unavailable: "
                    f"{self._message(error) or type(error).__name__}"
                ) from None
            except exc.SQLAlchemyError as error:
                raise StoreError(f"{what} failed on {self.location.redacted}: {self._message(error)}") from None
        raise StoreError(f"{what}: gave up after {_ATTEMPTS} conflicting attempts on {self.location.redacted}")

    def _reconnecting(self, attempt: int, lost_since: float) -> bool:
        """Whether to try again after losing the server, having waited a little.

        A restart (or failover) in progress refuses connections for a moment: the first
        loss is always retried, later ones while the connect timeout has not run out since
        the server was first lost. A frozen server has used up that time in its first
        timeout already, so it is reported without waiting again and again.
        """
        if attempt >= _ATTEMPTS - 1:
            return False
        if attempt > 0 and time.monotonic() - lost_since >= self.location.connect_timeout:
            return False
        time.sleep(random.uniform(0.5, 1.0) * min(_RECONNECT_CAP_S, _RECONNECT_S * 2**attempt))  # noqa: S311 - jitter
        return True

    # -- errors ---------------------------------------------------------------------------

    def classify(self, error: exc.DBAPIError) -> str:
        """``transient``, ``disconnect``, ``unreachable`` or ``error``."""
        orig = error.orig
        if self.backend == "sqlite":
            text = str(orig)
            if any(marker in text for marker in _SQLITE_TRANSIENT):
                return "transient"
            return "unreachable" if "unable to open database file" in text else "error"
        if _unresolvable(orig):
            return "unreachable"
        if self.backend == "postgresql":
            code = _pg_code(orig)
            kind = "transient" if code in _PG_TRANSIENT else "unreachable" if code in _PG_REFUSED else ""
            if code in _PG_RESTARTING:
                kind = "disconnect"
        else:
            number = _my_code(orig)
            kind = "transient" if number in _MY_TRANSIENT else "unreachable" if number in _MY_REFUSED else ""
            if number in _MY_UNREACHABLE:
                kind = kind or "disconnect"
        if not kind and (error.connection_invalidated or _is_network(orig)):
            kind = "disconnect"
        return kind or "error"

    def translate(self, what: str, error: exc.DBAPIError) -> StoreError:
        """Our error for a driver error: message scrubbed of the password, parameters left out."""
        message = self._message(error)
        if _pg_code(error.orig) == "3D000" or (self.backend == "mysql" and _my_code(error.orig) == 1049):
            message += "; `cmf-orchestrate init --store URL` creates it"
        if self.classify(error) in {"disconnect", "unreachable"}:
            return StoreUnavailableError(
                f"{what}: the metadata store {self.location.redacted} is unavailable: {message}"
            )
        return StoreError(f"{what} failed on {self.location.redacted}: {message}")

    def _message(self, error: BaseException) -> str:
        orig = getattr(error, "orig", None) or error
        if self.backend == "postgresql" and isinstance(getattr(orig, "args", (None,))[0], dict):
            fields = orig.args[0]
            text = f"{fields.get('M', '')} ({fields.get('C', '')})"
        else:
            text = str(orig)
        text = " ".join(text.split())
        return self.location.scrub(text)[:500]


def _sleep(attempt: int) -> None:
    # Full jitter: concurrent losers of one race do not collide again in lockstep.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_S * 2**attempt)))  # noqa: S311 - jitter, not security


def _pg_code(orig: BaseException | None) -> str:
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], dict):
        return str(args[0].get("C", ""))
    return ""


def _my_code(orig: BaseException | None) -> int:
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return 0


def _unresolvable(orig: BaseException | None) -> bool:
    """A host name that does not resolve: no retry will make it."""
    seen: BaseException | None = orig
    for _ in range(4):  # the driver's error, and what it was raised from
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(orig)
    return "Name or service not known" in text or "nodename nor servname" in text


def _is_network(orig: BaseException | None) -> bool:
    text = str(orig).lower()
    return isinstance(orig, (OSError, TimeoutError)) or any(
        marker in text
        for marker in ("timed out", "timeout", "network error", "connection", "broken pipe", "server closed", "eof")
    )


def _create_engine(location: StoreLocation) -> Engine:
    common: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": location.backend != "sqlite"}
    if location.backend == "sqlite":
        assert location.path is not None
        location.path.parent.mkdir(parents=True, exist_ok=True)
        url = URL.create("sqlite+pysqlite", database=str(location.path))
        engine = create_engine(
            url,
            connect_args={"timeout": location.timeout, "check_same_thread": False},
            pool_size=8,
            max_overflow=16,
            **common,
        )
        _configure_sqlite(engine, location.timeout)
        return engine
    driver, name = _DRIVERS[location.backend]
    try:
        __import__(driver)
    except ImportError as error:
        raise StoreError(
            f"the metadata store {location.redacted} needs the {driver} driver: "
            f'pip install "cmf-orchestrate[{location.backend}]"'
        ) from error
    url = URL.create(
        f"{name}+{driver}",
        username=location.user or None,
        password=location.password or None,
        host=location.host,
        port=location.port,
        database=location.database,
    )
    if location.backend == "postgresql":
        # pg8000 has one socket timeout: the connect timeout while connecting (and
        # authenticating), then the statement timeout once connected (_configure_timeouts).
        connect_args: dict[str, Any] = {"timeout": location.connect_timeout, "application_name": "cmf-orchestrate"}
    else:
        # PyMySQL reads the server's handshake with its read timeout: connect with the
        # connect timeout throughout, then switch to the statement timeout (_configure_timeouts).
        connect_args = {
            "connect_timeout": location.connect_timeout,
            "read_timeout": location.connect_timeout,
            "write_timeout": location.connect_timeout,
            "charset": "utf8mb4",
        }
    engine = create_engine(
        url,
        connect_args=connect_args,
        isolation_level="READ COMMITTED",
        pool_size=4,
        max_overflow=8,
        pool_recycle=1800,
        pool_timeout=location.timeout,
        **common,
    )
    _configure_timeouts(engine, location.timeout)
    # pg8000 runs an executemany row by row, one round trip each: SQLAlchemy batches the
    # rows of an INSERT into multi-row VALUES statements instead.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def _configure_timeouts(engine: Engine, timeout: float) -> None:
    # Neither driver has separate connect and statement timeouts for every step of
    # connecting (pg8000 has one socket timeout; PyMySQL reads the handshake with its read
    # timeout): connections are made under the connect timeout, then given the statement one.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        sock = getattr(dbapi_connection, "_usock", None)  # pg8000
        if sock is not None:
            sock.settimeout(timeout)
        if hasattr(dbapi_connection, "_read_timeout"):  # PyMySQL
            dbapi_connection._read_timeout = timeout
            dbapi_connection._write_timeout = timeout


def _configure_sqlite(engine: Engine, timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off; transactions begin as we say.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Not journal_mode: it writes to the file, which must first be known to be a store
            # (use_wal, once the schema is checked). A foreign or corrupt file stays untouched.
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("cmf_begin", "BEGIN"))


_databases: dict[tuple[int, str, str, str], Database] = {}
_lock = threading.Lock()


def database_for(location: StoreLocation) -> Database:
    """This process's :class:`Database` for a location (created on first use)."""
    key = (os.getpid(), location.identity, location.user, location.password)
    with _lock:
        found = _databases.get(key)
        if found is None:
            found = _databases[key] = Database(location)
        return found


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at fork time: replace it.
    global _lock  # noqa: PLW0603 - module state that a fork must reset
    _lock = threading.Lock()
    inherited = list(_databases.values())
    _databases.clear()
    for database in inherited:
        database.dispose_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)
