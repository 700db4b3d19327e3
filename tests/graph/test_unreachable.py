"""Neo4j down never fails a task: the real driver against a closed local port."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from cmf_orchestrate import graph
from cmf_orchestrate.records import ExecutionState
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import open_store
from tests.graph._expect import expected_edges, expected_labels
from tests.graph._pipeline import run_example
from tests.graph.conftest import FalkorBackend, edges_by_id, read_graph

PASSWORD = "pw-Zq7'\"s3cr3t"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_tasks_succeed_and_stay_pending_until_sync(
    project: Path, caplog: pytest.LogCaptureFixture, falkor_backend: FalkorBackend
) -> None:
    uri = f"bolt://127.0.0.1:{_closed_port()}"
    settings = CmfSettings(
        store=str(project / "mlmd"),
        project_root=project,
        graph=True,
        neo4j_uri=uri,
        neo4j_user="neo4j",
        neo4j_password=PASSWORD,
    )
    with caplog.at_level(logging.WARNING):
        ids = run_example(settings, run_id="offline")
    store = open_store(settings.location)

    assert [e.state for e in store.executions_by_id(ids)] == [ExecutionState.COMPLETE] * 5
    assert store.unsynced_execution_ids() == ids
    assert graph.pending(settings) == 5
    warnings = [r for r in caplog.records if r.name == "cmf_orchestrate.graph"]
    assert warnings and all("not mirrored" in r.getMessage() for r in warnings)
    assert "unavailable" in warnings[0].getMessage()
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)

    # Still down: sync pushes nothing and says so.
    offline = graph.Neo4jBackend(uri, "neo4j", PASSWORD, retry_time=0)
    try:
        report = graph.sync(settings, backend=offline)
    finally:
        offline.close()
    assert (report.pending, report.written, report.failed) == (5, 0, 5)
    assert not report.ok and report.error is not None
    assert "unavailable" in report.error and PASSWORD not in report.error
    assert store.unsynced_execution_ids() == ids

    # The command line says the same.
    from click.testing import CliRunner

    from cmf_orchestrate.cli import cli

    env = {"NEO4J_URI": uri, "NEO4J_USER_NAME": "neo4j", "NEO4J_PASSWD": PASSWORD}
    args = ["--store", str(project / "mlmd"), "--json"]
    status = CliRunner().invoke(cli, ["graph", "status", *args], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout) == {"pending": 5}
    pushed = CliRunner().invoke(cli, ["graph", "sync", *args], env=env)
    assert pushed.exit_code == 1
    data = json.loads(pushed.stdout)
    assert (data["pending"], data["written"], data["failed"]) == (5, 0, 5)
    assert "unavailable" in data["error"]
    assert PASSWORD not in pushed.output

    # The graph is back: everything pending goes through, once.
    report = graph.sync(settings, backend=falkor_backend)
    assert report.ok and (report.pending, report.written) == (5, 5)
    assert store.unsynced_execution_ids() == []
    state = read_graph(falkor_backend.graph)
    snapshots = list(store.execution_snapshots(ids))
    assert state.labels == expected_labels(snapshots)
    assert edges_by_id(state) == expected_edges(snapshots)
    assert {p["run_id"] for (label, _), p in state.nodes.items() if label == "Execution"} == {"offline"}


def test_sync_without_a_uri_is_a_config_error(project: Path) -> None:
    from cmf_orchestrate.errors import ConfigError

    settings = CmfSettings(store=str(project / "mlmd"), project_root=project)
    with pytest.raises(ConfigError, match="NEO4J_URI"):
        graph.sync(settings)


def test_uri_password_is_redacted() -> None:
    assert graph.redact_uri("neo4j+s://me:hunter2@db.example:7687/x") == "neo4j+s://me:***@db.example:7687/x"
    assert graph.redact_uri("bolt://db.example:7687") == "bolt://db.example:7687"


def test_seed_api_with_graph_true_reads_the_seed_variables(
    project: Path, monkeypatch: pytest.MonkeyPatch, falkor_backend: FalkorBackend
) -> None:
    """``Cmf(graph=True)`` with the seed's NEO4J_* variables; Neo4j is down, then synced."""
    from cmf_orchestrate.cmf import Cmf

    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NEO4J_USER_NAME", "neo4j")
    monkeypatch.setenv("NEO4J_PASSWD", PASSWORD)
    (project / "raw.csv").write_text("a,b\n1,2\n")
    metawriter = Cmf(filename="mlmd", pipeline_name="seed pipeline", graph=True)
    metawriter.create_context(pipeline_stage="prepare")
    execution = metawriter.create_execution(execution_type="prepare", custom_properties={"split": 0.2})
    metawriter.log_dataset("raw.csv", "input")
    (project / "train.csv").write_text("a,b\n1,2\n3,4\n")
    metawriter.log_dataset("train.csv", "output")
    metawriter.finalize()

    store = open_store(metawriter.settings.location)
    assert store.execution(execution.id).state is ExecutionState.COMPLETE  # type: ignore[union-attr]
    assert store.unsynced_execution_ids() == [execution.id]

    report = graph.sync(metawriter.settings, backend=falkor_backend)
    assert report.ok and report.written == 1
    rows = falkor_backend.graph.query(
        "MATCH (a:Execution)-[r]-(b) WHERE (b:Dataset or b:Model or b:Metrics) RETURN type(r), b.path ORDER BY b.path"
    ).result_set
    assert rows == [["input", "raw.csv"], ["output", "train.csv"]]
