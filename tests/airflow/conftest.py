"""Airflow test harness: one throw-away AIRFLOW_HOME and one migrated SQLite metadata DB per session.

Airflow reads its configuration when it is first imported, so the environment is set
here, at import time of this conftest, before any test module imports Airflow.
``dag.test()`` needs its DAG in a DAG bundle: the example DAGs (``dags/``) and the test
DAGs (``tests/airflow/dag_files/``) are two local bundles.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from airflow_testlib import LOGICAL_DATE_ISO

try:
    # By distribution, not by module: tests/airflow itself would pass for an "airflow" namespace package.
    importlib.metadata.distribution("apache-airflow-core")
except importlib.metadata.PackageNotFoundError:  # the Prefect environment: Airflow and Prefect exclude each other
    collect_ignore_glob = ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "dags"
TEST_DAGS = Path(__file__).resolve().parent / "dag_files"

_HOME = Path(tempfile.mkdtemp(prefix="cmf-airflow-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

_BUNDLES = [
    {
        "name": "cmf-examples",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(EXAMPLE_DAGS)},
    },
    {
        "name": "cmf-tests",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(TEST_DAGS)},
    },
]

os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(TEST_DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(_BUNDLES),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": "cmf-orchestrate-tests-jwt-secret-0123456789",
        "DVC_NO_ANALYTICS": "1",
    }
)


@pytest.fixture(autouse=True)
def _isolated_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection or store configured by the developer's shell must not leak into a test."""
    for name in list(os.environ):
        if name.startswith(("AIRFLOW_CONN_", "CMF_", "NEO4J_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The migrated Airflow metadata DB of this session."""
    from airflow.utils import db

    db.initdb()
    return _HOME


@pytest.fixture
def cmf_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Path:
    """A fresh project root with its own SQLite MLMD store, as connection ``cmf_default``."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CMF_DEFAULT",
        json.dumps({"conn_type": "cmf", "extra": {"project_root": str(root), "store": "mlmd"}}),
    )
    return root


_loaded: dict[Path, ModuleType] = {}


def _load(path: Path) -> ModuleType:
    module = _loaded.get(path)
    if module is None:
        name = f"cmf_airflow_tests_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _loaded[path] = module
    return module


@pytest.fixture(scope="session")
def load_dag(airflow_db: Path) -> Callable[[str], Any]:
    """Return a DAG of the example or test bundles by its id."""
    from airflow.sdk import DAG

    def load(dag_id: str) -> Any:
        for folder in (EXAMPLE_DAGS, TEST_DAGS):
            for path in sorted(folder.glob("*.py")):
                module = _load(path)
                for value in vars(module).values():
                    if isinstance(value, DAG) and value.dag_id == dag_id:
                        return value
        raise LookupError(f"no DAG {dag_id!r} in {EXAMPLE_DAGS} or {TEST_DAGS}")

    return load


@pytest.fixture
def run_dag(load_dag: Callable[[str], Any]) -> Iterator[Callable[[str], Any]]:
    """Run a DAG with ``dag.test()`` at the tests' logical date; return the DagRun."""
    import pendulum

    def run(dag_id: str) -> Any:
        dag = load_dag(dag_id)
        return dag.test(logical_date=pendulum.parse(LOGICAL_DATE_ISO))

    yield run
