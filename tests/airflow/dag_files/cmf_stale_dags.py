"""DAGs of the stale-output tests: a declared output the task never writes under the project root."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from cmf_orchestrate import Dataset
from cmf_orchestrate.airflow import CmfOperator


def write_relative(dst: str) -> None:
    """Writes ``dst`` relative to the working directory: not where the project root is."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as fh:
        fh.write("written under the working directory\n")


with DAG("cmf_t_stale", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as stale_dag:
    CmfOperator(
        task_id="write_relative",
        python_callable=write_relative,
        op_kwargs={"dst": "stale/out.csv"},
        outputs=[Dataset("stale/out.csv")],
    )
