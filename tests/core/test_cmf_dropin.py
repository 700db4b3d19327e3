"""A CMF script runs unchanged with the package name replaced: modules, defaults, proto-like returns."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import cmf_orchestrate
from cmf_orchestrate import ExecutionState
from cmf_orchestrate.cmf import Cmf
from cmf_orchestrate.cmfquery import CmfQuery

pd = pytest.importorskip("pandas")


def _files() -> None:
    Path("data").mkdir(exist_ok=True)
    Path("data/raw.csv").write_text("a,b\n1,2\n3,4\n")
    Path("data/labels.csv").write_text("label\n0\n1\n")


def test_module_layout_as_in_cmf() -> None:
    from cmf_orchestrate import cmf, cmfquery

    assert cmf.Cmf is Cmf and Cmf.DataSlice.__name__ == "DataSlice"
    assert cmfquery.CmfQuery is CmfQuery
    # The typed read API keeps its own name; the package-level CmfQuery stays the typed one.
    assert cmf_orchestrate.MetadataQuery is cmf_orchestrate.CmfQuery
    assert cmf_orchestrate.CmfQuery.__module__ == "cmf_orchestrate.query"


def test_returns_read_like_ml_metadata_protos(project: Path) -> None:
    _files()
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    context = writer.create_context(pipeline_stage="prepare", custom_properties={"team": "a"})
    assert context.name == "demo/prepare" and context.type_id > 0
    assert context.properties["Pipeline_Stage"].string_value == "demo/prepare"
    assert context.custom_properties["team"].string_value == "a"
    execution = writer.create_execution(execution_type="Prepare", custom_properties={"seed": 7, "ratio": 0.2})
    assert execution.type == "Prepare" and execution.type_id > 0
    assert execution.last_known_state == 2  # RUNNING
    assert execution.properties["Context_ID"].int_value == context.id
    assert execution.properties["Pipeline_id"].int_value == writer.parent_context.id
    assert execution.properties["Context_Type"].string_value == "demo/prepare"
    assert execution.properties["Execution_type_name"].string_value == "demo/prepare"
    assert execution.properties["Execution"].string_value == str(sys.argv)
    assert execution.custom_properties["seed"].int_value == 7
    assert execution.custom_properties["ratio"].string_value == "0.2"  # CMF keeps non-integers as text
    assert execution.custom_properties["Python_Env"].string_value.endswith(".txt")
    assert execution.properties["missing"].string_value == "" and "missing" not in execution.properties
    dataset = writer.log_dataset("data/raw.csv", "input", custom_properties={"source": "gen", "rows": 2, "w": 0.5})
    assert dataset.name == f"data/raw.csv:{dataset.uri}" and dataset.type == "Dataset" and dataset.type_id > 0
    assert dataset.properties["Commit"].string_value == dataset.uri
    assert dataset.custom_properties["rows"].int_value == 2
    assert dataset.custom_properties["w"].double_value == 0.5
    assert dataset.custom_properties["source"].HasField("string_value")
    assert dataset.path == "data/raw.csv"  # the typed record's attributes still read through
    done = writer.finalize()
    assert done is not None and done.last_known_state == 3  # COMPLETE


def test_defaults_named_after_the_folder_and_the_script(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files()
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "featurize.py"), "--fast"])
    writer = Cmf(filepath="mlmd")
    assert writer.pipeline_name == project.name
    logged = writer.log_dataset("data/raw.csv", "input")  # no context, no execution yet
    assert writer.child_context is not None and writer.child_context.name == f"{project.name}/featurize"
    assert writer.execution is not None and writer.execution.type == "featurize"
    writer.finalize()
    # Logging after finalize() adds to the same execution, as CMF allows.
    Path("data/out.csv").write_text("x\n")
    late = writer.log_dataset("data/out.csv", "output")
    writer.finalize()
    query = CmfQuery("mlmd")
    [execution] = query.get_all_exe_in_stage(f"{project.name}/featurize")
    artifacts = query.get_all_artifacts_for_execution(execution.id)
    assert {logged.id, late.id} <= set(artifacts["id"].tolist())
    assert execution.record.state is ExecutionState.COMPLETE


def test_create_new_execution_false_reuses_the_execution_by_name(project: Path) -> None:
    _files()
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("train")
    first = writer.create_execution("epoch-loop", {"lr": 1}, create_new_execution=False)
    assert first.name == "epoch-loop" and first.type == "demo/train"
    writer.log_dataset("data/raw.csv", "input")
    again = Cmf(filepath="mlmd", pipeline_name="demo")
    again.create_context("train")
    second = again.create_execution("epoch-loop", {"lr": 2}, create_new_execution=False)
    assert second.id == first.id
    uuids = second.properties["Execution_uuid"].string_value.split(",")
    assert len(uuids) == 2 and uuids[0] == first.properties["Execution_uuid"].string_value
    assert second.custom_properties["lr"].int_value == 2
    third = again.create_execution("epoch-loop")  # create_new_execution=True: a new one
    assert third.id != first.id
    again.finalize()
    assert len(CmfQuery("mlmd").get_all_exe_in_stage("demo/train")) == 2


def test_dataset_label_is_a_label_artifact(project: Path) -> None:
    _files()
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("prepare")
    writer.create_execution("prepare")
    dataset = writer.log_dataset("data/raw.csv", "input", label="data/labels.csv", label_properties={"user": "ron"})
    writer.finalize()
    query = CmfQuery("mlmd")
    frame = query.get_artifact(dataset.name)
    assert frame is not None
    [row] = frame.to_dict("records")
    label = query.store.artifacts(type_name="Label")[0]
    assert row["custom_properties_labels"] == "data/labels.csv"
    assert row["custom_properties_labels_uri"] == label.name == f"data/labels.csv:{label.uri}"
    assert label.properties["url"] == label.name and label.custom_properties["user"] == "ron"
    assert label.custom_properties["dataset_uri"] == dataset.uri
    events = query.get_all_artifacts_for_execution(writer.execution.id)  # type: ignore[union-attr]
    assert set(zip(events["type"], events["event"], strict=True)) >= {("Label", "INPUT"), ("Dataset", "INPUT")}
    assert "Label" in query.get_all_artifact_types()


def test_dataslices_and_step_metrics_in_cmf_layout(project: Path) -> None:
    _files()
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("eval")
    execution = writer.create_execution("eval")
    first_uuid = execution.properties["Execution_uuid"].string_value
    for step in range(2):
        writer.log_metric("loss", {"value": 1.0 / (step + 1)})
    metrics = writer.commit_metrics("loss")
    assert metrics.properties["url"].string_value == f"cmf_artifacts/{first_uuid}/metrics/loss"
    assert metrics.name.startswith(f"cmf_artifacts/{first_uuid}/metrics/loss:{metrics.uri}:{execution.id}:")
    table = pd.read_parquet(f"cmf_artifacts/{first_uuid}/metrics/loss")
    assert table.index.name == "SequenceNumber" and table["value"].tolist() == [1.0, 0.5]
    dataslice = writer.create_dataslice("slice-a")
    dataslice.add_data("data/raw.csv", {"split": "test"})
    dataslice.commit({"purpose": "eval"})
    frame = writer.read_dataslice("slice-a")
    assert frame.index.name == "Path" and frame.loc["data/raw.csv", "split"] == "test"
    writer.update_dataslice("slice-a", "data/raw.csv", {"split": "holdout"})
    assert writer.read_dataslice("slice-a").loc["data/raw.csv", "split"] == "holdout"
    written = writer.log_execution_metrics("scores", {"auc": 0.9})
    assert written.properties["metrics_name"].string_value == written.name
    assert written.name.endswith(f":{execution.id}") and written.name.startswith("scores:")
    writer.finalize()


def test_updating_recorded_artifacts(project: Path) -> None:
    _files()
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("prepare")
    writer.create_execution("prepare")
    logged = writer.log_dataset("data/raw.csv", "input")
    artifact = writer.get_artifact(logged.id)
    assert artifact.name == logged.name and artifact.uri == logged.uri
    writer.update_existing_artifact(artifact, {"owner": "me", "n": 3})
    writer.update_dataset_url(artifact, "demo:s3://bucket/x")
    writer.update_dataset_url(writer.get_artifact(logged.id), "demo:s3://bucket/x")
    updated = writer.get_artifact(logged.id)
    assert updated.custom_properties["owner"].string_value == "me"
    assert updated.custom_properties["n"].int_value == 3
    assert updated.properties["url"].string_value == "data/raw.csv,demo:s3://bucket/x"
    assert updated.last_update_time_since_epoch >= updated.create_time_since_epoch
    [model_view] = writer.update_model_url([updated], "other")
    assert model_view.properties["url"].string_value.endswith(",other")
    writer.link_artifacts(updated, model_view)
    stage = writer.child_context
    assert stage is not None
    context = writer.update_context("Pipeline_Stage", "demo/prepare", stage.id, custom_properties={"k": 1})
    assert context is not None and context.custom_properties["k"].int_value == 1
    writer.finalize()


def test_module_functions_on_our_commands(project: Path, tmp_path: Path) -> None:
    from cmf_orchestrate import CmfError, cmf

    assert isinstance(cmf.cmf_init(type="local", path=str(tmp_path / "remote")), str)
    assert str(tmp_path / "remote") in cmf.cmf_init_show()
    _files()
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("prepare")
    writer.create_execution("prepare")
    dataset = writer.log_dataset("data/raw.csv", "input")
    writer.finalize()
    assert "demo" in cmf.pipeline_list("mlmd")
    assert "prepare" in cmf.execution_list("demo", "mlmd")
    assert "data/raw.csv" in cmf.artifact_list("demo", "mlmd")
    cmf.metadata_export("demo", str(tmp_path / "demo.json"), "mlmd")
    assert "data/raw.csv" in (tmp_path / "demo.json").read_text()
    cmf.artifact_push("demo", "mlmd")
    Path("data/raw.csv").unlink()
    cmf.artifact_pull_single("demo", "mlmd", dataset.name)
    assert Path("data/raw.csv").read_text() == "a,b\n1,2\n3,4\n"
    with pytest.raises(CmfError, match="cmf-orchestrate export"):
        cmf.metadata_push("demo", "mlmd")
    with pytest.raises(CmfError, match="cmf-orchestrate import"):
        cmf.metadata_pull("demo", "mlmd")


def test_slices_of_a_versioned_folder_are_read_and_updated(project: Path) -> None:
    folder = Path("artifacts/raw_data")
    folder.mkdir(parents=True)
    for i in range(1, 11):
        (folder / f"{i}.txt").write_text(f"text {i % 3}\n")
    writer = Cmf(filename="mlmd", pipeline_name="dvc")
    writer.create_context(pipeline_stage="Prepare")
    writer.create_execution(execution_type="Prepare")
    writer.log_dataset(str(folder), "input")
    for number in (1, 2):
        dataslice: Cmf.DataSlice = writer.create_dataslice(name=f"slice-{number}")
        for i in range(number, 10, 2):
            dataslice.add_data(path=f"{folder}/{i}.txt", custom_properties={"key1": "value1", "key2": "value2"})
        dataslice.commit()
    frame = writer.read_dataslice(name="slice-1")
    record = list(frame.index)[-1]
    assert list(frame.columns) == ["hash", "key1", "key2"] and record == f"{folder}/9.txt"
    writer.update_dataslice(name="slice-1", record=record, custom_properties={"key1": "1", "key2": "2"})
    assert writer.read_dataslice(name="slice-1").loc[record].tolist()[1:] == ["1", "2"]
    writer.finalize()
    slices = CmfQuery("mlmd").store.artifacts(type_name="Dataslice")
    assert len(slices) == 2 and all(s.name.startswith("cmf_artifacts/") for s in slices)


def test_an_execution_updated_by_later_scripts(project: Path) -> None:
    _files()
    for run in range(2):
        writer = Cmf("mlmd", "test-execution-update")
        writer.create_context("Train")
        writer.create_execution("Train-execution", {"name": "test-1"}, create_new_execution=False)
        writer.log_dataset("data/raw.csv", "input", custom_properties={"user-metadata1": "metadata_value"})
        writer.log_execution_metrics(f"metrics-{run}", {"auc": 0.4})
        writer.finalize()
    query = CmfQuery("mlmd")
    [execution] = query.get_all_exe_in_stage("test-execution-update/Train")
    assert execution.name == "Train-execution"
    assert len(execution.properties["Execution_uuid"].string_value.split(",")) == 2
    frame = query.get_all_artifacts_for_execution(execution.id)
    assert sorted(frame["type"].tolist()).count("Metrics") == 2


def test_artifacts_logged_with_a_known_version(project: Path) -> None:
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("merge")
    writer.create_execution("merge")
    md5 = "0" * 32
    dataset = writer.log_dataset_with_version(
        "remote/data.csv", md5, "input", props={"git_repo": "r", "url": "demo:s3://b/x"}, custom_properties={"k": 1}
    )
    assert dataset.name == f"remote/data.csv:{md5}" and dataset.properties["url"].string_value == "demo:s3://b/x"
    again = writer.log_dataset_with_version("remote/data.csv", md5, "output", props={"url": "other:s3://b/x"})
    assert again.id == dataset.id
    assert writer.get_artifact(dataset.id).properties["url"].string_value == "demo:s3://b/x,other:s3://b/x"
    model = writer.log_model_with_version(
        "models/m.pkl", "output", props={"uri": "1" * 32, "model_framework": "sk", "url": "u"}
    )
    assert model.type == "Model" and model.properties["model_framework"].string_value == "sk"
    with pytest.raises(cmf_orchestrate.InvalidArgumentError, match="uri"):
        writer.log_model_with_version("models/m.pkl", "output", props={})
    writer.finalize()


def test_a_script_sets_the_stage_and_execution_it_logs_into(project: Path) -> None:
    _files()
    first = Cmf("mlmd", "test-execution-update")
    first.create_context("Train")
    first.create_execution("Train-execution", {"name": "test-1"}, create_new_execution=False)
    first.finalize()
    query = CmfQuery("mlmd")
    writer = Cmf("mlmd", "test-execution-update")
    context = writer.child_context = writer.create_context("Train")
    [execution] = [e for e in query.get_all_exe_in_stage(context.name) if e.name == "Train-execution"]
    writer.execution = execution
    writer.log_dataset("data/raw.csv", "input")
    writer.log_execution_metrics("metrics-1", {"auc": 0.3})
    writer.finalize()
    frame = query.get_all_artifacts_for_execution(execution.id)
    assert {"Dataset", "Metrics"} <= set(frame["type"])
    assert len(query.get_all_exe_in_stage(context.name)) == 1
    with pytest.raises(cmf_orchestrate.InvalidArgumentError):
        writer.execution = "nope"


def test_metrics_sets_are_shown_and_compared_by_the_name_they_were_logged_under(project: Path) -> None:
    from click.testing import CliRunner

    from cmf_orchestrate.cli import cli
    from cmf_orchestrate.records import metrics_set_name

    assert metrics_set_name("scores:0c2a4e0e-ed20-11f1-8104-02fc00000001:12") == "scores"
    assert metrics_set_name("scores") == "scores" and metrics_set_name("a:b") == "a:b"
    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    writer.create_context("eval")
    writer.create_execution("eval")
    logged = writer.log_execution_metrics("scores", {"auc": 0.9})
    writer.finalize()
    shown = CliRunner().invoke(cli, ["artifacts", "--type", "Metrics"])
    assert shown.exit_code == 0 and f"\tMetrics\tscores\t{logged.uri}\t" in shown.output


def test_cmfquery_without_pandas_says_what_to_install(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # an import of pandas now fails
    with pytest.raises(cmf_orchestrate.ConfigError, match="pip install pandas"):
        CmfQuery("mlmd")


def test_validation_output_is_an_internal_output_of_the_execution(project: Path) -> None:
    import json

    from click.testing import CliRunner

    from cmf_orchestrate.cli import cli
    from cmf_orchestrate.interchange import export_document
    from cmf_orchestrate.records import EventType

    writer = Cmf(filepath="mlmd", pipeline_name="demo")
    with pytest.raises(ValueError, match="create_execution"):  # as in CMF: no implicit execution here
        writer.log_validation_output("v1")
    writer.create_context("check")
    execution = writer.create_execution("check")
    logged = writer.log_validation_output("v1.2", {"passed": True, "score": 0.75, "note": "ok"})
    assert logged.type == "Validation_output" and logged.name == logged.uri and len(logged.uri) == 36
    assert logged.properties["version"].string_value == "v1.2"
    assert logged.custom_properties["passed"].int_value == 1
    assert logged.custom_properties["score"].double_value == 0.75
    assert logged.custom_properties["note"].string_value == "ok"
    writer.finalize()
    [event] = [e for e in writer.store.events_of_executions([execution.id]) if e.artifact_id == logged.id]
    assert event.type is EventType.INTERNAL_OUTPUT
    # Listed with the execution, but not as data it produced.
    query = CmfQuery("mlmd")
    rows = query.get_all_artifacts_for_execution(execution.id)
    assert rows[rows["type"] == "Validation_output"]["event"].tolist() == ["OUTPUT"]  # as CMF's reader says
    assert query.get_all_executions_for_artifact_id(logged.id)["Type"].tolist() == ["OUTPUT"]
    assert writer.store.snapshot(execution.id).outputs == ()
    document = export_document(writer.store)
    events = document["Pipeline"][0]["stages"][0]["executions"][0]["events"]
    assert [e["type"] for e in events if e["artifact"]["type"] == "Validation_output"] == [6]
    shown = CliRunner().invoke(cli, ["show", str(execution.id), "--json"])
    assert shown.exit_code == 0, shown.output
    [internal] = json.loads(shown.output)["internal_outputs"]
    assert internal["id"] == logged.id and json.loads(shown.output)["outputs"] == []
    table = CliRunner().invoke(cli, ["show", str(execution.id)])
    assert "internal output" in table.output and "version v1.2" in table.output
