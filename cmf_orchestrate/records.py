"""Typed value objects passed between the layers.

ML Metadata protos, DVC objects and Neo4j records never leave their own module; the
rest of the code and the public read API speak in these small frozen dataclasses.
"""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ArtifactKind",
    "ArtifactRecord",
    "ContextRecord",
    "EventRecord",
    "EventType",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "ExecutionState",
    "Value",
    "metrics_set_name",
]

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):
        """Python 3.11's StrEnum: members are their string values."""

        def __str__(self) -> str:
            return str(self.value)


#: A property value as stored: MLMD keeps strings, integers and floats.
Value = str | int | float


class ArtifactKind(StrEnum):
    """The CMF artifact types; the value is the MLMD type name."""

    DATASET = "Dataset"
    MODEL = "Model"
    METRICS = "Metrics"
    STEP_METRICS = "Step_Metrics"
    DATASLICE = "Dataslice"
    ENVIRONMENT = "Environment"
    LABEL = "Label"
    #: A version string an execution validated against (``Cmf.log_validation_output``).
    VALIDATION_OUTPUT = "Validation_output"


class ExecutionState(StrEnum):
    """Execution states, named as in ML Metadata."""

    UNKNOWN = "UNKNOWN"
    NEW = "NEW"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CACHED = "CACHED"
    CANCELED = "CANCELED"


class EventType(StrEnum):
    """Direction of an artifact relative to an execution."""

    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    #: An output the attempt declared but did not write: never counted as produced.
    DECLARED_OUTPUT = "DECLARED_OUTPUT"
    #: An output kept within the execution (CMF's validation output): listed with the
    #: execution, never counted as produced data, so lineage does not pass through it.
    INTERNAL_OUTPUT = "INTERNAL_OUTPUT"


@dataclass(frozen=True)
class ContextRecord:
    """A pipeline (``Parent_Context``) or stage (``Pipeline_Stage``) context."""

    id: int
    name: str
    type: str
    properties: Mapping[str, Value] = field(default_factory=dict)
    custom_properties: Mapping[str, Value] = field(default_factory=dict)
    create_time_ms: int = 0
    update_time_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "properties": dict(self.properties),
            "custom_properties": dict(self.custom_properties),
            "create_time_since_epoch": self.create_time_ms,
            "last_update_time_since_epoch": self.update_time_ms,
        }


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution: a single run attempt of a stage."""

    id: int
    name: str
    type: str
    state: ExecutionState
    properties: Mapping[str, Value] = field(default_factory=dict)
    custom_properties: Mapping[str, Value] = field(default_factory=dict)
    create_time_ms: int = 0
    update_time_ms: int = 0

    @property
    def uuid(self) -> str:
        """The CMF ``Execution_uuid`` property."""
        return str(self.properties.get("Execution_uuid", ""))

    @property
    def pipeline(self) -> str:
        """Name of the pipeline the execution belongs to."""
        return str(self.properties.get("Pipeline_Type", ""))

    @property
    def stage_id(self) -> int:
        """Id of the stage context the execution is associated to."""
        return int(self.properties.get("Context_ID", 0))

    @property
    def pipeline_id(self) -> int:
        """Id of the pipeline context."""
        return int(self.properties.get("Pipeline_id", 0))

    def fact(self, name: str, default: Value | None = None) -> Value | None:
        """An orchestration fact (reserved custom property ``cmf.<name>``)."""
        return self.custom_properties.get(f"cmf.{name}", default)

    @property
    def parameters(self) -> dict[str, Value]:
        """User parameters: the custom properties outside the reserved ``cmf.`` namespace
        (and CMF's own ``Python_Env``, the environment file)."""
        return {k: v for k, v in self.custom_properties.items() if not k.startswith("cmf.") and k != "Python_Env"}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "state": self.state.value,
            "properties": dict(self.properties),
            "custom_properties": dict(self.custom_properties),
            "create_time_since_epoch": self.create_time_ms,
            "last_update_time_since_epoch": self.update_time_ms,
        }


@dataclass(frozen=True)
class ArtifactRecord:
    """One artifact: content identified by its DVC md5 (``uri``)."""

    id: int
    kind: str
    name: str
    uri: str
    properties: Mapping[str, Value] = field(default_factory=dict)
    custom_properties: Mapping[str, Value] = field(default_factory=dict)
    create_time_ms: int = 0
    #: Last change of the artifact; not part of equality (a rewrite of the url does not make another artifact).
    update_time_ms: int = field(default=0, compare=False)

    @property
    def path(self) -> str:
        """Project-relative path the artifact was recorded from."""
        name = self.name
        if self.kind == ArtifactKind.MODEL.value:
            # <path>:<md5>:<execution id>
            name = name.rsplit(":", 1)[0]
        if self.uri and name.endswith(":" + self.uri):
            return name[: -len(self.uri) - 1]
        return name

    @property
    def md5(self) -> str:
        """The DVC md5 (``<md5>.dir`` for a directory)."""
        return self.uri

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "id": self.id,
            "type": self.kind,
            "name": self.name,
            "uri": self.uri,
            "path": self.path,
            "properties": dict(self.properties),
            "custom_properties": dict(self.custom_properties),
            "create_time_since_epoch": self.create_time_ms,
        }


#: What CMF appends to the name a metrics set was logged under: ``:<uuid>:<execution id>``.
_METRICS_SUFFIX = re.compile(r":[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9]+$")


def metrics_set_name(metrics_name: Any) -> str:
    """The name execution metrics were logged under, from a ``metrics_name`` property.

    CMF records ``<name>:<uuid>:<execution id>`` there; the name is what tells two
    executions' metrics apart, so readers compare and show that.
    """
    return _METRICS_SUFFIX.sub("", str(metrics_name))


@dataclass(frozen=True)
class EventRecord:
    """An INPUT or OUTPUT link between an execution and an artifact."""

    execution_id: int
    artifact_id: int
    type: EventType
    time_ms: int = 0


@dataclass(frozen=True)
class ExecutionSnapshot:
    """An execution with its contexts and artifacts: what the graph layer mirrors."""

    pipeline: ContextRecord
    stage: ContextRecord
    execution: ExecutionRecord
    inputs: tuple[ArtifactRecord, ...] = ()
    outputs: tuple[ArtifactRecord, ...] = ()
    #: For each input artifact id, the executions that produced it.
    producers: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
