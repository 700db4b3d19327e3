"""The same recording and reading on SQLite, PostgreSQL and MariaDB, with concurrent writers."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import os
from pathlib import Path

from cmf_orchestrate import CmfQuery, CmfSettings, Dataset, EventType, ExecutionState, RunInfo, cmf, task_run
from cmf_orchestrate.store._engine import database_for


def _worker(args: tuple[str, str, int, int]) -> int:
    store, root, worker, runs = args
    os.chdir(root)
    settings = CmfSettings(store=store, project_root=Path(root))
    for run in range(runs):
        name = f"out/w{worker}-r{run}.txt"
        info = RunInfo(
            "cmf",
            "fan",
            f"task-{worker % 2}",
            inputs=[Dataset("shared.txt")],
            outputs=[Dataset(name)],
            facts={"attempt": 1, "task_run_id": f"{worker}-{run}"},
        )
        with task_run(info, settings):
            Path(name).parent.mkdir(exist_ok=True)
            Path(name).write_text(f"{worker} {run}\n")
    return runs


def test_record_and_query_on_every_backend(store_url: str, project: Path) -> None:
    Path("a.csv").write_text("x\n1\n")
    writer = cmf.Cmf(filename=store_url, pipeline_name="backend-check")
    writer.create_context("make")
    execution = writer.create_execution("make", {"k": 1})
    writer.log_dataset("a.csv", "input")
    Path("b.csv").write_text("x\n2\n")
    writer.log_dataset("b.csv", "output")
    writer.finalize()
    query = CmfQuery(store_url)
    assert query.get_pipeline_names() == ["backend-check"]
    assert [e.id for e in query.get_all_exe_in_stage("backend-check/make")] == [execution.id]
    assert [a.path for a in query.get_all_parent_artifacts("b.csv") if a.kind == "Dataset"] == ["a.csv"]
    graph = query.lineage("b.csv", "up")
    assert {n.kind for n in graph.nodes} == {"artifact", "execution", "stage", "pipeline"}


def test_concurrent_processes_lose_nothing(store_url: str, project: Path) -> None:
    Path("shared.txt").write_text("input\n")
    workers, runs = 4, 5
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        done = pool.map(_worker, [(store_url, str(project), w, runs) for w in range(workers)])
    assert sum(done) == workers * runs
    query = CmfQuery(store_url, settings=CmfSettings(project_root=project))
    executions = query.get_all_exe_in_stage("fan/task-0") + query.get_all_exe_in_stage("fan/task-1")
    assert len(executions) == workers * runs
    assert all(e.state is ExecutionState.COMPLETE for e in executions)
    for execution in executions:
        by_direction = query.get_artifacts_for_execution(execution.id)
        assert "shared.txt" in {a.path for a in by_direction[EventType.INPUT]}
        assert len([a for a in by_direction[EventType.OUTPUT] if a.path.startswith("out/")]) == 1
    produced = [a for a in query.store.artifacts_of_type("Dataset") if a.path.startswith("out/")]
    assert len(produced) == workers * runs
    # One shared input artifact, whatever the number of concurrent readers.
    assert len([a for a in query.store.artifacts_of_type("Dataset") if a.path == "shared.txt"]) == 1


def _forked_child(store: str, root: str, queue: multiprocessing.queues.Queue[int]) -> None:
    os.chdir(root)
    settings = CmfSettings(store=store)
    with task_run(RunInfo("cmf", "forked", "child", outputs=[Dataset("child.txt")]), settings) as run:
        Path("child.txt").write_text("from the child\n")
    queue.put(run.execution_id)
    queue.put(id(database_for(settings.location).engine))


def test_a_forked_child_records_through_its_own_connection(store_url: str, project: Path) -> None:
    # The parent has the store open; a child forked from it (Airflow's LocalExecutor and
    # multiprocessing do that) must neither write through the parent's connections nor
    # close them when it exits: the parent's next write goes through its pooled connection.
    settings = CmfSettings(store=store_url)
    with task_run(RunInfo("cmf", "forked", "parent"), settings) as parent:
        pass
    parent_engine = id(database_for(settings.location).engine)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_forked_child, args=(store_url, str(project), queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    child_id, child_engine = queue.get(timeout=5), queue.get(timeout=5)
    assert child_engine != parent_engine
    with task_run(RunInfo("cmf", "forked", "parent"), settings) as again:
        pass
    assert id(database_for(settings.location).engine) == parent_engine
    states = {e.id: e.state for e in CmfQuery(store_url).store.executions()}
    assert states == {
        parent.execution_id: ExecutionState.COMPLETE,
        child_id: ExecutionState.COMPLETE,
        again.execution_id: ExecutionState.COMPLETE,
    }
