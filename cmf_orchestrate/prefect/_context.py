"""Translation of Prefect's run context into the facts of a :class:`RunInfo`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prefect.context import FlowRunContext, TaskRunContext

from cmf_orchestrate.facts import json_safe

if TYPE_CHECKING:
    from prefect import Flow

logger = logging.getLogger(__name__)

ORCHESTRATOR = "prefect"


def bind_arguments(signature: inspect.Signature, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults included, ``**kwargs`` flattened."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    values: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            values.update(value)
        else:
            values[name] = value
    return values


def parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """User parameters of the execution: JSON-safe values kept, others stringified."""
    return {name: json_safe(value) for name, value in values.items()}


def run_facts() -> dict[str, str | int]:
    """Orchestration facts of the running Prefect task and flow run (empty outside one).

    Keys are the core's reserved fact names (:data:`cmf_orchestrate.run.RESERVED_FACTS`);
    the flow run is also given under the orchestrator-neutral ``pipeline_run_*`` and
    ``run_id`` names, so that queries across Airflow and Prefect runs need one key.
    """
    facts: dict[str, str | int] = {}
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        facts["flow_run_id"] = str(flow_ctx.flow_run.id)
        facts["flow_run_name"] = flow_ctx.flow_run.name
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        run = task_ctx.task_run
        facts["task_key"] = run.task_key
        facts["task_run_id"] = str(run.id)
        facts["task_run_name"] = run.name
        facts["attempt"] = int(run.run_count)
        if "flow_run_id" not in facts and run.flow_run_id is not None:
            facts["flow_run_id"] = str(run.flow_run_id)
    if "flow_run_id" in facts:
        facts["run_id"] = facts["pipeline_run_id"] = facts["flow_run_id"]
    if "flow_run_name" in facts:
        facts["pipeline_run_name"] = facts["flow_run_name"]
    return facts


def running_flow() -> Flow[Any, Any] | None:
    """The running flow, if any."""
    flow_ctx = FlowRunContext.get()
    return flow_ctx.flow if flow_ctx is not None else None


def flow_name() -> str | None:
    """Name of the running flow, if any."""
    flow = running_flow()
    return flow.name if flow is not None else None


def task_name(default: str) -> str:
    """Name of the running task (``with_options(name=...)`` included), else ``default``."""
    task_ctx = TaskRunContext.get()
    return task_ctx.task.name if task_ctx is not None else default


def flow_run_scope() -> str:
    """A key identifying the running flow run ("" outside one)."""
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return str(flow_ctx.flow_run.id)
    return ""
