"""The CMF "get started" pipeline as a Prefect flow: prepare -> featurize -> train -> evaluate.

Every task run attempt is recorded in CMF: inputs and outputs by their DVC md5, the
task's parameters, the Prefect run ids, and the metrics logged through
:func:`cmf_orchestrate.current_run`. The step logic is shared with the Airflow example
(:mod:`examples.get_started.steps`); the raw data is generated locally.

Run it from the project root (or set ``CMF_PROJECT_ROOT``)::

    python -m flows.get_started
    cmf-orchestrate lineage model/rf.pkl
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from cmf_orchestrate import CmfSettings, Dataset, Metrics, Model, current_run
from cmf_orchestrate.prefect import cmf_task
from examples.get_started import steps

TRAIN = "data/{split}/train.csv"
TEST = "data/{split}/test.csv"
TRAIN_FEATURES = "data/{split}/features/train.csv"
TEST_FEATURES = "data/{split}/features/test.csv"
MODEL = "model/{split}/rf.pkl"
METRICS = "metrics/{split}/scores.json"


def _at(template: str, **values: Any) -> Path:
    """A declared path of the running task, under the project root it records into."""
    return current_run().settings.project_root / template.format(**values)


@task
def generate_data(rows: int = 1000, seed: int = 7) -> str:
    """Write the synthetic raw data set once (an input of the pipeline, not a stage of it)."""
    raw = CmfSettings.from_env().project_root / steps.RAW
    if not raw.exists():
        steps.generate_raw(raw, rows=rows, seed=seed)
    return steps.RAW


@cmf_task(inputs=[Dataset(steps.RAW)], outputs=[Dataset(TRAIN), Dataset(TEST)], retries=2, retry_delay_seconds=1)
def prepare(split: str = "v1", ratio: float = 0.2, seed: int = 7) -> dict[str, int]:
    """Split the raw data into train and test sets."""
    raw = current_run().settings.project_root / steps.RAW
    counts = steps.prepare(raw, _at(TRAIN, split=split), _at(TEST, split=split), ratio=ratio, seed=seed)
    current_run().log_execution_metrics("prepare_counts", counts)
    return counts


@cmf_task(
    inputs=[Dataset(TRAIN), Dataset(TEST)],
    outputs=[Dataset(TRAIN_FEATURES), Dataset(TEST_FEATURES)],
)
def featurize(split: str = "v1") -> dict[str, int]:
    """Standardise the features and add pairwise products."""
    return steps.featurize(
        _at(TRAIN, split=split),
        _at(TEST, split=split),
        _at(TRAIN_FEATURES, split=split),
        _at(TEST_FEATURES, split=split),
    )


@cmf_task(
    inputs=[Dataset(TRAIN_FEATURES)],
    outputs=[Model(MODEL, framework="scikit-learn", model_type="RandomForestClassifier")],
)
def train(split: str = "v1", n_estimators: int = 100, seed: int = 7) -> dict[str, float]:
    """Fit a random forest and log its out-of-bag score."""
    scores = steps.train(
        _at(TRAIN_FEATURES, split=split), _at(MODEL, split=split), n_estimators=n_estimators, seed=seed
    )
    current_run().log_execution_metrics("train_metrics", scores)
    return scores


@cmf_task(
    inputs=[Model(MODEL, framework="scikit-learn"), Dataset(TEST_FEATURES)],
    outputs=[Metrics(METRICS)],
)
def evaluate(split: str = "v1") -> dict[str, float]:
    """Score the model on the test features; the scores file is recorded as Metrics."""
    scores = steps.evaluate(_at(MODEL, split=split), _at(TEST_FEATURES, split=split), _at(METRICS, split=split))
    run = current_run()
    for name, value in scores.items():
        run.log_metric("evaluation", {"name": name, "value": value})
    run.commit_metrics("evaluation")
    return scores


@flow(name="get-started")
def get_started(split: str = "v1", ratio: float = 0.2, n_estimators: int = 100) -> dict[str, float]:
    """Prepare, featurize, train and evaluate; return the evaluation scores."""
    generate_data()
    prepare(split, ratio=ratio)
    featurize(split)
    train(split, n_estimators=n_estimators)
    return evaluate(split)


def main() -> None:
    """Run the flow on the embedded defaults (SQLite ``mlmd`` and DVC in the working directory)."""
    scores = get_started()
    # This is the example's command line: its result goes to the terminal.
    print(f"get-started scores: {scores}; lineage: cmf-orchestrate lineage {MODEL.format(split='v1')}")


if __name__ == "__main__":
    main()
