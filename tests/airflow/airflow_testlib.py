"""Readers shared by the Airflow tests: MLMD through the core's query API, Airflow's own tables."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cmf_orchestrate import CmfQuery, CmfSettings, EventType, ExecutionRecord

#: The logical date every dag.test() run uses; ``{{ ds }}`` renders as DS.
LOGICAL_DATE_ISO = "2026-01-02T00:00:00+00:00"
DS = "2026-01-02"


def query(root: Path, store: str = "mlmd") -> CmfQuery:
    """A query over the store of the project at ``root``."""
    return CmfQuery(settings=CmfSettings(store=store, project_root=root))


def executions(q: CmfQuery, pipeline: str, task_id: str) -> list[ExecutionRecord]:
    """Executions of one task, oldest first."""
    return sorted(q.get_all_exe_in_stage(f"{pipeline}/{task_id}"), key=lambda e: e.id)


def only_execution(q: CmfQuery, pipeline: str, task_id: str) -> ExecutionRecord:
    found = executions(q, pipeline, task_id)
    assert len(found) == 1, f"{pipeline}/{task_id}: expected one execution, got {len(found)}"
    return found[0]


def artifacts(q: CmfQuery, execution_id: int, event: EventType) -> dict[str, Any]:
    """Declared (file) artifacts of an execution by path, the environment file left out."""
    found = q.get_artifacts_for_execution(execution_id).get(event, [])
    return {a.path: a for a in found if a.kind != "Environment"}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def asset_events(run_id: str) -> dict[str, dict[str, Any]]:
    """Airflow asset events emitted by one DAG run: asset URI -> event extra."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run_id)).all()
        return {row.asset.uri: dict(row.extra or {}) for row in rows}


def task_states(dag_run: Any) -> dict[tuple[str, int], tuple[str, int]]:
    """(task id, map index) -> (state, try number) of a DAG run's task instances."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
        ).all()
        return {(ti.task_id, ti.map_index): (str(ti.state), ti.try_number) for ti in rows}
