"""The first task run of a fresh process: what recording adds over the same plain task.

    .venv-prefect/bin/python benchmarks/bench_first_run.py [--runs 5]    # Prefect
    .venv-airflow/bin/python benchmarks/bench_first_run.py [--runs 5]    # Airflow

Airflow's LocalExecutor, Celery and Kubernetes run every task try in a new process, so
the first task run of a process is the one production pays for. Each measured run here
is its own Python process: it imports the orchestrator and the task's module (as the
worker does when it loads the DAG or flow), then runs one task and reports the wall time
of that task run. A plain task (``@task``, ``PythonOperator``) and the recorded one
(``@cmf_task``, ``CmfOperator``) run the same callable, which reads a 1 KB input file and
writes a 1 KB output file; the recorded one declares both. Plain and recorded processes
alternate; one recorded process runs first, unmeasured, so that the project already
holds its DVC repository, its metadata store and its environment description, as it
does from the second task of any pipeline on.

The figure is the difference of the medians (target: at most 150 ms).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PREFECT_CHILD = """
import os, sys, time
from pathlib import Path
from prefect import flow, task
from cmf_orchestrate import Dataset
from cmf_orchestrate.prefect import cmf_task

def work(source, target):
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[::-1])
    return len(data)

@task
def plain(source, target):
    return work(source, target)

@cmf_task(inputs=[Dataset("{source}")], outputs=[Dataset("{target}")])
def recorded(source, target):
    return work(source, target)

@flow
def one_task(kind, target):
    fn = recorded if kind == "recorded" else plain
    start = time.perf_counter()
    fn("in.bin", target)
    return time.perf_counter() - start

print("SPAN", one_task(sys.argv[1], sys.argv[2]))
"""

AIRFLOW_DAG = """
import time
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

from cmf_orchestrate import Dataset
from cmf_orchestrate.airflow import CmfOperator

ROOT = Path({root!r})
SPAN = []


def _start(context):
    SPAN.append(time.perf_counter())


def _end(context, result):
    SPAN.append(time.perf_counter())


def work(dst):
    data = (ROOT / "in.bin").read_bytes()
    (ROOT / dst).write_bytes(data[::-1])
    return len(data)


ARGS = dict(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)

with DAG("first_plain", **ARGS) as plain_dag:
    PythonOperator(
        task_id="t", python_callable=work, pre_execute=_start, post_execute=_end,
        op_kwargs={{"dst": "out/plain_{{{{ ts_nodash }}}}.bin"}},
    )

with DAG("first_recorded", **ARGS) as recorded_dag:
    CmfOperator(
        task_id="t", python_callable=work, pre_execute=_start, post_execute=_end,
        inputs=[Dataset("in.bin")], outputs=[Dataset("out/recorded_{{{{ ts_nodash }}}}.bin")],
        op_kwargs={{"dst": "out/recorded_{{{{ ts_nodash }}}}.bin"}},
    )
"""

AIRFLOW_CHILD = """
import importlib.util, sys
import pendulum
spec = importlib.util.spec_from_file_location("first_dags", sys.argv[3])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.recorded_dag if sys.argv[1] == "recorded" else module.plain_dag
dag.test(logical_date=pendulum.datetime(2026, 2, 1, tz="UTC").add(minutes=int(sys.argv[2])))
start, end = module.SPAN
print("SPAN", end - start)
"""


def _child(env: dict[str, str], cwd: Path, *args: str) -> float:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    spans = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("SPAN ")]
    if done.returncode != 0 or not spans:
        raise RuntimeError(f"child {args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return float(spans[-1])


def _base_env(root: Path) -> dict[str, str]:
    # Bytecode is written (to a cache of this run) and read, as from a pip-installed wheel:
    # compiling the sources again in every process is not what users pay.
    drop = ("CMF_", "NEO4J_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(root.parent / "pycache"),
            "CMF_PROJECT_ROOT": str(root),
            "CMF_STORE": "mlmd",
            "DVC_NO_ANALYTICS": "1",
            "GLOG_minloglevel": "2",
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
    )
    return env


def _prefect(workdir: Path, runs: int) -> dict[str, list[float]]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    root = workdir / "project"
    root.mkdir()
    (root / "in.bin").write_bytes(os.urandom(1024))
    script = workdir / "child.py"
    script.write_text(PREFECT_CHILD)
    times: dict[str, list[float]] = {"plain": [], "recorded": []}
    with prefect_test_harness(server_startup_timeout=180):
        env = _base_env(root)
        env.update(
            {
                "PREFECT_API_URL": str(PREFECT_API_URL.value()),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": "WARNING",
            }
        )
        _child(env, root, str(script), "recorded", "warm.bin")
        for i in range(runs):
            for kind in ("plain", "recorded"):
                times[kind].append(_child(env, root, str(script), kind, f"{kind}-{i}.bin"))
    return times


def _airflow(workdir: Path, runs: int) -> dict[str, list[float]]:
    home, dags, root = workdir / "airflow", workdir / "dags", workdir / "project"
    for path in (home, dags, root / "out"):
        path.mkdir(parents=True)
    (root / "in.bin").write_bytes(os.urandom(1024))
    dag_file = dags / "first_dags.py"
    dag_file.write_text(AIRFLOW_DAG.format(root=str(root)))
    script = workdir / "child.py"
    script.write_text(AIRFLOW_CHILD)
    env = _base_env(root)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_CMF_DEFAULT": json.dumps(
                {"conn_type": "cmf", "extra": {"project_root": str(root), "store": "mlmd"}}
            ),
        }
    )
    subprocess.run(
        [sys.executable, "-c", "from airflow.utils import db; db.initdb()"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    times: dict[str, list[float]] = {"plain": [], "recorded": []}
    _child(env, root, str(script), "recorded", "0", str(dag_file))
    for i in range(runs):
        for kind in ("plain", "recorded"):
            times[kind].append(_child(env, root, str(script), kind, str(i + 1), str(dag_file)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes of each kind (default 5)")
    parser.add_argument("--adapter", choices=("prefect", "airflow"), help="default: the one installed")
    args = parser.parse_args()
    adapter = args.adapter or ("airflow" if importlib.util.find_spec("airflow") else "prefect")
    workdir = Path(tempfile.mkdtemp(prefix=f"cmf-bench-first-{adapter}-"))
    try:
        times = _prefect(workdir, args.runs) if adapter == "prefect" else _airflow(workdir, args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    plain, recorded = statistics.median(times["plain"]), statistics.median(times["recorded"])
    name = {"prefect": ("@task", "@cmf_task"), "airflow": ("PythonOperator", "CmfOperator")}[adapter]
    print(f"{adapter}: first task run of a fresh process, {args.runs} processes of each kind")
    for label, kind, median in ((name[0], "plain", plain), (name[1], "recorded", recorded)):
        every = ", ".join(f"{t * 1000:.0f}" for t in times[kind])
        print(f"  {label:<15} median {median * 1000:8.1f} ms  (all: {every})")
    print(f"  added by recording: {(recorded - plain) * 1000:.1f} ms (target <= 150 ms)")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - start:.1f} s)")
