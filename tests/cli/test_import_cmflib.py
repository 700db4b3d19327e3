"""``cmf-orchestrate import`` of documents written by CMF's own ``dumptojson``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mlmd_oracle import COMPAT_PYTHON, oracle_python

from cmf_orchestrate import CmfSettings, MetadataQuery
from cmf_orchestrate.cmfquery import CmfQuery

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
import test_cmf_dropin_parity as parity  # the same CMF scripts and project setup

DUMP = "from cmflib.cmfquery import CmfQuery; print(CmfQuery('mlmd').dumptojson('demo'))"


@pytest.fixture(scope="module")
def cmflib_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMF's own JSON of a pipeline CMF's library recorded."""
    oracle_python()
    base = tmp_path_factory.mktemp("cmflib-dump")
    root = base / "theirs"
    parity._project(root, base / "remote")
    env = parity._compat_env(root)
    for script, code in parity.SCRIPTS.items():
        parity._run(root, str(COMPAT_PYTHON), "cmflib", code, script, env)
    out = parity._run(root, str(COMPAT_PYTHON), "cmflib", DUMP, "dump.py", env)
    target = base / "demo.json"
    target.write_text(out.strip().splitlines()[-1])
    return target


def _document(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_import_of_a_cmflib_dump(cmflib_dump: Path, run_cli: Any, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "import", str(cmflib_dump), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["executions_added"] == 3 and report["executions_skipped"] == 0
    query = MetadataQuery(settings=CmfSettings(store="mlmd", project_root=tmp_path))
    [label] = query.store.artifacts(type_name="Label")
    assert label.name.startswith("data/labels.csv:") and label.custom_properties["dataset_uri"]
    for stage in ("prepare", "train", "evaluate"):
        [execution] = query.get_all_exe_in_stage(f"demo/{stage}")
        assert execution.properties["Execution_type_name"] == f"demo/{stage}"
        assert execution.properties["Context_Type"] == f"demo/{stage}"
        assert str(execution.custom_properties["Python_Env"]).startswith("cmf_artifacts/python_env_")
    document = _document(cmflib_dump)
    [pipeline] = document["Pipeline"]
    original = {s["name"]: s["executions"][0] for s in pipeline["stages"]}
    for stage, execution in original.items():
        [mine] = query.get_all_exe_in_stage(stage)
        assert mine.uuid == execution["properties"]["Execution_uuid"]
        assert mine.create_time_ms == execution["create_time_since_epoch"]  # the original times
        assert mine.update_time_ms == execution["last_update_time_since_epoch"]
        assert dict(mine.properties) | {"Context_ID": 0, "Pipeline_id": 0} == execution["properties"] | {
            "Context_ID": 0,
            "Pipeline_id": 0,
        }
    dumped = {
        ev["artifact"]["name"]: ev["artifact"]
        for stage in pipeline["stages"]
        for execution in stage["executions"]
        for ev in execution["events"]
    }
    for artifact in query.store.artifacts():
        assert artifact.create_time_ms == dumped[artifact.name]["create_time_since_epoch"], artifact.name
    # Executions keep their order.
    ids = [query.get_all_exe_in_stage(s)[0].id for s in ("demo/prepare", "demo/train", "demo/evaluate")]
    assert ids == sorted(ids)
    # CMF's own reader sees the same artifacts on the imported store.
    frame = CmfQuery(str(tmp_path / "mlmd")).get_all_artifacts_for_executions(ids)
    assert sorted(frame["type"].unique().tolist()) == [
        "Dataset",
        "Dataslice",
        "Environment",
        "Label",
        "Metrics",
        "Model",
        "Step_Metrics",
        "Validation_output",
    ]
    counts = (len(query.store.executions()), len(query.store.artifacts()), query.store.count("events"))
    again = run_cli(tmp_path, "import", str(cmflib_dump), "--json")
    assert again.exit_code == 0 and json.loads(again.output)["executions_added"] == 0
    assert (len(query.store.executions()), len(query.store.artifacts()), query.store.count("events")) == counts


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda e: e["properties"].update({"Colour": "red"}), "execution #0: unknown property 'Colour'"),
        (lambda e: e["events"][0]["artifact"].update({"type": "Spreadsheet"}), "event #0: unknown artifact type"),
        (
            lambda e: e["events"][0]["artifact"]["properties"].update({"shape": "x"}),
            "event #0, artifact",
        ),
        (lambda e: e.pop("type"), "execution #0: malformed document: no 'type'"),
    ],
)
def test_bad_input_names_the_element_and_writes_nothing(
    cmflib_dump: Path, run_cli: Any, tmp_path: Path, change: Any, named: str
) -> None:
    document = _document(cmflib_dump)
    [pipeline] = document["Pipeline"]
    stage = pipeline["stages"][-1]
    change(stage["executions"][0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    result = run_cli(tmp_path, "import", str(bad))
    assert result.exit_code == 1
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and f"stage {stage['name']!r}" in lines[0], result.output
    assert MetadataQuery(settings=CmfSettings(store="mlmd", project_root=tmp_path)).get_pipeline_names() == []


def test_a_store_failure_mid_document_leaves_nothing(
    cmflib_dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cmf_orchestrate import StoreError
    from cmf_orchestrate.interchange import import_document
    from cmf_orchestrate.store import MetadataStore, open_store

    store = open_store(CmfSettings(store="mlmd", project_root=tmp_path).location)
    real = MetadataStore.write_execution
    calls = []

    def failing(self: MetadataStore, **kwargs: Any) -> Any:
        calls.append(kwargs["type_name"])
        if len(calls) == 3:
            raise StoreError("the disk is full")
        return real(self, **kwargs)

    monkeypatch.setattr(MetadataStore, "write_execution", failing)
    with pytest.raises(StoreError, match="disk is full"):
        import_document(store, _document(cmflib_dump))
    monkeypatch.undo()
    assert len(calls) == 3
    assert store.executions() == [] and store.artifacts() == []
    assert store.contexts_of_type("Parent_Context") == []
    # The same store takes the document afterwards, whole.
    report = import_document(store, _document(cmflib_dump))
    assert report.executions_added == 3 and len(store.executions()) == 3


def _within(artifact_ms: int, execution: dict[str, Any]) -> int:
    return min(max(artifact_ms, execution["create_time_since_epoch"]), execution["last_update_time_since_epoch"])


def test_contexts_and_events_keep_their_times(cmflib_dump: Path, tmp_path: Path) -> None:
    from cmf_orchestrate.interchange import import_document
    from cmf_orchestrate.records import EventType
    from cmf_orchestrate.store import open_store

    document = _document(cmflib_dump)
    [pipeline] = document["Pipeline"]
    store = open_store(CmfSettings(store="mlmd", project_root=tmp_path / "a").location)
    import_document(store, document)
    [parent] = store.contexts_of_type("Parent_Context")
    assert (parent.create_time_ms, parent.update_time_ms) == (
        pipeline["create_time_since_epoch"],
        pipeline["last_update_time_since_epoch"],
    )
    internal = 0
    for stage in pipeline["stages"]:
        context = store.context("Pipeline_Stage", stage["name"])
        assert context is not None
        assert (context.create_time_ms, context.update_time_ms) == (
            stage["create_time_since_epoch"],
            stage["last_update_time_since_epoch"],
        )
        [execution] = stage["executions"]
        [record] = store.executions_in_context(context.id)
        events = store.events_of_executions([record.id])
        assert len(events) == len({(ev["artifact"]["name"], ev["type"]) for ev in execution["events"]})
        artifacts = {a.id: a for a in store.artifacts_by_id(e.artifact_id for e in events)}
        # CMF's dumps give events no time: each takes its artifact's creation time, within
        # the execution's lifetime; never the time of the import.
        assert not any("milliseconds_since_epoch" in ev for ev in execution["events"])
        for event in events:
            assert event.time_ms == _within(artifacts[event.artifact_id].create_time_ms, execution)
            internal += event.type is EventType.INTERNAL_OUTPUT
    assert internal == 1  # the validation output

    # A document giving event times (our export does) keeps them as they are.
    for n, event in enumerate(ev for s in pipeline["stages"] for e in s["executions"] for ev in e["events"]):
        event["milliseconds_since_epoch"] = 1_600_000_000_000 + n
    other = open_store(CmfSettings(store="mlmd", project_root=tmp_path / "b").location)
    import_document(other, document)
    times = sorted(e.time_ms for e in other.events_of_executions(e.id for e in other.executions()))
    assert times == [1_600_000_000_000 + n for n in range(len(times))]


def test_contexts_already_in_the_store_keep_their_own_times(cmflib_dump: Path, tmp_path: Path) -> None:
    from cmf_orchestrate.interchange import import_document
    from cmf_orchestrate.store import open_store

    store = open_store(CmfSettings(store="mlmd", project_root=tmp_path).location)
    before = store.pipeline_context("demo")
    import_document(store, _document(cmflib_dump))
    [after] = store.contexts_of_type("Parent_Context")
    assert (after.create_time_ms, after.update_time_ms) == (before.create_time_ms, before.update_time_ms)


def _comparable(document: dict[str, Any]) -> Any:
    """A document with the ids each store assigns left out."""
    ids = {"id", "artifact_id", "execution_id", "Context_ID", "Pipeline_id"}
    if isinstance(document, dict):
        return {k: _comparable(v) for k, v in document.items() if k not in ids}
    if isinstance(document, list):
        return [_comparable(v) for v in document]
    return document


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_import_into_a_database_server_reads_back_as_on_sqlite(
    cmflib_dump: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from cmf_orchestrate.interchange import export_document, import_document
    from cmf_orchestrate.store import open_store

    url = str(request.getfixturevalue("postgres_url" if backend == "postgresql" else "mysql_url"))
    sqlite = open_store(CmfSettings(store="mlmd", project_root=tmp_path).location)
    server = open_store(CmfSettings(store=url, project_root=tmp_path).location)
    for store in (sqlite, server):
        report = import_document(store, _document(cmflib_dump))
        assert report.executions_added == 3
    assert server.count("events") == sqlite.count("events")
    assert _comparable(export_document(server)) == _comparable(export_document(sqlite))
    # Again: nothing added, on either.
    assert import_document(server, _document(cmflib_dump)).executions_added == 0
    assert _comparable(export_document(server)) == _comparable(export_document(sqlite))
