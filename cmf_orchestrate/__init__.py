"""cmf-orchestrate: the Common Metadata Framework (CMF) for Apache Airflow and Prefect.

The core is orchestrator-neutral: importing it loads neither Airflow nor Prefect.
Adapters live in :mod:`cmf_orchestrate.airflow` and :mod:`cmf_orchestrate.prefect`.
"""

from __future__ import annotations

from cmf_orchestrate import cmf
from cmf_orchestrate.artifacts import ArtifactSpec, Dataset, Dataslice, Metrics, Model
from cmf_orchestrate.cmf import Cmf
from cmf_orchestrate.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    CmfError,
    ConfigError,
    InvalidArgumentError,
    NoActiveRunError,
    PathOutsideProjectError,
    StoreError,
    StoreUnavailableError,
    TemplateError,
)
from cmf_orchestrate.query import CmfQuery, LineageEdge, LineageGraph, LineageNode
from cmf_orchestrate.records import (
    ArtifactKind,
    ArtifactRecord,
    ContextRecord,
    EventType,
    ExecutionRecord,
    ExecutionState,
)
from cmf_orchestrate.run import RunInfo, TaskRun, current_run, task_run
from cmf_orchestrate.settings import CmfSettings

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "ArtifactKind",
    "ArtifactNotFoundError",
    "ArtifactRecord",
    "ArtifactSpec",
    "Cmf",
    "CmfError",
    "CmfQuery",
    "CmfSettings",
    "ConfigError",
    "ContextRecord",
    "Dataset",
    "Dataslice",
    "EventType",
    "ExecutionRecord",
    "ExecutionState",
    "InvalidArgumentError",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "Metrics",
    "Model",
    "NoActiveRunError",
    "PathOutsideProjectError",
    "RunInfo",
    "StoreError",
    "StoreUnavailableError",
    "TaskRun",
    "TemplateError",
    "cmf",
    "current_run",
    "task_run",
]
