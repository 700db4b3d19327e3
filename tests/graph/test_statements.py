"""The statements are constant texts with every value in parameters."""

from __future__ import annotations

from typing import Any

from cmf_orchestrate import _cypher, graph
from tests.graph._snapshots import NASTY, every_kind_snapshot
from tests.graph.conftest import FalkorBackend, edges_by_id, read_graph


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def test_every_statement_is_a_constant_text() -> None:
    statements = graph.statements_for(every_kind_snapshot(), "store-1")
    texts = [s.text for s in statements]
    assert set(texts) == set(_cypher.WRITE_TEXTS)
    assert len(texts) == len(_cypher.WRITE_TEXTS)
    for statement in statements:
        assert set(statement.params) == {"rows"}
        assert NASTY not in statement.text and "store-1" not in statement.text
        for value in _strings(statement.params["rows"]):
            # artifact kinds are stored as a "type" property and are also label names
            assert value in graph.NODE_LABELS or value not in statement.text


def test_reserved_properties_win_and_private_facts_stay_out() -> None:
    [_, _, executions, *_] = graph.statements_for(every_kind_snapshot(), "store-1")
    [row] = executions.params["rows"]
    props = row["props"]
    assert props["id"] == 7
    assert props["attempt"] == 2
    assert props["error_message"] == NASTY
    assert props[NASTY] == NASTY
    assert props["lr"] == 0.01
    assert "graph_synced" not in props
    assert row["uid"] == "store-1#execution/7"


def test_empty_groups_are_not_sent() -> None:
    snapshot = every_kind_snapshot()
    bare = type(snapshot)(snapshot.pipeline, snapshot.stage, snapshot.execution)
    texts = [s.text for s in graph.statements_for(bare, "s")]
    assert texts == [_cypher.PIPELINES, _cypher.STAGES, _cypher.EXECUTIONS]


def test_every_statement_runs_on_falkordb_and_stores_values_verbatim(falkor_backend: FalkorBackend) -> None:
    snapshot = every_kind_snapshot()
    falkor_backend.write(graph.statements_for(snapshot, "store-1"))
    falkor_backend.write(graph.statements_for(snapshot, "store-1"))
    state = read_graph(falkor_backend.graph)
    assert state.labels == {
        "Pipeline": 1,
        "Stage": 1,
        "Execution": 3,  # the execution and two producers known only by identity
        **{kind: 2 for kind in _cypher.ARTIFACT_LABELS},
    }
    pipeline = state.nodes[("Pipeline", "store-1#context/1")]
    assert pipeline["name"] == NASTY
    execution = state.nodes[("Execution", "store-1#execution/7")]
    assert execution[NASTY] == NASTY and execution["error_message"] == NASTY
    assert execution["state"] == "FAILED"
    producer = state.nodes[("Execution", "store-1#execution/3")]
    assert producer == {"uid": "store-1#execution/3", "store": "store-1", "id": 3}
    edges = edges_by_id(state)
    assert ("linked", ("Execution", 3), ("Execution", 7)) in edges
    assert ("linked", ("Execution", 4), ("Execution", 7)) in edges
    derived = {e for e in edges if e[0] == "derived"}
    assert len(derived) == len(_cypher.ARTIFACT_LABELS) ** 2  # every input to every output
    assert all(via == "store-1#execution/7" for rel, _, _, via in state.edges if rel == "derived")
