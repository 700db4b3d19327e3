"""A CmfOperator whose declared output it did not write: declared, never produced."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from airflow_testlib import artifacts, only_execution, query, task_states

from cmf_orchestrate import ArtifactError, EventType, ExecutionState


def _old_output(root: Path) -> Path:
    """The declared output as another DAG left it minutes ago."""
    path = root / "stale" / "out.csv"
    path.parent.mkdir(parents=True)
    path.write_text("written by another DAG\n")
    then = time.time_ns() - 300 * 10**9
    os.utime(path, ns=(then, then))
    return path


@pytest.fixture
def worker_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The task's working directory, which is not the project root (as on a real worker)."""
    cwd = tmp_path / "worker"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_an_output_written_elsewhere_is_declared_not_produced(
    cmf_project: Path, worker_cwd: Path, run_dag, caplog: pytest.LogCaptureFixture
) -> None:
    old = _old_output(cmf_project)
    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate.run"):
        dag_run = run_dag("cmf_t_stale")

    assert dag_run.state == "success"
    assert (worker_cwd / "stale" / "out.csv").is_file()  # where the task wrote it
    q = query(cmf_project)
    execution = only_execution(q, "cmf_t_stale", "write_relative")
    assert execution.state is ExecutionState.COMPLETE
    assert list(artifacts(q, execution.id, EventType.DECLARED_OUTPUT)) == ["stale/out.csv"]
    assert artifacts(q, execution.id, EventType.OUTPUT) == {}
    assert execution.id not in {e.id for e in q.get_producer_execution("stale/out.csv")}
    assert old.read_text() == "written by another DAG\n"
    assert any(
        "stale/out.csv" in r.getMessage() and "before the attempt started" in r.getMessage() for r in caplog.records
    )


def test_strict_outputs_fails_the_try(
    cmf_project: Path, worker_cwd: Path, run_dag, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMF_STRICT_OUTPUTS", "1")
    _old_output(cmf_project)
    dag_run = run_dag("cmf_t_stale")

    assert dag_run.state == "failed"
    assert task_states(dag_run) == {("write_relative", -1): ("failed", 1)}
    execution = only_execution(query(cmf_project), "cmf_t_stale", "write_relative")
    assert execution.state is ExecutionState.FAILED
    assert execution.fact("error_type") == f"{ArtifactError.__module__}.ArtifactError"
    assert "stale/out.csv" in str(execution.fact("error_message"))
