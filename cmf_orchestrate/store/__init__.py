"""The metadata store: CMF's ML Metadata schema on SQLite, PostgreSQL and MySQL.

Read and written with SQLAlchemy Core; a database created here is an ML Metadata
store (schema version 10) that ml-metadata and CMF's own tools open as their own.
"""

from __future__ import annotations

from cmf_orchestrate.store._bootstrap import init_store
from cmf_orchestrate.store._store import (
    ARTIFACT_TYPE_PROPERTIES,
    EXECUTION_TYPE_PROPERTIES,
    PIPELINE_CONTEXT_TYPE,
    STAGE_CONTEXT_TYPE,
    ArtifactDraft,
    MetadataStore,
    open_store,
)
from cmf_orchestrate.store._times import restore_times

__all__ = [
    "ARTIFACT_TYPE_PROPERTIES",
    "EXECUTION_TYPE_PROPERTIES",
    "PIPELINE_CONTEXT_TYPE",
    "STAGE_CONTEXT_TYPE",
    "ArtifactDraft",
    "MetadataStore",
    "init_store",
    "open_store",
    "restore_times",
]
