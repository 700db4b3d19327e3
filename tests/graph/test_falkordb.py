"""The writer's exact statements, run on an embedded FalkorDB, build the expected graph."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from cmf_orchestrate import graph
from cmf_orchestrate.records import ExecutionState
from tests.graph._expect import expected_edges, expected_labels, seed_query_rows
from tests.graph._pipeline import STAGES, TRICKY
from tests.graph.conftest import Example, FalkorBackend, FalkorServer, edges_by_id, read_graph

SEED_QUERY = "MATCH (a:Execution)-[r]-(b) WHERE (b:Dataset or b:Model or b:Metrics) RETURN a,r,b"


def _mirror_all(example: Example, backend: FalkorBackend, ids: list[int] | None = None) -> None:
    for execution_id in ids if ids is not None else example.ids:
        assert graph.mirror_execution(example.settings, example.store, execution_id, backend=backend)


def test_example_pipeline_graph(example: Example, falkor_backend: FalkorBackend) -> None:
    _mirror_all(example, falkor_backend)
    state = read_graph(falkor_backend.graph)
    snapshots = list(example.store.execution_snapshots(example.ids))

    assert state.labels == expected_labels(snapshots)
    assert state.labels == {
        "Pipeline": 1,
        "Stage": 5,
        "Execution": 5,
        "Environment": 1,
        "Dataset": 5,
        "Model": 1,
        "Metrics": 2,
        "Step_Metrics": 1,
        "Dataslice": 1,
    }
    edges = edges_by_id(state)
    assert edges == expected_edges(snapshots)
    counts: dict[str, int] = {}
    for rel, _, _ in edges:
        counts[rel] = counts.get(rel, 0) + 1
    assert counts == {"contains": 5, "runs": 5, "input": 11, "output": 10, "linked": 5, "derived": 25}
    # producer -> consumer, stage by stage
    by_stage = {s.execution.id: s.stage.name.rsplit("/", 1)[1] for s in snapshots}
    links = {(by_stage[a[1]], by_stage[b[1]]) for rel, a, b in edges if rel == "linked"}
    assert links == {
        ("ingest", "prepare"),
        ("prepare", "featurize"),
        ("featurize", "train"),
        ("featurize", "evaluate"),
        ("train", "evaluate"),
    }

    rows = falkor_backend.graph.query(SEED_QUERY).result_set
    assert len(rows) == seed_query_rows(snapshots) == 14

    [pipeline] = [p for (label, _), p in state.nodes.items() if label == "Pipeline"]
    assert pipeline["name"] == TRICKY
    stages = sorted(p["name"] for (label, _), p in state.nodes.items() if label == "Stage")
    assert stages == sorted(f"{TRICKY}/{s}" for s in STAGES)
    executions = {p["id"]: p for (label, _), p in state.nodes.items() if label == "Execution"}
    for snap in snapshots:
        node = executions[snap.execution.id]
        assert node["uuid"] == snap.execution.uuid
        assert node["state"] == ExecutionState.COMPLETE.value
        assert node["orchestrator"] == "cmf"
        assert node["run_id"] == "run-1"
        assert node["attempt"] == 1
        assert node["pipeline"] == TRICKY
        assert node["store"] == example.store.store_id
        assert node["start_time"] and node["end_time"]
        assert "graph_synced" not in node
    prepare = next(p for p in executions.values() if p["type"] == "prepare")
    assert prepare["note"] == 'q"uo\\te'
    datasets = {p["path"]: p for (label, _), p in state.nodes.items() if label == "Dataset"}
    raw = next(a for s in snapshots for a in s.outputs if a.path == "data/raw.csv")
    assert datasets["data/raw.csv"]["uri"] == raw.uri == datasets["data/raw.csv"]["Commit"]
    assert datasets["data/raw.csv"]["url"] == "data/raw.csv"
    [metrics] = [p for (label, _), p in state.nodes.items() if label == "Metrics" and p["metrics_name"] == "scores"]
    assert 0.0 <= metrics["accuracy"] <= 1.0

    assert example.store.unsynced_execution_ids() == []
    for record in example.store.executions_by_id(example.ids):
        assert record.fact("graph_synced") == 1


def test_writing_twice_changes_nothing(example: Example, falkor_backend: FalkorBackend) -> None:
    _mirror_all(example, falkor_backend)
    first = read_graph(falkor_backend.graph)
    _mirror_all(example, falkor_backend)
    report = graph.sync(example.settings, rebuild=True, store=example.store, backend=falkor_backend)
    assert report.ok and report.written == len(example.ids)
    assert read_graph(falkor_backend.graph) == first


def test_order_of_writes_does_not_matter(
    example: Example, falkor_backend: FalkorBackend, falkordb: FalkorServer
) -> None:
    _mirror_all(example, falkor_backend, list(reversed(example.ids)))
    backwards = read_graph(falkor_backend.graph)
    forwards_backend = FalkorBackend(falkordb.graph())
    forwards_backend.ensure_schema()
    try:
        _mirror_all(example, forwards_backend)
        assert backwards == read_graph(forwards_backend.graph)
    finally:
        forwards_backend.graph.delete()


def test_rebuild_in_batches_reports_progress(example: Example, falkor_backend: FalkorBackend) -> None:
    calls: list[tuple[int, int]] = []
    report = graph.sync(
        example.settings,
        rebuild=True,
        store=example.store,
        backend=falkor_backend,
        batch_size=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.ok
    assert (report.pending, report.written, report.failed) == (5, 5, 0)
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
    batched = read_graph(falkor_backend.graph)
    snapshots = list(example.store.execution_snapshots(example.ids))
    assert edges_by_id(batched) == expected_edges(snapshots)
    assert batched.labels == expected_labels(snapshots)


def test_sync_waits_out_a_stopped_server(example: Example) -> None:
    """The graph server goes away: sync reports everything pending; once back, sync pushes it all."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="cmf-falkor-") as directory:
        server = FalkorServer(Path(directory))
        server.start()
        backend = FalkorBackend(server.graph("outage"))
        try:
            example.store.set_graph_synced(example.ids, False)
            server.stop()
            down = graph.sync(example.settings, store=example.store, backend=backend)
            assert (down.pending, down.written, down.failed) == (5, 0, 5)
            assert not down.ok and down.error and "unavailable" in down.error
            assert example.store.unsynced_execution_ids() == example.ids
            assert graph.pending(example.settings, store=example.store) == 5

            server.start()
            backend = FalkorBackend(server.graph("outage"))
            up = graph.sync(example.settings, store=example.store, backend=backend)
            assert up.ok and (up.pending, up.written, up.failed) == (5, 5, 0)
            assert graph.pending(example.settings, store=example.store) == 0
            again = graph.sync(example.settings, store=example.store, backend=backend)
            assert (again.pending, again.written) == (0, 0) and again.ok
            snapshots = list(example.store.execution_snapshots(example.ids))
            assert edges_by_id(read_graph(backend.graph)) == expected_edges(snapshots)
        finally:
            server.stop()


def test_a_silent_server_times_out_and_leaves_the_execution_pending(
    example: Example, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that accepts connections and never answers: the real driver gives up in time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"bolt://127.0.0.1:{silent.getsockname()[1]}"
        backend = graph.Neo4jBackend(uri, "neo4j", "hunter2-pw", timeout=0.5, retry_time=0.5)
        execution_id = example.ids[-1]
        started = time.monotonic()
        try:
            with caplog.at_level(logging.WARNING, logger="cmf_orchestrate.graph"):
                assert not graph.mirror_execution(example.settings, example.store, execution_id, backend=backend)
        finally:
            backend.close()
    assert time.monotonic() - started < 10
    assert example.store.unsynced_execution_ids() == [execution_id]
    assert "unavailable" in caplog.text and "hunter2-pw" not in caplog.text
    example.store.set_graph_synced([execution_id], True)


def test_an_unknown_execution_is_not_mirrored(example: Example, falkor_backend: FalkorBackend) -> None:
    assert not graph.mirror_execution(example.settings, example.store, 10_000_000, backend=falkor_backend)
    assert read_graph(falkor_backend.graph).labels == {}
