"""A Prefect fan-out of 4 processes x 8 threads into one embedded (SQLite) store.

Each process is a flow run whose 8 task runs execute at once on a thread pool, and the
4 processes run at the same time: every task run completes, every attempt is recorded
once and closed, counted with SQL on ML Metadata's own tables.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from prefect.settings import PREFECT_API_URL
from prefect_testlib import Project

PROCESSES = 4
THREADS = 8

_FLOW = textwrap.dedent(
    """
    import json
    import sys

    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from cmf_orchestrate import Dataset, current_run
    from cmf_orchestrate.prefect import cmf_task

    worker = int(sys.argv[1])
    threads = int(sys.argv[2])


    @cmf_task(inputs=[Dataset("data/shared.csv")], outputs=[Dataset("out/{worker}/{i}.csv")])
    def shard(i: int, worker: int) -> int:
        out = current_run().settings.project_root / f"out/{worker}/{i}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{worker},{i}\\n")
        current_run().log_execution_metrics("shard", {"worker": worker, "index": i})
        return i


    @flow(name="store-fan-out", task_runner=ThreadPoolTaskRunner(max_workers=threads))
    def fan_out(worker: int) -> list[int]:
        futures = shard.map(range(threads), worker=worker)
        futures.wait()
        return [f.result() for f in futures]


    state = fan_out(worker, return_state=True)
    print(json.dumps({"completed": state.is_completed(), "results": state.result(raise_on_failure=False)
                      if state.is_completed() else str(state)}))
    """
)

_COMPLETE, _RUNNING = 3, 2  # ML Metadata's Execution.last_known_state codes


@pytest.mark.timeout(600)
def test_four_processes_of_eight_threads_lose_nothing(project: Project) -> None:
    project.write("data/shared.csv", "a\n1\n")
    script = project.root / "fan_out_flow.py"
    script.write_text(_FLOW)
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}

    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(worker), str(THREADS)],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(PROCESSES)
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=540)
        assert process.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))

    assert all(o["completed"] for o in outcomes), outcomes  # 0 failed task runs
    assert all(sorted(o["results"]) == list(range(THREADS)) for o in outcomes), outcomes

    with sqlite3.connect(project.root / "mlmd") as db:
        states = dict(db.execute("SELECT last_known_state, count(*) FROM Execution GROUP BY last_known_state"))
        outputs = db.execute(
            "SELECT count(*), count(DISTINCT a.uri) FROM Event e JOIN Artifact a ON a.id = e.artifact_id "
            "WHERE e.type = 4 AND a.name LIKE 'out/%'"
        ).fetchone()
        shared = db.execute("SELECT id FROM Artifact WHERE name LIKE 'data/shared.csv:%'").fetchall()
        readers = db.execute(
            "SELECT count(DISTINCT execution_id) FROM Event WHERE type = 3 AND artifact_id = ?", shared[0]
        ).fetchone()[0]
        metrics = db.execute(
            "SELECT count(*) FROM Artifact a JOIN Type t ON t.id = a.type_id WHERE t.name = 'Metrics'"
        ).fetchone()[0]
    db.close()
    # Every attempt recorded once, closed COMPLETE: none FAILED, none left RUNNING.
    assert states == {_COMPLETE: PROCESSES * THREADS}, states
    assert outputs == (PROCESSES * THREADS, PROCESSES * THREADS)
    assert len(shared) == 1  # the shared input is one artifact, read by every attempt
    assert readers == PROCESSES * THREADS
    assert metrics == PROCESSES * THREADS
