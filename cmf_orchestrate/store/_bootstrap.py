"""Creating ML Metadata's schema, once and race-free, and refusing schemas we cannot use.

Many workers may open an empty database at the same moment. Exactly one creates the
schema, under a lock the backend provides (SQLite's write lock, a PostgreSQL advisory
lock, a MySQL named lock); the others wait for it and find the schema in place. A store
whose ``MLMDEnv.schema_version`` is not 10 is refused without being touched.

Opening a store never creates a server database: a missing one is an error naming the
store. Only :func:`init_store` (``cmf-orchestrate init``) creates it.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from cmf_orchestrate._storeurl import StoreLocation
from cmf_orchestrate.errors import StoreError, StoreUnavailableError
from cmf_orchestrate.store import _schema as s
from cmf_orchestrate.store._engine import Database, _create_engine, _my_code, _pg_code, database_for

__all__ = ["ensure_schema", "init_store", "schema_version"]

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


def _refuse_foreign(db: Database, conn: Connection) -> None:
    """Refuse a database that holds tables of another application (a wrong path or URL)."""
    if db.backend == "sqlite":
        query = text("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'")
    elif db.backend == "postgresql":
        query = text("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()")
    else:
        query = text("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
    ours = {name.lower() for name in s.MLMD_ENV.metadata.tables}
    foreign = sorted(str(row[0]) for row in conn.execute(query) if str(row[0]).lower() not in ours)
    if foreign:
        raise StoreError(
            f"{db.location.redacted} is not an ML Metadata store: it holds other tables "
            f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}) and no schema version; "
            "it was left untouched"
        )


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
        db.use_wal()
        return
    if db.backend == "mysql":
        _create_mysql(db)
    else:
        db.transact("creating the schema", lambda conn: _create_transactional(db, conn))
        db.use_wal()


def _create_transactional(db: Database, conn: Connection) -> None:
    # SQLite's write transaction and PostgreSQL's advisory lock admit one creator at a time;
    # both run DDL inside the transaction, so a half-created schema is never seen.
    if db.backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if _check(db, schema_version(db, conn)):
        return
    _refuse_foreign(db, conn)
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
                _refuse_foreign(db, conn)
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


# -- init -------------------------------------------------------------------------------

_PG_MISSING_DATABASE = "3D000"
_PG_DUPLICATE = {"42P04", "23505"}  # duplicate_database; unique_violation when two create it at once
_MY_MISSING_DATABASE = 1049


def init_store(location: StoreLocation) -> None:
    """Create a store: its database if the server has none of that name, then the schema.

    Safe to run again, and concurrently: an existing database and schema are kept as they
    are. An SQLite file is created with its folder. A PostgreSQL database is created through
    the server's ``postgres`` maintenance database, a MySQL/MariaDB one (``utf8mb4``) through
    a connection without a database; both with the store's own credentials.

    Raises:
        StoreError: The store has another schema version (it is left untouched), is not a
            database, or the user may not create the database.
        StoreUnavailableError: The server cannot be reached or refuses the credentials.
    """
    db = database_for(location)
    if location.backend != "sqlite" and not _database_exists(db):
        _create_database(db)
    ensure_schema(db)


def _database_exists(db: Database) -> bool:
    try:
        with db.engine.connect():
            return True
    except DBAPIError as error:
        if _is_missing_database(db, error):
            return False
        raise db.translate("connecting", error) from None
    except OSError as error:  # a socket error the driver let through
        raise StoreUnavailableError(
            f"connecting: the metadata store {db.location.redacted} is unavailable: {db.location.scrub(str(error))}"
        ) from None


def _is_missing_database(db: Database, error: DBAPIError) -> bool:
    if db.backend == "postgresql":
        return _pg_code(error.orig) == _PG_MISSING_DATABASE
    return _my_code(error.orig) == _MY_MISSING_DATABASE


def _create_database(db: Database) -> None:
    name = db.location.database
    # The server's own database to connect to while ours does not exist yet.
    admin = dataclasses.replace(db.location, database="postgres" if db.backend == "postgresql" else "")
    engine = _create_engine(admin)
    try:
        with engine.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            quoted = conn.dialect.identifier_preparer.quote_identifier(name)
            if db.backend == "postgresql":
                if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).first():
                    return
                conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4")
        logger.info("created the database %s", db.location.redacted)
    except DBAPIError as error:
        if db.backend == "postgresql" and _pg_code(error.orig) in _PG_DUPLICATE:
            return  # another process created it in the meantime
        raise db.translate(f"creating the database {name!r}", error) from None
    finally:
        engine.dispose()
