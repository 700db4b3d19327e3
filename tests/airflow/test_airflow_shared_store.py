"""A SQLite store under an executor whose workers do not share files: one warning per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow_testlib import executions, query

from cmf_orchestrate import CmfSettings, ExecutionState
from cmf_orchestrate.airflow import _runinfo
from cmf_orchestrate.airflow._compat import configured_executors


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new task process: the warning not given yet."""
    monkeypatch.setattr(_runinfo, "_warned_in", None)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "does not share" in r.getMessage()]


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "LocalExecutor,airflow.providers.cncf.kubernetes.executors.kubernetes_executor.KubernetesExecutor",
        "CeleryKubernetesExecutor",
    ],
)
def test_one_warning_across_the_tasks_of_a_dag_run(
    executor: str,
    cmf_project: Path,
    run_dag: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fresh_process: None,
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate"):
        dag_run = run_dag("cmf_t_pipeline")

    assert dag_run.state == "success"
    q = query(cmf_project)
    assert [e.state for e in executions(q, "named_by_operator", "named")] == [ExecutionState.COMPLETE]
    assert [e.state for e in executions(q, "cmf_t_pipeline", "default")] == [ExecutionState.COMPLETE]
    [message] = _warnings(caplog)
    assert f"the metadata store {cmf_project.resolve() / 'mlmd'} is a SQLite file" in message
    [named] = [name for name in configured_executors() if name in _runinfo.DISTRIBUTED_EXECUTORS]
    assert f"which {named} does not share between its workers: each worker records into its own file" in message
    assert "use a PostgreSQL or MySQL store (the `store` setting)" in message

    # The same process, another run: no second warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate"):
        run_dag("cmf_t_pipeline")
    assert _warnings(caplog) == []


def test_no_warning_with_a_local_executor_or_a_server_store(
    cmf_project: Path,
    run_dag: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fresh_process: None,
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate"):
        assert run_dag("cmf_t_pipeline").state == "success"
    assert _warnings(caplog) == []

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate"):
        _runinfo.warn_if_store_not_shared(CmfSettings(store="postgresql://cmf@db.invalid:5432/cmf"))
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("configured", "names"),
    [
        ("CeleryExecutor", ["CeleryExecutor"]),
        (" LocalExecutor , CeleryExecutor ", ["LocalExecutor", "CeleryExecutor"]),
        ("fast:my_company.executors.FastExecutor,KubernetesExecutor", ["FastExecutor", "KubernetesExecutor"]),
        ("=LocalExecutor;team_a=CeleryExecutor,LocalExecutor", ["LocalExecutor", "CeleryExecutor", "LocalExecutor"]),
    ],
)
def test_executor_lists_in_every_form_airflow_takes(
    configured: str, names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", configured)
    assert configured_executors() == names
