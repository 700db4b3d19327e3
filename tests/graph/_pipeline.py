"""The "get started" example pipeline, recorded through the real task-run lifecycle."""

from __future__ import annotations

import warnings
from pathlib import Path

from cmf_orchestrate.artifacts import Dataset, Metrics, Model
from cmf_orchestrate.run import RunInfo, task_run
from cmf_orchestrate.settings import CmfSettings
from examples.get_started import steps

#: A pipeline name that breaks any Cypher built by string formatting.
TRICKY = 'get "started" \\ it\'s MATCH (n) DETACH DELETE n // `x`'
STAGES = ("ingest", "prepare", "featurize", "train", "evaluate")


def _info(stage: str, run_id: str, **kwargs: object) -> RunInfo:
    return RunInfo(
        orchestrator="cmf",
        pipeline=TRICKY,
        stage=stage,
        command=f"examples.get_started.steps.{stage}",
        facts={"run_id": run_id, "attempt": 1},
        **kwargs,  # type: ignore[arg-type]
    )


def run_example(settings: CmfSettings, run_id: str = "run-1") -> list[int]:
    """Run the five steps under ``task_run``; return the execution ids in order."""
    root = settings.project_root
    ids: list[int] = []
    raw = Dataset("data/raw.csv")
    train_csv, test_csv = Dataset("data/train.csv"), Dataset("data/test.csv")
    train_f, test_f = Dataset("data/features/train.csv"), Dataset("data/features/test.csv")
    model = Model("models/model.pkl", framework="sklearn", model_type="RandomForestClassifier")
    metrics = Metrics("metrics/scores.json")

    with task_run(_info("ingest", run_id, outputs=[raw], parameters={"rows": 200}), settings) as run:
        steps.generate_raw(root / raw.path, rows=200)
        ids.append(run.execution_id)
    with task_run(
        _info("prepare", run_id, inputs=[raw], outputs=[train_csv, test_csv], parameters={"note": 'q"uo\\te'}),
        settings,
    ) as run:
        steps.prepare(root / raw.path, root / train_csv.path, root / test_csv.path)
        ids.append(run.execution_id)
    with task_run(_info("featurize", run_id, inputs=[train_csv, test_csv], outputs=[train_f, test_f]), settings) as run:
        steps.featurize(root / train_csv.path, root / test_csv.path, root / train_f.path, root / test_f.path)
        ids.append(run.execution_id)
    train_info = _info("train", run_id, inputs=[train_f], outputs=[model], parameters={"n_estimators": 5})
    with task_run(train_info, settings) as run:
        with warnings.catch_warnings():
            # five trees leave some rows without an out-of-bag score; fine for lineage
            warnings.simplefilter("ignore", UserWarning)
            steps.train(root / train_f.path, root / model.path, n_estimators=5)
        ids.append(run.execution_id)
    with task_run(_info("evaluate", run_id, inputs=[model, test_f], outputs=[metrics]), settings) as run:
        scores = steps.evaluate(root / model.path, root / test_f.path, root / metrics.path)
        run.log_execution_metrics("scores", scores)
        for epoch in range(3):
            run.log_metric("loss", {"epoch": epoch, "loss": 1.0 / (epoch + 1)})
        run.commit_metrics("loss")
        data_slice = run.create_dataslice("hard cases")
        data_slice.add_data(Path(root / test_f.path))
        data_slice.commit()
        ids.append(run.execution_id)
    return ids
