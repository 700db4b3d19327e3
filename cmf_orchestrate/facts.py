"""What an orchestrator tells the core about a task run, and the reserved fact names.

This module is light on purpose: adapters import it while a DAG or flow file is parsed,
long before anything is recorded, so it loads neither ML Metadata nor DVC.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cmf_orchestrate.artifacts import ArtifactSpec
from cmf_orchestrate.errors import InvalidArgumentError

__all__ = [
    "FACT_PREFIX",
    "RESERVED_FACTS",
    "RunInfo",
    "callable_name",
    "check_reserved",
    "code_fingerprint",
    "json_safe",
    "source_fingerprint",
]

#: Orchestration facts are custom properties named ``cmf.<fact>``; user keys cannot use it.
FACT_PREFIX = "cmf."

#: The documented orchestration facts (without the prefix).
RESERVED_FACTS: Mapping[str, str] = {
    "orchestrator": "airflow, prefect or cmf (the seed API)",
    "pipeline_run_id": "DAG run id / flow run id",
    "pipeline_run_name": "flow run name",
    "run_id": "orchestrator run id of the task's pipeline run",
    "task_run_id": "Prefect task run id / Airflow task instance key",
    "task_run_name": "Prefect task run name / Airflow task instance name",
    "attempt": "attempt number (Prefect run_count, Airflow try_number)",
    "map_index": "index of a mapped task instance",
    "logical_date": "logical date of the run (ISO 8601)",
    "dag_id": "Airflow DAG id",
    "flow_run_id": "Prefect flow run id",
    "flow_run_name": "Prefect flow run name",
    "operator": "Airflow operator class",
    "task_key": "Prefect task key",
    "start_time": "when the attempt started (ISO 8601)",
    "end_time": "when the attempt ended (ISO 8601)",
    "hostname": "host that ran the attempt",
    "pid": "process id that ran the attempt",
    "code_fingerprint": "md5 of the task callable's source",
    "error_type": "exception type of a failed attempt",
    "error_message": "exception message of a failed attempt",
    "state_reason": "why the state was set (e.g. abandoned)",
    "graph_synced": "1 when mirrored to the graph store, 0 when pending",
    "reuse_key": "reuse lookup key: md5s of the declared inputs, parameters, code and environment",
    "reuse_parts": "JSON of the reuse key's four parts, to explain a reuse or a miss",
    "reuse_outputs": "JSON: md5 of each declared output, in order, and of the persisted return value",
    "reused_execution": "id of the execution a CACHED execution reused",
}


def code_fingerprint(func: Callable[..., Any]) -> str:
    """md5 of a callable's source (its bytecode when the source is unavailable)."""
    found = source_fingerprint(func)
    if found is not None:
        return found
    target = inspect.unwrap(func)
    code = getattr(target, "__code__", None)
    text = repr(code.co_code) if code is not None else repr(target)
    name = getattr(target, "__qualname__", repr(target))
    return hashlib.md5(f"{name}\n{text}".encode(), usedforsecurity=False).hexdigest()


def source_fingerprint(func: Callable[..., Any]) -> str | None:
    """md5 of a callable's source, or None when it has none (built at run time, a C function).

    Reuse trusts only this: a bytecode fallback would say nothing of what the code calls.
    """
    target = inspect.unwrap(func)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        return None
    name = getattr(target, "__qualname__", repr(target))
    return hashlib.md5(f"{name}\n{text}".encode(), usedforsecurity=False).hexdigest()


def callable_name(func: Callable[..., Any]) -> str:
    """``module:qualname`` of a callable."""
    target = inspect.unwrap(func)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


def json_safe(value: Any) -> Any:
    """A value MLMD can hold: numbers and strings as they are, containers as JSON, others as str."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return "None"
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            pass
    return str(value)


def check_reserved(mapping: Mapping[str, Any], what: str, prefix: str = FACT_PREFIX) -> None:
    """Reject user-supplied keys in the reserved namespace.

    Raises:
        InvalidArgumentError: A key starts with the reserved prefix.
    """
    for key in mapping:
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(f"{what}: property names must be non-empty strings, got {key!r}")
        if key.startswith(prefix):
            raise InvalidArgumentError(
                f"{what}: {key!r} is reserved (names starting with {prefix!r} are set by cmf-orchestrate)"
            )


@dataclass(frozen=True)
class RunInfo:
    """What an adapter knows about a task run attempt.

    Attributes:
        orchestrator: ``airflow``, ``prefect`` or ``cmf``.
        pipeline: Pipeline name (DAG id, flow name).
        stage: Stage name (task id, task name).
        command: The ``Execution`` property: callable name or command line.
        parameters: User parameters, recorded as custom properties.
        facts: Orchestration facts (keys from :data:`RESERVED_FACTS`, no prefix).
        inputs: Declared inputs, already rendered.
        outputs: Declared outputs, already rendered.
        code_fingerprint: Fingerprint of the task's code.
        execution_type: Execution type name (default: the stage name).
    """

    orchestrator: str
    pipeline: str
    stage: str
    command: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    inputs: Sequence[ArtifactSpec] = ()
    outputs: Sequence[ArtifactSpec] = ()
    code_fingerprint: str | None = None
    execution_type: str | None = None

    def __post_init__(self) -> None:
        for what, value in (("pipeline", self.pipeline), ("stage", self.stage)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidArgumentError(f"RunInfo.{what} must be a non-empty string, got {value!r}")
        unknown = [k for k in self.facts if k not in RESERVED_FACTS]
        if unknown:
            raise InvalidArgumentError(f"RunInfo.facts: unknown fact(s) {', '.join(sorted(unknown))}")
        check_reserved(self.parameters, "parameters", FACT_PREFIX)
        for spec in (*self.inputs, *self.outputs):
            if not isinstance(spec, ArtifactSpec):
                raise InvalidArgumentError(
                    f"declared artifacts must be Dataset, Model, Metrics or Dataslice, got {spec!r}"
                )
