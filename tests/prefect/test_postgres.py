"""The example flow against an MLMD store on PostgreSQL (a server shared by many workers)."""

from __future__ import annotations

import pytest
from prefect_testlib import Project

from cmf_orchestrate import CmfQuery, ExecutionState
from flows.get_started import get_started

pytestmark = pytest.mark.postgres


def test_get_started_flow_on_postgresql(project: Project, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMF_STORE", postgres_url)

    state = get_started(split="pg", n_estimators=25, return_state=True)

    assert state.is_completed(), state
    query = CmfQuery(settings=project.settings.replace(store=postgres_url))
    assert query.store.location.backend == "postgresql"
    runs = query.get_executions_by_fact("flow_run_id", str(state.state_details.flow_run_id))
    assert [r.stage.name for r in runs] == [f"get-started/{s}" for s in ("prepare", "featurize", "train", "evaluate")]
    assert {r.execution.state for r in runs} == {ExecutionState.COMPLETE}
    [model] = [a for a in runs[2].outputs if a.kind == "Model"]
    assert model.path == "model/pg/rf.pkl"
    assert [e.id for e in query.get_producer_execution(model.name)] == [runs[2].execution.id]
    # Nothing went to the embedded default store.
    assert not (project.root / "mlmd").exists()
