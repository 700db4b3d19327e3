"""Added wall time of CmfOperator over PythonOperator, per task run, in one dag.test() process.

Both operators run the same callable: it reads one 1 KB file and writes another 1 KB file.
CmfOperator declares them as input and output, so each of its task runs opens an MLMD
execution (SQLite), hashes and records the input, hashes the output, adds it to the DVC
cache with a ``.dvc`` file, marks the execution COMPLETE and emits an Airflow asset event.

Two DAGs of ``--tasks`` independent tasks each (one per operator) are run with ``dag.test()``,
alternately, ``--rounds`` times after a warm-up round. Two spans are measured per task run:

- ``execute``: from the operator's ``pre_execute`` to its ``post_execute`` hook, i.e.
  ``execute()`` itself, where all of the CMF recording happens;
- ``task run``: the task instance's start to end as Airflow records it (adds the
  asset-event registration CmfOperator causes on the Airflow side). A third DAG runs
  PythonOperator with the same inlets and outlets, to separate Airflow's asset
  bookkeeping from CMF's recording.

Run::

    .venv-airflow/bin/python benchmarks/bench_airflow.py [--tasks 10] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAG_FILE = """
from __future__ import annotations

import time
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from cmf_orchestrate import Dataset
from cmf_orchestrate.airflow import CmfOperator, cmf_asset

ROOT = Path({root!r})
TASKS = {tasks}
SPANS: dict[tuple[str, str, str], list[float]] = {{}}


def _start(context):
    ti = context["ti"]
    SPANS[(ti.dag_id, ti.task_id, ti.run_id)] = [time.perf_counter()]


def _end(context, result):
    ti = context["ti"]
    SPANS[(ti.dag_id, ti.task_id, ti.run_id)].append(time.perf_counter())


def work(src: str, dst: str, salt: str) -> int:
    data = (ROOT / src).read_bytes()
    out = ROOT / dst
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes((salt.encode() + data)[: len(data)])
    return len(data)


ARGS = dict(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)

with DAG("bench_python", **ARGS) as python_dag:
    for i in range(TASKS):
        PythonOperator(
            task_id=f"t{{i}}", python_callable=work, pre_execute=_start, post_execute=_end,
            op_kwargs={{"src": "in.bin", "dst": f"out/python_{{i}}.bin", "salt": "{{{{ ds }}}}"}},
        )

with DAG("bench_python_assets", **ARGS) as python_assets_dag:
    for i in range(TASKS):
        PythonOperator(
            task_id=f"t{{i}}", python_callable=work, pre_execute=_start, post_execute=_end,
            inlets=[cmf_asset("in.bin")], outlets=[cmf_asset(f"out/assets_{{i}}.bin")],
            op_kwargs={{"src": "in.bin", "dst": f"out/assets_{{i}}.bin", "salt": "{{{{ ds }}}}"}},
        )

with DAG("bench_cmf", **ARGS) as cmf_dag:
    for i in range(TASKS):
        CmfOperator(
            task_id=f"t{{i}}", python_callable=work, pre_execute=_start, post_execute=_end,
            inputs=[Dataset("in.bin")], outputs=[Dataset(f"out/cmf_{{i}}.bin")],
            op_kwargs={{"src": "in.bin", "dst": f"out/cmf_{{i}}.bin", "salt": "{{{{ ds }}}}"}},
        )
"""


def _setup(workdir: Path, tasks: int) -> Any:
    home, dags, root = workdir / "airflow", workdir / "dags", workdir / "project"
    for path in (home, dags, root):
        path.mkdir()
    (root / "in.bin").write_bytes(os.urandom(1024))
    (dags / "bench_dags.py").write_text(DAG_FILE.format(root=str(root), tasks=tasks))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_CMF_DEFAULT": json.dumps(
                {"conn_type": "cmf", "extra": {"project_root": str(root), "store": "mlmd"}}
            ),
            "DVC_NO_ANALYTICS": "1",
            "GLOG_minloglevel": "2",
        }
    )
    from airflow.utils import db

    db.initdb()
    spec = importlib.util.spec_from_file_location("bench_dags", dags / "bench_dags.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dags"] = module
    spec.loader.exec_module(module)
    return module


def _task_run_ms(dag_run: Any) -> list[float]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        assert all(ti.state == "success" for ti in rows), [(ti.task_id, ti.state) for ti in rows]
        return [(ti.end_date - ti.start_date).total_seconds() * 1000 for ti in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=10, help="tasks per DAG (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds after warm-up (default 5)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cmf-bench-airflow-"))
    try:
        module = _setup(workdir, args.tasks)
        import pendulum

        dags = (module.python_dag, module.python_assets_dag, module.cmf_dag)
        execute: dict[str, list[float]] = {dag.dag_id: [] for dag in dags}
        task_run: dict[str, list[float]] = {dag.dag_id: [] for dag in dags}
        day = pendulum.datetime(2026, 2, 1, tz="UTC")
        for round_no in range(args.rounds + 1):
            for dag in dags:
                module.SPANS.clear()
                dag_run = dag.test(logical_date=day.add(days=round_no))
                if round_no == 0:
                    continue  # warm-up: imports, DVC repository and MLMD schema creation
                spans = [(end - start) * 1000 for start, end in module.SPANS.values()]
                assert len(spans) == args.tasks, spans
                execute[dag.dag_id].extend(spans)
                task_run[dag.dag_id].extend(_task_run_ms(dag_run))

        runs = args.rounds * args.tasks
        print("CmfOperator vs PythonOperator: same callable, one 1 KB input and one 1 KB output,")
        print(f"{runs} task runs each, one dag.test() process, after a warm-up round")
        print(f"{'span':<10} {'PythonOperator':>16} {'CmfOperator':>13} {'added':>10} {'ratio':>7}")
        for name, data in (("execute", execute), ("task run", task_run)):
            base = statistics.median(data["bench_python"])
            cmf = statistics.median(data["bench_cmf"])
            print(f"{name:<10} {base:>13.2f} ms {cmf:>10.2f} ms {cmf - base:>7.2f} ms {cmf / base:>6.2f}x")
        # The part of the task-run difference that is Airflow's own asset bookkeeping (registering the
        # outlet events, inlets), paid by any operator declaring the same assets.
        assets = statistics.median(task_run["bench_python_assets"])
        cmf = statistics.median(task_run["bench_cmf"])
        print(
            f"task run, PythonOperator with the same inlets/outlets: {assets:.2f} ms; "
            f"CmfOperator adds {cmf - assets:.2f} ms over it ({cmf / assets:.2f}x)"
        )
        p90 = statistics.quantiles(execute["bench_cmf"], n=10)[-1]
        print(f"CmfOperator execute p90: {p90:.2f} ms")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - start:.1f} s)")
