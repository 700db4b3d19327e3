"""Creating ML Metadata's schema, once and race-free, and refusing schemas we cannot use.

Many workers may open an empty database at the same moment. Exactly one creates the
schema, under a lock the backend provides (SQLite's write lock, a PostgreSQL advisory
lock, a MySQL named lock); the others wait for it and find the schema in place. A store
whose ``MLMDEnv.schema_version`` is not 10 is refused without being touched.
"""

from __future__ import annotations

import logging
import zlib

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from cmf_orchestrate.errors import StoreError
from cmf_orchestrate.store import _schema as s
from cmf_orchestrate.store._engine import Database

__all__ = ["ensure_schema", "schema_version"]

logger = logging.getLogger(__name__)

_LOCK_NAME = "cmf_orchestrate.schema"
_LOCK_KEY = zlib.crc32(_LOCK_NAME.encode())


def schema_version(db: Database, conn: Connection) -> int | None:
    """``MLMDEnv.schema_version``, or None when the store has no schema yet."""
    if not _has_table(db, conn, "MLMDEnv"):
        return None
    return conn.execute(select(s.MLMD_ENV.c.schema_version)).scalar()


def _has_table(db: Database, conn: Connection, name: str) -> bool:
    if db.backend == "sqlite":
        query = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name")
    elif db.backend == "postgresql":
        query = text(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = lower(:name)"
        )
    else:
        query = text("SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = :name")
    return conn.execute(query, {"name": name}).first() is not None


def _check(db: Database, version: int | None) -> bool:
    """Whether the schema is ready; raise for one this release must not touch."""
    if version is None:
        return False
    if version != s.SCHEMA_VERSION:
        newer = version > s.SCHEMA_VERSION
        raise StoreError(
            f"the metadata store {db.location.redacted} has ML Metadata schema version {version}, "
            f"{'newer than' if newer else 'older than'} the version {s.SCHEMA_VERSION} this release reads; "
            "it was left untouched"
        )
    return True


def ensure_schema(db: Database) -> None:
    """Create the schema if the store has none; check its version otherwise.

    Raises:
        StoreError: The store has another schema version, or is not a database.
        StoreUnavailableError: The store cannot be reached.
    """
    if _check(db, db.transact("reading the schema version", lambda c: schema_version(db, c), write=False)):
        return
    if db.backend == "mysql":
        _create_mysql(db)
    else:
        db.transact("creating the schema", lambda conn: _create_transactional(db, conn))


def _create_transactional(db: Database, conn: Connection) -> None:
    # SQLite's write transaction and PostgreSQL's advisory lock admit one creator at a time;
    # both run DDL inside the transaction, so a half-created schema is never seen.
    if db.backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if _check(db, schema_version(db, conn)):
        return
    for statement in s.DDL[db.backend]:
        conn.exec_driver_sql(statement)
    _populate(conn)
    logger.info("created the ML Metadata schema in %s", db.location.redacted)


def _create_mysql(db: Database) -> None:
    # MySQL commits DDL at once: a named lock admits one creator, each step is idempotent
    # and commits by itself, and the version row, written last, says the schema is complete.
    try:
        with db.engine.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            got = conn.execute(text("SELECT GET_LOCK(:name, :timeout)"), {"name": _LOCK_NAME, "timeout": 60}).scalar()
            if got != 1:
                raise StoreError(f"timed out waiting for another process creating the schema in {db.location.redacted}")
            try:
                if _check(db, schema_version(db, conn)):
                    return
                existing = {
                    row[0]
                    for row in conn.execute(
                        text("SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE()")
                    )
                }
                for statement in s.DDL["mysql"]:
                    if statement.startswith("ALTER TABLE") and statement.split("`")[3] in existing:
                        continue
                    conn.exec_driver_sql(statement)
                if conn.execute(select(s.TYPE.c.id).limit(1)).first() is None:
                    _populate(conn)
                else:
                    conn.execute(s.MLMD_ENV.insert(), {"schema_version": s.SCHEMA_VERSION})
                logger.info("created the ML Metadata schema in %s", db.location.redacted)
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK_NAME})
    except DBAPIError as error:
        raise db.translate("creating the schema", error) from None


def _populate(conn: Connection) -> None:
    conn.execute(s.TYPE.insert(), [{"name": name, "type_kind": kind} for name, kind in s.SYSTEM_TYPES])
    conn.execute(s.MLMD_ENV.insert(), {"schema_version": s.SCHEMA_VERSION})
