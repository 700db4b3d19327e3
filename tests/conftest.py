"""Fixtures shared by every test package: project roots and database servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cmf_env import CMF_ENV_VARS
from servers import (
    MY_HOST,
    MY_PORT,
    MY_USER,
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_database,
    drop_database,
    require_server,
)

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root, as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for var in CMF_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database's URL, dropped afterwards."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    name = f"cmf_test_{uuid.uuid4().hex[:10]}"
    create_database("postgresql", name)
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    drop_database("postgresql", name)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database's URL, dropped afterwards."""
    require_server("MariaDB", MY_HOST, MY_PORT)
    name = f"cmf_test_{uuid.uuid4().hex[:10]}"
    create_database("mysql", name)
    yield f"mysql://{MY_USER}@{MY_HOST}:{MY_PORT}/{name}"
    drop_database("mysql", name)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def store_url(request: pytest.FixtureRequest, project: Path) -> str:
    """The same test on an embedded SQLite store, PostgreSQL and MariaDB."""
    if request.param == "sqlite":
        return str(project / "mlmd")
    return str(request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mysql_url"))
