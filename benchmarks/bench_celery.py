"""Task runs per minute on Airflow's CeleryExecutor, with CMF recording on and off.

    .venv-airflow/bin/python benchmarks/bench_celery.py [--tasks 32] [--rounds 2] [--concurrency 4]

The deployment of the Celery tests (``tests/airflow/celery_deployment.py``: Redis broker,
PostgreSQL for Airflow and the Celery results, api-server, scheduler, dag-processor and two
Celery workers with project roots of their own) runs three DAGs of ``--tasks`` independent
tasks, spread over both workers' queues. Every task writes a 1 KB file:

- ``off``: ``PythonOperator``, nothing recorded;
- ``on``: ``CmfOperator`` declaring the file as its output, MLMD on PostgreSQL;
- ``on + remote``: the same, with a local-folder DVC remote, so each task run also pushes.

The DAGs run one at a time, alternately, ``--rounds`` times after a warm-up round. A run's
rate is its number of tasks over the span from its first task's start to its last task's
end, as Airflow records them. Printed: median rates and their ratios to ``off``.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / d) for d in ("airflow", "")]

from celery_deployment import PG_HOST, PG_PORT, PG_USER, celery_deployment  # noqa: E402 - found through sys.path above

DAG_FILE = """
from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from cmf_orchestrate import Dataset
from cmf_orchestrate.airflow import CmfOperator

QUEUES = os.environ["CELERY_TEST_QUEUES"].split(",")
TASKS = {tasks}


def write(out: str) -> int:
    path = Path(os.environ["CMF_PROJECT_ROOT"]) / out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(1024))
    return 1024


def bench_dag(dag_id: str, recorded: bool, conn_id: str) -> DAG:
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), max_active_tasks=TASKS) as dag:
        for i in range(TASKS):
            out = dag_id + "/{{{{ run_id }}}}/" + str(i) + ".bin"
            common = dict(task_id=f"t{{i}}", python_callable=write, op_kwargs={{"out": out}}, queue=QUEUES[i % 2])
            if recorded:
                CmfOperator(outputs=[Dataset(out)], cmf_conn_id=conn_id, **common)
            else:
                PythonOperator(**common)
    return dag


off = bench_dag("cmf_bench_off", False, "")
on = bench_dag("cmf_bench_on", True, "cmf_default")
on_remote = bench_dag("cmf_bench_on_remote", True, "cmf_remote")
"""

LABELS = {"cmf_bench_off": "off", "cmf_bench_on": "on", "cmf_bench_on_remote": "on + remote"}


def _admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", host=PG_HOST, port=PG_PORT, user=PG_USER, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cmf-bench-celery-"))
    dags = base / "dags"
    dags.mkdir()
    (dags / "cmf_bench_celery_dags.py").write_text(DAG_FILE.format(tasks=args.tasks))
    mlmd_db = f"cmf_bench_mlmd_{uuid.uuid4().hex[:10]}"
    mlmd = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{mlmd_db}"
    connections = {
        "cmf_default": {"store": mlmd},
        "cmf_remote": {"store": mlmd, "remote": str(base / "remote")},
    }
    _admin(f'CREATE DATABASE "{mlmd_db}"')
    rates: dict[str, list[float]] = {dag_id: [] for dag_id in LABELS}
    try:
        with celery_deployment(
            base / "deployment",
            dag_ids=list(LABELS),
            connections=connections,
            bundles=[("cmf-bench", dags)],
            concurrency=args.concurrency,
        ) as deployment:
            for round_ in range(args.rounds + 1):
                for dag_id in LABELS:
                    run_id = deployment.trigger(dag_id)
                    state = deployment.finish([run_id], 900)[run_id]
                    if state != "success":
                        raise SystemExit(f"{dag_id} ended {state}\n{deployment.log_tails()}")
                    [(first, last, done)] = deployment.rows(
                        "SELECT min(start_date), max(end_date), count(*) FROM task_instance "
                        "WHERE run_id = %s AND state = 'success'",
                        run_id,
                    )
                    if round_:  # the first round warms the workers up
                        rates[dag_id].append(done / (last - first).total_seconds() * 60)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{mlmd_db}" WITH (FORCE)')
        shutil.rmtree(base, ignore_errors=True)

    off = statistics.median(rates["cmf_bench_off"])
    print(
        f"CeleryExecutor, 2 workers x {args.concurrency} processes, {args.tasks} tasks per DAG run, "
        f"median of {args.rounds} rounds"
    )
    for dag_id, label in LABELS.items():
        rate = statistics.median(rates[dag_id])
        print(f"{label:<12} {rate:7.1f} task runs/min   ratio to off {rate / off:5.2f}x")


if __name__ == "__main__":
    main()
