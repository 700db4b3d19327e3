"""A ``@cmf_task`` whose declared output it did not write: declared, never produced."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import pytest
from prefect import flow
from prefect.states import State
from prefect_testlib import Project

from cmf_orchestrate import ArtifactError, Dataset, EventType, ExecutionState
from cmf_orchestrate.prefect import cmf_task


def _age(project: Project, rel: str, seconds: float) -> None:
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(project.root / rel, ns=(then, then))


def test_an_output_written_elsewhere_is_declared_not_produced(
    project: Project, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    project.write("data/out.csv", "written by another pipeline, minutes ago\n")
    _age(project, "data/out.csv", 300)
    elsewhere = tmp_path / "worker-cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the worker's working directory is not the project root

    @cmf_task(outputs=[Dataset("data/out.csv")])
    def write_relative() -> None:
        os.makedirs("data", exist_ok=True)
        with open("data/out.csv", "w") as fh:  # relative: lands under the working directory
            fh.write("new\n")

    @flow
    def pipeline() -> None:
        write_relative()

    with caplog.at_level(logging.WARNING, logger="cmf_orchestrate.run"):
        state = pipeline(return_state=True)

    assert state.is_completed()
    [execution] = project.executions("pipeline", "write_relative")
    assert execution.state is ExecutionState.COMPLETE
    query = project.query()
    events = query.get_artifacts_for_execution(execution.id)
    assert [a.path for a in events[EventType.DECLARED_OUTPUT]] == ["data/out.csv"]
    assert not [a for a in events[EventType.OUTPUT] if a.kind == "Dataset"]
    assert execution.id not in {e.id for e in query.get_producer_execution("data/out.csv")}
    assert any(
        "data/out.csv" in r.getMessage() and "before the attempt started" in r.getMessage() for r in caplog.records
    )


def test_strict_outputs_fails_the_task_run(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_STRICT_OUTPUTS", "true")
    project.write("data/out.csv", "old\n")
    _age(project, "data/out.csv", 60)

    @cmf_task(outputs=[Dataset("data/out.csv")])
    def forgets_to_write() -> None:
        pass

    @flow
    def strict() -> State[Any]:
        return forgets_to_write(return_state=True)

    task_state = strict(return_state=True).result(raise_on_failure=False)
    assert task_state.is_failed()
    error = task_state.result(raise_on_failure=False)
    assert isinstance(error, ArtifactError) and "'data/out.csv'" in str(error)
    [execution] = project.executions("strict", "forgets_to_write")
    assert execution.state is ExecutionState.FAILED
    assert "data/out.csv" in str(execution.fact("error_message"))
