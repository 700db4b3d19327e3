"""Prefect integration of cmf-orchestrate.

``@cmf_task`` records every attempt of a Prefect task run in CMF (ML Metadata, DVC and
optionally Neo4j); ``@cmf_flow`` sets flow-level defaults; the :class:`CmfConfig` block
keeps the settings in Prefect. This module is the ``prefect.collections`` entry point,
so ``prefect block register -m cmf_orchestrate.prefect`` registers the block.
"""

from __future__ import annotations

from cmf_orchestrate.prefect.blocks import CmfConfig
from cmf_orchestrate.prefect.flows import FlowDefaults, cmf_flow, publish_summary
from cmf_orchestrate.prefect.tasks import cmf_task

__all__ = ["CmfConfig", "FlowDefaults", "cmf_flow", "cmf_task", "publish_summary"]
