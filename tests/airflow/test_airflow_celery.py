"""Airflow's CeleryExecutor with two workers that share only the metadata store and a DVC remote.

A real deployment, started once for the module: Redis as the Celery broker (a database
number of its own, queue names of this run's own), the Celery result backend and
Airflow's metadata database on PostgreSQL, the api-server, scheduler and dag-processor,
and two ``airflow celery worker`` processes. Worker A serves one queue, worker B the other;
each records into its own, initially empty, project root (``CMF_PROJECT_ROOT`` in its
environment), so a task's queue decides where it runs and where its files are. The MLMD
store is a PostgreSQL database; the remotes are a local folder and an S3 bucket on moto's
server (``CMF_REMOTE=s3://...`` with ``AWS_ENDPOINT_URL``, as for any S3-compatible store).

The scenarios (``dag_files/cmf_celery_dags.py`` and the example DAG, whose tasks an
``airflow_local_settings.task_policy`` routes to both queues) are triggered together and
awaited once; each test then checks one of them.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server, moto_available, moto_s3
from servers import IN_CI, PG_HOST, PG_PORT, PG_USER, create_database, drop_database, require_server, server_up

from cmf_orchestrate import CmfQuery, CmfSettings, EventType, ExecutionRecord, ExecutionState

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The Redis database the Celery broker of these tests uses, apart from the default one.
REDIS_DB = 11
BUCKET = "cmf-celery-remote"
S3_PREFIX = "cmf"
EXAMPLE = "cmf_get_started"
#: Where the example DAG's tasks run: spread over both workers, each input made on the other one.
EXAMPLE_ROUTES = {"generate": "a", "prepare": "b", "featurize": "a", "train": "b", "evaluate": "a"}
#: DAGs recorded in the PostgreSQL store, triggered together.
DAGS = (
    "cmf_t_celery_pass",
    "cmf_t_celery_pass_s3",
    "cmf_t_celery_fanout",
    EXAMPLE,
    "cmf_t_celery_lost",
    "cmf_t_celery_bad_remote",
    "cmf_t_celery_sqlite",
)
#: How each DAG run ends.
EXPECTED = {"cmf_t_celery_lost": "failed", "cmf_t_celery_bad_remote": "failed"}
WORKER_CONCURRENCY = 4

_POLICY = '''"""Routes the example DAG's tasks to the Celery queues of two workers."""

ROUTES = {routes!r}


def task_policy(task):
    """Put a task on the queue of the worker that must run it."""
    queue = ROUTES.get(task.dag_id, {{}}).get(task.task_id)
    if queue:
        task.queue = queue
'''


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg(database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg2

    conn = psycopg2.connect(dbname=database, host=PG_HOST, port=PG_PORT, user=PG_USER, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


@dataclass
class Cluster:
    """The running deployment and what its first round of DAG runs left."""

    env: dict[str, str]
    home: Path
    logs: Path
    roots: dict[str, Path]
    queues: dict[str, str]
    airflow_db: str
    mlmd_url: str
    local_remote: Path
    elsewhere_remote: Path
    sqlite_store: Path
    s3: S3Server
    port: int
    runs: dict[str, str] = field(default_factory=dict)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on Airflow's metadata database."""
        return _pg(self.airflow_db, sql, *params)

    def query(self, store: str | None = None) -> CmfQuery:
        """A query over the shared MLMD store (or another one)."""
        return CmfQuery(settings=CmfSettings(store=store or self.mlmd_url, project_root=self.roots["a"]))

    def fail(self, message: str) -> None:
        """Fail the test with the tails of the components' logs."""
        tails = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.logs.glob("*.log"))
        )
        pytest.fail(f"{message}\n{tails}")

    def wait(self, what: str, condition: Callable[[], Any], timeout: float) -> Any:
        """Poll ``condition`` until it returns something true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(1)
        self.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        return None

    def trigger(self, dag_id: str) -> str:
        """Trigger a manual run through the REST API; return its run id."""
        run_id = f"celery__{dag_id}__{uuid.uuid4().hex[:8]}"
        body = json.dumps({"dag_run_id": run_id, "logical_date": None}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/dags/{dag_id}/dagRuns",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status in (200, 201), response.read()
        return run_id

    def finish(self, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Wait for DAG runs to end; return run id -> state."""
        marks = ",".join(["%s"] * len(run_ids))

        def done() -> dict[str, str] | None:
            rows = dict(self.rows(f"SELECT run_id, state FROM dag_run WHERE run_id IN ({marks})", *run_ids))
            ended = len(rows) == len(run_ids) and all(s in ("success", "failed") for s in rows.values())
            return {str(k): str(v) for k, v in rows.items()} if ended else None

        return dict(self.wait(f"DAG runs {run_ids} to end", done, timeout))

    def tries(self, run_id: str) -> dict[tuple[str, int, int], tuple[str, str]]:
        """(task id, map index, try number) -> (state, queue) of every try of a DAG run."""
        rows = self.rows(
            "SELECT task_id, map_index, try_number, state, queue FROM task_instance WHERE run_id = %s "
            "UNION ALL SELECT task_id, map_index, try_number, state, queue FROM task_instance_history "
            "WHERE run_id = %s",
            run_id,
            run_id,
        )
        return {(t, int(m), int(n)): (str(s), str(q)) for t, m, n, s, q in rows}

    def root_of(self, queue: str) -> Path:
        """The project root of the worker serving ``queue``."""
        return self.roots[next(w for w, q in self.queues.items() if q == queue)]

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
        """The text of one try's task log."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        found = sorted(folder.glob(f"**/attempt={attempt}.log"))
        assert found, f"no task log under {folder}"
        return found[0].read_text(errors="replace")


def _env(
    home: Path,
    airflow_db: str,
    result_db: str,
    port: int,
    queues: dict[str, str],
    connections: dict[str, dict[str, Any]],
    s3: S3Server,
    s3_remote: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CMF_", "NEO4J_", "AWS_"))}
    bundles = [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 5},
        }
        for name, path in (("cmf-examples", REPO / "dags"), ("cmf-tests", REPO / "tests/airflow/dag_files"))
    ]
    pg = f"{PG_USER}@{PG_HOST}:{PG_PORT}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "tests/airflow/dag_files"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{airflow_db}",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}/{result_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            # No task may land on a queue nobody serves by accident: the default one is this run's own too.
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"{queues['a']}-default",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "cmf-orchestrate-celery-test-jwt-secret-0123456",
            "AIRFLOW__API__SECRET_KEY": "cmf-orchestrate-celery-test-secret",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "CELERY_TEST_QUEUES": f"{queues['a']},{queues['b']}",
            # A remote of any scheme comes from the environment, as the connection leaves it out.
            "CMF_REMOTE": s3_remote,
            "DVC_NO_ANALYTICS": "1",
            "GLOG_minloglevel": "2",
            **s3.env,
        }
    )
    for conn_id, extra in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "cmf", "extra": extra})
    return env


def _start(stack: ExitStack, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        [AIRFLOW, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent
    )

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    stack.callback(stop)
    return proc


def _api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _forget_queues(queues: list[str]) -> None:
    """Delete this run's Celery queues from the broker's database."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    keys = [k for q in queues for k in (q, f"_kombu.binding.{q}")]
    client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The deployment, with the first round of DAG runs over."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    why = moto_available()
    if why:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    assert server_up(REDIS_HOST, REDIS_PORT)
    base = tmp_path_factory.mktemp("celery")
    home, logs = base / "airflow", base / "logs"
    roots = {"a": base / "worker-a", "b": base / "worker-b"}
    local_remote, elsewhere_remote = base / "remote", base / "remote-elsewhere"
    for path in (home, logs, *roots.values()):
        path.mkdir()
    token = uuid.uuid4().hex[:10]
    queues = {"a": f"cmf-a-{token}", "b": f"cmf-b-{token}"}
    airflow_db, result_db, mlmd_db = (f"cmf_celery_{what}_{token}" for what in ("airflow", "results", "mlmd"))
    mlmd_url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{mlmd_db}"
    sqlite_store = base / "worker-a-only.mlmd"

    with ExitStack() as stack:
        for name in (airflow_db, result_db, mlmd_db):
            create_database("postgresql", name)
            stack.callback(drop_database, "postgresql", name)
        stack.callback(_forget_queues, [*queues.values(), f"{queues['a']}-default"])
        s3 = stack.enter_context(moto_s3(logs))
        s3.create_bucket(BUCKET)
        port = _free_port()
        connections: dict[str, dict[str, Any]] = {
            "cmf_default": {"store": mlmd_url, "remote": str(local_remote)},
            "cmf_s3": {"store": mlmd_url},  # the remote: CMF_REMOTE, s3://...
            "cmf_elsewhere": {"store": mlmd_url, "remote": str(elsewhere_remote)},
            "cmf_bad_remote": {"store": mlmd_url, "remote": f"s3://cmf-no-such-bucket-{token}/x"},
            "cmf_sqlite": {"store": str(sqlite_store), "remote": str(local_remote)},
        }
        env = _env(home, airflow_db, result_db, port, queues, connections, s3, f"s3://{BUCKET}/{S3_PREFIX}")
        (home / "config").mkdir()
        routes = {EXAMPLE: {task: queues[worker] for task, worker in EXAMPLE_ROUTES.items()}}
        (home / "config" / "airflow_local_settings.py").write_text(_POLICY.format(routes=routes))
        cluster = Cluster(
            env, home, logs, roots, queues, airflow_db, mlmd_url, local_remote, elsewhere_remote, sqlite_store, s3, port
        )
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], check=False, env=env, capture_output=True, text=True, timeout=600
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

        _start(stack, ["api-server"], env, logs / "api-server.log")
        cluster.wait("the api-server", lambda: _api_ready(port), 180)
        _start(stack, ["scheduler"], env, logs / "scheduler.log")
        _start(stack, ["dag-processor"], env, logs / "dag-processor.log")
        for worker, queue in queues.items():
            worker_env = {**env, "CMF_PROJECT_ROOT": str(roots[worker])}
            args = ["celery", "worker", "-q", queue, "-H", f"{worker}-{token}@%h", "--skip-serve-logs"]
            _start(stack, [*args, "--without-gossip", "--without-mingle"], worker_env, logs / f"worker-{worker}.log")
        marks = ",".join(["%s"] * len(DAGS))
        cluster.wait(
            "the DAGs to be parsed",
            lambda: len(cluster.rows(f"SELECT dag_id FROM dag WHERE dag_id IN ({marks})", *DAGS)) == len(DAGS),
            300,
        )
        cluster.runs = {dag_id: cluster.trigger(dag_id) for dag_id in DAGS}
        cluster.finish(list(cluster.runs.values()), 600)
        yield cluster


def _executions(q: CmfQuery, dag_id: str, run_id: str) -> list[ExecutionRecord]:
    return [e for e in q.executions(pipeline=dag_id, newest_first=False) if e.fact("run_id") == run_id]


def _key(execution: ExecutionRecord) -> tuple[str, int, int]:
    return (execution.type, int(execution.fact("map_index", -1)), int(execution.fact("attempt")))


def _files(root: Path, relative: str) -> dict[str, bytes]:
    """Relative file name -> bytes of a file or of every file under a folder."""
    path = root / relative
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _check_run(cluster: Cluster, dag_id: str, expected_inputs: int) -> list[ExecutionRecord]:
    """One COMPLETE execution per try of a successful run; every input is the producer's bytes and md5.

    Returns the run's executions.
    """
    run_id = cluster.runs[dag_id]
    [(state,)] = cluster.rows("SELECT state FROM dag_run WHERE run_id = %s", run_id)
    tries = cluster.tries(run_id)
    assert state == "success", tries
    assert {n for _, _, n in tries} == {1}, f"a task of {dag_id} was retried: {tries}"
    q = cluster.query()
    executions = _executions(q, dag_id, run_id)
    recorded = collections.Counter(_key(e) for e in executions)
    assert [k for k, n in recorded.items() if n > 1] == [], "a try was recorded more than once"
    assert set(recorded) == set(tries), "MLMD and Airflow disagree on the tries"
    assert {e.state for e in executions} == {ExecutionState.COMPLETE}

    produced: dict[str, tuple[str, Path]] = {}
    for execution in executions:
        root = cluster.root_of(tries[_key(execution)][1])
        for artifact in q.get_artifacts_for_execution(execution.id)[EventType.OUTPUT]:
            if artifact.kind != "Environment":
                produced[artifact.path] = (artifact.md5, root)
    consumed = 0
    for execution in executions:
        root = cluster.root_of(tries[_key(execution)][1])
        for artifact in q.get_artifacts_for_execution(execution.id)[EventType.INPUT]:
            if artifact.kind == "Environment":
                continue
            md5, producer_root = produced[artifact.path]
            assert artifact.md5 == md5, (execution.type, artifact.path)
            assert _files(root, artifact.path) == _files(producer_root, artifact.path), artifact.path
            consumed += producer_root != root
    assert consumed == expected_inputs, f"{dag_id}: {consumed} inputs made on the other worker"
    return executions


def test_a_file_and_a_folder_made_on_worker_a_are_inputs_on_worker_b(cluster: Cluster) -> None:
    executions = _check_run(cluster, "cmf_t_celery_pass", expected_inputs=2)
    assert {e.type for e in executions} == {"produce", "consume"}
    dag = "cmf_t_celery_pass"
    # Worker A never saw what B wrote, and the other way round.
    a, b = cluster.roots["a"] / dag, cluster.roots["b"] / dag
    assert (a / "produced.bin").is_file() and not (a / "summary.txt").exists()
    assert (b / "summary.txt").is_file()
    # Everything A and B wrote is on the remote.
    on_remote = {p.parent.name + p.name for p in (cluster.local_remote / "files" / "md5").rglob("*") if p.is_file()}
    q = cluster.query()
    for execution in executions:
        for artifact in q.get_artifacts_for_execution(execution.id)[EventType.OUTPUT]:
            assert artifact.uri in on_remote, artifact.path


def test_the_s3_remote_carries_outputs_from_worker_a_to_worker_b(cluster: Cluster) -> None:
    executions = _check_run(cluster, "cmf_t_celery_pass_s3", expected_inputs=2)
    keys = cluster.s3.keys(BUCKET, f"{S3_PREFIX}/files/md5/")
    on_s3 = {k.split("/")[-2] + k.split("/")[-1] for k in keys}
    q = cluster.query()
    outputs = [a for e in executions for a in q.get_artifacts_for_execution(e.id)[EventType.OUTPUT]]
    assert outputs and {a.uri for a in outputs} <= on_s3
    # The local-folder remote of the other connection got none of them.
    folder = cluster.local_remote / "files" / "md5"
    assert not any((folder / a.uri[:2] / a.uri[2:]).exists() for a in outputs if a.kind != "Environment")


def test_a_16_way_mapped_fan_out_on_worker_a_is_gathered_on_worker_b(cluster: Cluster) -> None:
    executions = _check_run(cluster, "cmf_t_celery_fanout", expected_inputs=16)
    assert sorted(int(e.fact("map_index")) for e in executions if e.type == "shard") == list(range(16))
    gathered = (cluster.roots["b"] / "fanout" / "all.txt").read_bytes()
    assert gathered == b"".join(f"shard {i}\n".encode() * (i + 1) for i in range(16))


def test_the_example_dag_spread_over_both_workers(cluster: Cluster) -> None:
    executions = _check_run(cluster, EXAMPLE, expected_inputs=5)
    queues = {task: queue for (task, _, _), (_, queue) in cluster.tries(cluster.runs[EXAMPLE]).items()}
    assert queues == {task: cluster.queues[worker] for task, worker in EXAMPLE_ROUTES.items()}
    assert len(executions) == len(EXAMPLE_ROUTES)


def test_an_input_whose_bytes_are_on_no_reachable_remote_fails_naming_path_md5_and_remote(cluster: Cluster) -> None:
    dag_id = "cmf_t_celery_lost"
    run_id = cluster.runs[dag_id]
    tries = cluster.tries(run_id)
    assert {(t, s) for (t, _, _), (s, _) in tries.items()} == {("produce", "success"), ("consume", "failed")}
    q = cluster.query()
    by_task = {e.type: e for e in _executions(q, dag_id, run_id)}
    assert by_task["produce"].state is ExecutionState.COMPLETE
    [made] = [a for a in q.get_artifacts_for_execution(by_task["produce"].id)[EventType.OUTPUT] if a.kind == "Dataset"]
    failed = by_task["consume"]
    assert failed.state is ExecutionState.FAILED
    assert failed.fact("error_type") == "cmf_orchestrate.errors.ArtifactNotFoundError"
    message = str(failed.fact("error_message"))
    assert "'lost/only-elsewhere.txt'" in message and made.md5 in message and str(cluster.local_remote) in message
    assert message in cluster.task_log(dag_id, run_id, "consume")
    assert not (cluster.roots["b"] / "lost").exists()


def test_a_failed_push_fails_the_attempt(cluster: Cluster) -> None:
    dag_id = "cmf_t_celery_bad_remote"
    run_id = cluster.runs[dag_id]
    [execution] = _executions(cluster.query(), dag_id, run_id)
    assert execution.state is ExecutionState.FAILED
    assert execution.fact("error_type") == "cmf_orchestrate.errors.RemoteError"
    assert "cmf-no-such-bucket" in str(execution.fact("error_message"))
    assert cluster.tries(run_id) == {("produce", -1, 1): ("failed", cluster.queues["a"])}


def _remote_objects(cluster: Cluster) -> tuple[dict[str, int], dict[str, str]]:
    """Every object of both remotes: folder file -> mtime, S3 key -> ETag (with its listing time)."""
    folder = {str(p): p.stat().st_mtime_ns for p in cluster.local_remote.rglob("*") if p.is_file()}
    return folder, cluster.s3.keys(BUCKET, f"{S3_PREFIX}/")


def test_repeated_runs_push_nothing_new(cluster: Cluster) -> None:
    before = _remote_objects(cluster)
    s3_times = {
        o["Key"]: o["LastModified"]
        for o in cluster.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{S3_PREFIX}/").get("Contents", [])
    }
    again = {dag_id: cluster.trigger(dag_id) for dag_id in ("cmf_t_celery_pass", "cmf_t_celery_pass_s3")}
    states = cluster.finish(list(again.values()), 300)
    assert set(states.values()) == {"success"}, states
    q = cluster.query()
    for dag_id, run_id in again.items():
        assert {e.state for e in _executions(q, dag_id, run_id)} == {ExecutionState.COMPLETE}
    # The same bytes again: not one object added or written again, on either remote.
    assert _remote_objects(cluster) == before
    after_times = {
        o["Key"]: o["LastModified"]
        for o in cluster.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{S3_PREFIX}/").get("Contents", [])
    }
    assert after_times == s3_times


def test_a_sqlite_store_under_celery_warns_that_workers_do_not_share_it(cluster: Cluster) -> None:
    dag_id = "cmf_t_celery_sqlite"
    run_id = cluster.runs[dag_id]
    [(state,)] = cluster.rows("SELECT state FROM dag_run WHERE run_id = %s", run_id)
    assert state == "success"
    [execution] = _executions(cluster.query(str(cluster.sqlite_store)), dag_id, run_id)
    assert execution.state is ExecutionState.COMPLETE
    log = cluster.task_log(dag_id, run_id, "produce")
    assert log.count("does not share") == 1, log[-3000:]
    assert "CeleryExecutor does not share" in log and str(cluster.sqlite_store) in log
    # A shared (PostgreSQL) store draws no such warning.
    shared = cluster.runs["cmf_t_celery_pass"]
    assert "does not share" not in cluster.task_log("cmf_t_celery_pass", shared, "produce")
