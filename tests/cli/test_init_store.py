"""`cmf-orchestrate init` creates the store (a server database too); other commands never do.

A store of a newer ML Metadata schema version is refused in one line, exit status 1, with
nothing written: neither the store nor the project folder changes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_testlib import run_entry_point
from sqlalchemy import create_engine, inspect, text

from cmf_orchestrate._storeurl import parse_store_url
from cmf_orchestrate.errors import StoreError
from cmf_orchestrate.store import init_store

_SYSTEM_TYPES = 9  # the types ml-metadata inserts into a new store


def _sqlalchemy_url(url: str) -> str:
    if "://" not in url:
        return f"sqlite:///{url}"
    scheme, rest = url.split("://", 1)
    return f"{'postgresql+pg8000' if scheme == 'postgresql' else 'mysql+pymysql'}://{rest}"


def _snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every table, to show that a command changed nothing."""
    engine = create_engine(_sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            return {
                name: sorted(repr(tuple(row)) for row in conn.execute(text(f"SELECT * FROM {quote(name)}")))
                for name in inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> None:
    engine = create_engine(_sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _admin(backend: str, sql: str, *, check: bool = True) -> str:
    """Run SQL as the server's administrator (psql / mariadb), outside the package under test."""
    if backend == "postgresql":
        cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atqc", sql]
    else:
        cmd = ["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e", sql]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60).stdout


def _databases(backend: str) -> set[str]:
    sql = "SELECT datname FROM pg_database" if backend == "postgresql" else "SHOW DATABASES"
    return set(_admin(backend, sql).split())


def _drop(backend: str, name: str) -> None:
    if backend == "postgresql":
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    else:
        sql = f"DROP DATABASE IF EXISTS `{name}`"
    _admin(backend, sql, check=False)


@pytest.fixture(params=["postgresql", "mysql"])
def missing_database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(backend, database name, URL) of a database the server does not have; dropped afterwards."""
    backend = str(request.param)
    # The server fixture skips (or, in CI, fails) when the server is absent.
    server = str(request.getfixturevalue("postgres_url" if backend == "postgresql" else "mysql_url"))
    name = f"cmf_init_{uuid.uuid4().hex[:10]}"
    yield backend, name, f"{server.rsplit('/', 1)[0]}/{name}"
    _drop(backend, name)


def test_only_init_creates_a_missing_server_database(
    missing_database: tuple[str, str, str], tmp_path: Path, run_cli: Any
) -> None:
    backend, name, url = missing_database
    root = tmp_path / "proj"
    root.mkdir()

    refused = run_entry_point(root, "pipelines", "--store", url)
    assert refused.returncode == 1, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert url.split("://", 1)[1] in refused.stderr and name in refused.stderr
    assert name not in _databases(backend)
    assert sorted(p.name for p in root.iterdir()) == []

    created = run_cli(root, "init", "--store", url, "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["store"] == parse_store_url(url).redacted
    assert name in _databases(backend)
    tables = _snapshot(url)
    assert tables[next(t for t in tables if t.lower() == "mlmdenv")] == [repr((10,))]
    assert len(tables[next(t for t in tables if t.lower() == "type")]) == _SYSTEM_TYPES

    again = run_cli(root, "init", "--json")  # the URL now comes from the project file
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["config"] == "unchanged"
    assert _snapshot(url) == tables


def test_init_creates_an_embedded_store_in_a_new_folder(tmp_path: Path, run_cli: Any) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    result = run_cli(root, "init", "--store", "meta/store/mlmd")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(root / "meta" / "store" / "mlmd") as conn:
        assert conn.execute("SELECT schema_version FROM MLMDEnv").fetchall() == [(10,)]
        assert conn.execute("SELECT count(*) FROM Type").fetchone() == (_SYSTEM_TYPES,)


def test_init_refuses_a_store_of_a_newer_schema_version(store_url: str, tmp_path: Path) -> None:
    location = parse_store_url(store_url)
    init_store(location)
    _execute(store_url, "UPDATE MLMDEnv SET schema_version = 11")
    before = _snapshot(store_url)
    root = tmp_path / "fresh"
    root.mkdir()

    result = run_entry_point(root, "init", "--store", store_url)

    assert result.returncode == 1, result.stdout + result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "schema version 11" in line and "newer" in line and "untouched" in line
    assert location.redacted in line
    assert _snapshot(store_url) == before
    assert sorted(p.name for p in root.iterdir()) == []  # no project file, no DVC repository
    with pytest.raises(StoreError, match="schema version 11"):
        init_store(location)


def test_init_leaves_the_bytes_of_a_newer_sqlite_store_as_they_were(tmp_path: Path, run_cli: Any) -> None:
    """A file in rollback-journal mode, as ml-metadata writes it: not even switched to WAL."""
    root = tmp_path / "proj"
    root.mkdir()
    store = root / "mlmd"
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE MLMDEnv (schema_version INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO MLMDEnv VALUES (11)")
    conn.close()
    before = store.read_bytes()

    result = run_cli(root, "init")

    assert result.exit_code == 1
    assert "schema version 11" in result.output
    assert store.read_bytes() == before
    assert sorted(p.name for p in root.iterdir()) == ["mlmd"]
