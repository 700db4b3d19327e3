"""Reading a flow run's executions back and publishing them to Prefect."""

from __future__ import annotations

import logging
from uuid import UUID

from prefect.artifacts import MarkdownArtifact

from cmf_orchestrate.query import CmfQuery
from cmf_orchestrate.records import ExecutionSnapshot
from cmf_orchestrate.settings import CmfSettings

logger = logging.getLogger(__name__)


def executions_of_flow_run(settings: CmfSettings, flow_run_id: str) -> list[ExecutionSnapshot]:
    """Every execution recorded for a flow run in ``settings``' store, oldest first.

    Raises:
        StoreUnavailableError: The store cannot be reached.
        StoreError: The store refused the query.
    """
    return CmfQuery(settings=settings).get_executions_by_fact("flow_run_id", flow_run_id)


def publish_markdown(key: str, markdown: str, description: str, flow_run_id: UUID) -> None:
    """Create a markdown artifact attached to a flow run."""
    artifact = MarkdownArtifact(key=key, markdown=markdown, description=description, flow_run_id=flow_run_id)
    artifact.create(_sync=True)  # type: ignore[call-arg]
