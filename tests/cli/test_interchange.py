"""export (CMF dumptojson shape) and import: round trip into an empty store, no duplicates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_testlib import Recorded

from cmf_orchestrate import CmfQuery, CmfSettings

_VOLATILE = {"id", "create_time_since_epoch", "last_update_time_since_epoch", "artifact_id", "execution_id"}
_STORE_IDS = {"Context_ID", "Pipeline_id"}  # ids of the store the execution lives in


def _normal(document: dict[str, Any]) -> list[Any]:
    """The document without store-assigned ids and times, in a stable order."""

    def clean(node: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k not in _VOLATILE and k not in ("stages", "executions", "events")}
        if "properties" in out:
            out["properties"] = {k: v for k, v in out["properties"].items() if k not in _STORE_IDS}
        return out

    pipelines = []
    for pipeline in document["Pipeline"]:
        stages = []
        for stage in pipeline["stages"]:
            executions = []
            for execution in stage["executions"]:
                events = sorted(
                    (
                        {
                            "type": ev["type"],
                            "artifact": clean(ev["artifact"]),
                            "timed": ev["milliseconds_since_epoch"] > 0,
                        }
                        for ev in execution["events"]
                    ),
                    key=lambda ev: (ev["type"], ev["artifact"]["name"]),
                )
                executions.append({**clean(execution), "events": events})
            executions.sort(key=lambda e: e["properties"]["Execution_uuid"])
            stages.append({**clean(stage), "executions": executions})
        stages.sort(key=lambda s: s["name"])
        pipelines.append({**clean(pipeline), "stages": stages})
    return sorted(pipelines, key=lambda p: p["name"])


def test_export_has_cmf_dumptojson_shape(recorded: Recorded, run_cli: Any, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    result = run_cli(recorded.root, "export", "--pipeline", "get_started", "-o", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    [pipeline] = document["Pipeline"]
    assert pipeline["name"] == "get_started" and pipeline["type"] == "Parent_Context"
    assert {"id", "name", "properties", "custom_properties", "create_time_since_epoch"} <= set(pipeline)
    stage = next(s for s in pipeline["stages"] if s["name"] == "get_started/train")
    assert stage["type"] == "Pipeline_Stage" and len(stage["executions"]) == 2
    assert stage["properties"] == {"Pipeline_Stage": "get_started/train"} and stage["create_time_since_epoch"] > 0
    execution = stage["executions"][0]
    assert execution["type"] == "train" and execution["properties"]["Context_Type"] == "get_started/train"
    assert execution["properties"]["Execution_uuid"] and execution["last_known_state"] == "COMPLETE"
    kinds = {(ev["type"], ev["artifact"]["type"]) for ev in execution["events"]}
    assert kinds == {(3, "Environment"), (3, "Dataset"), (4, "Model")}  # MLMD INPUT = 3, OUTPUT = 4
    model = next(ev["artifact"] for ev in execution["events"] if ev["type"] == 4)
    assert model["name"] == recorded.model_v1 and model["uri"] == recorded.md5_v1
    assert model["properties"]["model_framework"] == "sklearn"
    to_stdout = run_cli(recorded.root, "export", "-o", "-")
    assert json.loads(to_stdout.output) == document  # one pipeline only, so all == the filtered one
    assert run_cli(recorded.root, "export", "--pipeline", "nope", "-o", str(out)).exit_code == 1


def test_export_import_round_trips_into_an_empty_store(recorded: Recorded, run_cli: Any, tmp_path: Path) -> None:
    exported = tmp_path / "a.json"
    assert run_cli(recorded.root, "export", "-o", str(exported)).exit_code == 0
    target = tmp_path / "other"
    target.mkdir()
    imported = run_cli(target, "import", str(exported), "--json")
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.output)
    assert report["executions_added"] == 9 and report["executions_skipped"] == 0
    assert report["pipelines"] == 1 and report["stages"] == 5

    again = tmp_path / "b.json"
    assert run_cli(target, "export", "-o", str(again)).exit_code == 0
    assert _normal(json.loads(again.read_text())) == _normal(json.loads(exported.read_text()))

    # Same pipelines, stages, executions, artifacts and events through the query API.
    source = CmfQuery(settings=CmfSettings(store="mlmd", project_root=recorded.root))
    copy = CmfQuery(settings=CmfSettings(store="mlmd", project_root=target))
    assert copy.get_pipeline_names() == source.get_pipeline_names()
    assert sorted(copy.get_pipeline_stages("get_started")) == sorted(source.get_pipeline_stages("get_started"))
    assert sorted(e.uuid for e in copy.store.executions()) == sorted(e.uuid for e in source.store.executions())
    assert sorted((a.kind, a.name, a.uri) for a in copy.store.artifacts()) == sorted(
        (a.kind, a.name, a.uri) for a in source.store.artifacts()
    )
    lineage = run_cli(target, "lineage", "metrics/scores.json", "--format", "json")
    original = run_cli(recorded.root, "lineage", "metrics/scores.json", "--format", "json")
    assert len(json.loads(lineage.output)["edges"]) == len(json.loads(original.output)["edges"])

    # Importing the same file again adds nothing.
    twice = run_cli(target, "import", str(exported), "--json")
    report = json.loads(twice.output)
    assert report["executions_added"] == 0 and report["executions_skipped"] == 9
    assert len(copy.store.executions()) == 9 and len(copy.store.artifacts()) == len(source.store.artifacts())


def test_import_merges_without_duplicating_artifacts(recorded: Recorded, run_cli: Any, tmp_path: Path) -> None:
    """A store that already has v1 receives a document with v1 and v2: v1's artifacts are reused by md5."""
    document = json.loads(run_cli(recorded.root, "export", "-o", "-").output)
    first_run = json.loads(json.dumps(document))
    for stage in first_run["Pipeline"][0]["stages"]:
        stage["executions"] = stage["executions"][:1] if stage["name"] != "get_started/publish" else []
    part = tmp_path / "v1.json"
    part.write_text(json.dumps(first_run))
    full = tmp_path / "all.json"
    full.write_text(json.dumps(document))
    target = tmp_path / "merge"
    target.mkdir()
    assert run_cli(target, "import", str(part)).exit_code == 0
    merged = run_cli(target, "import", str(full), "--json")
    report = json.loads(merged.output)
    assert (report["executions_added"], report["executions_skipped"]) == (5, 4)
    copy = CmfQuery(settings=CmfSettings(store="mlmd", project_root=target))
    uris = [(a.kind, a.uri) for a in copy.store.artifacts()]
    assert len(uris) == len(set(uris))  # one artifact per (type, md5)
    assert len(copy.store.executions()) == 9


def test_import_rejects_a_malformed_file_before_writing(run_cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Pipeline": [{"name": "p", "stages": [{"name": "p/s", "executions": [{"type": "t",
        "events": [{"type": 3, "artifact": {"type": "Spreadsheet", "name": "x"}}]}]}]}]}))  # fmt: skip
    result = run_cli(tmp_path, "import", str(bad))
    assert result.exit_code == 1 and "unknown artifact type 'Spreadsheet'" in result.output
    assert CmfQuery(settings=CmfSettings(store="mlmd", project_root=tmp_path)).get_pipeline_names() == []
    (tmp_path / "junk.json").write_text("{not json")
    assert run_cli(tmp_path, "import", str(tmp_path / "junk.json")).exit_code == 1


def _on_a_terminal(cwd: Path, *args: str) -> str:
    """Run the entry point with a pseudo-terminal as stdout and stderr; return what it showed."""
    import os
    import pty
    import subprocess

    from cli_testlib import console_script

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMF_", "NEO4J_"))}
    env.update({"TERM": "xterm-256color", "COLUMNS": "120", "DVC_NO_ANALYTICS": "1"})
    env.pop("NO_COLOR", None)
    with subprocess.Popen(
        [*console_script(), *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env
    ) as proc:
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
    os.close(master)
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_progress_bar_on_a_terminal_only(recorded: Recorded, run_cli: Any, tmp_path: Path) -> None:
    exported = tmp_path / "a.json"
    assert run_cli(recorded.root, "export", "-o", str(exported)).exit_code == 0
    (tmp_path / "tty").mkdir()
    shown = _on_a_terminal(tmp_path / "tty", "import", str(exported))
    assert "importing" in shown and "\x1b[" in shown  # a drawn (then cleared) progress bar
    assert "imported 9 executions" in shown
    (tmp_path / "pipe").mkdir()
    piped = run_cli(tmp_path / "pipe", "import", str(exported))
    assert piped.exit_code == 0 and "importing" not in piped.output
    as_json = _on_a_terminal(tmp_path / "tty", "import", str(exported), "--json")
    assert "importing" not in as_json and '"executions_skipped": 9' in as_json


def test_export_matches_cmflib_dumptojson(recorded: Recorded, run_cli: Any) -> None:
    """Every key CMF's own dumptojson writes for this store is in our export, with the same value."""
    import os
    import subprocess

    from mlmd_oracle import oracle_python

    python = str(oracle_python())
    reader = "import sys; from cmflib.cmfquery import CmfQuery; print(CmfQuery('mlmd').dumptojson('get_started'))"
    env = {**os.environ, "CMF_LOG_FILE": str(recorded.root.parent / "cmflib.log")}
    done = subprocess.run(
        [python, "-c", reader], cwd=recorded.root, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = json.loads(run_cli(recorded.root, "export", "-o", "-").output)

    from cmf_orchestrate.records import ArtifactRecord

    # Artifact records carry an update time once the store reads it (requested); until then: creation time.
    artifact_update = "update_time_ms" in ArtifactRecord.__dataclass_fields__

    def same(mine: dict[str, Any], cmf: dict[str, Any], where: str) -> None:
        for key, value in cmf.items():
            if key in ("stages", "executions", "events", "artifact", "type_id"):
                continue  # children are compared below; MLMD type ids are not part of our records
            if key == "last_update_time_since_epoch" and where.startswith("artifact") and not artifact_update:
                continue
            assert key in mine, f"{where}: {key!r} missing"
            assert mine[key] == value, f"{where}: {key!r}: {mine[key]!r} != {value!r}"

    [p_theirs], [p_ours] = theirs["Pipeline"], ours["Pipeline"]
    same(p_ours, p_theirs, "pipeline")
    stages = {s["id"]: s for s in p_ours["stages"]}
    assert sorted(stages) == sorted(s["id"] for s in p_theirs["stages"])
    for stage in p_theirs["stages"]:
        same(stages[stage["id"]], stage, f"stage {stage['name']}")
        executions = {e["id"]: e for e in stages[stage["id"]]["executions"]}
        assert sorted(executions) == sorted(e["id"] for e in stage["executions"])
        for execution in stage["executions"]:
            mine = executions[execution["id"]]
            same(mine, execution, f"execution {execution['id']}")
            events = {(ev["type"], ev["artifact"]["id"]): ev for ev in mine["events"]}
            assert sorted(events) == sorted((ev["type"], ev["artifact"]["id"]) for ev in execution["events"])
            for event in execution["events"]:
                ours_event = events[(event["type"], event["artifact"]["id"])]
                same(ours_event, event, f"event of execution {execution['id']}")
                same(ours_event["artifact"], event["artifact"], f"artifact {event['artifact']['id']}")


@pytest.mark.parametrize(
    "server",
    [pytest.param("postgres_url", marks=pytest.mark.postgres), pytest.param("mysql_url", marks=pytest.mark.mysql)],
)
def test_import_into_a_database_server_store_by_url(
    recorded: Recorded, run_cli: Any, tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(server)
    exported = tmp_path / "a.json"
    assert run_cli(recorded.root, "export", "-o", str(exported)).exit_code == 0
    work = tmp_path / "work"
    work.mkdir()
    imported = run_cli(work, "import", str(exported), "--store", url, "--json")
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.output)["executions_added"] == 9
    assert json.loads(run_cli(work, "pipelines", "--store", url, "--json").output)[0]["executions"] == 9
    graph = run_cli(work, "lineage", "metrics/scores.json", "--store", url, "--format", "json")
    original = run_cli(recorded.root, "lineage", "metrics/scores.json", "--format", "json")
    assert graph.exit_code == 0, graph.output
    assert len(json.loads(graph.output)["nodes"]) == len(json.loads(original.output)["nodes"])
    again = run_cli(work, "export", "--store", url, "-o", "-")
    assert _normal(json.loads(again.output)) == _normal(json.loads(exported.read_text()))
