"""Parallel task runs and simultaneous flow runs into one SQLite store lose nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_testlib import Project

from cmf_orchestrate import Dataset, ExecutionState, current_run
from cmf_orchestrate.prefect import cmf_task

N = 8


@cmf_task(inputs=[Dataset("data/shared.csv")], outputs=[Dataset("out/{kind}/{i}.csv")])
def shard(i: int, kind: str) -> int:
    root = current_run().settings.project_root
    out = root / f"out/{kind}/{i}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"shard\n{i}\n")
    current_run().log_execution_metrics("shard", {"index": i})
    return i


@flow(task_runner=ThreadPoolTaskRunner(max_workers=N))
def fan_out() -> list[int]:
    submitted = [shard.submit(i, "submitted") for i in range(N)]
    mapped = shard.map(range(N), kind="mapped")
    return [f.result() for f in submitted] + [f.result() for f in mapped]


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def small_fan_out(run: int) -> list[int]:
    return [f.result() for f in shard.map(range(3), kind=f"run{run}")]


def _outputs(project: Project, execution_id: int) -> list[str]:
    artifacts = project.query().get_artifacts_for_execution(execution_id)
    return [
        a.path for records in artifacts.values() for a in records if a.kind == "Dataset" and a.path.startswith("out/")
    ]


def test_submit_and_map_in_parallel_record_every_attempt(project: Project) -> None:
    project.write("data/shared.csv", "a\n1\n")

    state = fan_out(return_state=True)

    assert state.is_completed(), state
    assert sorted(state.result()) == sorted([*range(N), *range(N)])
    executions = project.executions("fan-out", "shard")
    assert len(executions) == 2 * N
    assert {e.state for e in executions} == {ExecutionState.COMPLETE}
    assert len({e.fact("task_run_id") for e in executions}) == 2 * N
    outputs = sorted(path for e in executions for path in _outputs(project, e.id))
    expected = sorted(f"out/{kind}/{i}.csv" for kind in ("submitted", "mapped") for i in range(N))
    assert outputs == expected
    # The shared input is one artifact, read by every execution.
    [shared] = project.query().resolve("data/shared.csv")
    assert len(project.query().get_all_executions_for_artifact(shared.name)) == 2 * N


def test_simultaneous_flow_runs_share_one_store(project: Project) -> None:
    project.write("data/shared.csv", "a\n1\n")

    with ThreadPoolExecutor(max_workers=3) as pool:
        states = list(pool.map(lambda run: small_fan_out(run, return_state=True), range(3)))

    assert all(s.is_completed() for s in states), states
    executions = project.executions("small-fan-out", "shard")
    assert len(executions) == 9
    assert {e.state for e in executions} == {ExecutionState.COMPLETE}
    by_run: dict[object, int] = {}
    for execution in executions:
        by_run[execution.fact("flow_run_id")] = by_run.get(execution.fact("flow_run_id"), 0) + 1
    assert by_run == {str(s.state_details.flow_run_id): 3 for s in states}
