"""The CMF "get started" pipeline as an Airflow DAG: generate -> prepare -> featurize -> train -> evaluate.

The step logic is shared with the Prefect flow (:mod:`examples.get_started.steps`); this
file only wires it into Airflow. Every try of every task is recorded in CMF: the declared
inputs and outputs (DVC md5s), the arguments, the DAG run facts. Paths are relative to
the CMF project root (connection ``cmf_default``, else ``CMF_PROJECT_ROOT`` or the
current directory); the ones holding :data:`RUN_DATE` are rendered per DAG run.

The run's date is ``{{ dag_run.run_after | ds }}``, not ``{{ ds }}``: in Airflow 3 a run
triggered by hand (the UI's Trigger button, the REST API, ``airflow dags trigger``) has
no logical date, so ``ds`` is undefined there, while every run has ``run_after`` (for a
scheduled run, the end of its data interval).

Configure, then run once (or trigger it from the UI)::

    export AIRFLOW_CONN_CMF_DEFAULT='{"conn_type": "cmf", "extra": {"project_root": "/srv/ml", "store": "mlmd"}}'
    airflow dags test cmf_get_started
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task

from cmf_orchestrate import Dataset, Metrics, Model, current_run
from cmf_orchestrate.airflow import CmfOperator
from examples.get_started import steps

#: The date of the DAG run, defined for scheduled and manually triggered runs alike.
RUN_DATE = "{{ dag_run.run_after | ds }}"
RAW = steps.RAW
TRAIN = f"data/{RUN_DATE}/train.csv"
TEST = f"data/{RUN_DATE}/test.csv"
FEATURES_TRAIN = f"data/{RUN_DATE}/features/train.csv"
FEATURES_TEST = f"data/{RUN_DATE}/features/test.csv"
MODEL = f"model/{RUN_DATE}/rf.pkl"
METRICS = f"metrics/{RUN_DATE}/scores.json"


def project_path(relative: str) -> Path:
    """``relative`` under the project root of the run being recorded."""
    return current_run().settings.project_root / relative


def generate(raw: str, rows: int = 1000) -> str:
    """Write the synthetic raw data set."""
    return str(steps.generate_raw(project_path(raw), rows=rows))


def prepare(raw: str, train: str, test: str, ratio: float = 0.2) -> dict[str, int]:
    """Split the raw table into train and test sets."""
    return steps.prepare(project_path(raw), project_path(train), project_path(test), ratio=ratio)


def featurize(train: str, test: str, train_out: str, test_out: str) -> dict[str, int]:
    """Standardise and expand the features."""
    return steps.featurize(project_path(train), project_path(test), project_path(train_out), project_path(test_out))


def evaluate(model: str, features: str, metrics: str) -> dict[str, float]:
    """Score the model on the test features."""
    return steps.evaluate(project_path(model), project_path(features), project_path(metrics))


@dag(
    dag_id="cmf_get_started",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cmf", "example"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=10)},
)
def get_started() -> None:
    """CMF's example pipeline, recorded task by task."""
    generate_task = CmfOperator(
        task_id="generate",
        python_callable=generate,
        outputs=[Dataset(RAW)],
        op_kwargs={"raw": RAW, "rows": 1000},
    )
    prepare_task = CmfOperator(
        task_id="prepare",
        python_callable=prepare,
        inputs=[Dataset(RAW)],
        outputs=[Dataset(TRAIN), Dataset(TEST)],
        op_kwargs={"raw": RAW, "train": TRAIN, "test": TEST, "ratio": 0.2},
    )
    featurize_task = CmfOperator(
        task_id="featurize",
        python_callable=featurize,
        inputs=[Dataset(TRAIN), Dataset(TEST)],
        outputs=[Dataset(FEATURES_TRAIN), Dataset(FEATURES_TEST)],
        op_kwargs={"train": TRAIN, "test": TEST, "train_out": FEATURES_TRAIN, "test_out": FEATURES_TEST},
    )

    @task.cmf(inputs=[Dataset(FEATURES_TRAIN)], outputs=[Model(MODEL, framework="sklearn", model_type="RandomForest")])
    def train(features: str, model: str, n_estimators: int = 50) -> dict[str, Any]:
        """Fit the random forest."""
        return steps.train(project_path(features), project_path(model), n_estimators=n_estimators)

    evaluate_task = CmfOperator(
        task_id="evaluate",
        python_callable=evaluate,
        inputs=[Model(MODEL), Dataset(FEATURES_TEST)],
        outputs=[Metrics(METRICS)],
        op_kwargs={"model": MODEL, "features": FEATURES_TEST, "metrics": METRICS},
    )

    train_task = train(features=FEATURES_TRAIN, model=MODEL)
    generate_task >> prepare_task >> featurize_task >> train_task >> evaluate_task


get_started_dag = get_started()
