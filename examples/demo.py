"""`make demo`: the "get started" pipeline on embedded defaults, then its lineage.

    python -m examples.demo prefect   # in .venv-prefect: the Prefect flow
    python -m examples.demo airflow   # in .venv-airflow: the Airflow DAG through dag.test()
    python -m examples.demo lineage   # the lineage of the trained model, as a tree and lineage.html

Everything is recorded under ``demo-project/``: an SQLite MLMD file ``mlmd``, a DVC
repository with its local cache, and the generated data. No server is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "demo-project"
PREFECT_MODEL = "model/v1/rf.pkl"


def _enter_project(fresh: bool) -> None:
    if fresh and PROJECT.exists():
        shutil.rmtree(PROJECT)
    PROJECT.mkdir(exist_ok=True)
    os.chdir(PROJECT)
    os.environ["CMF_PROJECT_ROOT"] = str(PROJECT)
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    for name in ("CMF_STORE", "CMF_GRAPH", "NEO4J_URI"):
        os.environ.pop(name, None)


def run_prefect() -> None:
    """Run the Prefect flow against a temporary local Prefect server."""
    _enter_project(fresh=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server migrates its database on first use; give a cold machine time.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.get_started import get_started

    scores = get_started(split="v1")
    print(f"prefect flow 'get-started' finished: {json.dumps(scores)}")


def run_airflow() -> None:
    """Run the Airflow DAG once with dag.test() on an SQLite Airflow database."""
    _enter_project(fresh=False)
    home = Path(tempfile.mkdtemp(prefix="cmf-demo-airflow-"))
    bundles = [
        {
            "name": "cmf-examples",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO / "dags")},
        }
    ]
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            # dag.test() runs without a DAG processor, so Airflow warns about every asset it has not registered yet.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "AIRFLOW_CONN_CMF_DEFAULT": json.dumps(
                {"conn_type": "cmf", "extra": {"project_root": str(PROJECT), "store": "mlmd"}}
            ),
        }
    )
    try:
        import pendulum
        from airflow.utils import db

        db.initdb()
        sys.path.insert(0, str(REPO / "dags"))
        from get_started import get_started_dag

        run = get_started_dag.test(logical_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
        print(f"airflow DAG '{get_started_dag.dag_id}' run {run.run_id}: {run.state}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def show_lineage() -> None:
    """Summarise the store and print the model's lineage; write lineage.html."""
    _enter_project(fresh=False)
    from cmf_orchestrate import CmfQuery
    from cmf_orchestrate.cli import main as cli

    query = CmfQuery()
    print("\nrecorded in demo-project/mlmd:")
    for pipeline in query.get_pipeline_names():
        for stage in query.get_pipeline_stages(pipeline):
            executions = query.get_all_exe_in_stage(stage)
            states = ", ".join(sorted({e.state.value for e in executions}))
            print(f"  {stage:<40} {len(executions)} execution(s) [{states}]")
    model = query.get_artifact(PREFECT_MODEL)
    print(f"\nlineage of {model.path} (md5 {model.uri}):\n")
    for args in (
        ["lineage", PREFECT_MODEL, "--format", "tree"],
        ["lineage", PREFECT_MODEL, "--format", "html", "-o", str(REPO / "lineage.html")],
    ):
        status = cli(args)
        if status:
            raise SystemExit(status)
    print("open lineage.html in a browser: it is one self-contained file and needs no network")


def main() -> None:
    """Entry point: ``prefect``, ``airflow`` or ``lineage``."""
    modes = {"prefect": run_prefect, "airflow": run_airflow, "lineage": show_lineage}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        raise SystemExit(f"usage: python -m examples.demo {{{'|'.join(modes)}}}")
    modes[sys.argv[1]]()


if __name__ == "__main__":
    main()
