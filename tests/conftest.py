"""Fixtures shared by every test package: project roots and database servers."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cmf_env import CMF_ENV_VARS

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
MY_HOST, MY_PORT, MY_USER = "127.0.0.1", 3306, "root"


def server_up(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) when a server is absent."""
    if server_up(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run the {name} tests (.ci/run starts it)")
    pytest.skip(message)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root, as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for var in CMF_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return root


def _admin(backend: str, sql: str) -> None:
    if backend == "postgresql":
        cmd = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres", "-qc", sql]
    else:
        cmd = ["mariadb", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER, "-e", sql]
    subprocess.run(cmd, check=False, capture_output=True, timeout=60)


def _create_database(backend: str, name: str) -> None:
    _admin(backend, f'CREATE DATABASE "{name}"' if backend == "postgresql" else f"CREATE DATABASE `{name}`")


def _drop_database(backend: str, name: str) -> None:
    if backend == "postgresql":
        _admin(backend, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        _admin(backend, f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database's URL, dropped afterwards."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    name = f"cmf_test_{uuid.uuid4().hex[:10]}"
    _create_database("postgresql", name)
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    _drop_database("postgresql", name)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database's URL, dropped afterwards."""
    require_server("MariaDB", MY_HOST, MY_PORT)
    name = f"cmf_test_{uuid.uuid4().hex[:10]}"
    _create_database("mysql", name)
    yield f"mysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{name}"
    _drop_database("mysql", name)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store_url(request: pytest.FixtureRequest, project: Path) -> str:
    """The same test on an embedded SQLite store, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return str(project / "mlmd")
    return str(request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mysql_url"))
