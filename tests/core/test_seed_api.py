"""The seed's Cmf API, end to end on an embedded store, read back through CmfQuery."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cmf_orchestrate import (
    ArtifactNotFoundError,
    CmfQuery,
    EventType,
    ExecutionState,
    InvalidArgumentError,
    PathOutsideProjectError,
    cmf,
)
from cmf_orchestrate.store import open_store
from examples.get_started import steps


def _run_pipeline(store: str) -> cmf.Cmf:
    steps.generate_raw("data/raw.csv", rows=200)
    writer = cmf.Cmf(filename=store, pipeline_name="get-started", custom_properties={"owner": "ml"})
    writer.create_context(pipeline_stage="prepare")
    writer.create_execution(execution_type="prepare", custom_properties={"ratio": 0.2, "tags": ["a", "b"]})
    writer.log_dataset("data/raw.csv", "input", custom_properties={"source": "generated"})
    steps.prepare("data/raw.csv", "data/train.csv", "data/test.csv")
    writer.log_dataset("data/train.csv", "output")
    writer.log_dataset("data/test.csv", "output")

    writer.create_context(pipeline_stage="train")
    writer.create_execution(execution_type="train", custom_properties={"n_estimators": 10})
    writer.log_dataset("data/train.csv", "input")
    scores = steps.train("data/train.csv", "model/rf.pkl", n_estimators=10)
    for epoch in range(3):
        writer.log_metric("training", {"epoch": epoch, "loss": 1.0 / (epoch + 1)})
    writer.commit_metrics("training")
    writer.log_model(
        "model/rf.pkl", "output", model_framework="scikit-learn", model_type="RandomForestClassifier", model_name="rf"
    )
    writer.log_execution_metrics("train_metrics", scores)

    writer.create_context(pipeline_stage="evaluate")
    writer.create_execution(execution_type="evaluate")
    writer.log_model("model/rf.pkl", "input")
    writer.log_dataset("data/test.csv", "input")
    steps.evaluate("model/rf.pkl", "data/test.csv", "metrics/eval.json")
    dataslice = writer.create_dataslice("test-slice")
    dataslice.add_data("data/test.csv", {"split": "test"})
    dataslice.commit({"purpose": "evaluation"})
    writer.finalize()
    return writer


def test_get_started_with_the_seed_api(project: Path) -> None:
    writer = _run_pipeline("mlmd")
    query = CmfQuery("mlmd")
    assert query.get_pipeline_names() == ["get-started"]
    assert query.get_pipeline_stages("get-started") == [
        "get-started/prepare",
        "get-started/train",
        "get-started/evaluate",
    ]
    [prepare] = query.get_all_exe_in_stage("get-started/prepare")
    assert prepare.state is ExecutionState.COMPLETE  # completed when the next execution started
    # As CMF records parameters: integers as integers, everything else as its text.
    assert prepare.parameters == {"ratio": "0.2", "tags": "['a', 'b']"}
    assert str(prepare.custom_properties["Python_Env"]).endswith(".txt")
    assert prepare.fact("orchestrator") == "cmf"
    assert prepare.properties["Pipeline_Type"] == "get-started"
    assert prepare.type == "prepare"
    assert prepare.properties["Context_Type"] == "get-started/prepare" == prepare.properties["Execution_type_name"]
    assert prepare.properties["Context_ID"] == writer.store.context("Pipeline_Stage", "get-started/prepare").id  # type: ignore[union-attr]
    by_direction = query.get_artifacts_for_execution(prepare.id)
    assert sorted(a.kind for a in by_direction[EventType.INPUT]) == ["Dataset", "Environment"]
    assert sorted(a.kind for a in by_direction[EventType.OUTPUT]) == ["Dataset", "Dataset"]
    raw = query.get_artifact("data/raw.csv")
    assert raw.name == f"data/raw.csv:{raw.uri}" and raw.properties["Commit"] == raw.uri
    assert raw.properties["url"] == "data/raw.csv" and raw.custom_properties["source"] == "generated"

    model = query.get_artifact("model/rf.pkl")
    [train] = query.get_all_exe_in_stage("get-started/train")
    assert model.name == f"model/rf.pkl:{model.uri}:{train.id}"
    assert model.properties["model_framework"] == "scikit-learn"
    # The evaluate stage read the very model train wrote: one artifact, two events.
    assert {e.id for e in query.get_all_executions_for_artifact("model/rf.pkl")} == {
        train.id,
        query.get_all_exe_in_stage("get-started/evaluate")[0].id,
    }
    assert [e.id for e in query.get_producer_execution("model/rf.pkl")] == [train.id]

    train_artifacts = {a.kind: a for a in query.get_all_artifacts_for_execution(train.id)}
    metrics = train_artifacts["Metrics"]
    # As CMF names them: <metrics name>:<uuid>:<execution id>, in the name and the metrics_name property.
    assert metrics.properties["metrics_name"] == metrics.name and "oob_score" in metrics.custom_properties
    assert metrics.name.startswith("train_metrics:") and metrics.name.endswith(f":{train.id}")
    step = train_artifacts["Step_Metrics"]
    # CMF's layout: cmf_artifacts/<execution uuid>/metrics/<metrics name>, one row per step.
    assert step.properties["url"] == f"cmf_artifacts/{train.uuid}/metrics/training"
    table = pq.read_table(project / step.properties["url"]).to_pylist()  # type: ignore[operator]
    assert table == [
        {"epoch": 0, "loss": 1.0, "SequenceNumber": 1},
        {"epoch": 1, "loss": 0.5, "SequenceNumber": 2},
        {"epoch": 2, "loss": 1 / 3, "SequenceNumber": 3},
    ]

    [evaluate] = query.get_all_exe_in_stage("get-started/evaluate")
    assert evaluate.state is ExecutionState.COMPLETE and evaluate.properties["Git_End_Commit"] == ""
    slice_artifact = next(a for a in query.get_all_artifacts_for_execution(evaluate.id) if a.kind == "Dataslice")
    rows = pq.read_table(project / str(slice_artifact.properties["url"])).to_pylist()
    assert rows[0]["Path"] == "data/test.csv" and rows[0]["split"] == "test" and rows[0]["hash"]

    assert {a.path for a in query.get_all_parent_artifacts("model/rf.pkl") if a.kind == "Dataset"} == {
        "data/raw.csv",
        "data/train.csv",
    }
    assert "model/rf.pkl" in {a.path for a in query.get_all_child_artifacts("data/raw.csv")}
    assert {a.path for a in query.get_one_hop_parent_artifacts("model/rf.pkl") if a.kind == "Dataset"} == {
        "data/train.csv"
    }
    # Environment: one artifact however many executions ran in this process.
    assert len(open_store(writer.settings.location).artifacts_of_type("Environment")) == 1


def test_bad_input_is_a_clear_error_and_loses_nothing(project: Path, tmp_path: Path) -> None:
    Path("data").mkdir()
    Path("data/a.csv").write_text("x\n1\n")
    writer = cmf.Cmf(filename="mlmd", pipeline_name="p")
    writer.create_context("s")
    execution = writer.create_execution("s")
    first = writer.log_dataset("data/a.csv", "input")
    with pytest.raises(InvalidArgumentError, match="'sideways'"):
        writer.log_dataset("data/a.csv", "sideways")
    with pytest.raises(ArtifactNotFoundError, match=r"data/missing\.csv"):
        writer.log_dataset("data/missing.csv", "output")
    outside = tmp_path / "outside.csv"
    outside.write_text("1")
    with pytest.raises(PathOutsideProjectError, match="outside the project root"):
        writer.log_dataset(str(outside), "input")
    with pytest.raises(InvalidArgumentError, match="reserved"):
        writer.log_dataset("data/a.csv", "input", {"cmf.orchestrator": "me"})
    with pytest.raises(InvalidArgumentError, match="reserved"):
        writer.update_execution(execution.id, {"cmf.attempt": 3})
    writer.update_execution(execution.id, {"note": "kept"})
    writer.finalize()
    query = CmfQuery("mlmd")
    recorded = query.get_all_artifacts_for_execution(execution.id)
    assert sorted(a.kind for a in recorded) == ["Dataset", "Environment"]
    assert first.id in {a.id for a in recorded}
    final = query.get_execution(execution.id)
    assert final is not None and final.state is ExecutionState.COMPLETE and final.parameters == {"note": "kept"}
    with pytest.raises(InvalidArgumentError, match="pipeline_name"):
        cmf.Cmf(filename="mlmd", pipeline_name=None)  # type: ignore[arg-type]


def test_filepath_keyword_and_metrics_file(project: Path) -> None:
    Path("m.json").write_text(json.dumps({"acc": 0.5}))
    writer = cmf.Cmf(filepath="sqlite:///meta/store.db", pipeline_name="p")
    writer.create_context("s")
    writer.create_execution("s")
    writer.log_dataset("m.json", "output")
    writer.finalize()
    assert (project / "meta" / "store.db").is_file()
    assert CmfQuery("sqlite:///meta/store.db").get_artifact("m.json").path == "m.json"
