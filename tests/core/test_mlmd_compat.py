"""Stores are ML Metadata stores both ways: ml-metadata opens ours, we open and extend theirs.

ml-metadata 1.17.1 runs in its own environment (``.venv-compat``) as the oracle.
"""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlmd_oracle import READ_ALL, connection_config, run_oracle
from servers import MY_HOST, MY_PORT, MY_USER, PG_HOST, PG_PORT, PG_USER, create_database, drop_database

from cmf_orchestrate import CmfQuery, cmf
from cmf_orchestrate._storeurl import parse_store_url
from cmf_orchestrate.store import open_store
from cmf_orchestrate.store._values import encode

CREATE = """
metadata_store.MetadataStore(config)
print("{}")
"""


@pytest.fixture
def reference_url(store_url: str, project: Path) -> Iterator[str]:
    """A second, empty store of the same backend, for ml-metadata to create."""
    loc = parse_store_url(store_url)
    if loc.backend == "sqlite":
        yield str(project / "reference.sqlite")
        return
    name = f"cmf_ref_{uuid.uuid4().hex[:10]}"
    create_database(loc.backend, name)
    yield store_url.rsplit("/", 1)[0] + "/" + name
    drop_database(loc.backend, name)


def _sqlite_schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def _dump(url: str) -> str:
    loc = parse_store_url(url)
    if loc.backend == "postgresql":
        cmd = ["pg_dump", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-s", loc.database]
    else:
        cmd = ["mysqldump", "-h", MY_HOST, "-P", str(MY_PORT), "-u", MY_USER, "--no-data", loc.database]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout
    lines = [
        re.sub(r" AUTO_INCREMENT=\d+", "", line)
        for line in text.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict", "/*!"))
    ]
    return "\n".join(lines)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    loc = parse_store_url(url)
    if loc.backend == "sqlite":
        assert loc.path is not None
        with sqlite3.connect(loc.path) as conn:
            return conn.execute(sql).fetchall()
    from sqlalchemy import create_engine, text

    from cmf_orchestrate.store._engine import database_for

    del create_engine
    with database_for(loc).engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_schema_is_ml_metadata_schema(store_url: str, reference_url: str) -> None:
    run_oracle(CREATE, config=connection_config(reference_url))
    open_store(parse_store_url(store_url))
    if store_url.startswith(("postgresql", "mysql")):
        assert _dump(store_url) == _dump(reference_url)
    else:
        ours, theirs = Path(store_url), Path(reference_url)
        assert _sqlite_schema(ours) == _sqlite_schema(theirs)
    types = "SELECT id, name, type_kind FROM Type ORDER BY id"
    assert _rows(store_url, types) == _rows(reference_url, types)
    assert _rows(store_url, "SELECT schema_version FROM MLMDEnv") == [(10,)]


HOSTILE = {
    "nan": math.nan,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "huge": 2**70,
    "big": 2**40,
    "negative": -(2**63),
    "tagged": "cmf:int:5",
    "plain": "cmf:something",
    "text": "it's 'quoted' -- ; DROP TABLE Execution",
}


def _record(store_url: str) -> cmf.Cmf:
    Path("raw.csv").write_text("a,b\n1,2\n")
    writer = cmf.Cmf(filename=store_url, pipeline_name="compat")
    writer.create_context("prepare")
    writer.create_execution("prepare", HOSTILE)
    writer.log_dataset("raw.csv", "input")
    Path("clean.csv").write_text("a,b\n1,2\n3,4\n")
    writer.log_dataset("clean.csv", "output")
    writer.log_execution_metrics("scores", {"auc": 0.9, "loss": math.nan})
    writer.finalize()
    return writer


def _expected(value: Any, backend: str) -> Any:
    column = encode(value, backend)
    for got in (column.int_value, column.double_value, column.string_value):
        if got is not None:
            return f"float:{got!r}" if isinstance(got, float) and not math.isfinite(got) else got
    raise AssertionError(value)


def test_ml_metadata_reads_our_store(store_url: str, project: Path) -> None:
    writer = _record(store_url)
    backend = parse_store_url(store_url).backend
    seen = run_oracle(READ_ALL, config=connection_config(store_url, project))
    ours = CmfQuery(store_url).store
    [execution] = seen["executions"]
    mine = ours.execution(execution["id"])
    assert mine is not None and writer.execution is not None and mine.id == writer.execution.id
    assert execution["name"] == mine.name and execution["type"] == mine.type == "prepare"
    assert execution["state"] == "COMPLETE"
    assert execution["contexts"] == ["compat/prepare"]
    assert execution["properties"] == {k: _expected(v, backend) for k, v in mine.properties.items()}
    for key, given in HOSTILE.items():
        # The seed API records parameters as CMF does: integers as integers, the rest as text.
        value = given if isinstance(given, int) else str(given)
        assert execution["custom"][key] == _expected(value, backend), key
        assert mine.custom_properties[key] == value, key
    contexts = {c["name"]: c for c in seen["contexts"]}
    assert contexts["compat/prepare"]["parents"] == ["compat"]
    assert contexts["compat"]["properties"] == {"Pipeline": "compat"}
    by_name = {a["name"].split(":")[0]: a for a in seen["artifacts"]}
    assert by_name["raw.csv"]["uri"] == ours.artifacts(url="raw.csv")[0].uri
    assert by_name["clean.csv"]["properties"]["url"] == "clean.csv"
    assert by_name["scores"]["custom"]["auc"] == 0.9
    assert by_name["scores"]["custom"]["loss"] == _expected(math.nan, backend)
    kinds = {e[2] for e in seen["events"]}
    assert kinds == {"INPUT", "OUTPUT"}
    assert len(seen["events"]) == len(ours.events_of_executions([mine.id]))


WRITE_CMF_LIKE = """
store = metadata_store.MetadataStore(config)
S, I = pb.STRING, pb.INT
pipeline_type = store.put_context_type(pb.ContextType(name="Parent_Context", properties={"Pipeline": S}))
stage_type = store.put_context_type(pb.ContextType(name="Pipeline_Stage", properties={"Pipeline_Stage": S}))
exec_props = {k: S for k in ["Execution_uuid", "Context_Type", "Execution", "Pipeline_Type", "Git_Repo",
              "Git_Start_Commit", "Git_End_Commit"]}
exec_props.update({"Context_ID": I, "Pipeline_id": I})
exec_type = store.put_execution_type(pb.ExecutionType(name="featurize", properties=exec_props))
dataset_props = {"git_repo": S, "Commit": S, "url": S}
dataset_type = store.put_artifact_type(pb.ArtifactType(name="Dataset", properties=dataset_props))
pipeline = pb.Context(type_id=pipeline_type, name="theirs")
pipeline.properties["Pipeline"].string_value = "theirs"
[pipeline_id] = store.put_contexts([pipeline])
stage = pb.Context(type_id=stage_type, name="theirs/featurize")
stage.properties["Pipeline_Stage"].string_value = "theirs/featurize"
[stage_id] = store.put_contexts([stage])
store.put_parent_contexts([pb.ParentContext(child_id=stage_id, parent_id=pipeline_id)])
execution = pb.Execution(type_id=exec_type, name="featurize-1", last_known_state=pb.Execution.COMPLETE)
for k, v in {"Execution_uuid": "u-1", "Context_Type": "theirs/featurize", "Execution": "featurize.py",
             "Pipeline_Type": "theirs", "Git_Repo": "", "Git_Start_Commit": "", "Git_End_Commit": ""}.items():
    execution.properties[k].string_value = v
execution.properties["Context_ID"].int_value = stage_id
execution.properties["Pipeline_id"].int_value = pipeline_id
execution.custom_properties["seed"].int_value = 7
artifact = pb.Artifact(type_id=dataset_type, uri=args["md5"], name="features.csv:" + args["md5"])
for k, v in {"git_repo": "", "Commit": args["md5"], "url": "features.csv"}.items():
    artifact.properties[k].string_value = v
stage.id = stage_id
exec_id, [artifact_id], _ = store.put_execution(
    execution, [(artifact, pb.Event(type=pb.Event.OUTPUT))], [stage], reuse_context_if_already_exist=True)
print(json.dumps({"execution": exec_id, "artifact": artifact_id}))
"""


def test_we_open_and_extend_an_ml_metadata_store(store_url: str, project: Path) -> None:
    Path("features.csv").write_text("f\n1\n")
    import hashlib

    md5 = hashlib.md5(Path("features.csv").read_bytes()).hexdigest()
    theirs = run_oracle(WRITE_CMF_LIKE, config=connection_config(store_url, project), md5=md5)
    query = CmfQuery(store_url)
    assert query.get_pipeline_names() == ["theirs"]
    [featurize] = query.get_all_exe_in_stage("theirs/featurize")
    assert featurize.id == theirs["execution"] and featurize.custom_properties["seed"] == 7
    writer = cmf.Cmf(filename=store_url, pipeline_name="theirs")
    writer.create_context("train")
    train = writer.create_execution("train", {"epochs": 3})
    writer.log_dataset("features.csv", "input")
    Path("model.bin").write_bytes(b"weights")
    writer.log_model("model.bin", "output")
    writer.finalize()
    assert [a.id for a in query.get_all_parent_artifacts("model.bin") if a.kind == "Dataset"] == [theirs["artifact"]]
    seen = run_oracle(READ_ALL, config=connection_config(store_url, project))
    names = {e["id"]: e for e in seen["executions"]}
    assert set(names) == {theirs["execution"], train.id}
    assert names[train.id]["state"] == "COMPLETE" and names[train.id]["custom"]["epochs"] == 3
    assert names[train.id]["contexts"] == ["theirs/train"]
    assert [theirs["execution"], theirs["artifact"], "OUTPUT"] in seen["events"]
    assert [train.id, theirs["artifact"], "INPUT"] in seen["events"]
    stages = {c["name"]: c for c in seen["contexts"]}
    assert stages["theirs/train"]["parents"] == ["theirs"]
