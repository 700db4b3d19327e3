"""The example flow end to end: lineage in MLMD, outputs in DVC, summary and assets in Prefect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect_testlib import Project, wait_for

from cmf_orchestrate import ExecutionState
from cmf_orchestrate.prefect._assets import asset_key
from flows.get_started import get_started

STAGES = ("prepare", "featurize", "train", "evaluate")


def test_get_started_flow_end_to_end(project: Project) -> None:
    state = get_started(split="v1", n_estimators=25, return_state=True)

    assert state.is_completed(), state
    scores = state.result()
    assert set(scores) == {"accuracy", "roc_auc"} and scores["accuracy"] > 0.6
    flow_run_id = str(state.state_details.flow_run_id)

    query = project.query()
    assert "get-started" in query.get_pipeline_names()
    assert sorted(query.get_pipeline_stages("get-started")) == sorted(f"get-started/{s}" for s in STAGES)
    runs = query.get_executions_by_fact("flow_run_id", flow_run_id)
    assert [r.stage.name.split("/")[-1] for r in runs] == list(STAGES)
    assert {r.execution.state for r in runs} == {ExecutionState.COMPLETE}
    by_stage = {r.stage.name.split("/")[-1]: r for r in runs}

    # The model is identified by the md5 DVC recorded for it, and is in the DVC cache.
    [model] = [a for a in by_stage["train"].outputs if a.kind == "Model"]
    assert model.path == "model/v1/rf.pkl"
    dvc_file = yaml.safe_load((project.root / "model/v1/rf.pkl.dvc").read_text())
    assert dvc_file["outs"][0]["md5"] == model.md5
    assert (project.root / ".dvc/cache/files/md5" / model.md5[:2] / model.md5[2:]).exists()
    assert model.properties["model_framework"] == "scikit-learn"

    # Lineage: the model descends from the raw data through prepare and featurize.
    upstream = {a.path for a in query.lineage("model/v1/rf.pkl", "up").artifacts}
    assert {"data/raw.csv", "data/v1/train.csv", "data/v1/features/train.csv"} <= upstream

    # Metrics logged through current_run() and the declared metrics file.
    [train_metrics] = [a for a in by_stage["train"].outputs if a.kind == "Metrics"]
    assert train_metrics.custom_properties["oob_score"] > 0
    evaluated = {a.kind: a for a in by_stage["evaluate"].outputs}
    assert evaluated["Metrics"].custom_properties["accuracy"] == scores["accuracy"]
    assert "Step_Metrics" in evaluated
    assert by_stage["train"].execution.parameters == {"split": "v1", "n_estimators": 25, "seed": 7}

    # The flow run's markdown summary lists every execution with its outputs' md5.
    def summary() -> str | None:
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )
        return next((a.data for a in found if a.key == "cmf-get-started"), None)

    markdown = wait_for(summary)
    Path(os.environ.get("CMF_SUMMARY_OUT", os.devnull)).write_text(markdown)
    rows = {
        line.split("|")[1].strip(): line
        for line in markdown.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    for record in runs:
        assert "| COMPLETE |" in rows[str(record.execution.id)]
    # Short paths and md5s; the environment file once, above the table, not in every row.
    train_row = rows[str(by_stage["train"].execution.id)]
    assert f"`model/v1/rf.pkl` {model.md5[:8]}" in train_row and model.md5 not in markdown
    assert "cmf_artifacts/python_env_" not in markdown and "Python environment `" in markdown
    # Metric values (a list under the table, which the UI wraps), the store and the lineage command.
    listed = {line.split(" (")[0][2:]: line for line in markdown.splitlines() if line.startswith("- ")}
    assert f"oob_score={train_metrics.custom_properties['oob_score']:.4g}" in listed["train"]
    assert f"accuracy={scores['accuracy']:.4g}" in listed["evaluate"]
    assert f"Metadata store `sqlite:///{project.root / 'mlmd'}`" in markdown
    assert f"cmf-orchestrate lineage model/v1/rf.pkl --store {project.root / 'mlmd'}" in markdown

    # Outputs are announced as asset materializations, with md5 and MLMD ids as metadata.
    key = asset_key("model/v1/rf.pkl", project.root)

    def materialization() -> dict[str, Any] | None:
        with get_client(sync_client=True) as client:
            page = client.read_events(
                EventFilter(
                    event=EventNameFilter(name=["prefect.asset.materialization.succeeded"]),
                    resource=EventResourceFilter(id=[key]),
                ),
                limit=10,
            )
        return page.events[0].payload if page.events else None

    payload = wait_for(materialization)
    assert payload["md5"] == model.md5
    assert payload["mlmd_artifact_id"] == model.id
    assert payload["mlmd_execution_id"] == by_stage["train"].execution.id
