"""Reading a flow run's executions back and publishing them to Prefect."""

from __future__ import annotations

import logging
from uuid import UUID

from prefect.artifacts import MarkdownArtifact

from cmf_orchestrate.records import ExecutionSnapshot
from cmf_orchestrate.run import FACT_PREFIX
from cmf_orchestrate.settings import CmfSettings
from cmf_orchestrate.store import open_store

logger = logging.getLogger(__name__)


def executions_of_flow_run(settings: CmfSettings, flow_run_id: str) -> list[ExecutionSnapshot]:
    """Every execution recorded for a flow run in ``settings``' store, oldest first.

    Raises:
        StoreUnavailableError: The store cannot be reached.
        StoreError: The store refused the query.
    """
    store = open_store(settings.location)
    quoted = flow_run_id.replace("\\", "\\\\").replace("'", "\\'")
    query = f"custom_properties.`{FACT_PREFIX}flow_run_id`.string_value = '{quoted}'"
    executions = sorted(store.executions(query), key=lambda e: e.id)
    return [store.snapshot(e.id) for e in executions]


def publish_markdown(key: str, markdown: str, description: str, flow_run_id: UUID) -> None:
    """Create a markdown artifact attached to a flow run."""
    artifact = MarkdownArtifact(key=key, markdown=markdown, description=description, flow_run_id=flow_run_id)
    artifact.create(_sync=True)  # type: ignore[call-arg]
