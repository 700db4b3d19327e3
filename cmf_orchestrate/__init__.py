"""cmf-orchestrate: the Common Metadata Framework (CMF) for Apache Airflow and Prefect.

The core is orchestrator-neutral: importing it loads neither Airflow nor Prefect. Names
are loaded on first use, so that a DAG or flow file importing a declaration such as
:class:`Dataset` does not pay for ML Metadata and DVC while it is merely parsed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmf_orchestrate import cmf, cmfquery
    from cmf_orchestrate.artifacts import ArtifactSpec, Dataset, Dataslice, Metrics, Model
    from cmf_orchestrate.cmf import Cmf
    from cmf_orchestrate.errors import (
        ArtifactError,
        ArtifactNotFoundError,
        CmfError,
        ConfigError,
        GraphError,
        GraphUnavailableError,
        InvalidArgumentError,
        NoActiveRunError,
        PathOutsideProjectError,
        RemoteError,
        StoreError,
        StoreUnavailableError,
        TemplateError,
    )
    from cmf_orchestrate.facts import RunInfo
    from cmf_orchestrate.query import CmfQuery, LineageEdge, LineageGraph, LineageNode, MetadataQuery
    from cmf_orchestrate.records import (
        ArtifactKind,
        ArtifactRecord,
        ContextRecord,
        EventType,
        ExecutionRecord,
        ExecutionState,
    )
    from cmf_orchestrate.run import TaskRun, current_run, record_cached, task_run
    from cmf_orchestrate.settings import CmfSettings

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ArtifactError": "errors",
    "ArtifactKind": "records",
    "ArtifactNotFoundError": "errors",
    "ArtifactRecord": "records",
    "ArtifactSpec": "artifacts",
    "Cmf": "cmf",
    "CmfError": "errors",
    "CmfQuery": "query",
    "CmfSettings": "settings",
    "ConfigError": "errors",
    "ContextRecord": "records",
    "Dataset": "artifacts",
    "Dataslice": "artifacts",
    "EventType": "records",
    "ExecutionRecord": "records",
    "ExecutionState": "records",
    "GraphError": "errors",
    "GraphUnavailableError": "errors",
    "InvalidArgumentError": "errors",
    "LineageEdge": "query",
    "LineageGraph": "query",
    "LineageNode": "query",
    "MetadataQuery": "query",
    "Metrics": "artifacts",
    "Model": "artifacts",
    "NoActiveRunError": "errors",
    "PathOutsideProjectError": "errors",
    "RemoteError": "errors",
    "RunInfo": "facts",
    "StoreError": "errors",
    "StoreUnavailableError": "errors",
    "TaskRun": "run",
    "TemplateError": "errors",
    "current_run": "run",
    "record_cached": "run",
    "task_run": "run",
}

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
    "GraphError",
    "GraphUnavailableError",
    "InvalidArgumentError",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "MetadataQuery",
    "Metrics",
    "Model",
    "NoActiveRunError",
    "PathOutsideProjectError",
    "RemoteError",
    "RunInfo",
    "StoreError",
    "StoreUnavailableError",
    "TaskRun",
    "TemplateError",
    "cmf",
    "cmfquery",
    "current_run",
    "record_cached",
    "task_run",
]


def __getattr__(name: str) -> Any:
    if name in ("cmf", "cmfquery"):
        return importlib.import_module(f"cmf_orchestrate.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cmf_orchestrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cmf_orchestrate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
