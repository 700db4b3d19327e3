"""Step logic of the "get started" pipeline, shared by every orchestrator example.

Data is generated locally (no download): a synthetic binary classification table.
Each step reads and writes plain files under a project root; recording them is the
job of the orchestrator integration around the step, not of the step itself.
"""

from __future__ import annotations

import csv
import itertools
import json
import pickle
from pathlib import Path
from typing import Any

RAW = "data/raw.csv"
FEATURES = ("f0", "f1", "f2", "f3", "f4", "f5")


def generate_raw(path: str | Path = RAW, rows: int = 1000, seed: int = 7) -> Path:
    """Write a synthetic classification data set as CSV (features and a 0/1 label)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    weights = np.array([1.5, -2.0, 0.7, 0.0, 0.3, -0.5])
    label = (x @ weights + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*FEATURES, "label"])
        for row, y in zip(x.round(6).tolist(), label.tolist(), strict=True):
            writer.writerow([*row, y])
    return out


def _read(path: str | Path) -> tuple[list[str], list[list[float]]]:
    with Path(path).open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [[float(v) for v in row] for row in reader]


def _write(path: str | Path, header: list[str], rows: list[list[float]]) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def prepare(raw: str | Path, train: str | Path, test: str | Path, ratio: float = 0.2, seed: int = 7) -> dict[str, int]:
    """Split the raw table into train and test sets; return the row counts."""
    import numpy as np

    header, rows = _read(raw)
    order = np.random.default_rng(seed).permutation(len(rows))
    n_test = int(len(rows) * ratio)
    test_rows = [rows[i] for i in order[:n_test]]
    train_rows = [rows[i] for i in order[n_test:]]
    _write(train, header, train_rows)
    _write(test, header, test_rows)
    return {"train_rows": len(train_rows), "test_rows": len(test_rows)}


def featurize(train: str | Path, test: str | Path, train_out: str | Path, test_out: str | Path) -> dict[str, int]:
    """Standardise features with the train set's mean and deviation, add pairwise products."""
    import numpy as np

    header, train_rows = _read(train)
    _, test_rows = _read(test)
    tr = np.array(train_rows)
    te = np.array(test_rows)
    mean = tr[:, :-1].mean(axis=0)
    std = tr[:, :-1].std(axis=0) + 1e-9

    def transform(a: Any) -> Any:
        z = (a[:, :-1] - mean) / std
        products = z[:, :-1] * z[:, 1:]
        return np.hstack([z, products, a[:, -1:]])

    names = [*header[:-1], *(f"{a}x{b}" for a, b in itertools.pairwise(header[:-1])), "label"]
    _write(train_out, names, transform(tr).round(6).tolist())
    _write(test_out, names, transform(te).round(6).tolist())
    return {"features": len(names) - 1}


def train(features: str | Path, model: str | Path, n_estimators: int = 100, seed: int = 7) -> dict[str, float]:
    """Fit a random forest; pickle it; return its out-of-bag score."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    _, rows = _read(features)
    data = np.array(rows)
    clf = RandomForestClassifier(n_estimators=n_estimators, oob_score=True, random_state=seed, n_jobs=1)
    clf.fit(data[:, :-1], data[:, -1].astype(int))
    out = Path(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pickle.dumps(clf))
    return {"oob_score": round(float(clf.oob_score_), 6)}


def evaluate(model: str | Path, features: str | Path, metrics: str | Path) -> dict[str, float]:
    """Score the model on the test features; write and return accuracy and ROC AUC."""
    import numpy as np
    from sklearn.metrics import accuracy_score, roc_auc_score

    clf = pickle.loads(Path(model).read_bytes())
    _, rows = _read(features)
    data = np.array(rows)
    y = data[:, -1].astype(int)
    proba = clf.predict_proba(data[:, :-1])[:, 1]
    scores = {
        "accuracy": round(float(accuracy_score(y, proba > 0.5)), 6),
        "roc_auc": round(float(roc_auc_score(y, proba)), 6),
    }
    out = Path(metrics)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")
    return scores
