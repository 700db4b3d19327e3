"""CMF's "get started" pipeline as one self-contained Airflow DAG.

generate -> prepare -> featurize -> train -> evaluate. Every try of every task is recorded
in CMF: the declared inputs and outputs (DVC md5s), the arguments and the DAG run facts.
Paths are relative to the CMF project root (connection ``cmf_default``, else
``CMF_PROJECT_ROOT``, else the task's working directory); the ones holding ``RUN_DATE``
are rendered per DAG run, scheduled or triggered by hand.

It needs only the installed package and its ``examples`` extra (numpy, scikit-learn).
Put it in the DAGs folder; with Airflow's database initialised (``airflow db migrate``)::

    pip install "cmf-orchestrate[airflow,examples]"
    python airflow_get_started.py           # one run in this process (dag.test())
    cmf-orchestrate lineage metrics/<date>/scores.json
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pendulum
from airflow.sdk import dag, task
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, roc_auc_score

from cmf_orchestrate import Dataset, Metrics, Model, current_run
from cmf_orchestrate.airflow import CmfOperator

#: The date of the DAG run: ``run_after`` exists for every run, ``ds`` only for scheduled ones.
RUN_DATE = "{{ dag_run.run_after | ds }}"
RAW = "data/raw.csv"
TRAIN = f"data/{RUN_DATE}/train.csv"
TEST = f"data/{RUN_DATE}/test.csv"
TRAIN_FEATURES = f"data/{RUN_DATE}/features/train.csv"
TEST_FEATURES = f"data/{RUN_DATE}/features/test.csv"
MODEL = f"model/{RUN_DATE}/rf.pkl"
METRICS = f"metrics/{RUN_DATE}/scores.json"


def _at(relative: str) -> Path:
    """``relative`` (already rendered) under the project root of the run being recorded."""
    return current_run().settings.project_root / relative


def _read(relative: str) -> tuple[list[str], np.ndarray]:
    with _at(relative).open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    return header, np.array(rows, dtype=float)


def _write(relative: str, header: list[str], rows: np.ndarray) -> None:
    path = _at(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows.round(6).tolist()])


def generate(raw: str, rows: int = 1000, seed: int = 7) -> None:
    """A synthetic binary classification table: six features and a 0/1 label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    label = (x @ np.array([1.5, -2.0, 0.7, 0.0, 0.3, -0.5]) + rng.normal(scale=0.5, size=rows) > 0).astype(float)
    _write(raw, [f"f{i}" for i in range(6)] + ["label"], np.column_stack([x, label]))


def prepare(raw: str, train: str, test: str, ratio: float = 0.2, seed: int = 7) -> dict[str, int]:
    """Split the raw table into train and test sets."""
    header, rows = _read(raw)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * ratio)
    _write(train, header, rows[order[n_test:]])
    _write(test, header, rows[order[:n_test]])
    return {"train_rows": len(rows) - n_test, "test_rows": n_test}


def featurize(train: str, test: str, train_out: str, test_out: str) -> None:
    """Standardise the features with the train set's mean and deviation."""
    header, train_rows = _read(train)
    _, test_rows = _read(test)
    mean, std = train_rows[:, :-1].mean(axis=0), train_rows[:, :-1].std(axis=0) + 1e-9
    for rows, out in ((train_rows, train_out), (test_rows, test_out)):
        _write(out, header, np.column_stack([(rows[:, :-1] - mean) / std, rows[:, -1]]))


def evaluate(model: str, features: str, metrics: str) -> dict[str, float]:
    """Score the model on the test features; the scores file is recorded as Metrics."""
    fitted = pickle.loads(_at(model).read_bytes())
    _, rows = _read(features)
    truth, proba = rows[:, -1].astype(int), fitted.predict_proba(rows[:, :-1])[:, 1]
    scores = {
        "accuracy": round(float(accuracy_score(truth, proba > 0.5)), 6),
        "roc_auc": round(float(roc_auc_score(truth, proba)), 6),
    }
    out = _at(metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
    return scores


@dag(
    dag_id="cmf_get_started_example",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cmf", "example"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=10)},
)
def get_started() -> None:
    """CMF's example pipeline, recorded task by task."""
    generate_task = CmfOperator(
        task_id="generate", python_callable=generate, outputs=[Dataset(RAW)], op_kwargs={"raw": RAW}
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
        outputs=[Dataset(TRAIN_FEATURES), Dataset(TEST_FEATURES)],
        op_kwargs={"train": TRAIN, "test": TEST, "train_out": TRAIN_FEATURES, "test_out": TEST_FEATURES},
    )

    @task.cmf(inputs=[Dataset(TRAIN_FEATURES)], outputs=[Model(MODEL, framework="scikit-learn")])
    def train(features: str, model: str, n_estimators: int = 100) -> dict[str, Any]:
        """Fit a random forest; log its out-of-bag score."""
        _, rows = _read(features)
        fitted = RandomForestClassifier(n_estimators=n_estimators, oob_score=True, random_state=7, n_jobs=1)
        fitted.fit(rows[:, :-1], rows[:, -1].astype(int))
        _at(model).parent.mkdir(parents=True, exist_ok=True)
        _at(model).write_bytes(pickle.dumps(fitted))
        scores = {"oob_score": round(float(fitted.oob_score_), 6)}
        current_run().log_execution_metrics("train_metrics", scores)
        return scores

    evaluate_task = CmfOperator(
        task_id="evaluate",
        python_callable=evaluate,
        inputs=[Model(MODEL), Dataset(TEST_FEATURES)],
        outputs=[Metrics(METRICS)],
        op_kwargs={"model": MODEL, "features": TEST_FEATURES, "metrics": METRICS},
    )

    generate_task >> prepare_task >> featurize_task >> train(features=TRAIN_FEATURES, model=MODEL) >> evaluate_task


get_started_dag = get_started()

if __name__ == "__main__":
    run = get_started_dag.test()
    # This is the example's command line: its result goes to the terminal.
    print(f"DAG run {run.run_id}: {run.state}; lineage: cmf-orchestrate artifacts --type Metrics")
