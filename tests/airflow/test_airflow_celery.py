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
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery_deployment import REDIS_HOST, REDIS_PORT, Deployment, DeploymentError, celery_deployment
from s3server import S3Server, moto_available, moto_s3
from servers import IN_CI, PG_HOST, PG_PORT, PG_USER, create_database, drop_database, require_server

from cmf_orchestrate import CmfQuery, CmfSettings, EventType, ExecutionRecord, ExecutionState

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

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


@dataclass
class Cluster:
    """The running deployment, its shared store and remotes, and the first round of DAG runs."""

    deployment: Deployment
    mlmd_url: str
    local_remote: Path
    sqlite_store: Path
    s3: S3Server
    runs: dict[str, str] = field(default_factory=dict)

    @property
    def roots(self) -> dict[str, Path]:
        """Worker -> project root."""
        return self.deployment.roots

    @property
    def queues(self) -> dict[str, str]:
        """Worker -> Celery queue."""
        return self.deployment.queues

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on Airflow's metadata database."""
        return self.deployment.rows(sql, *params)

    def query(self, store: str | None = None) -> CmfQuery:
        """A query over the shared MLMD store (or another one)."""
        return CmfQuery(settings=CmfSettings(store=store or self.mlmd_url, project_root=self.roots["a"]))

    def trigger(self, dag_id: str) -> str:
        """Trigger a manual run; return its run id."""
        return self.deployment.trigger(dag_id)

    def finish(self, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Wait for DAG runs to end; return run id -> state."""
        try:
            return self.deployment.finish(run_ids, timeout)
        except DeploymentError as exc:
            pytest.fail(str(exc))

    def tries(self, run_id: str) -> dict[tuple[str, int, int], tuple[str, str]]:
        """(task id, map index, try number) -> (state, queue) of every try of a DAG run."""
        return self.deployment.tries(run_id)

    def root_of(self, queue: str) -> Path:
        """The project root of the worker serving ``queue``."""
        return self.deployment.root_of(queue)

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """The text of a task's first try's log."""
        return self.deployment.task_log(dag_id, run_id, task_id)


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
    base = tmp_path_factory.mktemp("celery")
    local_remote, elsewhere_remote = base / "remote", base / "remote-elsewhere"
    token = uuid.uuid4().hex[:10]
    mlmd_db = f"cmf_celery_mlmd_{token}"
    mlmd_url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{mlmd_db}"
    sqlite_store = base / "worker-a-only.mlmd"
    connections: dict[str, dict[str, Any]] = {
        "cmf_default": {"store": mlmd_url, "remote": str(local_remote)},
        "cmf_s3": {"store": mlmd_url},  # the remote: CMF_REMOTE, s3://...
        "cmf_elsewhere": {"store": mlmd_url, "remote": str(elsewhere_remote)},
        "cmf_bad_remote": {"store": mlmd_url, "remote": f"s3://cmf-no-such-bucket-{token}/x"},
        "cmf_sqlite": {"store": str(sqlite_store), "remote": str(local_remote)},
    }
    with ExitStack() as stack:
        create_database("postgresql", mlmd_db)
        stack.callback(drop_database, "postgresql", mlmd_db)
        s3 = stack.enter_context(moto_s3(base))
        s3.create_bucket(BUCKET)
        # A remote of any scheme may come from the environment, as connection cmf_s3 leaves it out.
        env = {"CMF_REMOTE": f"s3://{BUCKET}/{S3_PREFIX}", **s3.env}
        try:
            deployment = stack.enter_context(
                celery_deployment(
                    base,
                    dag_ids=DAGS,
                    connections=connections,
                    routes={EXAMPLE: EXAMPLE_ROUTES},
                    extra_env=env,
                    concurrency=WORKER_CONCURRENCY,
                )
            )
        except DeploymentError as exc:
            pytest.fail(str(exc))
        cluster = Cluster(deployment, mlmd_url, local_remote, sqlite_store, s3)
        cluster.runs = {dag_id: cluster.trigger(dag_id) for dag_id in DAGS}
        cluster.finish(list(cluster.runs.values()), 600)
        yield cluster


def test_every_dag_run_ends_as_expected(cluster: Cluster) -> None:
    states = dict(cluster.rows("SELECT dag_id, state FROM dag_run WHERE run_id = ANY(%s)", list(cluster.runs.values())))
    assert states == {dag_id: EXPECTED.get(dag_id, "success") for dag_id in DAGS}


def test_task_logs_show_no_database_errors(cluster: Cluster) -> None:
    """Many new processes open the shared store: none of them logs a database error."""
    logs = sorted((cluster.deployment.home / "logs").rglob("attempt=*.log"))
    assert len(logs) >= 30
    noisy = {
        str(p.relative_to(cluster.deployment.home)) for p in logs if "duplicate key" in p.read_text(errors="replace")
    }
    assert noisy == set()


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


def test_a_mapped_operator_declares_its_asset_alias_when_parsed(load_dag: Any) -> None:
    """Templated outputs emit asset events through an alias; a mapped operator must declare it at parse
    time too, or concurrently finishing map instances all create it and all but one fail on
    Airflow's unique index (``idx_asset_alias_name_unique``)."""
    from airflow.sdk import AssetAlias

    shard = load_dag("cmf_t_celery_fanout").get_task("shard")
    outlets = [*shard.partial_kwargs.get("outlets", []), *getattr(shard, "outlets", [])]
    assert AssetAlias(name="cmf:cmf_t_celery_fanout.shard") in outlets
