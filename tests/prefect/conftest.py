"""Fixtures of the Prefect adapter tests: one Prefect test server for the session, and a
fresh project (DVC repository and SQLite MLMD store) per test."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect_testlib import Project

from cmf_orchestrate import CmfSettings

try:  # The distribution, not the module: tests/ is on sys.path, where "prefect" is this directory.
    importlib.metadata.version("prefect")
except importlib.metadata.PackageNotFoundError:  # the Airflow environment: Airflow and Prefect exclude each other
    collect_ignore_glob = ["test_*.py"]

# Set before Prefect reads its settings; the harness server inherits them.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The shared empty project root, configured for tasks through the environment."""
    monkeypatch.setenv("CMF_PROJECT_ROOT", str(project))
    monkeypatch.setenv("CMF_STORE", "mlmd")
    return Project(root=project.resolve(), settings=CmfSettings.from_env())
