"""Helpers of the Prefect adapter tests (importable by name from the test modules)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cmf_orchestrate import CmfQuery, CmfSettings, ExecutionRecord

T = TypeVar("T")


@dataclass
class Project:
    """A project root with its DVC repository and MLMD store, as tasks see it."""

    root: Path
    settings: CmfSettings

    def write(self, rel: str, text: str = "x\n") -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def query(self) -> CmfQuery:
        return CmfQuery(settings=self.settings)

    def executions(self, pipeline: str, stage: str) -> list[ExecutionRecord]:
        """Executions of ``pipeline/stage``, oldest first."""
        return sorted(self.query().get_all_exe_in_stage(f"{pipeline}/{stage}"), key=lambda e: e.id)

    def all_executions(self) -> list[ExecutionRecord]:
        return sorted(self.query().store.executions(), key=lambda e: e.id)


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.25) -> T:
    """The first truthy result of ``probe`` (events reach the Prefect server asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing observed within {timeout}s")
        time.sleep(interval)


def published(flow_run_id: object, key: str) -> str | None:
    """The markdown of the Prefect artifact ``key`` of a flow run, if it was published."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return next((str(a.data) for a in found if a.key == key), None)


def summary_rows(markdown: str) -> dict[str, str]:
    """Table rows of a flow-run summary by execution id."""
    return {
        line.split("|")[1].strip(): line
        for line in markdown.splitlines()
        if line.startswith("| ") and "---" not in line and not line.startswith("| Id ")
    }
