"""A real Airflow deployment with the CeleryExecutor and two Celery workers, for tests and benchmarks.

Redis is the Celery broker (a database number of its own, queue names of this deployment's
own, so concurrent runs never take each other's tasks); the Celery result backend and
Airflow's metadata database are fresh PostgreSQL databases. The api-server, scheduler,
dag-processor and two ``airflow celery worker`` processes run in process groups of their
own. Worker ``a`` serves one queue, worker ``b`` the other; each gets its own, initially
empty, project root as ``CMF_PROJECT_ROOT``. DAG files read the two queue names from
``CELERY_TEST_QUEUES`` (``<queue a>,<queue b>``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import PG_HOST, PG_PORT, PG_USER, stop_process_group

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The Redis database of the Celery broker, apart from the default one.
REDIS_DB = 11
#: The repository's DAG bundles: the example DAGs and the test DAGs.
BUNDLES = (("cmf-examples", REPO / "dags"), ("cmf-tests", REPO / "tests/airflow/dag_files"))

_POLICY = '''"""Routes tasks to the Celery queues of the workers that must run them."""

ROUTES = {routes!r}


def task_policy(task):
    """Put a task on the queue of its worker."""
    queue = ROUTES.get(task.dag_id, {{}}).get(task.task_id)
    if queue:
        task.queue = queue
'''


class DeploymentError(RuntimeError):
    """A component did not start, or something awaited did not happen in time."""


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """A running deployment.

    Attributes:
        env: The environment of its processes (without a worker's project root).
        home: ``AIRFLOW_HOME``; task logs are under ``logs/``.
        logs: The components' own logs.
        roots: Worker name (``a``, ``b``) -> its project root.
        queues: Worker name -> its Celery queue.
        airflow_db: Airflow's metadata database (PostgreSQL).
        port: The api-server's port.
    """

    env: dict[str, str]
    home: Path
    logs: Path
    roots: dict[str, Path]
    queues: dict[str, str]
    airflow_db: str
    port: int

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on Airflow's metadata database."""
        return _pg(self.airflow_db, sql, *params)

    def log_tails(self) -> str:
        """The end of every component's log."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.logs.glob("*.log"))
        )

    def wait(self, what: str, condition: Callable[[], Any], timeout: float) -> Any:
        """Poll ``condition`` until it returns something true.

        Raises:
            DeploymentError: ``timeout`` seconds passed first.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.5)
        raise DeploymentError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}")

    def trigger(self, dag_id: str) -> str:
        """Trigger a manual run (no logical date) through the REST API; return its run id."""
        run_id = f"celery__{dag_id}__{uuid.uuid4().hex[:8]}"
        body = json.dumps({"dag_run_id": run_id, "logical_date": None}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/dags/{dag_id}/dagRuns",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            if response.status not in (200, 201):
                raise DeploymentError(f"triggering {dag_id}: HTTP {response.status} {response.read()!r}")
        return run_id

    def finish(self, run_ids: Sequence[str], timeout: float) -> dict[str, str]:
        """Wait for DAG runs to end; return run id -> state."""
        marks = ",".join(["%s"] * len(run_ids))

        def done() -> dict[str, str] | None:
            rows = dict(self.rows(f"SELECT run_id, state FROM dag_run WHERE run_id IN ({marks})", *run_ids))
            ended = len(rows) == len(run_ids) and all(s in ("success", "failed") for s in rows.values())
            return {str(k): str(v) for k, v in rows.items()} if ended else None

        return dict(self.wait(f"DAG runs {list(run_ids)} to end", done, timeout))

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
        if not found:
            raise DeploymentError(f"no task log under {folder}")
        return found[0].read_text(errors="replace")


def _env(
    home: Path,
    databases: Mapping[str, str],
    port: int,
    queues: Mapping[str, str],
    bundles: Sequence[tuple[str, Path]],
    connections: Mapping[str, Mapping[str, Any]],
    concurrency: int,
    extra: Mapping[str, str],
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CMF_", "NEO4J_", "AWS_"))}
    pg = f"{PG_USER}@{PG_HOST}:{PG_PORT}"
    config = [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 5},
        }
        for name, path in bundles
    ]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(bundles[-1][1]),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{databases['airflow']}",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(config),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}/{databases['results']}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            # A task without a queue must not run by accident: the default queue is served by nobody.
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"{queues['a']}-default",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "cmf-orchestrate-celery-deployment-jwt-secret",
            "AIRFLOW__API__SECRET_KEY": "cmf-orchestrate-celery-deployment-secret",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "CELERY_TEST_QUEUES": f"{queues['a']},{queues['b']}",
            "DVC_NO_ANALYTICS": "1",
            "GLOG_minloglevel": "2",
            **extra,
        }
    )
    for conn_id, conn_extra in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "cmf", "extra": dict(conn_extra)})
    return env


def _start(stack: ExitStack, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        [AIRFLOW, *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent
    )

    stack.callback(stop_process_group, proc)
    return proc


def _api_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _forget_queues(queues: Sequence[str]) -> None:
    """Delete the deployment's Celery queues from the broker's database."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=5)
    try:
        client.delete(*[k for q in queues for k in (q, f"_kombu.binding.{q}")])
    finally:
        client.close()


def _admin(sql: str) -> None:
    _pg("postgres", sql)


@contextmanager
def celery_deployment(
    base: Path,
    *,
    dag_ids: Sequence[str],
    connections: Mapping[str, Mapping[str, Any]],
    bundles: Sequence[tuple[str, Path]] = BUNDLES,
    routes: Mapping[str, Mapping[str, str]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    concurrency: int = 4,
) -> Iterator[Deployment]:
    """Start the deployment under ``base``, wait until ``dag_ids`` are parsed, stop it afterwards.

    Args:
        base: An empty folder for Airflow's home, the logs and the workers' project roots.
        dag_ids: DAGs that must be parsed before the deployment is handed out.
        connections: Airflow connections of type ``cmf`` by id: their ``extra``.
        bundles: DAG bundles (name, folder).
        routes: DAG id -> task id -> worker (``a`` or ``b``), applied by a cluster policy
            (``airflow_local_settings.task_policy``) to DAGs that name no queue.
        extra_env: More environment variables of every process.
        concurrency: Task processes per worker.

    Raises:
        DeploymentError: A component did not start in time.
    """
    token = uuid.uuid4().hex[:10]
    home, logs = base / "airflow", base / "logs"
    roots = {"a": base / "worker-a", "b": base / "worker-b"}
    for path in (home / "config", logs, *roots.values()):
        path.mkdir(parents=True)
    queues = {"a": f"cmf-a-{token}", "b": f"cmf-b-{token}"}
    databases = {what: f"cmf_celery_{what}_{token}" for what in ("airflow", "results")}
    port = _free_port()
    env = _env(home, databases, port, queues, bundles, connections, concurrency, extra_env or {})
    table = {dag: {task: queues[worker] for task, worker in tasks.items()} for dag, tasks in (routes or {}).items()}
    (home / "config" / "airflow_local_settings.py").write_text(_POLICY.format(routes=table))
    deployment = Deployment(env, home, logs, roots, queues, databases["airflow"], port)

    with ExitStack() as stack:
        for name in databases.values():
            _admin(f'CREATE DATABASE "{name}"')
            stack.callback(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        stack.callback(_forget_queues, [*queues.values(), f"{queues['a']}-default"])
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], check=False, env=env, capture_output=True, text=True, timeout=600
        )
        if migrate.returncode != 0:
            raise DeploymentError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")
        _start(stack, ["api-server"], env, logs / "api-server.log")
        deployment.wait("the api-server", lambda: _api_ready(port), 180)
        _start(stack, ["scheduler"], env, logs / "scheduler.log")
        _start(stack, ["dag-processor"], env, logs / "dag-processor.log")
        for worker, queue in queues.items():
            worker_env = {**env, "CMF_PROJECT_ROOT": str(roots[worker])}
            args = ["celery", "worker", "-q", queue, "-H", f"{worker}-{token}@%h", "--skip-serve-logs"]
            _start(stack, [*args, "--without-gossip", "--without-mingle"], worker_env, logs / f"worker-{worker}.log")
        marks = ",".join(["%s"] * len(dag_ids))
        deployment.wait(
            "the DAGs to be parsed",
            lambda: len(deployment.rows(f"SELECT dag_id FROM dag WHERE dag_id IN ({marks})", *dag_ids)) == len(dag_ids),
            300,
        )
        yield deployment
