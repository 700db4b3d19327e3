"""DAGs whose tasks run on two Celery workers, each with a project root of its own.

Every task names the Celery queue of the worker that must run it: ``CELERY_TEST_QUEUES``
holds the two queue names (worker A's, worker B's), so a test run's workers never take
another run's tasks. The connections the DAGs name (``cmf_default``, ``cmf_s3``,
``cmf_elsewhere``, ``cmf_bad_remote``, ``cmf_sqlite``) are set by the test; each leaves
``project_root`` out, so every worker records into its own ``CMF_PROJECT_ROOT``.
"""

from __future__ import annotations

import hashlib
import os

import pendulum
from airflow.sdk import DAG

from cmf_orchestrate import Dataset, current_run
from cmf_orchestrate.airflow import CmfOperator

QUEUE_A, QUEUE_B = (os.environ.get("CELERY_TEST_QUEUES") or "cmf_a,cmf_b").split(",")
SHARDS = 16
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _write(relative: str, data: bytes) -> None:
    path = current_run().settings.project_root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def produce(file: str, folder: str, size: int) -> int:
    """Write a file of ``size`` bytes and a folder of three files; the same bytes on every run."""
    block = hashlib.sha256(file.encode()).digest()
    _write(file, (block * (size // len(block) + 1))[:size])
    for i in range(3):
        _write(f"{folder}/part-{i}.txt", f"part {i} of {folder}\n".encode() * (i + 1))
    return size


def consume(file: str, folder: str, out: str) -> str:
    """Read what ``produce`` wrote (on another worker) and summarise it."""
    root = current_run().settings.project_root
    digest = hashlib.md5(usedforsecurity=False)
    digest.update((root / file).read_bytes())
    for part in sorted((root / folder).iterdir()):
        digest.update(part.read_bytes())
    _write(out, f"{digest.hexdigest()}\n".encode())
    return digest.hexdigest()


def shard(index: int, out: str) -> int:
    """One shard of a fan-out."""
    _write(out, f"shard {index}\n".encode() * (index + 1))
    return index


def gather(parts: list[str], out: str) -> int:
    """Concatenate the shards, in order."""
    root = current_run().settings.project_root
    data = b"".join((root / p).read_bytes() for p in parts)
    _write(out, data)
    return len(data)


def write_one(out: str) -> int:
    """Write one small file."""
    _write(out, b"written once\n")
    return 1


def _pass_dag(dag_id: str, conn_id: str, size: int) -> DAG:
    """produce on worker A, consume on worker B, through the remote of connection ``conn_id``."""
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        file, folder = f"{dag_id}/produced.bin", f"{dag_id}/parts"
        made = CmfOperator(
            task_id="produce",
            queue=QUEUE_A,
            cmf_conn_id=conn_id,
            python_callable=produce,
            outputs=[Dataset(file), Dataset(folder)],
            op_kwargs={"file": file, "folder": folder, "size": size},
        )
        used = CmfOperator(
            task_id="consume",
            queue=QUEUE_B,
            cmf_conn_id=conn_id,
            python_callable=consume,
            inputs=[Dataset(file), Dataset(folder)],
            outputs=[Dataset(f"{dag_id}/summary.txt")],
            op_kwargs={"file": file, "folder": folder, "out": f"{dag_id}/summary.txt"},
        )
        made >> used
    return dag


pass_dag = _pass_dag("cmf_t_celery_pass", "cmf_default", 256 * 1024)
pass_s3_dag = _pass_dag("cmf_t_celery_pass_s3", "cmf_s3", 256 * 1024)

with DAG("cmf_t_celery_fanout", schedule=None, start_date=START, catchup=False, max_active_tasks=SHARDS) as fanout_dag:
    _parts = [f"fanout/shard_{i}.txt" for i in range(SHARDS)]
    _shards = CmfOperator.partial(
        task_id="shard",
        queue=QUEUE_A,
        python_callable=shard,
        outputs=[Dataset("fanout/shard_{{ ti.map_index }}.txt")],
    ).expand(op_kwargs=[{"index": i, "out": p} for i, p in enumerate(_parts)])
    _gather = CmfOperator(
        task_id="gather",
        queue=QUEUE_B,
        python_callable=gather,
        inputs=[Dataset(p) for p in _parts],
        outputs=[Dataset("fanout/all.txt")],
        op_kwargs={"parts": _parts, "out": "fanout/all.txt"},
    )
    _shards >> _gather

# The producer pushes to a remote the consumer does not use: the consumer finds the
# recorded md5 in the store, but its bytes on no remote it can reach.
with DAG("cmf_t_celery_lost", schedule=None, start_date=START, catchup=False) as lost_dag:
    CmfOperator(
        task_id="produce",
        queue=QUEUE_A,
        cmf_conn_id="cmf_elsewhere",
        python_callable=write_one,
        outputs=[Dataset("lost/only-elsewhere.txt")],
        op_kwargs={"out": "lost/only-elsewhere.txt"},
    ) >> CmfOperator(
        task_id="consume",
        queue=QUEUE_B,
        python_callable=gather,
        inputs=[Dataset("lost/only-elsewhere.txt")],
        outputs=[Dataset("lost/never.txt")],
        op_kwargs={"parts": ["lost/only-elsewhere.txt"], "out": "lost/never.txt"},
        retries=0,
    )

with DAG("cmf_t_celery_bad_remote", schedule=None, start_date=START, catchup=False) as bad_remote_dag:
    CmfOperator(
        task_id="produce",
        queue=QUEUE_A,
        cmf_conn_id="cmf_bad_remote",
        python_callable=write_one,
        outputs=[Dataset("bad_remote/out.txt")],
        op_kwargs={"out": "bad_remote/out.txt"},
        retries=0,
    )

with DAG("cmf_t_celery_sqlite", schedule=None, start_date=START, catchup=False) as sqlite_dag:
    CmfOperator(
        task_id="produce",
        queue=QUEUE_A,
        cmf_conn_id="cmf_sqlite",
        python_callable=write_one,
        outputs=[Dataset("sqlite/out.txt")],
        op_kwargs={"out": "sqlite/out.txt"},
    )
