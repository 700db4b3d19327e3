"""The Cypher text the graph layer sends, and the rows it binds to it.

Every statement is a constant built once at import time. Labels and relationship types
come from closed sets (the CMF artifact kinds), never from data: every value an execution
carries travels as a parameter. Every statement is row-based (``UNWIND $rows``), so one
transaction can carry one execution (a task run) or a batch of them (``graph sync``) with
the same text. The statements are written in the part of openCypher that Neo4j 5 and
FalkorDB share: ``MERGE``, ``ON CREATE SET``, ``SET n += map``, ``UNWIND``, ``WITH``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    Value,
)

PIPELINE = "Pipeline"
STAGE = "Stage"
EXECUTION = "Execution"
ARTIFACT_LABELS: tuple[str, ...] = tuple(kind.value for kind in ArtifactKind)
NODE_LABELS: tuple[str, ...] = (PIPELINE, STAGE, EXECUTION, *ARTIFACT_LABELS)
RELATIONSHIP_TYPES: tuple[str, ...] = ("contains", "runs", "input", "output", "linked", "derived")

#: Fact names that describe the mirror itself and are not projected.
_PRIVATE_FACTS = frozenset({"graph_synced"})

PIPELINES = "UNWIND $rows AS row\nMERGE (p:Pipeline {uid: row.uid})\nSET p += row.props"

STAGES = (
    "UNWIND $rows AS row\n"
    "MERGE (s:Stage {uid: row.uid})\n"
    "SET s += row.props\n"
    "WITH s, row\n"
    "MATCH (p:Pipeline {uid: row.pipeline_uid})\n"
    "MERGE (p)-[:contains]->(s)"
)

EXECUTIONS = (
    "UNWIND $rows AS row\n"
    "MERGE (e:Execution {uid: row.uid})\n"
    "SET e += row.props\n"
    "WITH e, row\n"
    "MATCH (s:Stage {uid: row.stage_uid})\n"
    "MERGE (s)-[:runs]->(e)"
)


def _inputs(label: str) -> str:
    return (
        "UNWIND $rows AS row\n"
        "MATCH (e:Execution {uid: row.execution_uid})\n"
        f"MERGE (a:{label} {{uid: row.uid}})\n"
        "SET a += row.props\n"
        "MERGE (a)-[:input]->(e)"
    )


def _outputs(label: str) -> str:
    return (
        "UNWIND $rows AS row\n"
        "MATCH (e:Execution {uid: row.execution_uid})\n"
        f"MERGE (a:{label} {{uid: row.uid}})\n"
        "SET a += row.props\n"
        "MERGE (e)-[:output]->(a)"
    )


INPUTS: Mapping[str, str] = {label: _inputs(label) for label in ARTIFACT_LABELS}
OUTPUTS: Mapping[str, str] = {label: _outputs(label) for label in ARTIFACT_LABELS}

# A producer not mirrored yet gets a node holding only its identity; its own write
# (sync) fills it in, so the order in which executions reach the graph does not matter.
LINKS = (
    "UNWIND $rows AS row\n"
    "MATCH (e:Execution {uid: row.execution_uid})\n"
    "MERGE (p:Execution {uid: row.uid})\n"
    "ON CREATE SET p.store = row.store, p.id = row.id\n"
    "MERGE (p)-[:linked]->(e)"
)

# Derivation follows the input and output edges just written, anchored on the execution,
# so it needs no label of its own and holds one edge per (input, output, execution).
DERIVATIONS = (
    "UNWIND $rows AS uid\n"
    "MATCH (i)-[:input]->(e:Execution {uid: uid})-[:output]->(o)\n"
    "WHERE i <> o\n"
    "MERGE (i)-[:derived {execution_uid: uid}]->(o)"
)

#: Neo4j constraints: they make MERGE race-free between concurrent task processes and
#: give every identity lookup an index.
SCHEMA: tuple[str, ...] = tuple(
    f"CREATE CONSTRAINT cmf_{label.lower()}_uid IF NOT EXISTS FOR (n:{label}) REQUIRE n.uid IS UNIQUE"
    for label in NODE_LABELS
)

#: Every data statement text the writer can send.
WRITE_TEXTS: tuple[str, ...] = (
    PIPELINES,
    STAGES,
    EXECUTIONS,
    *INPUTS.values(),
    *OUTPUTS.values(),
    LINKS,
    DERIVATIONS,
)


def context_uid(store_id: str, context_id: int) -> str:
    """Graph identity of an MLMD context (pipeline or stage)."""
    return f"{store_id}#context/{context_id}"


def execution_uid(store_id: str, execution_id: int) -> str:
    """Graph identity of an MLMD execution."""
    return f"{store_id}#execution/{execution_id}"


def artifact_uid(store_id: str, artifact_id: int) -> str:
    """Graph identity of an MLMD artifact."""
    return f"{store_id}#artifact/{artifact_id}"


def _props(reserved: dict[str, Value | None], *free: Mapping[str, Value]) -> dict[str, Value]:
    """Node properties: ``free`` maps first (user data), then ``reserved`` on top.

    A user property never replaces an identity or query property; ``None`` and empty
    values are left out because ``SET n += {k: null}`` would delete ``k``.
    """
    props: dict[str, Value] = {}
    for mapping in free:
        for key, value in mapping.items():
            if key and isinstance(value, (str, int, float)):
                props[key] = value
    for key, fixed in reserved.items():
        if fixed is None or fixed == "":
            props.pop(key, None)
        else:
            props[key] = fixed
    return props


def _context_props(store_id: str, context: ContextRecord, **extra: Value) -> dict[str, Value]:
    return _props(
        {"store": store_id, "id": context.id, "name": context.name, "type": context.type, **extra},
        context.properties,
        context.custom_properties,
    )


def _execution_props(store_id: str, snapshot: ExecutionSnapshot) -> dict[str, Value]:
    execution: ExecutionRecord = snapshot.execution
    props = execution.properties
    facts = {
        key[len("cmf.") :]: value
        for key, value in execution.custom_properties.items()
        if key.startswith("cmf.") and key[len("cmf.") :] not in _PRIVATE_FACTS
    }
    reserved: dict[str, Value | None] = {
        **facts,
        "store": store_id,
        "id": execution.id,
        "uuid": execution.uuid,
        "name": execution.name,
        "type": execution.type,
        "state": execution.state.value,
        "pipeline": snapshot.pipeline.name,
        "pipeline_id": snapshot.pipeline.id,
        "stage": snapshot.stage.name,
        "stage_id": snapshot.stage.id,
        "command": props.get("Execution"),
        "git_repo": props.get("Git_Repo"),
        "git_start_commit": props.get("Git_Start_Commit"),
        "git_end_commit": props.get("Git_End_Commit"),
        "create_time": execution.create_time_ms or None,
        "update_time": execution.update_time_ms or None,
    }
    return _props(reserved, execution.parameters)


def _artifact_props(store_id: str, artifact: ArtifactRecord) -> dict[str, Value]:
    reserved: dict[str, Value | None] = {
        "store": store_id,
        "id": artifact.id,
        "name": artifact.name,
        "type": str(artifact.kind),
        "uri": artifact.uri,
        "path": artifact.path,
        "url": artifact.properties.get("url"),
        "create_time": artifact.create_time_ms or None,
    }
    return _props(reserved, artifact.custom_properties, artifact.properties)


def statement_rows(snapshots: Iterable[ExecutionSnapshot], store_id: str) -> list[tuple[str, list[Any]]]:
    """The (text, rows) pairs projecting ``snapshots``, in execution order.

    Nodes come before the edges that need them: pipelines, stages, executions, input
    artifacts, output artifacts, producer links, then derivations. Statements with no
    rows are left out.
    """
    pipelines: dict[str, dict[str, Any]] = {}
    stages: dict[str, dict[str, Any]] = {}
    executions: list[dict[str, Any]] = []
    inputs: dict[str, list[dict[str, Any]]] = {label: [] for label in ARTIFACT_LABELS}
    outputs: dict[str, list[dict[str, Any]]] = {label: [] for label in ARTIFACT_LABELS}
    links: list[dict[str, Any]] = []
    derivations: list[str] = []
    for snapshot in snapshots:
        pipeline_uid = context_uid(store_id, snapshot.pipeline.id)
        stage_uid = context_uid(store_id, snapshot.stage.id)
        uid = execution_uid(store_id, snapshot.execution.id)
        pipelines[pipeline_uid] = {"uid": pipeline_uid, "props": _context_props(store_id, snapshot.pipeline)}
        stages[stage_uid] = {
            "uid": stage_uid,
            "pipeline_uid": pipeline_uid,
            "props": _context_props(store_id, snapshot.stage, pipeline=snapshot.pipeline.name),
        }
        executions.append({"uid": uid, "stage_uid": stage_uid, "props": _execution_props(store_id, snapshot)})
        for artifacts, target in ((snapshot.inputs, inputs), (snapshot.outputs, outputs)):
            for artifact in artifacts:
                target[_label(artifact)].append(
                    {
                        "uid": artifact_uid(store_id, artifact.id),
                        "execution_uid": uid,
                        "props": _artifact_props(store_id, artifact),
                    }
                )
        producer_ids = sorted({p for ids in snapshot.producers.values() for p in ids if p != snapshot.execution.id})
        links.extend(
            {"uid": execution_uid(store_id, p), "execution_uid": uid, "store": store_id, "id": p} for p in producer_ids
        )
        if snapshot.inputs and snapshot.outputs:
            derivations.append(uid)
    pairs: list[tuple[str, list[Any]]] = [
        (PIPELINES, list(pipelines.values())),
        (STAGES, list(stages.values())),
        (EXECUTIONS, executions),
    ]
    pairs += [(INPUTS[label], rows) for label, rows in inputs.items()]
    pairs += [(OUTPUTS[label], rows) for label, rows in outputs.items()]
    pairs += [(LINKS, links), (DERIVATIONS, derivations)]
    return [(text, rows) for text, rows in pairs if rows]


def _label(artifact: ArtifactRecord) -> str:
    """The node label of an artifact: its CMF kind, or ``Dataset`` for a foreign type."""
    kind = str(artifact.kind)
    return kind if kind in ARTIFACT_LABELS else ArtifactKind.DATASET.value
