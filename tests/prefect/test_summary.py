"""The flow-run summary: its markdown, for the executions a run can leave behind, and the
summary of real flow runs, read from the store whichever process their tasks ran in."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from prefect_testlib import Project, published, summary_rows, wait_for

from cmf_orchestrate.prefect._summary import render
from cmf_orchestrate.records import (
    ArtifactRecord,
    ContextRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    ExecutionState,
)

MD5 = "0123456789abcdef0123456789abcdef"
PIPELINE = ContextRecord(id=1, name="nightly", type="Parent_Context")


def _snapshot(
    execution_id: int,
    stage: str,
    state: ExecutionState,
    facts: dict[str, object],
    inputs: tuple[ArtifactRecord, ...] = (),
    outputs: tuple[ArtifactRecord, ...] = (),
) -> ExecutionSnapshot:
    custom = {f"cmf.{k}": v for k, v in facts.items()}
    return ExecutionSnapshot(
        pipeline=PIPELINE,
        stage=ContextRecord(id=2, name=f"nightly/{stage}", type="Pipeline_Stage"),
        execution=ExecutionRecord(id=execution_id, name=stage, type=stage, state=state, custom_properties=custom),
        inputs=inputs,
        outputs=outputs,
    )


def _dataset(artifact_id: int, path: str) -> ArtifactRecord:
    return ArtifactRecord(id=artifact_id, kind="Dataset", name=f"{path}:{MD5}", uri=MD5)


def test_failed_retried_and_long_paths_stay_readable() -> None:
    env = ArtifactRecord(id=9, kind="Environment", name=f"cmf_artifacts/python_env_{MD5}.txt:{MD5}", uri=MD5)
    deep = _dataset(3, "data/2026-01-02/features/very/deep/train|v2.csv")
    markdown = render(
        "brave-fox",
        "run-1",
        "postgresql://cmf:***@db:5432/cmf",
        [
            _snapshot(11, "prepare", ExecutionState.FAILED, {"attempt": 1, "error_type": "pkg.mod.BadBatchError"}),
            _snapshot(12, "prepare", ExecutionState.COMPLETE, {"attempt": 2}, inputs=(env,), outputs=(deep,)),
        ],
        store_argument="postgresql://cmf@db:5432/cmf",
    )

    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| 1")}
    assert "**FAILED**<br>BadBatchError" in rows["11"]
    assert "COMPLETE<br>try 2" in rows["12"]
    # The long path keeps its end, its pipe is escaped, its md5 is 8 digits; the environment is not in the rows.
    assert f"`…/deep/train\\|v2.csv` {MD5[:8]}" in rows["12"] and MD5 not in markdown
    assert "python_env" not in markdown and f"Python environment `{MD5[:8]}`" in markdown
    assert "1 COMPLETE, 1 FAILED" in markdown
    assert "cmf-orchestrate lineage 'data/2026-01-02/features/very/deep/train|v2.csv' --store" in markdown
    assert "postgresql://cmf@db:5432/cmf" in markdown and "cmf:***@" in markdown


def test_a_run_without_files_has_no_lineage_command() -> None:
    markdown = render("calm-owl", "run-2", "sqlite:////srv/mlmd", [_snapshot(1, "noop", ExecutionState.CACHED, {})])
    assert "1 CACHED" in markdown and "| 1 | noop | CACHED | - | - |" in markdown
    assert "cmf-orchestrate lineage" not in markdown


# -- the summary of real flow runs, wherever their tasks ran ------------------------------------


def _ids_of_flow_run(project: Project, flow_run_id: object) -> dict[str, str]:
    """Execution id -> stage of the executions recorded for a flow run."""
    snapshots = project.query().get_executions_by_fact("flow_run_id", str(flow_run_id))
    return {str(s.execution.id): s.stage.name.rsplit("/", 1)[-1] for s in snapshots}


def test_summary_of_tasks_on_a_thread_pool(project: Project) -> None:
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from cmf_orchestrate import Dataset
    from cmf_orchestrate.prefect import cmf_task

    @cmf_task(outputs=[Dataset("shards/{i}.txt")])
    def shard(i: int) -> int:
        project.write(f"shards/{i}.txt", f"{i}\n")
        return threading.get_ident()

    @cmf_task(inputs=[Dataset("shards/0.txt"), Dataset("shards/5.txt")])
    def gather(threads: list[int]) -> int:
        return len(set(threads))

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def threaded_shards() -> int:
        threads = shard.map(range(6)).result()
        return gather(threads)

    state = threaded_shards(return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    recorded = _ids_of_flow_run(project, flow_run_id)
    assert sorted(recorded.values()) == ["gather"] + ["shard"] * 6

    markdown = wait_for(lambda: published(flow_run_id, "cmf-threaded-shards"))
    rows = summary_rows(markdown)
    assert set(rows) == set(recorded)
    assert all("| COMPLETE |" in row for row in rows.values())
    assert "7 COMPLETE" in markdown


def test_summary_of_tasks_run_in_other_processes(project: Project) -> None:
    from prefect import flow
    from prefect.task_runners import ProcessPoolTaskRunner

    from cmf_orchestrate import Dataset
    from cmf_orchestrate.prefect import cmf_flow, cmf_task, publish_summary

    @cmf_task(outputs=[Dataset("parts/{i}.txt")])
    def part(i: int) -> int:
        root = Path(os.environ["CMF_PROJECT_ROOT"])
        (root / "parts").mkdir(exist_ok=True)
        (root / f"parts/{i}.txt").write_text(f"{i}\n")
        return os.getpid()

    def run_parts() -> list[int]:
        return [future.result() for future in part.map(range(3))]

    # A @cmf_flow always has the summary hook: its tasks may record in other processes.
    pooled = cmf_flow(name="pooled-parts", task_runner=ProcessPoolTaskRunner(max_workers=2))(run_parts)
    # A plain flow learns that it runs recorded tasks when it maps them, in its own process.
    plain = flow(name="plain-pooled-parts", task_runner=ProcessPoolTaskRunner(max_workers=2))(run_parts)
    # Listed explicitly, the hook runs once all the same.
    listed = flow(
        name="listed-pooled-parts",
        task_runner=ProcessPoolTaskRunner(max_workers=2),
        on_completion=[publish_summary],
    )(run_parts)

    for made, key in (
        (pooled, "cmf-pooled-parts"),
        (listed, "cmf-listed-pooled-parts"),
        (plain, "cmf-plain-pooled-parts"),
    ):
        state = made(return_state=True)
        assert state.is_completed(), state
        assert os.getpid() not in state.result()  # the tasks ran in other processes
        flow_run_id = state.state_details.flow_run_id
        recorded = _ids_of_flow_run(project, flow_run_id)
        assert sorted(recorded.values()) == ["part"] * 3
        markdown = wait_for(lambda: published(flow_run_id, key))  # noqa: B023 - used in this iteration
        assert set(summary_rows(markdown)) == set(recorded)
        assert "3 COMPLETE" in markdown

    # A plain flow that calls no recorded task gets no hook of ours.
    quiet = flow(name="plain-no-recording", task_runner=ProcessPoolTaskRunner(max_workers=2))(lambda: 1)
    assert quiet(return_state=True).is_completed()
    assert quiet.on_completion_hooks == []


def test_summary_of_tasks_on_dask_workers(project: Project) -> None:
    prefect_dask = pytest.importorskip("prefect_dask", reason="prefect-dask is not installed")
    from prefect import flow

    from cmf_orchestrate import Dataset
    from cmf_orchestrate.prefect import cmf_flow, cmf_task

    @cmf_task(outputs=[Dataset("dask/{i}.txt")])
    def piece(i: int) -> int:
        root = Path(os.environ["CMF_PROJECT_ROOT"])
        (root / "dask").mkdir(exist_ok=True)
        (root / f"dask/{i}.txt").write_text(f"{i}\n")
        return os.getpid()

    runner = prefect_dask.DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})

    def pieces() -> list[int]:
        return [future.result() for future in piece.map(range(4))]

    # A @cmf_flow, and a plain @flow: both publish the summary of task runs on Dask workers.
    for made, key in (
        (cmf_flow(name="dask-pieces", task_runner=runner)(pieces), "cmf-dask-pieces"),
        (flow(name="plain-dask-pieces", task_runner=runner)(pieces), "cmf-plain-dask-pieces"),
    ):
        state = made(return_state=True)
        assert state.is_completed(), state
        assert os.getpid() not in state.result()
        flow_run_id = state.state_details.flow_run_id
        recorded = _ids_of_flow_run(project, flow_run_id)
        assert sorted(recorded.values()) == ["piece"] * 4
        markdown = wait_for(lambda: published(flow_run_id, key))  # noqa: B023 - used in this iteration
        assert set(summary_rows(markdown)) == set(recorded) and "4 COMPLETE" in markdown
