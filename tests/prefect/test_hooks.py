"""Our Prefect hooks run, and show in the logs, only when they have work to do."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest
from prefect import flow, task
from prefect_testlib import Project

from cmf_orchestrate import ExecutionState
from cmf_orchestrate.prefect import cmf_task


@pytest.fixture
def run_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """INFO records of Prefect's flow and task run loggers (the suite runs Prefect at WARNING)."""
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    caplog.handler.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _hook_lines(caplog: pytest.LogCaptureFixture, hook: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"'{hook}'" in r.getMessage()]


def test_cache_hit_hook_runs_on_cache_hits_only(project: Project, run_logs: pytest.LogCaptureFixture) -> None:
    from prefect.cache_policies import INPUTS

    @cmf_task
    def uncached(x: int) -> int:
        return x + 1

    @cmf_task(cache_policy=INPUTS, persist_result=True)
    def cached(token: str) -> str:
        return token.upper()

    token = uuid.uuid4().hex

    @flow
    def no_hits() -> None:
        uncached(1)
        uncached(2)
        cached(token)  # a miss: the first call with this token

    @flow
    def one_hit() -> str:
        return cached(token)

    @flow
    def copy_hit() -> str:
        return cached.with_options(name="cached_copy")(token)

    assert no_hits(return_state=True).is_completed()
    assert _hook_lines(run_logs, "record_cache_hit") == []

    assert one_hit() == token.upper()
    assert _hook_lines(run_logs, "record_cache_hit") == [
        "Running hook 'record_cache_hit' in response to entering state 'Cached'",
        "Hook 'record_cache_hit' finished running successfully",
    ]
    assert [e.state for e in project.executions("one-hit", "cached")] == [ExecutionState.CACHED]
    # A with_options copy keeps the recording of its cache hits.
    assert copy_hit() == token.upper()
    assert [e.state for e in project.executions("copy-hit", "cached_copy")] == [ExecutionState.CACHED]


def test_async_tasks_record_cache_hits_the_same_way(project: Project, run_logs: pytest.LogCaptureFixture) -> None:
    from prefect.cache_policies import INPUTS

    @cmf_task(cache_policy=INPUTS, persist_result=True)
    async def cached_async(token: str) -> str:
        return token[::-1]

    token = uuid.uuid4().hex

    @flow
    async def twice() -> list[str]:
        return [await cached_async(token), await cached_async(token)]

    assert asyncio.run(twice()) == [token[::-1]] * 2
    assert len(_hook_lines(run_logs, "record_cache_hit")) == 2  # the second call only: running, finished
    states = [e.state for e in project.executions("twice", "cached_async")]
    assert states == [ExecutionState.COMPLETE, ExecutionState.CACHED]


def test_plain_flow_gets_our_summary_hook_only_in_runs_that_recorded(
    project: Project, run_logs: pytest.LogCaptureFixture
) -> None:
    @task
    def plain_task() -> int:
        return 1

    @cmf_task
    def recorded() -> int:
        return 2

    @flow
    def sometimes(record: bool) -> None:
        plain_task()
        if record:
            recorded()

    @flow
    def never() -> None:
        plain_task()

    assert never(return_state=True).is_completed()
    assert sometimes(False, return_state=True).is_completed()
    assert _hook_lines(run_logs, "publish_summary") == []

    assert sometimes(True, return_state=True).is_completed()
    assert len(_hook_lines(run_logs, "publish_summary")) == 2  # running, finished
    assert [e.state for e in project.executions("sometimes", "recorded")] == [ExecutionState.COMPLETE]

    # The same flow object, once more without a recorded task: no hook of ours again.
    run_logs.clear()
    assert sometimes(False, return_state=True).is_completed()
    assert _hook_lines(run_logs, "publish_summary") == []
    assert never.on_completion_hooks == []
