"""The graph expected from an MLMD store, derived from its events (not from the writer)."""

from __future__ import annotations

from collections.abc import Sequence

from cmf_orchestrate.records import ExecutionSnapshot

Key = tuple[str, int]


def expected_edges(snapshots: Sequence[ExecutionSnapshot]) -> set[tuple[str, Key, Key]]:
    """Every relationship the projection of ``snapshots`` must hold."""
    edges: set[tuple[str, Key, Key]] = set()
    for snap in snapshots:
        execution: Key = ("Execution", snap.execution.id)
        stage: Key = ("Stage", snap.stage.id)
        edges.add(("contains", ("Pipeline", snap.pipeline.id), stage))
        edges.add(("runs", stage, execution))
        for artifact in snap.inputs:
            edges.add(("input", (artifact.kind, artifact.id), execution))
        for artifact in snap.outputs:
            edges.add(("output", execution, (artifact.kind, artifact.id)))
        for producers in snap.producers.values():
            edges.update(("linked", ("Execution", p), execution) for p in producers)
        for i in snap.inputs:
            for o in snap.outputs:
                if i.id != o.id:
                    edges.add(("derived", (i.kind, i.id), (o.kind, o.id)))
    return edges


def expected_labels(snapshots: Sequence[ExecutionSnapshot]) -> dict[str, int]:
    """Node count per label."""
    keys: set[Key] = set()
    for snap in snapshots:
        keys.update({("Pipeline", snap.pipeline.id), ("Stage", snap.stage.id), ("Execution", snap.execution.id)})
        keys.update((a.kind, a.id) for a in (*snap.inputs, *snap.outputs))
    counts: dict[str, int] = {}
    for label, _ in keys:
        counts[label] = counts.get(label, 0) + 1
    return counts


def seed_query_rows(snapshots: Sequence[ExecutionSnapshot]) -> int:
    """Rows of the seed's query: execution-artifact edges to Dataset, Model or Metrics."""
    kinds = {"Dataset", "Model", "Metrics"}
    return sum(1 for s in snapshots for a in (*s.inputs, *s.outputs) if a.kind in kinds)
