"""The flow-run summary's markdown, for the executions a run can leave behind."""

from __future__ import annotations

from cmf_orchestrate.prefect._summary import render
from cmf_orchestrate.records import (
    ArtifactRecord,
    ContextRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    ExecutionState,
)

MD5 = "0123456789abcdef0123456789abcdef"
PIPELINE = ContextRecord(id=1, name="nightly", type="Parent_Context")


def _snapshot(
    execution_id: int,
    stage: str,
    state: ExecutionState,
    facts: dict[str, object],
    inputs: tuple[ArtifactRecord, ...] = (),
    outputs: tuple[ArtifactRecord, ...] = (),
) -> ExecutionSnapshot:
    custom = {f"cmf.{k}": v for k, v in facts.items()}
    return ExecutionSnapshot(
        pipeline=PIPELINE,
        stage=ContextRecord(id=2, name=f"nightly/{stage}", type="Pipeline_Stage"),
        execution=ExecutionRecord(id=execution_id, name=stage, type=stage, state=state, custom_properties=custom),
        inputs=inputs,
        outputs=outputs,
    )


def _dataset(artifact_id: int, path: str) -> ArtifactRecord:
    return ArtifactRecord(id=artifact_id, kind="Dataset", name=f"{path}:{MD5}", uri=MD5)


def test_failed_retried_and_long_paths_stay_readable() -> None:
    env = ArtifactRecord(id=9, kind="Environment", name=f"cmf_artifacts/python_env_{MD5}.txt:{MD5}", uri=MD5)
    deep = _dataset(3, "data/2026-01-02/features/very/deep/train|v2.csv")
    markdown = render(
        "brave-fox",
        "run-1",
        "postgresql://cmf:***@db:5432/cmf",
        [
            _snapshot(11, "prepare", ExecutionState.FAILED, {"attempt": 1, "error_type": "pkg.mod.BadBatchError"}),
            _snapshot(12, "prepare", ExecutionState.COMPLETE, {"attempt": 2}, inputs=(env,), outputs=(deep,)),
        ],
        store_argument="postgresql://cmf@db:5432/cmf",
    )

    rows = {line.split("|")[1].strip(): line for line in markdown.splitlines() if line.startswith("| 1")}
    assert "**FAILED**<br>BadBatchError" in rows["11"]
    assert "COMPLETE<br>try 2" in rows["12"]
    # The long path keeps its end, its pipe is escaped, its md5 is 8 digits; the environment is not in the rows.
    assert f"`…/deep/train\\|v2.csv` {MD5[:8]}" in rows["12"] and MD5 not in markdown
    assert "python_env" not in markdown and f"Python environment `{MD5[:8]}`" in markdown
    assert "1 COMPLETE, 1 FAILED" in markdown
    assert "cmf-orchestrate lineage 'data/2026-01-02/features/very/deep/train|v2.csv' --store" in markdown
    assert "postgresql://cmf@db:5432/cmf" in markdown and "cmf:***@" in markdown


def test_a_run_without_files_has_no_lineage_command() -> None:
    markdown = render("calm-owl", "run-2", "sqlite:////srv/mlmd", [_snapshot(1, "noop", ExecutionState.CACHED, {})])
    assert "1 CACHED" in markdown and "| 1 | noop | CACHED | - | - |" in markdown
    assert "cmf-orchestrate lineage" not in markdown
