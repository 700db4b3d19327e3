"""A real Airflow deployment, not dag.test(): PostgreSQL metadata DB, LocalExecutor, api-server,
scheduler and dag-processor as separate processes, MLMD on PostgreSQL.

The example DAG and a fan-out of 8 parallel tasks are triggered through the Airflow CLI and
awaited; then every try of every task instance must have exactly one MLMD execution. The
example DAG is triggered as a user does by hand, without a logical date (an Airflow 3
manual run has none); the fan-out with one.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from airflow_testlib import LOGICAL_DATE_ISO, query

from cmf_orchestrate import ExecutionState

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
#: This run's own Airflow metadata database (a unique name: parallel runs never share or drop it).
AIRFLOW_DB = f"cmf_airflow_test_{uuid.uuid4().hex[:10]}"
DAG_IDS = ("cmf_get_started", "cmf_t_fanout")
#: Trigger arguments of the DAGs run as a manual run (no logical date).
MANUAL: dict[str, list[str]] = {"cmf_get_started": []}
REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PARALLELISM = 8


def _pg_connect(database: str = "postgres") -> Any:
    import psycopg2

    conn = psycopg2.connect(dbname=database, connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


def _rows(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = _pg_connect(AIRFLOW_DB)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def _admin(sql: str) -> None:
    conn = _pg_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def airflow_pg_db(postgres_url: str) -> Iterator[str]:
    """This test's Airflow metadata database on the local PostgreSQL, dropped afterwards."""
    _admin(f'CREATE DATABASE "{AIRFLOW_DB}"')
    try:
        yield AIRFLOW_DB
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{AIRFLOW_DB}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, condition: Any, timeout: float, logs: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


def _api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def _components(env: dict[str, str], logs: Path, port: int) -> Iterator[None]:
    """api-server, then scheduler and dag-processor, each in its own process group, stopped afterwards.

    Task processes report to the api-server's Execution API, so it must answer before the
    scheduler queues anything.
    """
    procs: list[subprocess.Popen[bytes]] = []

    def start(command: str) -> None:
        log = (logs / f"{command}.log").open("wb")
        procs.append(
            subprocess.Popen([AIRFLOW, command], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    try:
        start("api-server")
        _wait("the api-server", lambda: _api_ready(port), 180, logs)
        start("scheduler")
        start("dag-processor")
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _airflow_env(home: Path, project: Path, mlmd_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CMF_", "NEO4J_"))}
    bundles = [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 5},
        }
        for name, path in (("cmf-examples", REPO / "dags"), ("cmf-tests", REPO / "tests/airflow/dag_files"))
    ]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests/airflow/dag_files"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
                f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{AIRFLOW_DB}"
            ),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "cmf-orchestrate-scheduler-test-jwt-secret-0123",
            "AIRFLOW__API__SECRET_KEY": "cmf-orchestrate-scheduler-test-secret",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # Only the runs the test triggers: no run for the example DAG's @daily schedule.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "AIRFLOW_CONN_CMF_DEFAULT": json.dumps(
                {"conn_type": "cmf", "extra": {"store": mlmd_url, "project_root": str(project)}}
            ),
            "DVC_NO_ANALYTICS": "1",
            "GLOG_minloglevel": "2",
        }
    )
    return env


def test_scheduler_with_local_executor_records_one_execution_per_try(
    tmp_path: Path, postgres_url: str, airflow_pg_db: str
) -> None:
    home, project, logs = tmp_path / "airflow", tmp_path / "project", tmp_path / "logs"
    for path in (home, project, logs):
        path.mkdir()
    port = _free_port()
    env = _airflow_env(home, project, postgres_url, port)
    migrate = subprocess.run(
        [AIRFLOW, "db", "migrate"], check=False, env=env, capture_output=True, text=True, timeout=600
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    with _components(env, logs, port):
        placeholders = ",".join(["%s"] * len(DAG_IDS))
        _wait(
            "the DAGs to be parsed",
            lambda: len(_rows(f"SELECT dag_id FROM dag WHERE dag_id IN ({placeholders})", *DAG_IDS)) == len(DAG_IDS),
            300,
            logs,
        )
        triggers = [
            subprocess.Popen(
                [AIRFLOW, "dags", "trigger", dag_id, *MANUAL.get(dag_id, ["--logical-date", LOGICAL_DATE_ISO])],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for dag_id in DAG_IDS
        ]
        for trigger in triggers:
            out, _ = trigger.communicate(timeout=300)
            assert trigger.returncode == 0, out.decode()[-3000:]
        finished = _wait(
            "both DAG runs to finish",
            lambda: (
                rows
                if len(rows := _rows("SELECT dag_id, run_id, state FROM dag_run")) >= len(DAG_IDS)
                and all(state in ("success", "failed") for _, _, state in rows)
                else None
            ),
            420,
            logs,
        )

    assert sorted((dag_id, state) for dag_id, _, state in finished) == [(d, "success") for d in sorted(DAG_IDS)]
    logical_dates = dict(_rows("SELECT dag_id, logical_date FROM dag_run"))
    assert logical_dates["cmf_get_started"] is None and logical_dates["cmf_t_fanout"] is not None
    # Every try Airflow made: the current one of each task instance, and the earlier ones kept in history.
    tries = _rows(
        "SELECT dag_id, task_id, run_id, map_index, try_number, state FROM task_instance "
        "UNION ALL "
        "SELECT dag_id, task_id, run_id, map_index, try_number, state FROM task_instance_history"
    )
    assert len([t for t in tries if t[0] == "cmf_t_fanout"]) == 8 + 1 + 1  # 8 shards, the gather, shard 3 retried
    airflow_tries = {(d, t, r, m, n): s for d, t, r, m, n, s in tries}
    assert len(airflow_tries) == len(tries)

    q = query(project, store=postgres_url)
    recorded: collections.Counter[tuple[Any, ...]] = collections.Counter()
    states = {}
    records = []
    for pipeline in q.get_pipeline_names():
        for stage in q.get_pipeline_stages(pipeline):
            for execution in q.get_all_exe_in_stage(stage):
                key = (
                    execution.fact("dag_id"),
                    stage.split("/", 1)[1],
                    execution.fact("run_id"),
                    execution.fact("map_index"),
                    execution.fact("attempt"),
                )
                recorded[key] += 1
                states[key] = execution.state
                records.append(execution)

    assert {k for k, n in recorded.items() if n > 1} == set(), "a try was recorded more than once"
    assert set(recorded) == set(airflow_tries), "MLMD and Airflow disagree on the tries"
    for key, state in airflow_tries.items():
        assert states[key] is (ExecutionState.COMPLETE if state == "success" else ExecutionState.FAILED), key
    failed_shard = ("cmf_t_fanout", "shard_3")
    assert sorted(n for (d, t, _, _, n), s in states.items() if (d, t) == failed_shard) == [1, 2]

    # The shards really ran side by side, in separate worker processes.
    shard_runs = [e for e in records if str(e.fact("dag_id")) == "cmf_t_fanout" and e.type.startswith("shard_")]
    spans = sorted((str(e.fact("start_time")), str(e.fact("end_time"))) for e in shard_runs)
    overlapping = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert overlapping >= 2, spans
    assert len({e.fact("pid") for e in shard_runs}) >= 2
    gather_in = [a for a in q.get_all_artifacts_for_execution(_gather_id(records)) if a.kind == "Dataset"]
    assert len(gather_in) == 8 + 1
    # The manual run of the example: its templated paths rendered, no logical date recorded.
    example = [e for e in records if e.fact("dag_id") == "cmf_get_started"]
    assert {e.state for e in example} == {ExecutionState.COMPLETE}
    assert {e.fact("logical_date") for e in example} == {None}


def _gather_id(records: list[Any]) -> int:
    [gather] = [e for e in records if e.type == "gather"]
    return int(gather.id)
