"""Prefect's distributed engines, with workers that share only the metadata store and a DVC remote.

- A process work pool served by two ``prefect worker start`` processes, each listening on
  a work queue of its own and recording into its own project root (``CMF_PROJECT_ROOT`` in
  the worker's environment, which the flow-run processes it starts inherit). A produce
  flow is deployed to worker A's queue and a consume flow to worker B's: the consumer's
  inputs come from the local-folder remote.
- ``DaskTaskRunner`` on a Dask cluster of two worker processes. On a real cluster each
  machine's ``dask worker`` is started with its own environment; here the cluster is a
  ``SpecCluster`` whose two ``Nanny`` workers each get their ``CMF_PROJECT_ROOT`` (and the
  shared ``CMF_STORE``, ``CMF_REMOTE``) through the Nanny's ``env``. Dask resources pin
  shards to either worker and the gather to worker B; the remote is S3 (moto's server).

The store is a PostgreSQL database shared by every process.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect_testlib import published, summary_rows, wait_for
from s3server import S3Server, moto_available, moto_s3
from servers import (
    IN_CI,
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_database,
    drop_database,
    require_server,
    stop_process_group,
)

from cmf_orchestrate import CmfQuery, CmfSettings, EventType, ExecutionRecord, ExecutionState

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FLOWS = Path(__file__).resolve().parent / "flow_files"
PREFECT = str(Path(sys.executable).with_name("prefect"))
BUCKET = "cmf-prefect-remote"


@pytest.fixture(scope="module")
def shared_store() -> Iterator[str]:
    """A PostgreSQL MLMD database every worker of the module records into."""
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    name = f"cmf_workers_{uuid.uuid4().hex[:10]}"
    create_database("postgresql", name)
    yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    drop_database("postgresql", name)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server, with the module's bucket."""
    why = moto_available()
    if why:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        server.create_bucket(BUCKET)
        yield server


def _query(store: str, root: Path) -> CmfQuery:
    return CmfQuery(settings=CmfSettings(store=store, project_root=root))


def _of_flow_run(q: CmfQuery, flow_run_id: object) -> list[ExecutionRecord]:
    return [s.execution for s in q.get_executions_by_fact("flow_run_id", str(flow_run_id))]


def _outputs(q: CmfQuery, execution: ExecutionRecord) -> dict[str, str]:
    found = q.get_artifacts_for_execution(execution.id)[EventType.OUTPUT]
    return {a.path: a.md5 for a in found if a.kind != "Environment"}


def _inputs(q: CmfQuery, execution: ExecutionRecord) -> dict[str, str]:
    found = q.get_artifacts_for_execution(execution.id)[EventType.INPUT]
    return {a.path: a.md5 for a in found if a.kind != "Environment"}


def _task_runs(flow_run_id: object) -> dict[str, int]:
    """Task run id -> number of tries Prefect made, for one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {str(r.id): int(r.run_count) for r in runs}


def _one_execution_per_try(executions: list[ExecutionRecord], flow_run_id: object) -> None:
    tries = wait_for(lambda: _task_runs(flow_run_id) or None)
    recorded = collections.Counter((str(e.fact("task_run_id")), int(e.fact("attempt"))) for e in executions)
    assert [k for k, n in recorded.items() if n > 1] == [], "a try was recorded more than once"
    assert set(recorded) == {(run, n) for run, count in tries.items() for n in range(1, count + 1)}
    assert {e.state for e in executions} == {ExecutionState.COMPLETE}


# -- a process work pool with two workers ------------------------------------------------------


def _start_worker(pool: str, queue: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--work-queue", queue, "--type", "process"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,
        )


def test_a_process_work_pool_moves_outputs_from_worker_a_to_worker_b(tmp_path: Path, shared_store: str) -> None:
    from prefect import Flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    roots = {w: tmp_path / f"worker-{w}" for w in "ab"}
    remote = tmp_path / "remote"
    for root in roots.values():
        root.mkdir()
    pool = f"cmf-pool-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployments = {}
    for worker, name in (("a", "produce_flow"), ("b", "consume_flow")):
        made: Any = Flow.from_source(source=str(FLOWS), entrypoint=f"cmf_worker_flows.py:{name}")
        made.deploy(name=f"{pool}-{worker}", work_pool_name=pool, work_queue_name=worker, print_next_steps=False)
        deployments[worker] = f"{made.name}/{pool}-{worker}"

    base = {k: v for k, v in os.environ.items() if not k.startswith(("CMF_", "NEO4J_", "PREFECT_"))}
    base.update(
        {
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "CMF_STORE": shared_store,
            "CMF_REMOTE": str(remote),
            "DVC_NO_ANALYTICS": "1",
        }
    )
    workers = [
        _start_worker(pool, w, {**base, "CMF_PROJECT_ROOT": str(roots[w])}, tmp_path / f"worker-{w}.log") for w in "ab"
    ]
    try:
        produced = run_deployment(deployments["a"], timeout=300)
        assert produced.state is not None and produced.state.is_completed(), (
            produced.state,
            (tmp_path / "worker-a.log").read_text()[-4000:],
        )
        consumed = run_deployment(deployments["b"], timeout=300)
        assert consumed.state is not None and consumed.state.is_completed(), (
            consumed.state,
            (tmp_path / "worker-b.log").read_text()[-4000:],
        )
    finally:
        for proc in workers:
            stop_process_group(proc)

    q = _query(shared_store, roots["a"])
    made_runs = _of_flow_run(q, produced.id)
    joined_runs = _of_flow_run(q, consumed.id)
    _one_execution_per_try(made_runs, produced.id)
    _one_execution_per_try(joined_runs, consumed.id)
    assert sorted(e.type for e in made_runs) == ["make_part"] * 4
    [join] = joined_runs
    made = {p: m for e in made_runs for p, m in _outputs(q, e).items()}
    # The consumer read the producer's md5s, and worker B now holds worker A's bytes.
    assert _inputs(q, join) == made
    for path in made:
        assert (roots["b"] / path).read_bytes() == (roots["a"] / path).read_bytes(), path
    assert not (roots["a"] / "pool" / "joined.txt").exists()
    assert _outputs(q, join) == {"pool/joined.txt": _md5(roots["b"] / "pool" / "joined.txt")}


def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


# -- prefect-dask with two worker processes ----------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster(
    tmp_path_factory: pytest.TempPathFactory, shared_store: str, s3: S3Server
) -> Iterator[tuple[str, dict[str, Path]]]:
    """A Dask cluster of two worker processes with project roots of their own; its address and the roots."""
    pytest.importorskip("prefect_dask", reason="prefect-dask is not installed")
    from distributed import Nanny, Scheduler, SpecCluster

    base = tmp_path_factory.mktemp("dask")
    roots = {w: base / f"worker-{w}" for w in "ab"}
    for root in roots.values():
        root.mkdir()
    shared = {"CMF_STORE": shared_store, "CMF_REMOTE": f"s3://{BUCKET}/cmf", "DVC_NO_ANALYTICS": "1", **s3.env}
    workers = {
        w: {
            "cls": Nanny,
            "options": {
                "nthreads": 1,
                "name": w,
                "resources": {f"on-{w}": 1},
                "env": {**shared, "CMF_PROJECT_ROOT": str(roots[w])},
            },
        }
        for w in "ab"
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard": False, "host": "127.0.0.1"}}
    with SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40) as cluster:
        yield str(cluster.scheduler_address), roots


def test_dask_workers_gather_shards_made_on_both_and_publish_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_store: str, s3: S3Server, dask_cluster: Any
) -> None:
    import dask
    from prefect_dask import DaskTaskRunner

    from cmf_orchestrate import Dataset
    from cmf_orchestrate.prefect import cmf_flow, cmf_task
    from cmf_orchestrate.prefect._summary import artifact_key

    address, roots = dask_cluster
    # The flow's own process: where the summary is published from (the same store).
    flow_root = tmp_path / "flow"
    flow_root.mkdir()
    for name, value in {"CMF_STORE": shared_store, "CMF_REMOTE": f"s3://{BUCKET}/cmf", **s3.env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CMF_PROJECT_ROOT", str(flow_root))
    shards = 8
    pipeline = f"cmf-dask-{uuid.uuid4().hex[:6]}"

    @cmf_task(outputs=[Dataset("dask/shard-{i}.txt")])
    def shard(i: int) -> str:
        root = Path(os.environ["CMF_PROJECT_ROOT"])
        (root / "dask").mkdir(exist_ok=True)
        (root / f"dask/shard-{i}.txt").write_text(f"shard {i}\n" * (i + 1))
        return str(root)

    @cmf_task(inputs=[Dataset(f"dask/shard-{i}.txt") for i in range(shards)], outputs=[Dataset("dask/all.txt")])
    def gather(made_in: list[str]) -> str:
        root = Path(os.environ["CMF_PROJECT_ROOT"])
        data = b"".join((root / f"dask/shard-{i}.txt").read_bytes() for i in range(shards))
        (root / "dask/all.txt").write_bytes(data)
        return str(root)

    @cmf_flow(name=pipeline, task_runner=DaskTaskRunner(address=address))
    def fan_out() -> tuple[list[str], str]:
        futures = []
        for i in range(shards):
            with dask.annotate(resources={f"on-{'ab'[i % 2]}": 1}):
                futures.append(shard.submit(i))
        with dask.annotate(resources={"on-b": 1}):
            gathered = gather.submit(futures)
        return [f.result() for f in futures], gathered.result()

    state = fan_out(return_state=True)
    assert state.is_completed(), state
    made_in, gathered_in = state.result()
    assert made_in == [str(roots["ab"[i % 2]]) for i in range(shards)]
    assert gathered_in == str(roots["b"])
    flow_run_id = state.state_details.flow_run_id

    q = _query(shared_store, flow_root)
    executions = _of_flow_run(q, flow_run_id)
    _one_execution_per_try(executions, flow_run_id)
    [join] = [e for e in executions if e.type == "gather"]
    made = {p: m for e in executions if e.type == "shard" for p, m in _outputs(q, e).items()}
    assert len(made) == shards and _inputs(q, join) == made
    for i in range(shards):
        path = f"dask/shard-{i}.txt"
        assert (roots["b"] / path).read_bytes() == (roots["ab"[i % 2]] / path).read_bytes(), path
    assert not (roots["a"] / "dask" / "shard-1.txt").exists()  # worker A never needed B's shards
    assert not (flow_root / "dask").exists()

    # The summary, published by the flow's process, lists the task runs of both workers.
    markdown = wait_for(lambda: published(flow_run_id, artifact_key(pipeline)), timeout=60)
    rows = summary_rows(markdown)
    assert set(rows) == {str(e.id) for e in executions}, markdown
    assert all("| COMPLETE |" in row for row in rows.values())
    assert f"{shards + 1} COMPLETE" in markdown

    # Every object is on S3; running again pushes nothing new.
    before = _bucket(s3)
    for execution in executions:
        for md5 in _outputs(q, execution).values():
            assert any(key.endswith(f"{md5[:2]}/{md5[2:]}") for key in before), md5
    again = fan_out(return_state=True)
    assert again.is_completed(), again
    assert _bucket(s3) == before


def _bucket(s3: S3Server) -> dict[str, Any]:
    """Key -> (ETag, LastModified) of every object of the bucket."""
    contents = s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in contents}
