"""The example DAG (dags/get_started.py) under dag.test(), checked against what MLMD recorded.

It runs twice: with a logical date, as a scheduled run has, and without one, as a run
triggered by hand (UI, API or CLI) has in Airflow 3.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pendulum
import pytest
from airflow_testlib import LOGICAL_DATE_ISO, artifacts, asset_events, md5, only_execution, query

from cmf_orchestrate import EventType, ExecutionState

PIPELINE = "cmf_get_started"
STAGES = ("generate", "prepare", "featurize", "train", "evaluate")


@pytest.mark.parametrize("logical_date", [LOGICAL_DATE_ISO, None], ids=["scheduled", "manual"])
def test_get_started_dag_records_pipeline_stages_executions_events_and_md5s(
    cmf_project: Path, load_dag, logical_date: str | None
) -> None:
    dag_run = load_dag(PIPELINE).test(logical_date=pendulum.parse(logical_date) if logical_date else None)

    assert dag_run.state == "success"
    if logical_date is None:
        assert dag_run.logical_date is None and dag_run.run_type == "manual"
    # The example's paths hold the run's date, {{ dag_run.run_after | ds }}, which every run has.
    ds = dag_run.run_after.strftime("%Y-%m-%d")
    q = query(cmf_project)
    assert q.get_pipeline_names() == [PIPELINE]
    assert sorted(q.get_pipeline_stages(PIPELINE)) == sorted(f"{PIPELINE}/{s}" for s in STAGES)
    runs = {stage: only_execution(q, PIPELINE, stage) for stage in STAGES}
    assert all(e.state is ExecutionState.COMPLETE for e in runs.values())
    assert {e.fact("run_id") for e in runs.values()} == {dag_run.run_id}
    expected_logical = None if logical_date is None else "2026-01-02T00:00:00Z"
    assert {e.fact("logical_date") for e in runs.values()} == {expected_logical}
    assert {e.pipeline_id for e in runs.values()} == {q.get_pipeline_id(PIPELINE)}

    def files(stage: str, event: EventType) -> dict[str, str]:
        return {path: a.md5 for path, a in artifacts(q, runs[stage].id, event).items()}

    data = f"data/{ds}"
    expected = {
        "generate": ({}, ["data/raw.csv"]),
        "prepare": ({"data/raw.csv"}, [f"{data}/train.csv", f"{data}/test.csv"]),
        "featurize": (
            {f"{data}/train.csv", f"{data}/test.csv"},
            [f"{data}/features/train.csv", f"{data}/features/test.csv"],
        ),
        "train": ({f"{data}/features/train.csv"}, [f"model/{ds}/rf.pkl"]),
        "evaluate": ({f"model/{ds}/rf.pkl", f"{data}/features/test.csv"}, [f"metrics/{ds}/scores.json"]),
    }
    for stage, (inputs, outputs) in expected.items():
        # Every md5 is the one of the bytes on disk, as `dvc add` would record it.
        assert files(stage, EventType.INPUT) == {p: md5(cmf_project / p) for p in inputs}, stage
        assert files(stage, EventType.OUTPUT) == {p: md5(cmf_project / p) for p in outputs}, stage
        for path in outputs:
            assert (cmf_project / f"{path}.dvc").is_file(), f"{path}.dvc"

    # The chain is connected by artifact identity, not only by equal paths.
    for producer, consumer in itertools.pairwise(STAGES):
        produced = {a.id for a in artifacts(q, runs[producer].id, EventType.OUTPUT).values()}
        consumed = {a.id for a in artifacts(q, runs[consumer].id, EventType.INPUT).values()}
        assert produced & consumed, f"{producer} -> {consumer}"

    model = artifacts(q, runs["train"].id, EventType.OUTPUT)[f"model/{ds}/rf.pkl"]
    assert (model.kind, model.properties["model_framework"]) == ("Model", "sklearn")
    scores = json.loads((cmf_project / f"metrics/{ds}/scores.json").read_text())
    metrics = artifacts(q, runs["evaluate"].id, EventType.OUTPUT)[f"metrics/{ds}/scores.json"]
    assert metrics.kind == "Metrics"
    assert {k: metrics.custom_properties[k] for k in scores} == scores
    assert runs["train"].parameters == {
        "features": f"{data}/features/train.csv",
        "model": f"model/{ds}/rf.pkl",
    }
    assert runs["prepare"].parameters["ratio"] == 0.2

    # Airflow's asset events carry the same md5s and MLMD ids.
    events = asset_events(dag_run.run_id)
    for stage, (_, outputs) in expected.items():
        for path in outputs:
            event = events[f"cmf://{path}"]
            assert (event["md5"], event["execution_id"]) == (md5(cmf_project / path), runs[stage].id), path
