"""A hand-built snapshot touching every statement the writer can send."""

from __future__ import annotations

from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    ExecutionState,
)

NASTY = 'a "b" \\c\\ it\'s } RETURN 1 UNION MATCH (n) DETACH DELETE n //'


def every_kind_snapshot() -> ExecutionSnapshot:
    """An execution with every artifact kind as input and as output, and producers."""
    kinds = list(ArtifactKind)
    inputs = tuple(
        ArtifactRecord(
            id=10 + i,
            kind=kind.value,
            name=f"in/{kind.value}/{NASTY}:md5{i}",
            uri=f"md5{i}",
            properties={"url": f"in/{kind.value}/{NASTY}", "Commit": f"md5{i}"},
            custom_properties={NASTY: NASTY, "score": 0.5 + i},
        )
        for i, kind in enumerate(kinds)
    )
    outputs = tuple(
        ArtifactRecord(
            id=20 + i,
            kind=kind.value,
            name=f"out/{kind.value}:md5o{i}",
            uri=f"md5o{i}",
            properties={"url": f"out/{kind.value}"},
        )
        for i, kind in enumerate(kinds)
    )
    return ExecutionSnapshot(
        pipeline=ContextRecord(1, NASTY, "Parent_Context"),
        stage=ContextRecord(2, f"{NASTY}/stage", "Pipeline_Stage"),
        execution=ExecutionRecord(
            id=7,
            name=NASTY,
            type="Train Stage 7",
            state=ExecutionState.FAILED,
            properties={"Execution_uuid": "u-7", "Pipeline_Type": NASTY, "Context_ID": 2, "Pipeline_id": 1},
            custom_properties={
                "cmf.attempt": 2,
                "cmf.error_message": NASTY,
                "cmf.graph_synced": 0,
                "lr": 0.01,
                NASTY: NASTY,
                "id": "a user parameter named like a reserved property",
            },
            create_time_ms=1,
            update_time_ms=2,
        ),
        inputs=inputs,
        outputs=outputs,
        producers={10: (3, 4), 11: (4,)},
    )
