"""The same graph assertions against a real Neo4j server, when ``NEO4J_URI`` names one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cmf_orchestrate import graph
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import open_store
from tests.graph._expect import expected_edges, expected_labels, seed_query_rows
from tests.graph._pipeline import TRICKY, run_example
from tests.graph.conftest import GraphState, edges_by_id

# Read at collection: the `project` fixture clears these variables for the test itself.
URI = os.environ.get("NEO4J_URI", "")
USER = os.environ.get("NEO4J_USER_NAME", "neo4j")
PASSWORD = os.environ.get("NEO4J_PASSWD", "")

pytestmark = pytest.mark.skipif(
    not URI, reason="NEO4J_URI is not set: set NEO4J_URI, NEO4J_USER_NAME and NEO4J_PASSWD to run against Neo4j"
)


def _rows(driver: Any, query: str, **params: Any) -> list[Any]:
    records, _, _ = driver.execute_query(query, params)
    return [tuple(r.values()) for r in records]


def read_store_graph(driver: Any, store_id: str) -> GraphState:
    """The nodes and relationships of one store (a shared server may hold others)."""
    labels: dict[str, int] = {}
    nodes: dict[tuple[str, str], dict[str, Any]] = {}
    for names, props in _rows(
        driver, "MATCH (n) WHERE n.store = $store RETURN labels(n), properties(n)", store=store_id
    ):
        [label] = names
        labels[label] = labels.get(label, 0) + 1
        key = (label, props["uid"])
        assert key not in nodes, f"duplicate node {key}"
        nodes[key] = dict(props)
    edges: set[tuple[str, str, str, Any]] = set()
    query = "MATCH (a)-[r]->(b) WHERE a.store = $store RETURN type(r), a.uid, b.uid, r.execution_uid"
    for edge in _rows(driver, query, store=store_id):
        assert edge not in edges, f"duplicate relationship {edge}"
        edges.add(edge)
    return GraphState(labels, nodes, edges)


@pytest.fixture
def neo4j_driver() -> Iterator[Any]:
    import neo4j

    driver = neo4j.GraphDatabase.driver(URI, auth=(USER, PASSWORD))
    try:
        driver.verify_connectivity()
    except Exception as exc:  # any failure to reach the configured server
        pytest.fail(f"NEO4J_URI is set but the server cannot be used: {type(exc).__name__}")
    yield driver
    driver.close()


def test_example_pipeline_on_neo4j(project: Path, neo4j_driver: Any) -> None:
    settings = CmfSettings(
        store=str(project / "mlmd"),
        project_root=project,
        graph=True,
        neo4j_uri=URI,
        neo4j_user=USER,
        neo4j_password=PASSWORD,
    )
    ids = run_example(settings, run_id="neo4j")
    store = open_store(settings.location)
    store_id = store.store_id
    try:
        assert store.unsynced_execution_ids() == []
        snapshots = list(store.execution_snapshots(ids))
        state = read_store_graph(neo4j_driver, store_id)
        assert state.labels == expected_labels(snapshots)
        assert edges_by_id(state) == expected_edges(snapshots)
        [pipeline] = [p for (label, _), p in state.nodes.items() if label == "Pipeline"]
        assert pipeline["name"] == TRICKY
        seed = _rows(
            neo4j_driver,
            "MATCH (a:Execution)-[r]-(b) WHERE (b:Dataset or b:Model or b:Metrics) AND a.store = $store RETURN a,r,b",
            store=store_id,
        )
        assert len(seed) == seed_query_rows(snapshots)

        report = graph.sync(settings, rebuild=True)
        assert report.ok and report.written == len(ids)
        assert read_store_graph(neo4j_driver, store_id) == state
    finally:
        neo4j_driver.execute_query("MATCH (n) WHERE n.store = $store DETACH DELETE n", {"store": store_id})
