"""CMF's "get started" pipeline as one self-contained Prefect flow.

prepare -> featurize -> train -> evaluate, on a synthetic data set written on first run.
Every task run attempt is recorded in CMF: inputs and outputs by their DVC md5, the task's
parameters, the Prefect run ids, and the metrics logged through ``current_run()``.

It needs only the installed package and its ``examples`` extra (numpy, scikit-learn)::

    pip install "cmf-orchestrate[prefect,examples]"
    python prefect_get_started.py          # in an empty folder: it becomes the project root
    cmf-orchestrate lineage metrics/v1/scores.json
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, roc_auc_score

from cmf_orchestrate import CmfSettings, Dataset, Metrics, Model, current_run
from cmf_orchestrate.prefect import cmf_flow, cmf_task

RAW = "data/raw.csv"
TRAIN = "data/{split}/train.csv"
TEST = "data/{split}/test.csv"
TRAIN_FEATURES = "data/{split}/features/train.csv"
TEST_FEATURES = "data/{split}/features/test.csv"
MODEL = "model/{split}/rf.pkl"
METRICS = "metrics/{split}/scores.json"


def _at(template: str, **values: str) -> Path:
    """A declared path under the project root the running task records into."""
    return current_run().settings.project_root / template.format(**values)


def _read(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    return header, np.array(rows, dtype=float)


def _write(path: Path, header: list[str], rows: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows.round(6).tolist()])


def write_raw(path: Path, rows: int = 1000, seed: int = 7) -> None:
    """A synthetic binary classification table: six features and a 0/1 label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    label = (x @ np.array([1.5, -2.0, 0.7, 0.0, 0.3, -0.5]) + rng.normal(scale=0.5, size=rows) > 0).astype(float)
    _write(path, [f"f{i}" for i in range(6)] + ["label"], np.column_stack([x, label]))


@cmf_task(inputs=[Dataset(RAW)], outputs=[Dataset(TRAIN), Dataset(TEST)], retries=2, retry_delay_seconds=1)
def prepare(split: str = "v1", ratio: float = 0.2, seed: int = 7) -> dict[str, int]:
    """Split the raw data into train and test sets."""
    header, rows = _read(current_run().settings.project_root / RAW)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * ratio)
    _write(_at(TRAIN, split=split), header, rows[order[n_test:]])
    _write(_at(TEST, split=split), header, rows[order[:n_test]])
    counts = {"train_rows": len(rows) - n_test, "test_rows": n_test}
    current_run().log_execution_metrics("prepare_counts", counts)
    return counts


@cmf_task(inputs=[Dataset(TRAIN), Dataset(TEST)], outputs=[Dataset(TRAIN_FEATURES), Dataset(TEST_FEATURES)])
def featurize(split: str = "v1") -> None:
    """Standardise the features with the train set's mean and deviation."""
    header, train = _read(_at(TRAIN, split=split))
    _, test = _read(_at(TEST, split=split))
    mean, std = train[:, :-1].mean(axis=0), train[:, :-1].std(axis=0) + 1e-9
    for rows, out in ((train, TRAIN_FEATURES), (test, TEST_FEATURES)):
        _write(_at(out, split=split), header, np.column_stack([(rows[:, :-1] - mean) / std, rows[:, -1]]))


@cmf_task(
    inputs=[Dataset(TRAIN_FEATURES)],
    outputs=[Model(MODEL, framework="scikit-learn", model_type="RandomForestClassifier")],
)
def train(split: str = "v1", n_estimators: int = 100, seed: int = 7) -> float:
    """Fit a random forest; log its out-of-bag score."""
    _, rows = _read(_at(TRAIN_FEATURES, split=split))
    model = RandomForestClassifier(n_estimators=n_estimators, oob_score=True, random_state=seed, n_jobs=1)
    model.fit(rows[:, :-1], rows[:, -1].astype(int))
    out = _at(MODEL, split=split)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps(model))
    current_run().log_execution_metrics("train_metrics", {"oob_score": round(float(model.oob_score_), 6)})
    return float(model.oob_score_)


@cmf_task(inputs=[Model(MODEL, framework="scikit-learn"), Dataset(TEST_FEATURES)], outputs=[Metrics(METRICS)])
def evaluate(split: str = "v1") -> dict[str, float]:
    """Score the model on the test features; the scores file is recorded as Metrics."""
    model = pickle.loads(_at(MODEL, split=split).read_bytes())
    _, rows = _read(_at(TEST_FEATURES, split=split))
    truth, proba = rows[:, -1].astype(int), model.predict_proba(rows[:, :-1])[:, 1]
    scores = {
        "accuracy": round(float(accuracy_score(truth, proba > 0.5)), 6),
        "roc_auc": round(float(roc_auc_score(truth, proba)), 6),
    }
    out = _at(METRICS, split=split)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
    run = current_run()
    for name, value in scores.items():
        run.log_metric("evaluation", {"name": name, "value": value})
    run.commit_metrics("evaluation")
    return scores


@cmf_flow(name="get-started", pipeline="get-started")
def get_started(split: str = "v1", ratio: float = 0.2, n_estimators: int = 100) -> dict[str, float]:
    """Prepare, featurize, train and evaluate; return the evaluation scores."""
    raw = CmfSettings.from_env().project_root / RAW
    if not raw.exists():  # the pipeline's input, written once
        write_raw(raw)
    prepare(split, ratio=ratio)
    featurize(split)
    train(split, n_estimators=n_estimators)
    return evaluate(split)


if __name__ == "__main__":
    scores = get_started()
    # This is the example's command line: its result goes to the terminal.
    print(f"scores: {scores}; lineage: cmf-orchestrate lineage {METRICS.format(split='v1')}")
