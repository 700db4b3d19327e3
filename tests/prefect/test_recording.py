"""What a ``@cmf_task`` records: one execution per attempt, with its facts and artifacts."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pendulum
import pytest
from prefect import flow
from prefect.states import State
from prefect_testlib import Project

from cmf_orchestrate import (
    ArtifactKind,
    ArtifactNotFoundError,
    Dataset,
    ExecutionState,
    NoActiveRunError,
    TemplateError,
    current_run,
)
from cmf_orchestrate.prefect import cmf_flow, cmf_task
from cmf_orchestrate.run import code_fingerprint
from cmf_orchestrate.versioning import versioner_for


def _failure(state: State[Any]) -> BaseException:
    assert state.is_failed(), state
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BaseException), error
    return error


def test_retried_attempts_are_separate_executions(project: Project, tmp_path: Path) -> None:
    project.write("data/in.csv", "a\n1\n")
    attempts = tmp_path / "attempts"

    @cmf_task(inputs=[Dataset("data/in.csv")], outputs=[Dataset("data/out.csv")], retries=1, retry_delay_seconds=0)
    def flaky(scale: int = 2) -> str:
        attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
        if len(attempts.read_text()) == 1:
            raise ConnectionError("first attempt fails")
        project.write("data/out.csv", f"a\n{scale}\n")
        return "ok"

    @flow
    def retrying() -> str:
        return flaky(3)

    state = retrying(return_state=True)

    assert state.is_completed() and state.result() == "ok"
    first, second = project.executions("retrying", "flaky")
    assert (first.state, second.state) == (ExecutionState.FAILED, ExecutionState.COMPLETE)
    assert (first.fact("attempt"), second.fact("attempt")) == (1, 2)
    assert first.fact("error_type") == "ConnectionError"
    assert first.fact("error_message") == "first attempt fails"
    assert second.fact("error_type") is None
    # Both attempts belong to the same task run of the same flow run.
    assert first.fact("task_run_id") == second.fact("task_run_id")
    assert first.fact("flow_run_id") == second.fact("flow_run_id") == str(state.state_details.flow_run_id)
    outputs = project.query().get_artifacts_for_execution(second.id)
    assert [a.path for a in outputs[next(iter(outputs)).__class__.OUTPUT]] == ["data/out.csv"]
    assert second.parameters == {"scale": 3}


def test_failing_task_records_the_error_and_prefect_gets_the_same_exception(project: Project) -> None:
    class BadBatchError(ValueError):
        pass

    @cmf_task
    def explode() -> None:
        raise BadBatchError("batch 7 is corrupt")

    @flow
    def failing() -> None:
        explode()

    error = _failure(failing(return_state=True))

    assert type(error) is BadBatchError and str(error) == "batch 7 is corrupt"
    [execution] = project.executions("failing", "explode")
    assert execution.state is ExecutionState.FAILED
    assert str(execution.fact("error_type")).endswith("BadBatchError")
    assert execution.fact("error_message") == "batch 7 is corrupt"
    assert execution.fact("end_time")


def test_missing_input_fails_without_running_user_code(project: Project) -> None:
    ran: list[bool] = []

    @cmf_task(inputs=[Dataset("data/absent.csv")])
    def consume() -> None:
        ran.append(True)

    @flow
    def starving() -> None:
        consume()

    error = _failure(starving(return_state=True))

    assert ran == []
    assert isinstance(error, ArtifactNotFoundError) and "data/absent.csv" in str(error)
    [execution] = project.executions("starving", "consume")
    assert execution.state is ExecutionState.FAILED
    assert "data/absent.csv" in str(execution.fact("error_message"))


def test_missing_output_fails_the_attempt(project: Project) -> None:
    @cmf_task(outputs=[Dataset("data/promised.csv")])
    def forgetful() -> int:
        return 1

    @flow
    def lazy() -> None:
        forgetful()

    error = _failure(lazy(return_state=True))

    assert isinstance(error, ArtifactNotFoundError) and "data/promised.csv" in str(error)
    [execution] = project.executions("lazy", "forgetful")
    assert execution.state is ExecutionState.FAILED
    assert "data/promised.csv" in str(execution.fact("error_message"))


def test_templated_paths_are_filled_from_the_bound_arguments(project: Project) -> None:
    project.write("data/v2/raw.csv", "a\n1\n")
    ran: list[bool] = []

    @cmf_task(inputs=[Dataset("data/{split}/raw.csv")], outputs=[Dataset("data/{split}/{kind}-{seed}.csv")])
    def split_data(split: str, kind: str = "train", seed: int = 7) -> None:
        project.write(f"data/{split}/{kind}-{seed}.csv", "a\n2\n")

    @cmf_task(outputs=[Dataset("data/{nowhere}.csv")])
    def mistyped(split: str) -> None:
        ran.append(True)

    @flow
    def templated() -> None:
        split_data("v2", seed=11)

    @flow
    def mistemplated() -> None:
        mistyped("v2")

    assert templated(return_state=True).is_completed()
    [execution] = project.executions("templated", "split_data")
    artifacts = project.query().get_artifacts_for_execution(execution.id)
    paths = {
        event.value: sorted(a.path for a in records if a.kind != ArtifactKind.ENVIRONMENT.value)
        for event, records in artifacts.items()
    }
    assert paths == {"INPUT": ["data/v2/raw.csv"], "OUTPUT": ["data/v2/train-11.csv"]}
    assert execution.parameters == {"split": "v2", "kind": "train", "seed": 11}

    error = _failure(mistemplated(return_state=True))
    assert isinstance(error, TemplateError) and "{nowhere}" in str(error) and "split" in str(error)
    assert ran == []


def test_current_run_logging_inside_a_task(project: Project) -> None:
    project.write("data/extra.csv", "a\n1\n")
    project.write("slice/a.csv", "a\n1\n")
    project.write("slice/b.csv", "a\n2\n")
    seen: dict[str, Any] = {}

    @cmf_task
    def logging_task(epochs: int = 3) -> None:
        run = current_run()
        seen["execution_id"] = run.execution_id
        run.log_dataset("data/extra.csv", "input", custom_properties={"origin": "manual"})
        project.write("model/m.bin", "weights")
        run.log_model("model/m.bin", "output", model_framework="numpy", model_type="toy", model_name="m")
        for epoch in range(epochs):
            run.log_metric("training", {"epoch": epoch, "loss": 1.0 / (epoch + 1)})
        run.commit_metrics("training")
        run.log_execution_metrics("summary", {"final_loss": 1 / 3, "epochs": epochs})
        dataslice = run.create_dataslice("holdout")
        dataslice.add_data("slice/a.csv")
        dataslice.add_data("slice/b.csv")
        dataslice.commit()

    @flow
    def logging_flow() -> None:
        logging_task()

    assert logging_flow(return_state=True).is_completed()
    with pytest.raises(NoActiveRunError):
        current_run()

    [execution] = project.executions("logging-flow", "logging_task")
    assert execution.id == seen["execution_id"] and execution.state is ExecutionState.COMPLETE
    artifacts = project.query().get_artifacts_for_execution(execution.id)
    kinds = {event.value: sorted(a.kind for a in records) for event, records in artifacts.items()}
    assert kinds["INPUT"] == ["Dataset", "Environment"]
    assert kinds["OUTPUT"] == ["Dataslice", "Metrics", "Model", "Step_Metrics"]
    [summary] = [a for a in artifacts[next(iter(artifacts)).__class__.OUTPUT] if a.kind == "Metrics"]
    assert summary.custom_properties["epochs"] == 3


def test_facts_pipeline_overrides_and_async_tasks(project: Project) -> None:
    @cmf_task
    def plain(x: int) -> int:
        return x

    @cmf_task(pipeline="task-level")
    def overridden(x: int) -> int:
        return x

    @cmf_task
    async def awaited(x: int) -> int:
        await asyncio.sleep(0)
        return current_run().execution_id

    @flow(name="facts-flow")
    def facts_flow() -> None:
        plain(1)
        overridden(2)
        plain.with_options(name="renamed")(3)

    @cmf_flow(name="async-flow", pipeline="flow-level")
    async def async_flow() -> int:
        return await awaited(4)

    state = facts_flow(return_state=True)
    assert state.is_completed()
    execution_id = asyncio.run(async_flow())

    [execution] = project.executions("facts-flow", "plain")
    assert execution.fact("orchestrator") == "prefect"
    assert execution.fact("flow_run_id") == str(state.state_details.flow_run_id)
    assert execution.fact("flow_run_name")
    assert execution.fact("task_run_id") and execution.fact("attempt") == 1
    assert execution.fact("task_key") == plain.task_key
    assert execution.fact("hostname") and execution.fact("pid")
    assert execution.fact("code_fingerprint") == code_fingerprint(plain.fn)
    start, end = (pendulum.parse(str(execution.fact(n))) for n in ("start_time", "end_time"))
    assert start <= end  # type: ignore[operator]
    assert execution.properties["Execution"].endswith("plain")
    assert project.executions("task-level", "overridden")
    assert project.executions("facts-flow", "renamed")
    [awaited_execution] = project.executions("flow-level", "awaited")
    assert awaited_execution.id == execution_id and awaited_execution.state is ExecutionState.COMPLETE


def test_timeouts_and_caching_behave_as_with_task(project: Project) -> None:
    from prefect.cache_policies import INPUTS

    calls: list[str] = []

    @cmf_task(timeout_seconds=2)
    def slow() -> None:
        time.sleep(10)

    @cmf_task(cache_policy=INPUTS, persist_result=True)
    def cached(token: str) -> str:
        calls.append(token)
        return token.upper()

    @flow
    def timing_out() -> None:
        slow()

    # Prefect's result cache outlives the session: a fresh token keeps this run's first call a miss.
    token = uuid.uuid4().hex

    @flow
    def caching() -> list[str]:
        return [cached(token), cached(token)]

    # The timeout covers the whole task run, recording included: open the project first so
    # that a cold import of DVC in this process does not use up the 2 seconds.
    versioner_for(project.root).ensure_repo()
    started = time.monotonic()
    error = _failure(timing_out(return_state=True))
    assert time.monotonic() - started < 8
    assert isinstance(error, TimeoutError)
    [execution] = project.executions("timing-out", "slow")
    assert execution.state is ExecutionState.FAILED
    # Prefect interrupts the function with its cancellation error, then reports the timeout.
    assert execution.fact("error_type") and execution.fact("end_time")

    assert caching() == [token.upper()] * 2
    # The second call is served from Prefect's cache: the function did not run, and the
    # attempt is recorded as CACHED.
    assert calls == [token]
    states = [e.state for e in project.executions("caching", "cached")]
    assert states == [ExecutionState.COMPLETE, ExecutionState.CACHED]
